import assert from "node:assert/strict";
import fc from "fast-check";
import { AppError } from "../lib/errors.ts";
import { type BatchEdit, planBatch } from "./batch_plan.ts";
import { editTrustPolicy, oidcProviderArn, type TrustPolicyOptions } from "./trust_policy.ts";

const HOST = "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
const OPTS: TrustPolicyOptions = {
  providerArn: oidcProviderArn("111111111111", HOST),
  audience: "sts.amazonaws.com",
  format: "wildcard",
  quota: 2048,
};
const FRESH = Deno.readTextFileSync(
  new URL("../../tests/testdata/fresh_proxy_trust_policy.json", import.meta.url),
);
const run = (i: number) => `*:domino-compute:run-${i.toString(16).padStart(24, "0")}`;
const holding = (...subjects: string[]) => editTrustPolicy(FRESH, { add: subjects }, OPTS).document;
const statuses = (edits: readonly BatchEdit[], policy = FRESH, options = OPTS) =>
  planBatch(policy, edits, options).results.map((r) => r.status);

Deno.test("a batch answers each request: added, present, removed or absent, with the policy's size after it", () => {
  const plan = planBatch(
    holding(run(1), run(2)),
    [
      { add: run(1) },
      { add: run(3) },
      { remove: run(2) },
      { remove: run(4) },
    ],
    OPTS,
    "acme-list-bucket-role",
  );
  assert.deepEqual(plan.results.map((r) => r.status), ["present", "added", "removed", "absent"]);
  assert.equal(plan.edit.changed, true);
  assert.deepEqual(plan.edit.subjects, [run(1), run(3)]);
  for (const r of plan.results) {
    assert.deepEqual(
      { length: r.length, quota: r.quota, subjects: r.subjects },
      { length: plan.edit.document.length, quota: 2048, subjects: 2 },
    );
  }
});

Deno.test("the last request about a subject wins: an add then a remove leave it out, a remove then an add put it in", () => {
  assert.deepEqual(statuses([{ add: run(1) }, { remove: run(1) }]), ["absent", "absent"]);
  assert.deepEqual(statuses([{ remove: run(1) }, { add: run(1) }]), ["present", "added"]);
  assert.deepEqual(
    statuses([{ remove: run(1) }, { add: run(1) }], holding(run(1))),
    ["present", "present"],
  );
  assert.deepEqual(
    statuses([{ add: run(1) }, { remove: run(1) }], holding(run(1))),
    ["absent", "removed"],
  );
});

Deno.test("a batch that changes nothing says so", () => {
  const plan = planBatch(holding(run(1)), [{ add: run(1) }, { remove: run(2) }], OPTS);
  assert.equal(plan.edit.changed, false);
  assert.deepEqual(plan.results.map((r) => r.status), ["present", "absent"]);
});

Deno.test("adds that do not fit: the earliest are admitted, the others fail with the quota error", () => {
  const full = holding(...Array.from({ length: 32 }, (_, i) => run(i))); // room for 1 more
  const edits = Array.from({ length: 6 }, (_, i) => ({ add: run(100 + i) }));
  const plan = planBatch(full, [{ remove: run(0) }, ...edits], OPTS, "acme-list-bucket-role");
  const adds = plan.results.slice(1);
  const admitted = adds.filter((r) => r.status === "added").length;
  assert.equal(admitted, 2, "the one that fits and the one the removal made room for");
  assert.deepEqual(
    adds.map((r) => r.status),
    [...Array(admitted).fill("added"), ...Array(6 - admitted).fill("failed")],
  );
  assert.equal(plan.results[0].status, "removed", "a removal is never refused");
  for (const r of adds.slice(admitted)) {
    assert.equal(r.error?.code, "policy_quota_exceeded");
    assert.match(r.error!.message, /over its quota of 2048/);
  }
  assert.ok(plan.edit.document.length <= 2048);
});

Deno.test("a subject not of the managed form fails the whole batch, as the policy edit does", () => {
  assert.throws(
    () => planBatch(FRESH, [{ add: run(1) }, { add: "*:domino-compute:*" }], OPTS),
    (e: unknown) => e instanceof AppError && e.code === "invalid_subject",
  );
});

// Property: whatever the batch and the room left, each request is answered as the last request
// about its subject says, the policy holds exactly what was answered, and it stays in its quota.
const seed = Deno.env.get("IRSA_PROPERTY_SEED");

Deno.test("property: a batch's answers match the policy it plans, which stays within the quota", () => {
  const subject = fc.integer({ min: 0, max: 11 }).map(run);
  const edit = fc.oneof(
    subject.map((s): BatchEdit => ({ add: s })),
    subject.map((s): BatchEdit => ({ remove: s })),
  );
  fc.assert(
    fc.property(
      fc.uniqueArray(subject, { maxLength: 8 }),
      fc.array(edit, { maxLength: 30 }),
      fc.integer({ min: 700, max: 1400 }),
      (initial, edits, quota) => {
        const before = new Set(initial);
        const policy = editTrustPolicy(FRESH, { add: initial }, { ...OPTS, quota: 1e6 }).document;
        const plan = planBatch(policy, edits, { ...OPTS, quota });
        const after = new Set(plan.edit.subjects);
        assert.equal(plan.results.length, edits.length);
        if (plan.edit.added.length > 0) assert.ok(plan.edit.length <= quota);
        // Subjects in the order the batch first names them, and the last request about each.
        const last = new Map<string, "add" | "remove">();
        for (const e of edits) last.set(e.add ?? e.remove!, e.add ? "add" : "remove");
        edits.forEach((e, i) => {
          const s = e.add ?? e.remove!;
          const status = plan.results[i].status;
          if (last.get(s) === "remove") {
            assert.ok(!after.has(s));
            assert.equal(status, e.add ? "absent" : before.has(s) ? "removed" : "absent");
          } else if (e.remove) {
            assert.equal(status, "present");
          } else if (before.has(s)) {
            assert.equal(status, "present");
            assert.ok(after.has(s));
          } else {
            assert.equal(status, after.has(s) ? "added" : "failed");
            if (status === "failed") {
              assert.equal(plan.results[i].error?.code, "policy_quota_exceeded");
            }
          }
        });
        // Nothing else changed.
        for (const s of before) assert.equal(after.has(s), last.get(s) !== "remove");
        for (const s of after) assert.ok(before.has(s) || last.get(s) === "add");
        // The earliest are admitted: the new subjects added come before every one refused.
        const fresh = [...last].filter(([s, l]) => l === "add" && !before.has(s)).map(([s]) => s);
        const admitted = fresh.filter((s) => after.has(s)).length;
        assert.ok(fresh.slice(0, admitted).every((s) => after.has(s)));
        // Without a refusal, planning the batch again on its result changes nothing.
        if (admitted === fresh.length) {
          assert.equal(
            planBatch(plan.edit.document, edits, { ...OPTS, quota }).edit.changed,
            false,
          );
        }
      },
    ),
    { numRuns: 500, ...(seed ? { seed: Number(seed) } : {}) },
  );
});
