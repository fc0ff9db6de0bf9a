import assert from "node:assert/strict";
import { type EditableRoles, notEditableReason } from "../core/editable.ts";
import { guardEditor } from "./editable_guard.ts";
import { AppError } from "../lib/errors.ts";
import { createLogger } from "../lib/log.ts";
import { createServerMetrics } from "../observe/metrics.ts";
import { createTrustEditor } from "./trust_editor.ts";
import { FakeIamRoles } from "../../tests/fakes/iam_roles.ts";
import { FRESH, HOST } from "../../tests/fixtures/example_trust.ts";

const RULES: EditableRoles = {
  partition: "aws",
  account: "111111111111",
  serverRoles: ["irsa-service-role"],
};
const PROXY = "arn:aws:iam::111111111111:role/acme-list-bucket-role";
const SUBJECT = "*:domino-compute:run-646d27b817c28b5ea4b5b0c1";
const AUDIT = { user: "jdoe", run: "646d27b817c28b5ea4b5b0c1" };

function world() {
  const iam = new FakeIamRoles();
  // The same names in the server's account: what an edit by name would have changed.
  for (const name of ["acme-list-bucket-role", "irsa-service-role"]) iam.policies.set(name, FRESH);
  const lines: string[] = [];
  const logger = createLogger({ write: (l) => lines.push(l) });
  const metrics = createServerMetrics();
  const inner = createTrustEditor({
    roles: iam,
    oidcProvider: HOST,
    audience: "sts.amazonaws.com",
    format: "wildcard",
    quota: 2048,
    logger,
    metrics,
  });
  const editor = guardEditor(inner, (arn) => notEditableReason(arn, RULES), { logger, metrics });
  return { iam, editor, lines };
}

const OUTSIDE = [
  "arn:aws:iam::333333333333:role/acme-list-bucket-role",
  "arn:aws-cn:iam::111111111111:role/acme-list-bucket-role",
  "arn:aws:iam::111111111111:role/irsa-service-role",
  "arn:aws:iam::111111111111:role/IRSA-SERVICE-ROLE",
];

Deno.test("guard: roles outside the editable set fail with role_not_editable and never reach IAM", async () => {
  const { iam, editor, lines } = world();
  for (const role of OUTSIDE) {
    for (const edit of [{ add: SUBJECT }, { remove: SUBJECT }]) {
      const outcome = await editor.edit(role, edit, AUDIT);
      assert.equal(outcome.status, "failed");
      assert.equal(outcome.error?.code, "role_not_editable");
      assert.ok(outcome.error?.message.includes(JSON.stringify(role)), outcome.error?.message);
    }
    await assert.rejects(
      editor.prune(role, (s) => Promise.resolve([...s]), { user: "irsa-cleanup" }),
      (e) => e instanceof AppError && e.code === "role_not_editable",
    );
    await assert.rejects(
      editor.subjects(role),
      (e) => e instanceof AppError && e.code === "role_not_editable",
    );
    assert.equal(editor.holds(role, SUBJECT), false);
  }
  assert.deepEqual(iam.calls, []);
  assert.equal(iam.policies.get("irsa-service-role"), FRESH);
  assert.equal(iam.policies.get("acme-list-bucket-role"), FRESH);
  const refusals = lines.map((l) => JSON.parse(l)).filter((l) =>
    l.msg === "refused to edit a role outside the editable set"
  );
  assert.equal(refusals.length, OUTSIDE.length * 2);
});

Deno.test("guard: editable roles pass through to the editor", async () => {
  const { iam, editor } = world();
  assert.equal((await editor.edit(PROXY, { add: SUBJECT }, AUDIT)).status, "added");
  assert.ok(editor.holds(PROXY, SUBJECT));
  assert.deepEqual(await editor.subjects(PROXY), [SUBJECT]);
  assert.deepEqual(editor.capacity().map((c) => c.roleArn), [PROXY]);
  assert.deepEqual(
    await editor.prune(PROXY, (s) => Promise.resolve([...s]), { user: "irsa-cleanup" }),
    [SUBJECT],
  );
  assert.equal(iam.count("UpdateAssumeRolePolicy"), 2);
});

Deno.test("guard: an editable role's edit keeps its options, so it still waits for its grant record", async () => {
  const { iam, editor } = world();
  const recorded = Promise.withResolvers<void>();
  const outcome = editor.edit(PROXY, { add: SUBJECT }, AUDIT, { after: recorded.promise });
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(iam.count("UpdateAssumeRolePolicy"), 0, "IAM written before the record was stored");
  recorded.resolve();
  assert.equal((await outcome).status, "added");
});
