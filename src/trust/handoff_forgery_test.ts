/**
 * Forged hand-offs: what a principal that may update Leases in the field namespace, but holds no
 * server pod, writes on a role's Lease must never reach IAM nor be believed.
 */

import assert from "node:assert/strict";
import { subjectsOf } from "../core/trust_policy.ts";
import { createLogger, silentLogger } from "../lib/log.ts";
import { createServerMetrics } from "../observe/metrics.ts";
import { createKubeClient, type Lease } from "../kube/client.ts";
import { createTestClock } from "../../tests/fixtures/test_clock.ts";
import { FakeIamRoles } from "../../tests/fakes/iam_roles.ts";
import { sharedKubeApiServer } from "../../tests/fixtures/kube_apiserver.ts";
import { HANDED_ANNOTATION, handedOf, leaseName, RESULTS_ANNOTATION } from "./handoff.ts";
import { importHandoffKey, sealEdits } from "./handoff_seal.ts";
import { createLeaseRoleLock } from "./role_lock.ts";
import { createTrustEditor } from "./trust_editor.ts";
import { AUDIT, FRESH, HOST, OPTS, ROLE, run } from "../../tests/fixtures/example_trust.ts";

/**
 * A replica's editor on the real API server, with the lines it logs and its metrics; and the
 * attacker's client, the API server's admin, which writes Leases as it pleases.
 */
async function world(entitled: Record<string, readonly string[]> = {}) {
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
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ write: (line) => lines.push(JSON.parse(line)) });
  const metrics = createServerMetrics();
  const key = await importHandoffKey(crypto.randomUUID());
  const editor = createTrustEditor({
    roles: iam,
    oidcProvider: HOST,
    audience: "sts.amazonaws.com",
    format: "wildcard",
    quota: 2048,
    logger: silentLogger,
    metrics,
    lock: createLeaseRoleLock({
      kube,
      namespace: ns,
      identity: "replica-b",
      logger,
      now: clock.now,
      sleep: clock.sleep,
      handoffKey: key,
      metrics,
      // The grant record, as the replicas' starts wrote it.
      entitlements: (subjects) =>
        Promise.resolve(new Map(subjects.flatMap((s) => entitled[s] ? [[s, entitled[s]]] : []))),
    }),
    now: clock.now,
    sleep: clock.sleep,
  });
  const name = leaseName(ROLE);
  return {
    clock,
    iam,
    editor,
    lines,
    metrics,
    subjects: () => subjectsOf(iam.policies.get("acme-list-bucket-role")!, OPTS),
    /** The Lease, as anyone with Lease rights reads it. */
    lease: async () => (await kube.getLease(ns, name))!,
    /** Edits sealed with the replicas' key, as a replica (or a thief of the key) hands them. */
    seal: (edits: { id: string; add: string; user: string }[]) =>
      sealEdits(key, ROLE, edits.map((e) => ({ ...e, at: clock.now() }))),
    /** Writes the Lease's annotations as the attacker wants them. */
    async forge(edit: (annotations: Record<string, string>) => Record<string, string>) {
      const l = await kube.getLease(ns, name) as Lease;
      await kube.replaceLease(ns, { ...l, annotations: edit({ ...l.annotations }) });
    },
    /** ROLE's Lease taken by a holder that answers nothing: it expires 1 s later. */
    async heldBy(holderIdentity: string) {
      const at = new Date(clock.now()).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
      const l = await kube.getLease(ns, name) as Lease;
      await kube.replaceLease(ns, {
        ...l,
        holderIdentity,
        leaseDurationSeconds: 1,
        acquireTime: at,
        renewTime: at,
      });
    },
    close: () => kube.close(),
  };
}

