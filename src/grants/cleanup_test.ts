/**
 * The cleanup loop: what it removes (ended runs, unentitled subjects, never a young or foreign
 * one), how it stops, and that one replica at a time runs its passes.
 */

import assert from "node:assert/strict";
import { EMPTY_RECORD, withGrant } from "../core/grants.ts";
import { subjectsOf } from "../core/trust_policy.ts";
import { silentLogger } from "../lib/log.ts";
import { createMemoryGrantStore } from "../store/grant_store.ts";
import type { MappingStore } from "../store/mapping_store.ts";
import { createKubeClient } from "../kube/client.ts";
import { sharedKubeApiServer } from "../../tests/fixtures/kube_apiserver.ts";
import { AUDIT, FRESH, HOST, OPTS, ROLE, run } from "../../tests/fixtures/example_trust.ts";
import { createLeaseMutex } from "../kube/lease_mutex.ts";
import { createLeaseTurn } from "../kube/lease_turn.ts";
import { CLEANUP_LEASE, createCleanup, kubernetesLiveness } from "./cleanup.ts";
import { editorWith, fakeIam } from "../../tests/fixtures/trust_editors.ts";

/** Mappings with one organization whose proxy role is ROLE; writes are not needed here. */
const store: MappingStore = {
  read: () =>
    Promise.resolve({
      mappings: new Map([["org", [{
        assetRoleArn: "arn:aws:iam::222222222222:role/acme-list-bucket-role",
        proxyRoleArn: ROLE,
      }]]]),
      problems: [],
    }),
  put: () => Promise.resolve(),
  remove: () => Promise.resolve(false),
  putAll: () => Promise.resolve(),
};

Deno.test("the cleanup removes only managed subjects of ended runs, and never a young one", async () => {
  const cluster = await sharedKubeApiServer();
  const compute = await cluster.createNamespace("compute");
  const kube = createKubeClient({
    apiUrl: cluster.url,
    token: () => cluster.adminToken,
    caCert: cluster.caCert,
  });
  const id = (i: number) => i.toString(16).padStart(24, "0");
  const runPod = (i: number) => ({
    name: `run-${id(i)}-abcde`,
    labels: { "dominodatalab.com/execution-id": id(i) },
    serviceAccountName: `run-${id(i)}`,
  });
  try {
    // Run 1 is Pending (live), run 2's pod failed, run 4's pod was deleted; run 3 has none yet.
    await cluster.createPod(compute, runPod(1));
    await cluster.createPod(compute, runPod(2));
    await cluster.setPodPhase(compute, runPod(2).name, "Failed");
    await cluster.createPod(compute, runPod(4));
    const iam = fakeIam(0);
    const doc = JSON.parse(FRESH);
    doc.Statement[0].Condition.StringLike[`${HOST}:sub`] = [
      run(1),
      run(2),
      run(4),
      "*:domino-compute:hand-made-*",
      "*:other-ns:run-x",
    ];
    iam.policies.set("acme-list-bucket-role", JSON.stringify(doc));
    let t = 1_000_000;
    const { editor, metrics } = editorWith(iam, undefined, () => t);
    const cleanup = createCleanup({
      grants: createMemoryGrantStore(),
      editor,
      store,
      liveness: kubernetesLiveness(kube, compute),
      format: "wildcard",
      computeNamespace: "domino-compute",
      graceMs: 60_000,
      syncLeaseMs: 900_000,
      logger: silentLogger,
      metrics,
      now: () => t,
    });
    assert.deepEqual(await cleanup.reconcile(), [], "nothing is removed on first sight");
    t += 61_000;
    assert.deepEqual(await cleanup.reconcile(), [run(2)]);
    await cluster.deletePod(compute, runPod(4).name);
    assert.deepEqual(await cleanup.reconcile(), [run(4)]);
    const left = JSON.parse(iam.policies.get("acme-list-bucket-role")!).Statement[0].Condition
      .StringLike[`${HOST}:sub`];
    assert.deepEqual(left, [run(1), "*:domino-compute:hand-made-*", "*:other-ns:run-x"]);
    assert.equal(metrics.cleanupRemoved.get(), 2);
    // A subject added just now is young, even though no pod lists it yet.
    await editor.edit(ROLE, { add: run(3) }, AUDIT);
    cleanup.touch(run(3));
    assert.deepEqual(await cleanup.reconcile(), []);
  } finally {
    kube.close();
  }
});

Deno.test("stopping the cleanup ends its pass after the role it is on, not after every role", async () => {
  const names = Array.from({ length: 12 }, (_, i) => `pool-role-${i}`);
  const iam = fakeIam(40);
  for (const name of names) iam.policies.set(name, FRESH);
  const arn = (name: string) => `arn:aws:iam::111111111111:role/${name}`;
  const many: MappingStore = {
    ...store,
    read: () =>
      Promise.resolve({
        mappings: new Map([["org", [{
          assetRoleArn: "arn:aws:iam::222222222222:role/acme-list-bucket-role",
          proxyRoleArn: arn(names[0]),
          proxyPool: names.slice(1).map(arn),
        }]]]),
        problems: [],
      }),
  };
  const { editor, metrics } = editorWith(iam);
  const cleanup = createCleanup({
    grants: createMemoryGrantStore(),
    editor,
    store: many,
    format: "wildcard",
    computeNamespace: "domino-compute",
    graceMs: 60_000,
    syncLeaseMs: 900_000,
    logger: silentLogger,
    metrics,
  });
  cleanup.start(1);
  await new Promise((r) => setTimeout(r, 100)); // the first pass is on its second or third role
  await cleanup.stop();
  const visited = new Set(iam.calls.map((c) => c.role));
  assert.ok(visited.size < names.length, `visited ${visited.size} of ${names.length} roles`);
});

