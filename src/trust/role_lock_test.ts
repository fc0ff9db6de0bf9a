import assert from "node:assert/strict";
import { subjectsOf } from "../core/trust_policy.ts";
import { silentLogger } from "../lib/log.ts";
import { createServerMetrics } from "../observe/metrics.ts";
import { createKubeClient } from "../kube/client.ts";
import { createTestClock } from "../kube/test_clock.ts";
import { FakeIamRoles } from "../../tests/fakes/iam_roles.ts";
import { sharedKubeApiServer } from "../../tests/fixtures/kube_apiserver.ts";
import { startKubeFaultProxy } from "../../tests/kube_fault_proxy.ts";
import { HANDED_ANNOTATION, leaseName, RESULTS_ANNOTATION } from "./handoff.ts";
import { createLeaseRoleLock, type RoleLock } from "./role_lock.ts";
import { createTrustEditor } from "./trust_editor.ts";

const HOST = "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
const ROLE = "arn:aws:iam::111111111111:role/acme-list-bucket-role";
const FRESH = Deno.readTextFileSync(
  new URL("../../tests/testdata/fresh_proxy_trust_policy.json", import.meta.url),
);
const OPTS = {
  providerArn: `arn:aws:iam::111111111111:oidc-provider/${HOST}`,
  audience: "sts.amazonaws.com",
  format: "wildcard" as const,
  quota: 2048,
};
const run = (i: number) => `*:domino-compute:run-${i.toString(16).padStart(24, "0")}`;
const AUDIT = { user: "jdoe" };

function editorWith(
  iam: FakeIamRoles,
  lock?: RoleLock,
  now?: () => number,
  windows: { windowMs?: number; maxWindowMs?: number } = {},
) {
  const metrics = createServerMetrics();
  const editor = createTrustEditor({
    roles: iam,
    oidcProvider: HOST,
    audience: "sts.amazonaws.com",
    format: "wildcard",
    quota: 2048,
    logger: silentLogger,
    metrics,
    lock,
    now,
    ...windows,
  });
  return { editor, metrics };
}

function fakeIam(latencyMs = 20) {
  const iam = new FakeIamRoles();
  iam.policies.set("acme-list-bucket-role", FRESH);
  iam.latencyMs = latencyMs;
  return iam;
}