Deno.test("an edit written straight onto a Lease's handed edits is never applied", async () => {
  const w = await world();
  try {
    // Another role's user's run, which this role's organizations do not map to.
    const stranger = run(666);
    // The role's Lease exists, released, as a holder leaves it.
    assert.equal((await w.clock.run(w.editor.edit(ROLE, { add: run(1) }, AUDIT))).status, "added");
    await w.forge((a) => ({
      ...a,
      [HANDED_ANNOTATION]: JSON.stringify([
        { id: "replica-x/1", add: stranger, user: "mallory" },
      ]),
    }));
    // The next legitimate start on the role takes the Lease and writes.
    assert.equal((await w.clock.run(w.editor.edit(ROLE, { add: run(2) }, AUDIT))).status, "added");
    assert.deepEqual(w.subjects(), [run(1), run(2)], "the forged add reached IAM");
    const refused = w.lines.find((l) => l.audit === true && l.msg === "handed edit refused");
    assert.ok(refused, "an audit line names the refusal");
    assert.equal(refused.role, ROLE);
    assert.equal(refused.id, "replica-x/1");
    assert.equal(refused.add, stranger);
    assert.match(
      w.metrics.handoffRefused.render(),
      /irsa_handoff_refused_total\{reason="[a-z_]+",what="edit"\} 1/,
    );
    // What was refused does not stay on the Lease for the next holder.
    assert.equal((await w.lease()).annotations?.[HANDED_ANNOTATION], undefined);
  } finally {
    w.close();
  }
});

Deno.test("a result written for a handed edit by anyone but a replica is not believed", async () => {
  const w = await world();
  try {
    const revoked = run(9);
    assert.equal((await w.clock.run(w.editor.edit(ROLE, { add: revoked }, AUDIT))).status, "added");
    // A fake holder takes the Lease; the replica hands it the stop's removal.
    await w.heldBy("replica-fake");
    const stop = w.editor.edit(ROLE, { remove: revoked }, AUDIT);
    const handed = (async () => {
      for (;;) {
        const l = await w.lease();
        if (handedOf(l).length > 0) return handedOf(l)[0].id;
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const id = await w.clock.run(handed, 1);
    // It answers "removed" without writing IAM.
    await w.forge((a) => ({
      ...a,
      [RESULTS_ANNOTATION]: JSON.stringify({
        [id]: { r: { status: "removed" }, t: w.clock.now() },
      }),
    }));
    const outcome = await w.clock.run(stop, 5);
    assert.equal(outcome.status, "removed");
    assert.deepEqual(w.subjects(), [], "answered removed, yet the subject is still trusted");
    const refused = w.lines.find((l) => l.audit === true && l.msg === "handed result refused");
    assert.ok(refused, "an audit line names the refusal");
    assert.equal(refused.role, ROLE);
    assert.equal(refused.id, id);
    assert.match(
      w.metrics.handoffRefused.render(),
      /irsa_handoff_refused_total\{reason="[a-z_]+",what="result"\} 1/,
    );
  } finally {
    w.close();
  }
});

Deno.test("a sealed add that the grant record does not entitle is never applied", async () => {
  // run(7)'s start recorded the role; run(666) has no grant at all (a bug, or a thief of the key).
  const w = await world({ [run(7)]: [ROLE] });
  try {
    const stranger = run(666);
    assert.equal((await w.clock.run(w.editor.edit(ROLE, { add: run(1) }, AUDIT))).status, "added");
    const sealed = await w.seal([
      { id: "replica-a/1", add: stranger, user: "mallory" },
      { id: "replica-a/2", add: run(7), user: "jdoe" },
    ]);
    await w.forge((a) => ({ ...a, [HANDED_ANNOTATION]: JSON.stringify(sealed) }));
    assert.equal((await w.clock.run(w.editor.edit(ROLE, { add: run(2) }, AUDIT))).status, "added");
    assert.deepEqual(
      w.subjects(),
      [run(1), run(2), run(7)],
      "only the entitled handed add reached IAM",
    );
    const refused = w.lines.filter((l) => l.audit === true && l.msg === "handed edit refused");
    assert.deepEqual(
      refused.map((l) => [l.id, l.reason, l.add]),
      [["replica-a/1", "not_entitled", stranger]],
    );
    assert.match(
      w.metrics.handoffRefused.render(),
      /irsa_handoff_refused_total\{reason="not_entitled",what="edit"\} 1/,
    );
    assert.equal((await w.lease()).annotations?.[HANDED_ANNOTATION], undefined);
  } finally {
    w.close();
  }
});
