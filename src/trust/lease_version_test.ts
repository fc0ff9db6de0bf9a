/**
 * The policy version on a role's Lease, rolled back: anyone who may update Leases in the field
 * namespace can write back a version seen there before (sealing it would not help: a sealed
 * version can be replayed as it was). A replica whose cache holds that older policy must still
 * never write IAM from it, nor conclude from it that a subject to remove is not there.
 */

import assert from "node:assert/strict";
import { subjectsOf } from "../core/trust_policy.ts";
import { silentLogger } from "../lib/log.ts";
import { createServerMetrics } from "../observe/metrics.ts";
import { createKubeClient, type Lease } from "../kube/client.ts";
import { createTestClock } from "../../tests/fixtures/test_clock.ts";
import { FakeIamRoles } from "../../tests/fakes/iam_roles.ts";
import { sharedKubeApiServer } from "../../tests/fixtures/kube_apiserver.ts";
import { leaseName, VERSION_ANNOTATION } from "./handoff.ts";
import { importHandoffKey } from "./handoff_seal.ts";
import { createLeaseRoleLock } from "./role_lock.ts";
import { createTrustEditor } from "./trust_editor.ts";
import { AUDIT, FRESH, HOST, OPTS, ROLE, run } from "../../tests/fixtures/example_trust.ts";

/** Replicas A and B on one Lease and one IAM, and the attacker's pen on the Lease. */
async function world() {
  const cluster = await sharedKubeApiServer();
  const ns = await cluster.createNamespace("field");
  const kube = createKubeClient({
    apiUrl: cluster.url,
    token: () => cluster.adminToken,
    caCert: cluster.caCert,
  });
  const clock = createTestClock();
  const iam = new FakeIamRoles();
  iam.policies.set("acme-list-bucket-role", FRESH);
  const handoffKey = await importHandoffKey(crypto.randomUUID());
  const replica = (identity: string) =>
    createTrustEditor({
      roles: iam,
      oidcProvider: HOST,
      audience: "sts.amazonaws.com",
      format: "wildcard",
      quota: 2048,
      logger: silentLogger,
      metrics: createServerMetrics(),
      lock: createLeaseRoleLock({
        kube,
        namespace: ns,
        identity,
        logger: silentLogger,
        now: clock.now,
        sleep: clock.sleep,
        handoffKey,
      }),
      now: clock.now,
      sleep: clock.sleep,
    });
  const name = leaseName(ROLE);
  const version = async () => (await kube.getLease(ns, name))?.annotations?.[VERSION_ANNOTATION];
  return {
    clock,
    iam,
    a: replica("replica-a"),
    b: replica("replica-b"),
    [Symbol.dispose]: () => kube.close(),
    subjects: () => subjectsOf(iam.policies.get("acme-list-bucket-role")!, OPTS),
    version,
    /** Writes `value` as the Lease's policy version, as the attacker (the API server's admin). */
    async rollBack(value: string) {
      const l = await kube.getLease(ns, name) as Lease;
      await kube.replaceLease(ns, {
        ...l,
        annotations: { ...l.annotations, [VERSION_ANNOTATION]: value },
      });
    },
  };
}

Deno.test("a policy version rolled back on the Lease never makes a replica write a revoked subject back", async () => {
  using w = await world();
  // A grants run 0: A caches that policy, the Lease records its version.
  assert.equal((await w.clock.run(w.a.edit(ROLE, { add: run(0) }, AUDIT))).status, "added");
  const seen = (await w.version())!;
  // B revokes run 0.
  assert.equal((await w.clock.run(w.b.edit(ROLE, { remove: run(0) }, AUDIT))).status, "removed");
  assert.deepEqual(w.subjects(), []);
  // The attacker writes back the version seen before B's write, which matches A's cache.
  await w.rollBack(seen);
  // A grants run 1: from IAM's policy, not from its cache that still holds run 0.
  assert.equal((await w.clock.run(w.a.edit(ROLE, { add: run(1) }, AUDIT))).status, "added");
  assert.deepEqual(w.subjects(), [run(1)], "run 0 was revoked and must stay so");
});

Deno.test("a policy version rolled back on the Lease never makes a replica skip a revocation", async () => {
  using w = await world();
  assert.equal((await w.clock.run(w.a.edit(ROLE, { add: run(0) }, AUDIT))).status, "added");
  const seen = (await w.version())!;
  // B grants run 5 after A cached the policy.
  assert.equal((await w.clock.run(w.b.edit(ROLE, { add: run(5) }, AUDIT))).status, "added");
  await w.rollBack(seen);
  // A revokes run 5: its cache says run 5 is not there, IAM says it is.
  const removed = await w.clock.run(w.a.edit(ROLE, { remove: run(5) }, AUDIT));
  assert.equal(removed.status, "removed");
  assert.deepEqual(w.subjects(), [run(0)]);
});

Deno.test("a policy version rolled back on the Lease never makes the cleanup write a revoked subject back", async () => {
  using w = await world();
  for (const i of [0, 1]) {
    assert.equal((await w.clock.run(w.a.edit(ROLE, { add: run(i) }, AUDIT))).status, "added");
  }
  const seen = (await w.version())!;
  assert.equal((await w.clock.run(w.b.edit(ROLE, { remove: run(0) }, AUDIT))).status, "removed");
  await w.rollBack(seen);
  // A's cleanup finds run 1 ended: it removes it from IAM's policy, not from its cache's.
  const removed = await w.clock.run(
    w.a.prune(ROLE, (subjects) => Promise.resolve(subjects.filter((s) => s === run(1))), AUDIT),
  );
  assert.deepEqual(removed, [run(1)]);
  assert.deepEqual(w.subjects(), [], "run 0 was revoked and must stay so");
});

Deno.test("without a rollback, a batch that only finds its subjects present costs no IAM read", async () => {
  using w = await world();
  assert.equal((await w.clock.run(w.a.edit(ROLE, { add: run(0) }, AUDIT))).status, "added");
  const reads = w.iam.count("GetRole");
  assert.equal((await w.clock.run(w.a.edit(ROLE, { add: run(0) }, AUDIT))).status, "present");
  assert.equal(w.iam.count("GetRole"), reads);
});
