import assert from "node:assert/strict";
import { silentLogger } from "../lib/log.ts";
import { sharedKubeApiServer } from "../../tests/fixtures/kube_apiserver.ts";
import { startKubeFaultProxy } from "../../tests/kube_fault_proxy.ts";
import { createKubeClient, type KubeClient, type Lease } from "./client.ts";
import { createLeaseMutex } from "./lease_mutex.ts";
import { createTestClock, type TestClock } from "../../tests/fixtures/test_clock.ts";

// The API server keeps Leases as plain objects: whether one is held or expired is judged by the
// mutex, on its clock. So these tests move a test clock, and never wait for a Lease to expire.

type LeaseCalls = Pick<KubeClient, "getLease" | "createLease" | "replaceLease">;

/** The real client, telling the test of each Lease it writes. */
function watched(kube: LeaseCalls) {
  let next = Promise.withResolvers<Lease>();
  const client: LeaseCalls = {
    getLease: (namespace, name) => kube.getLease(namespace, name),
    createLease: (namespace, lease) => kube.createLease(namespace, lease),
    async replaceLease(namespace, lease) {
      const written = await kube.replaceLease(namespace, lease);
      next.resolve(written);
      next = Promise.withResolvers();
      return written;
    },
  };
  return { client, nextWrite: () => next.promise };
}

/** Two processes' mutexes on one test clock, in a namespace of the real API server. */
async function twoProcesses(options: { clock?: TestClock; proxied?: boolean } = {}) {
  const cluster = await sharedKubeApiServer();
  const namespace = await cluster.createNamespace("field");
  const proxy = options.proxied ? startKubeFaultProxy(cluster) : undefined;
  const kube = proxy
    ? createKubeClient({ apiUrl: proxy.url, token: () => cluster.adminToken })
    : createKubeClient({
      apiUrl: cluster.url,
      token: () => cluster.adminToken,
      caCert: cluster.caCert,
    });
  const clock = options.clock ?? createTestClock();
  const w = watched(kube);
  const mutex = (identity: string) =>
    createLeaseMutex({
      kube: w.client,
      namespace,
      identity,
      kind: "test",
      logger: silentLogger,
      now: clock.now,
      sleep: clock.sleep,
    });
  return {
    clock,
    proxy,
    nextWrite: w.nextWrite,
    a: mutex("process-a"),
    b: mutex("process-b"),
    /** The Lease as the API server holds it. */
    lease: (name: string) => kube.getLease(namespace, name),
    async close() {
      kube.close();
      await proxy?.close();
    },
  };
}

Deno.test("of two processes taking a new Lease at once, one gets it; the other finds it held", async () => {
  const p = await twoProcesses();
  try {
    const [a, b] = await Promise.all([p.a.tryAcquire("l"), p.b.tryAcquire("l")]);
    assert.equal([a, b].filter((t) => t !== undefined).length, 1);
    const winner = (a ?? b)!.lease;
    const [mine, other] = a ? [p.a, p.b] : [p.b, p.a];
    assert.equal(await other.tryAcquire("l"), undefined);
    assert.ok(other.heldByOther(winner));
    assert.ok(!mine.heldByOther(winner));
    assert.equal((await p.lease("l"))?.holderIdentity, winner.holderIdentity);
  } finally {
    await p.close();
  }
});

Deno.test("a Lease is made with the annotations asked for, and taken over keeping those `keep` leaves", async () => {
  const p = await twoProcesses();
  try {
    const made = await p.a.tryAcquire("l", { create: { owner: "x", note: "y" } });
    assert.deepEqual(made?.before, {}, "a new Lease had nothing before");
    await p.a.hold(
      made!.lease,
      () => Promise.resolve({ value: 1, finish: (l) => ({ ...l.annotations }) }),
    );
    const taken = await p.b.tryAcquire("l", {
      create: { owner: "ignored" },
      keep: ({ note: _, ...rest }) => rest,
    });
    assert.deepEqual(taken?.before, { owner: "x", note: "y" });
    assert.deepEqual(taken?.lease.annotations, { owner: "x" });
    assert.equal(taken?.lease.holderIdentity, "process-b");
  } finally {
    await p.close();
  }
});

Deno.test("a Lease whose holder does not renew it expires after its duration, on the clock", async () => {
  const p = await twoProcesses();
  try {
    assert.ok(await p.a.tryAcquire("l"));
    p.clock.advance(14_999);
    assert.equal(await p.b.tryAcquire("l"), undefined, "held for 15 s");
    p.clock.advance(1);
    const taken = await p.b.tryAcquire("l");
    assert.equal(taken?.lease.holderIdentity, "process-b", "expired: taken over");
    assert.equal(await p.a.tryAcquire("l"), undefined, "and now held by B");
  } finally {
    await p.close();
  }
});

