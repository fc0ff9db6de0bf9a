import assert from "node:assert/strict";
import { subjectsOf } from "../core/trust_policy.ts";
import { silentLogger } from "../lib/log.ts";
import { createServerMetrics } from "../observe/metrics.ts";
import { createKubeClient, type KubeClient, type Lease } from "../kube/client.ts";
import { createTestClock, type TestClock } from "../../tests/fixtures/test_clock.ts";
import { FakeIamRoles } from "../../tests/fakes/iam_roles.ts";
import { sharedKubeApiServer } from "../../tests/fixtures/kube_apiserver.ts";
import { startKubeFaultProxy } from "../../tests/kube_fault_proxy.ts";
import { HANDED_ANNOTATION, handedOf, leaseName, RESULTS_ANNOTATION } from "./handoff.ts";
import { importHandoffKey } from "./handoff_seal.ts";
import { createLeaseRoleLock, type RoleLock } from "./role_lock.ts";
import { createTrustEditor } from "./trust_editor.ts";
import { AUDIT, FRESH, HOST, OPTS, ROLE, run } from "../../tests/fixtures/example_trust.ts";

type LeaseCalls = Pick<KubeClient, "getLease" | "createLease" | "replaceLease">;

/** A replica's editor on `lock`, its windows and waits on `clock` when given. */
function editorWith(iam: FakeIamRoles, lock: RoleLock, clock?: TestClock, windowMs = 0) {
  return createTrustEditor({
    roles: iam,
    oidcProvider: HOST,
    audience: "sts.amazonaws.com",
    format: "wildcard",
    quota: 2048,
    logger: silentLogger,
    metrics: createServerMetrics(),
    lock,
    windowMs,
    ...(clock ? { now: clock.now, sleep: clock.sleep } : {}),
  });
}

/** IAM that answers at once: a test holds a call where it needs one to last. */
function fakeIam() {
  const iam = new FakeIamRoles();
  iam.policies.set("acme-list-bucket-role", FRESH);
  return iam;
}

/**
 * Holds IAM's next read (or write) of a role until `open()`: `entered` resolves once it is made.
 * So a test orders what happens under a Lease without IAM taking real time.
 */
function holdNext(iam: FakeIamRoles, call: "read" | "write") {
  const entered = Promise.withResolvers<void>();
  const opened = Promise.withResolvers<void>();
  if (call === "read") {
    const read = iam.getTrustPolicy.bind(iam);
    iam.getTrustPolicy = async (name) => {
      iam.getTrustPolicy = read;
      entered.resolve();
      await opened.promise;
      return await read(name);
    };
  } else {
    const write = iam.putTrustPolicy.bind(iam);
    iam.putTrustPolicy = async (name, document) => {
      iam.putTrustPolicy = write;
      entered.resolve();
      await opened.promise;
      return await write(name, document);
    };
  }
  return { entered: entered.promise, open: () => opened.resolve() };
}

Deno.test("a Kubernetes API that answers 409 or 500 while taking the Lease is retried, and no edit is lost", async () => {
  const cluster = await sharedKubeApiServer();
  const field = await cluster.createNamespace("field");
  const proxy = startKubeFaultProxy(cluster);
  const kube = createKubeClient({ apiUrl: proxy.url, token: () => cluster.adminToken });
  try {
    const iam = fakeIam();
    // Time moves only as the lock sleeps (its pauses between attempts), never on a timer.
    const clock = createTestClock();
    const lock = createLeaseRoleLock({
      kube,
      namespace: field,
      identity: "r1",
      logger: silentLogger,
      now: clock.now,
      sleep: clock.sleep,
    });
    const editor = editorWith(iam, lock);
    proxy.failNext(2, 500, { path: "/apis/coordination.k8s.io" });
    assert.equal((await clock.run(editor.edit(ROLE, { add: run(1) }, AUDIT))).status, "added");
    proxy.failNext(2, 409, { method: "PUT", path: "/apis/coordination.k8s.io" });
    assert.equal((await clock.run(editor.edit(ROLE, { add: run(2) }, AUDIT))).status, "added");
    assert.deepEqual(subjectsOf(iam.policies.get("acme-list-bucket-role")!, OPTS), [
      run(1),
      run(2),
    ]);
    assert.equal(proxy.requests.filter((r) => r.status === 500).length, 2);
    assert.ok(proxy.requests.filter((r) => r.status === 409).length >= 1);
    // Past the injected failures, the Lease was taken and released on the real API server.
    assert.ok(proxy.requests.some((r) => r.method === "PUT" && r.status === 200 && !r.injected));
  } finally {
    kube.close();
    await proxy.close();
  }
});

/**
 * Two replicas' editors, each with its own Lease lock, in a namespace of the real API server of its
 * own (through a proxy that logs the calls), sharing one IAM and one test clock: a window ends, a
 * replica looks at the Lease again and a Lease expires only as the test moves time. The API server
 * keeps Leases as plain objects (whether one is held is judged on the lock's clock), so no test
 * here needs real time to pass.
 */