Deno.test("a Kubernetes API that answers 409 or 500 while taking the Lease is retried, and no edit is lost", async () => {
  const cluster = await sharedKubeApiServer();
  const field = await cluster.createNamespace("field");
  const proxy = startKubeFaultProxy(cluster);
  const kube = createKubeClient({ apiUrl: proxy.url, token: () => cluster.adminToken });
  try {
    const iam = fakeIam(0);
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
    const { editor } = editorWith(iam, lock);
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
 * own (through a proxy that logs the calls), sharing one IAM.
 */
async function twoReplicas(iam: FakeIamRoles, windowMs: number) {
  const cluster = await sharedKubeApiServer();
  const ns = await cluster.createNamespace("field");
  const proxy = startKubeFaultProxy(cluster);
  const kube = createKubeClient({ apiUrl: proxy.url, token: () => cluster.adminToken });
  const replica = (identity: string) =>
    editorWith(
      iam,
      createLeaseRoleLock({
        kube,
        namespace: ns,
        identity,
        leaseDurationSeconds: 1,
        logger: silentLogger,
      }),
      undefined,
      { windowMs },
    ).editor;
  return {
    cluster,
    ns,
    kube,
    proxy,
    /** A Lease on ROLE taken by a replica that died (it expires in 1 s). */
    async deadHolder(annotations?: Record<string, string>) {
      const at = new Date().toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
      await kube.createLease(ns, {
        name: leaseName(ROLE),
        holderIdentity: "replica-dead",
        leaseDurationSeconds: 1,
        acquireTime: at,
        renewTime: at,
        ...(annotations ? { annotations } : {}),
      });
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
  const iam = fakeIam(150);
  const r = await twoReplicas(iam, 20);
  try {
    const onA = Array.from({ length: 10 }, (_, i) => r.a.edit(ROLE, { add: run(i) }, AUDIT));
    // B's edits arrive once A holds the Lease (a real API server takes a few ms to grant it),
    // while A still reads the role (150 ms).
    for (let n = 0; n < 100; n++) {
      const held = await r.cluster.request(
        "GET",
        `/apis/coordination.k8s.io/v1/namespaces/${r.ns}/leases/${leaseName(ROLE)}`,
      );
      if (held.status === 200 && held.json.spec?.holderIdentity === "replica-a") break;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const onB = Array.from({ length: 10 }, (_, i) => r.b.edit(ROLE, { add: run(100 + i) }, AUDIT));
    const outcomes = await Promise.all([...onA, ...onB]);
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
  const iam = fakeIam(0);
  const r = await twoReplicas(iam, 0);
  try {
    // A replica took the Lease and died: it never applies what it is handed, nor releases.
    await r.deadHolder();
    const outcome = await r.b.edit(ROLE, { add: run(7) }, AUDIT);
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
  const iam = fakeIam(0);
  const r = await twoReplicas(iam, 0);
  try {
    const crowd = Array.from(
      { length: 1300 }, // about 125 KB: more than the Lease takes
      (_, i) => ({ id: `replica-dead/${i}`, remove: run(5000 + i), user: "someone" }),
    );
    await r.deadHolder({ [HANDED_ANNOTATION]: JSON.stringify(crowd) });
    const before = r.proxy.requests.length;
    assert.equal((await r.b.edit(ROLE, { add: run(8) }, AUDIT)).status, "added");
    const lease = await r.lease(leaseName(ROLE));
    const meta = lease.metadata as { annotations?: Record<string, string> };
    // B took the Lease once it expired and applied what the dead holder had been handed, too.
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
  const iam = fakeIam(120);
  const r = await twoReplicas(iam, 20);
  try {
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    const first = r.a.edit(ROLE, { add: run(0) }, AUDIT); // A takes the Lease, reads for 120 ms.
    await sleep(5);
    const handed = r.b.edit(ROLE, { add: run(1) }, AUDIT); // B hands this over after its window.
    await sleep(45);
    const later = r.b.edit(ROLE, { add: run(2) }, AUDIT); // Arrives while B waits on A.
    const outcomes = await Promise.all([first, handed, later]);
    assert.deepEqual(outcomes.map((o) => o.status), ["added", "added", "added"]);
    assert.equal(iam.count("UpdateAssumeRolePolicy"), 1, "all three in A's one write");
  } finally {
    await r.close();
  }
});

Deno.test("a holder that wrote but could not release the Lease leaves no version that a stale cache matches", async () => {
  const iam = fakeIam(0);
  const world = await twoReplicas(iam, 0);
  try {
    // B reads and caches the policy with run 1; the Lease records that version.
    assert.equal((await world.b.edit(ROLE, { add: run(1) }, AUDIT)).status, "added");
    // A writes run 2, and its release of the Lease fails: the API server answers 500.
    const put = iam.putTrustPolicy.bind(iam);
    iam.putTrustPolicy = (name, document) => {
      world.proxy.failNext(1, 500, { method: "PUT", path: "/apis/coordination.k8s.io" });
      return put(name, document);
    };
    assert.equal((await world.a.edit(ROLE, { add: run(2) }, AUDIT)).status, "added");
    iam.putTrustPolicy = put;
    assert.ok(
      world.proxy.requests.some((r) => r.injected && r.method === "PUT"),
      "the release was refused",
    );
    // Once A's Lease has expired, B edits the role: its cache is of the policy before A's write.
    await new Promise((r) => setTimeout(r, 1200));
    assert.equal((await world.b.edit(ROLE, { add: run(3) }, AUDIT)).status, "added");
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
  const iam = fakeIam(150);
  const r = await twoReplicas(iam, 0);
  try {
    const writes: number[] = [];
    const put = iam.putTrustPolicy.bind(iam);
    iam.putTrustPolicy = (name, document) => {
      writes.push(performance.now());
      return put(name, document);
    };
    let answeredA = 0;
    const onA = r.a.edit(ROLE, { add: run(1) }, AUDIT).then((o) => {
      answeredA = performance.now();
      return o;
    });
    // B's edit arrives while A writes: after A's read (150 ms), during its write (150 ms).
    while (writes.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    const onB = r.b.edit(ROLE, { add: run(2) }, AUDIT);
    const [a, b] = await Promise.all([onA, onB]);
    assert.deepEqual([a.status, b.status], ["added", "added"]);
    assert.deepEqual(subjectsOf(iam.policies.get("acme-list-bucket-role")!, OPTS), [
      run(1),
      run(2),
    ]);
    assert.equal(iam.count("GetRole"), 1, "B's edit was applied by A, from the policy A wrote");
    assert.equal(writes.length, 2);
    assert.ok(answeredA < writes[1] + 150, "A's request did not wait for the second write");
    const lease = await r.lease(leaseName(ROLE));
    const meta = lease.metadata as { annotations: Record<string, string> };
    assert.equal(meta.annotations[HANDED_ANNOTATION], undefined, "nothing left to apply");
  } finally {
    await r.close();
  }
});