Deno.test("without Kubernetes, a run lives while its sidecar syncs within the lease", async () => {
  const iam = fakeIam(0);
  let t = 0;
  const { editor, metrics } = editorWith(iam, undefined, () => t);
  const cleanup = createCleanup({
    grants: createMemoryGrantStore(),
    editor,
    store,
    format: "wildcard",
    computeNamespace: "domino-compute",
    graceMs: 1_000,
    syncLeaseMs: 10_000,
    logger: silentLogger,
    metrics,
    now: () => t,
  });
  await editor.edit(ROLE, { add: run(1) }, AUDIT);
  await editor.edit(ROLE, { add: run(2) }, AUDIT);
  cleanup.touch(run(1));
  cleanup.touch(run(2));
  t = 8_000;
  cleanup.touch(run(1)); // run 1's sidecar keeps syncing; run 2's stopped.
  t = 15_000;
  assert.deepEqual(await cleanup.reconcile(), [run(2)]);
  assert.deepEqual(subjectsOf(iam.policies.get("acme-list-bucket-role")!, OPTS), [run(1)]);
});

Deno.test("the cleanup takes off subjects no mapping entitles, judging a pod that synced meanwhile by its new grant", async () => {
  const iam = fakeIam(0);
  const { editor, metrics } = editorWith(iam);
  const grant = (organizations: string[]) => ({
    user: "jdoe",
    organizations,
    roles: [ROLE],
    syncedAt: 0,
  });
  // As the pass begins, run 3's grant is for an organization that maps nothing; by the time its
  // role is locked, run 3 has synced with the mapped organization (the second read).
  const stale = withGrant(
    withGrant(withGrant(EMPTY_RECORD, run(1), grant(["left"])), run(2), grant(["org"])),
    run(3),
    grant(["left"]),
  );
  const fresh = withGrant(stale, run(3), grant(["org"]));
  const reads = [stale, fresh];
  const grants = {
    ...createMemoryGrantStore(fresh),
    read: () => Promise.resolve(reads.shift() ?? fresh),
  };
  const cleanup = createCleanup({
    grants,
    editor,
    store,
    format: "wildcard",
    computeNamespace: "domino-compute",
    graceMs: 1_000,
    syncLeaseMs: 1_000_000,
    logger: silentLogger,
    metrics,
  });
  for (const n of [1, 2, 3]) await editor.edit(ROLE, { add: run(n) }, AUDIT);
  assert.deepEqual(await cleanup.reconcile(), [run(1)]);
  assert.deepEqual(subjectsOf(iam.policies.get("acme-list-bucket-role")!, OPTS), [run(2), run(3)]);
  assert.equal(metrics.revokedSubjects.get({ reason: "mapping" }), 1);
});

Deno.test("one replica at a time runs the timed passes; when it stops, another takes the turn at once", async () => {
  const cluster = await sharedKubeApiServer();
  const field = await cluster.createNamespace("field");
  const kube = createKubeClient({
    apiUrl: cluster.url,
    token: () => cluster.adminToken,
    caCert: cluster.caCert,
  });
  const replica = (name: string) => {
    const passes = { count: 0 };
    const { editor, metrics } = editorWith(fakeIam(0));
    const mutex = createLeaseMutex({
      kube,
      namespace: field,
      identity: name,
      leaseDurationSeconds: 5, // longer than the test: only a release hands the turn over
      kind: "cleanup",
      logger: silentLogger,
    });
    const cleanup = createCleanup({
      grants: createMemoryGrantStore(),
      editor,
      store: { ...store, read: () => (passes.count++, store.read()) },
      format: "wildcard",
      computeNamespace: "domino-compute",
      graceMs: 60_000,
      syncLeaseMs: 900_000,
      logger: silentLogger,
      metrics,
      turn: createLeaseTurn(mutex, CLEANUP_LEASE, silentLogger),
    });
    return { cleanup, passes, metrics };
  };
  const holder = async () =>
    (await kube.getLease(field, CLEANUP_LEASE))?.holderIdentity ?? "nobody";
  const settle = () => new Promise((r) => setTimeout(r, 400));
  try {
    const a = replica("replica-a");
    const b = replica("replica-b");
    a.cleanup.start(20);
    await settle();
    b.cleanup.start(20);
    await settle();
    assert.equal(await holder(), "replica-a");
    assert.ok(a.passes.count >= 5, `replica A ran ${a.passes.count} passes`);
    assert.equal(b.passes.count, 0, "replica B waits for its turn");
    assert.ok(a.metrics.cleanupLastPass.get()! > Date.now() / 1000 - 5);
    assert.equal(b.metrics.cleanupLastPass.get(), undefined);
    await a.cleanup.stop();
    const ranByA = a.passes.count;
    await settle();
    assert.equal(await holder(), "replica-b");
    assert.ok(b.passes.count >= 5, `replica B ran ${b.passes.count} passes`);
    assert.equal(a.passes.count, ranByA);
    await b.cleanup.stop();
    assert.equal(await holder(), "nobody", "given up on stop");
  } finally {
    kube.close();
  }
});