Deno.test("a holder renews its Lease every third of its duration, so it stays held past it", async () => {
  const p = await twoProcesses();
  try {
    const taken = await p.a.tryAcquire("l");
    const t0 = p.clock.now();
    const work = Promise.withResolvers<void>();
    const holding = p.a.hold(taken!.lease, async () => {
      await work.promise;
      return { value: "done", finish: (l) => ({ ...l.annotations }) };
    });
    const renewal = p.nextWrite();
    p.clock.advance(5_000);
    const renewed = await renewal;
    assert.equal(Date.parse(renewed.renewTime!), t0 + 5_000);
    assert.equal(renewed.holderIdentity, "process-a");
    p.clock.advance(11_000); // 16 s after it was taken
    assert.equal(await p.b.tryAcquire("l"), undefined, "renewed: still held");
    work.resolve();
    assert.equal(await holding, "done");
    const released = await p.lease("l");
    assert.equal(released?.holderIdentity, undefined, "released once the work is done");
    assert.ok(await p.b.tryAcquire("l"), "free at once, expired or not");
  } finally {
    await p.close();
  }
});

Deno.test("a release writes what `finish` makes of the Lease's latest copy, though another process wrote on it meanwhile", async () => {
  const p = await twoProcesses();
  try {
    const taken = await p.a.tryAcquire("l", { create: { kept: "1" } });
    const value = await p.a.hold(taken!.lease, async (refresh) => {
      // Another process writes on the Lease A holds, as a replica handing edits over does.
      const seen = await p.b.get("l");
      assert.ok(seen && p.b.heldByOther(seen));
      await p.b.annotate(seen, { ...seen.annotations, handed: "yes" });
      assert.equal((await refresh()).annotations?.handed, "yes", "refresh reads the latest copy");
      return {
        value: 7,
        finish: (l) => ({ ...l.annotations, done: String(l.annotations?.handed) }),
      };
    });
    assert.equal(value, 7);
    const lease = await p.lease("l");
    assert.equal(lease?.holderIdentity, undefined);
    assert.deepEqual(lease?.annotations, { kept: "1", handed: "yes", done: "yes" });
  } finally {
    await p.close();
  }
});

Deno.test("work that throws: the error is the caller's, and the Lease is released as it was", async () => {
  const p = await twoProcesses();
  try {
    const taken = await p.a.tryAcquire("l", { create: { kept: "1" } });
    await assert.rejects(
      p.a.hold(taken!.lease, () => Promise.reject(new Error("IAM said no"))),
      /IAM said no/,
    );
    const lease = await p.lease("l");
    assert.equal(lease?.holderIdentity, undefined);
    assert.deepEqual(lease?.annotations, { kept: "1" });
  } finally {
    await p.close();
  }
});

Deno.test("acquire backs off on the clock while another holds the Lease: it gives up at the deadline, or takes it once expired", async () => {
  const p = await twoProcesses();
  try {
    assert.ok(await p.a.tryAcquire("l"));
    const t0 = p.clock.now();
    assert.equal(await p.clock.run(p.b.acquire("l", t0 + 1_000)), undefined);
    assert.ok(p.clock.now() > t0 + 1_000, "tried until the deadline");
    assert.ok(p.clock.now() < t0 + 2_000, "and not much longer");
    const taken = await p.clock.run(p.b.acquire("l", t0 + 30_000), 50);
    assert.equal(taken?.lease.holderIdentity, "process-b");
    assert.ok(p.clock.now() >= t0 + 15_000, "once A's Lease had expired");
  } finally {
    await p.close();
  }
});

Deno.test("a conflict or a 5xx while taking a Lease is an attempt that failed; another error is thrown", async () => {
  const p = await twoProcesses({ proxied: true });
  try {
    p.proxy!.failNext(1, 500, { path: "/apis/coordination.k8s.io" });
    assert.equal(await p.a.tryAcquire("l"), undefined);
    assert.ok(await p.a.tryAcquire("l"));
    p.clock.advance(15_000);
    p.proxy!.failNext(1, 409, { method: "PUT", path: "/apis/coordination.k8s.io" });
    assert.equal(await p.b.tryAcquire("l"), undefined);
    p.proxy!.failNext(1, 403, { path: "/apis/coordination.k8s.io" });
    await assert.rejects(
      p.b.tryAcquire("l"),
      /Kubernetes API denied get leases/,
    );
    assert.equal((await p.b.tryAcquire("l"))?.lease.holderIdentity, "process-b");
  } finally {
    await p.close();
  }
});
