import assert from "node:assert/strict";
import fc from "fast-check";
import { AppError } from "../lib/errors.ts";
import { callerIdentityFromArn, type EditableRoles, notEditableReason } from "./editable.ts";

const HOME: EditableRoles = {
  partition: "aws",
  account: "111111111111",
  serverRoles: ["irsa-service-role"],
};
const arn = (name: string, account = "111111111111", partition = "aws") =>
  `arn:${partition}:iam::${account}:role/${name}`;

Deno.test("caller identity: an assumed-role session names its role, a user or root names none", () => {
  assert.deepEqual(
    callerIdentityFromArn("arn:aws:sts::111111111111:assumed-role/irsa-service-role/botocore-1"),
    { partition: "aws", account: "111111111111", roleName: "irsa-service-role" },
  );
  assert.deepEqual(
    callerIdentityFromArn("arn:aws-us-gov:sts::111111111111:assumed-role/r/s@x.y"),
    { partition: "aws-us-gov", account: "111111111111", roleName: "r" },
  );
  assert.deepEqual(callerIdentityFromArn("arn:aws:iam::111111111111:user/irsa-server"), {
    partition: "aws",
    account: "111111111111",
  });
  assert.deepEqual(callerIdentityFromArn("arn:aws-cn:iam::111111111111:root"), {
    partition: "aws-cn",
    account: "111111111111",
  });
  for (
    const bad of [
      "",
      "arn:aws:sts::111111111111:assumed-role/only-role",
      "arn:aws:sts::1111:assumed-role/r/s",
      "arn:aws:sts::111111111111:federated-user/bob",
      "arn:aws:iam::111111111111:role/not-a-caller",
      "arn:aws:s3:::bucket",
    ]
  ) {
    assert.throws(
      () => callerIdentityFromArn(bad),
      (e) => e instanceof AppError && e.code === "invalid_arn",
      bad,
    );
  }
});

Deno.test("a role of the server's account and partition is editable; others are not, with the reason", () => {
  assert.equal(notEditableReason(arn("acme-list-bucket-role"), HOME), undefined);
  // The name decides, not the path: IAM finds a role by its name alone.
  assert.equal(notEditableReason(arn("team/acme-list-bucket-role"), HOME), undefined);
  assert.equal(
    notEditableReason(arn("acme-list-bucket-role", "333333333333"), HOME),
    'Role "arn:aws:iam::333333333333:role/acme-list-bucket-role" is not editable by irsa: it is in account "333333333333"; irsa edits only proxy roles of account "111111111111" in partition "aws", the server\'s own account',
  );
  assert.match(
    notEditableReason(arn("acme-list-bucket-role", "111111111111", "aws-cn"), HOME)!,
    /it is in partition "aws-cn"; irsa edits only proxy roles of account "111111111111" in partition "aws"/,
  );
  assert.match(notEditableReason("arn:aws:iam::111111111111:user/x", HOME)!, /Invalid role ARN/);
});

Deno.test("the server's own role is never editable, in any case of its name, whatever the prefix or list", () => {
  for (const name of ["irsa-service-role", "IRSA-Service-Role"]) {
    const reason = notEditableReason(arn(name), {
      ...HOME,
      prefix: "irsa-",
      names: ["irsa-service-role"],
    });
    assert.match(
      reason!,
      /it is the server's own role "irsa-service-role", which irsa never edits/,
    );
  }
});

Deno.test("a prefix or a list narrows the set; with both, either admits", () => {
  const rules = { ...HOME, prefix: "acme-", names: ["legacy-proxy"] };
  assert.equal(notEditableReason(arn("acme-list-bucket-role"), rules), undefined);
  assert.equal(notEditableReason(arn("legacy-proxy"), rules), undefined);
  assert.equal(
    notEditableReason(arn("other-role"), rules),
    'Role "arn:aws:iam::111111111111:role/other-role" is not editable by irsa: its name "other-role" must start with "acme-" (--proxy-role-prefix) or be one of "legacy-proxy" (--proxy-role-names)',
  );
  // Names are compared exactly: the list admits what the admin wrote, nothing wider.
  assert.match(
    notEditableReason(arn("Legacy-Proxy"), { ...HOME, names: ["legacy-proxy"] })!,
    /must be one of/,
  );
  assert.match(
    notEditableReason(arn("x"), { ...HOME, prefix: "acme-" })!,
    /must start with "acme-"/,
  );
});

// Property: whatever the ARN and the settings, a role is editable only in the server's account
// and partition, never when it is the server's role, and only when the prefix or list admit it.
Deno.test("property: nothing outside the account, partition, prefix and list is ever editable", () => {
  const seed = Deno.env.get("IRSA_PROPERTY_SEED");
  const name = fc.constantFrom(
    "acme-list-bucket-role",
    "acme-x",
    "ACME-x",
    "irsa-service-role",
    "Irsa-Service-Role",
    "other",
    "legacy",
  );
  const account = fc.constantFrom("111111111111", "333333333333");
  const partition = fc.constantFrom("aws", "aws-cn", "aws-us-gov");
  const path = fc.constantFrom("/", "/team/");
  const rules = fc.record({
    partition,
    account,
    prefix: fc.constantFrom("", "acme-", "irsa-"),
    names: fc.subarray(["legacy", "irsa-service-role", "acme-x"]),
    serverRoles: fc.subarray(["irsa-service-role", "other"], { minLength: 1 }),
  });
  fc.assert(
    fc.property(rules, partition, account, path, name, (r, p, a, dir, n) => {
      const role = `arn:${p}:iam::${a}:role${dir}${n}`;
      const reason = notEditableReason(role, r);
      const editable = reason === undefined;
      if (reason !== undefined && !reason.includes(JSON.stringify(role))) return false;
      if (p !== r.partition || a !== r.account) return !editable;
      if (r.serverRoles.some((s) => s.toLowerCase() === n.toLowerCase())) return !editable;
      const narrowed = r.prefix !== "" || r.names.length > 0;
      const admitted = !narrowed || (r.prefix !== "" && n.startsWith(r.prefix)) ||
        r.names.includes(n);
      // Adding a name to a list never takes away a role that was editable.
      if (
        narrowed && editable &&
        notEditableReason(role, { ...r, names: [...r.names, "zz"] }) !== undefined
      ) {
        return false;
      }
      return editable === admitted;
    }),
    { numRuns: 3000, ...(seed ? { seed: Number(seed) } : {}) },
  );
});