async function twoReplicas(iam: FakeIamRoles, windowMs: number) {
  const cluster = await sharedKubeApiServer();
  const ns = await cluster.createNamespace("field");
  const proxy = startKubeFaultProxy(cluster);
  const kube = createKubeClient({ apiUrl: proxy.url, token: () => cluster.adminToken });
  const clock = createTestClock();
  // The replicas' shared key, as the chart's Secret gives it to each pod.
  const handoffKey = await importHandoffKey(crypto.randomUUID());
  // Every Lease a replica writes, so that a test can wait for a hand-over.
  const written: Lease[] = [];
  let wrote = Promise.withResolvers<void>();
  const watched: LeaseCalls = {
    getLease: (namespace, name) => kube.getLease(namespace, name),
    createLease: (namespace, lease) => kube.createLease(namespace, lease),
    async replaceLease(namespace, lease) {
      const done = await kube.replaceLease(namespace, lease);
      written.push(done);
      wrote.resolve();
      wrote = Promise.withResolvers();
      return done;
    },
  };
  // The default duration: a holder renews every 5 s of the clock, never within one test's steps.
  const replica = (identity: string) =>
    editorWith(
      iam,
      createLeaseRoleLock({
        kube: watched,
        namespace: ns,
        identity,
        logger: silentLogger,
        now: clock.now,
        sleep: clock.sleep,
        handoffKey,
      }),
      clock,
      windowMs,
    );
  return {
    clock,
    kube,
    proxy,
    /** A Lease on ROLE taken by a replica that died: it expires 1 s later on the clock. */
    async deadHolder(annotations?: Record<string, string>) {
      const at = new Date(clock.now()).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
      await kube.createLease(ns, {
        name: leaseName(ROLE),
        holderIdentity: "replica-dead",
        leaseDurationSeconds: 1,
        acquireTime: at,
        renewTime: at,
        ...(annotations ? { annotations } : {}),
      });
    },
    /** Moves the clock on until a replica has written `n` edits handed over on ROLE's Lease. */
    async handed(n: number) {
      const seen = (async () => {
        while (!written.some((l) => handedOf(l).length >= n)) await wrote.promise;
      })();
      await clock.run(seen, 5, 10_000);
    },
    /** The Lease as the API server holds it. */
    lease: async (name: string) =>
      await cluster.must("GET", `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/${name}`),
    a: replica("replica-a"),
    b: replica("replica-b"),
    async close() {
      kube.close();
      await proxy.close();
    },
  };
}

Deno.test("a replica that finds the Lease held hands its edits to the holder: one write for both", async () => {
  const iam = fakeIam();
  const r = await twoReplicas(iam, 20);
  try {
    // A takes the Lease and reads the role, which answers when the test says.
    const read = holdNext(iam, "read");
    const onA = Array.from({ length: 10 }, (_, i) => r.a.edit(ROLE, { add: run(i) }, AUDIT));
    await r.clock.run(read.entered);
    // B's edits arrive while A holds the Lease and reads: B waits out its window, then hands them
    // over.
    const onB = Array.from({ length: 10 }, (_, i) => r.b.edit(ROLE, { add: run(100 + i) }, AUDIT));
    await r.handed(10);
    read.open();
    const outcomes = await r.clock.run(Promise.all([...onA, ...onB]));
    assert.deepEqual(new Set(outcomes.map((o) => o.status)), new Set(["added"]));
    assert.equal(subjectsOf(iam.policies.get("acme-list-bucket-role")!, OPTS).length, 20);
    assert.equal(iam.count("UpdateAssumeRolePolicy"), 1, "B's edits went in A's write");
    const lease = await r.lease(leaseName(ROLE));
    const meta = lease.metadata as { annotations: Record<string, string> };
    assert.equal((lease.spec as Record<string, unknown>).holderIdentity, undefined);
    assert.equal(meta.annotations[HANDED_ANNOTATION], undefined, "nothing left to apply");
    assert.equal(Object.keys(JSON.parse(meta.annotations[RESULTS_ANNOTATION])).length, 10);
  } finally {
    await r.close();
  }
});

Deno.test("edits handed to a holder that dies are applied by the replica that handed them", async () => {
  const iam = fakeIam();
  const r = await twoReplicas(iam, 0);
  try {
    // A replica took the Lease and died: it never applies what it is handed, nor releases.
    await r.deadHolder();
    const outcome = await r.clock.run(r.b.edit(ROLE, { add: run(7) }, AUDIT), 20);
    assert.equal(outcome.status, "added");
    assert.deepEqual(subjectsOf(iam.policies.get("acme-list-bucket-role")!, OPTS), [run(7)]);
    const lease = await r.lease(leaseName(ROLE));
    const meta = lease.metadata as { annotations?: Record<string, string> };
    assert.equal(meta.annotations?.[HANDED_ANNOTATION], undefined);
  } finally {
    await r.close();
  }
});

