import assert from "node:assert/strict";
import * as v from "valibot";
import {
  documentPairs,
  mappingProblems,
  MappingsDocument,
  planMappings,
  subjectsThatFit,
} from "./mapping_diff.ts";
import { answerPair, fromWire } from "./mapping.ts";

const pair = (name: string, extra: Record<string, unknown> = {}) => ({
  iam_role_arn: `arn:aws:iam::222222222222:role/${name}`,
  proxy_iam_role_arn: `arn:aws:iam::111111111111:role/${name}`,
  ...extra,
});
const doc = (d: Record<string, unknown>) =>
  Object.fromEntries(
    Object.entries(v.parse(MappingsDocument, d)).map(([org, value]) => [org, documentPairs(value)]),
  );

const current = new Map([
  ["a", [fromWire(pair("r1"))]],
  ["b", [fromWire(pair("r2"))]],
  ["c", [fromWire(pair("r3"))]],
]);

Deno.test("planMappings: added, changed, unchanged, and kept or removed by prune", () => {
  const wanted = doc({ a: [pair("r1")], b: pair("r9"), d: [pair("r4")] });
  const plan = planMappings(current, wanted, { prune: false });
  assert.deepEqual(plan.changes.map((c) => [c.domino_org, c.action]), [
    ["a", "unchanged"],
    ["b", "changed"],
    ["c", "kept"],
    ["d", "added"],
  ]);
  assert.deepEqual([...plan.writes.keys()], ["b", "d"]);
  assert.deepEqual([...plan.after.keys()], ["a", "b", "c", "d"]);
  const pruned = planMappings(current, wanted, { prune: true });
  assert.equal(pruned.changes.find((c) => c.domino_org === "c")!.action, "removed");
  assert.equal(pruned.writes.get("c"), null);
  assert.deepEqual([...pruned.after.keys()], ["a", "b", "d"]);
});

Deno.test("planMappings: what GET /role_mappings answers applies back unchanged", () => {
  const answered = Object.fromEntries(
    [...current].map(([org, pairs]) => [org, pairs.map((p) => answerPair(org, p))]),
  );
  const plan = planMappings(current, doc(answered), { prune: true });
  assert.ok(plan.changes.every((c) => c.action === "unchanged"), JSON.stringify(plan.changes));
  assert.equal(plan.writes.size, 0);
});

Deno.test("MappingsDocument refuses bad ARNs and organization names", () => {
  assert.ok(!v.is(MappingsDocument, { a: { iam_role_arn: "x", proxy_iam_role_arn: "y" } }));
  assert.ok(!v.is(MappingsDocument, { "bad org": pair("r1") }));
});

Deno.test("mappingProblems: roles outside the editable set and oversized pools, not admin-managed roles", () => {
  const editable = (arn: string) => arn.includes("111111111111") ? undefined : "wrong account";
  const wanted = doc({
    a: pair("r1"),
    b: { iam_role_arn: pair("r2").iam_role_arn, proxy_iam_role_arn: pair("r2").iam_role_arn },
    c: {
      iam_role_arn: pair("r3").iam_role_arn,
      proxy_iam_role_arn: pair("r3").iam_role_arn,
      update_iam_role_trust_policy: false,
    },
    d: pair("r4", {
      proxy_iam_role_arns: [pair("r4").proxy_iam_role_arn, pair("r5").proxy_iam_role_arn],
    }),
  });
  const problems = mappingProblems(wanted, { editable, maxPool: 1 });
  assert.equal(problems.length, 2, problems.join("\n"));
  assert.match(problems[0], /"b" pair 0.*wrong account/);
  assert.match(problems[1], /"d" pair 0: a pool of 2/);
});

Deno.test("subjectsThatFit counts quoted subjects and commas", () => {
  assert.equal(subjectsThatFit(2000, 2048, 45), 1);
  assert.equal(subjectsThatFit(2048, 2048, 45), 0);
  assert.equal(subjectsThatFit(3000, 2048, 45), 0);
});