Deno.test("a Lease with no room for more handed edits makes a replica wait for it instead", async () => {
  const iam = fakeIam();
  const r = await twoReplicas(iam, 0);
  try {
    const crowd = Array.from(
      { length: 1300 }, // about 125 KB: more than the Lease takes
      (_, i) => ({ id: `replica-dead/${i}`, remove: run(5000 + i), user: "someone" }),
    );
    await r.deadHolder({ [HANDED_ANNOTATION]: JSON.stringify(crowd) });
    const before = r.proxy.requests.length;
    const outcome = await r.clock.run(r.b.edit(ROLE, { add: run(8) }, AUDIT), 20);
    assert.equal(outcome.status, "added");
    const lease = await r.lease(leaseName(ROLE));
    const meta = lease.metadata as { annotations?: Record<string, string> };
    // B took the Lease once it expired; what the dead holder had been handed, unsealed, left it.
    assert.equal(meta.annotations?.[HANDED_ANNOTATION], undefined);
    const puts = r.proxy.requests.slice(before).filter((q) =>
      q.method === "PUT" && q.path.includes("/leases/")
    );
    assert.equal(
      puts.length,
      2,
      "B never appended to the full Lease: it took it, then released it",
    );
  } finally {
    await r.close();
  }
});

Deno.test("edits that reach a replica while it waits on the holder are handed over too, into the same write", async () => {
  const iam = fakeIam();
  const r = await twoReplicas(iam, 20);
  try {
    const read = holdNext(iam, "read");
    const first = r.a.edit(ROLE, { add: run(0) }, AUDIT); // A takes the Lease and reads.
    await r.clock.run(read.entered);
    const handed = r.b.edit(ROLE, { add: run(1) }, AUDIT); // B hands this over after its window.
    await r.handed(1);
    const later = r.b.edit(ROLE, { add: run(2) }, AUDIT); // Arrives while B waits on A.
    await r.handed(2);
    read.open();
    const outcomes = await r.clock.run(Promise.all([first, handed, later]));
    assert.deepEqual(outcomes.map((o) => o.status), ["added", "added", "added"]);
    assert.equal(iam.count("UpdateAssumeRolePolicy"), 1, "all three in A's one write");
  } finally {
    await r.close();
  }
});

Deno.test("a holder that wrote but could not release the Lease leaves no version that a stale cache matches", async () => {
  const iam = fakeIam();
  const world = await twoReplicas(iam, 0);
  try {
    // B reads and caches the policy with run 1; the Lease records that version.
    const first = await world.clock.run(world.b.edit(ROLE, { add: run(1) }, AUDIT));
    assert.equal(first.status, "added");
    // A writes run 2, and its release of the Lease fails: the API server answers 500.
    const put = iam.putTrustPolicy.bind(iam);
    iam.putTrustPolicy = (name, document) => {
      world.proxy.failNext(1, 500, { method: "PUT", path: "/apis/coordination.k8s.io" });
      return put(name, document);
    };
    const second = await world.clock.run(world.a.edit(ROLE, { add: run(2) }, AUDIT));
    assert.equal(second.status, "added");
    iam.putTrustPolicy = put;
    assert.ok(
      world.proxy.requests.some((r) => r.injected && r.method === "PUT"),
      "the release was refused",
    );
    // Once A's Lease has expired, B edits the role: its cache is of the policy before A's write.
    world.clock.advance(15_001);
    const third = await world.clock.run(world.b.edit(ROLE, { add: run(3) }, AUDIT));
    assert.equal(third.status, "added");
    assert.deepEqual(
      subjectsOf(iam.policies.get("acme-list-bucket-role")!, OPTS),
      [run(1), run(2), run(3)],
      "A's write must not be lost",
    );
  } finally {
    await world.close();
  }
});

Deno.test("edits handed over while the holder writes go in its next write under the same hold: no second read, and the holder's own requests do not wait for it", async () => {
  const iam = fakeIam();
  const r = await twoReplicas(iam, 0);
  try {
    // A reads, then writes its edit; the write answers when the test says.
    const firstWrite = holdNext(iam, "write");
    let answeredA = false;
    const onA = r.a.edit(ROLE, { add: run(1) }, AUDIT).then((o) => {
      answeredA = true;
      return o;
    });
    await r.clock.run(firstWrite.entered);
    // B's edit arrives while A writes: B hands it over.
    const onB = r.b.edit(ROLE, { add: run(2) }, AUDIT);
    await r.handed(1);
    const secondWrite = holdNext(iam, "write");
    firstWrite.open();
    await r.clock.run(secondWrite.entered);
    assert.ok(answeredA, "A's request did not wait for the second write");
    secondWrite.open();
    const [a, b] = await r.clock.run(Promise.all([onA, onB]));
    assert.deepEqual([a.status, b.status], ["added", "added"]);
    assert.deepEqual(subjectsOf(iam.policies.get("acme-list-bucket-role")!, OPTS), [
      run(1),
      run(2),
    ]);
    assert.equal(iam.count("GetRole"), 1, "B's edit was applied by A, from the policy A wrote");
    assert.equal(iam.count("UpdateAssumeRolePolicy"), 2);
    const lease = await r.lease(leaseName(ROLE));
    const meta = lease.metadata as { annotations: Record<string, string> };
    assert.equal(meta.annotations[HANDED_ANNOTATION], undefined, "nothing left to apply");
  } finally {
    await r.close();
  }
});
