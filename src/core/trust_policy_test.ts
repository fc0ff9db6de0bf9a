import assert from "node:assert/strict";
import fc from "fast-check";
import { AppError } from "../lib/errors.ts";
import { admits } from "../../tests/iam_evaluator.ts";
import { subjectFor, type SubjectFormat } from "./subject.ts";
import {
  editTrustPolicy,
  oidcProviderArn,
  parseTrustPolicy,
  subjectsOf,
  type TrustPolicyOptions,
} from "./trust_policy.ts";

const HOST = "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
const PROVIDER = oidcProviderArn("111111111111", HOST);
const OPTS: TrustPolicyOptions = {
  providerArn: PROVIDER,
  audience: "sts.amazonaws.com",
  format: "wildcard",
  quota: 2048,
};
const EXACT: TrustPolicyOptions = { ...OPTS, format: "exact" };
const RUN_A = "*:domino-compute:run-646d27b817c28b5ea4b5b0c1";
const RUN_B = "*:domino-compute:run-646f604955daf764547c5b77";
const testdata = (name: string) =>
  Deno.readTextFileSync(new URL(`../../tests/testdata/${name}`, import.meta.url));
const FRESH = testdata("fresh_proxy_trust_policy.json");

const tokenSub = (ns: string, sa: string) => `system:serviceaccount:${ns}:${sa}`;
const admitsSa = (doc: string, ns: string, sa: string, aud = "sts.amazonaws.com") =>
  admits(JSON.parse(doc), { providerArn: PROVIDER, host: HOST, sub: tokenSub(ns, sa), aud });

function assertAppError(fn: () => unknown, code: string, pattern?: RegExp) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof AppError, `expected AppError, got ${e}`);
    assert.equal(e.code, code);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("adds run subjects to a fresh proxy role, matching the golden policy", () => {
  const edit = editTrustPolicy(FRESH, { add: [RUN_B, RUN_A] }, OPTS, "acme-list-bucket-role");
  assert.equal(edit.changed, true);
  assert.equal(edit.document, testdata("two_runs_trust_policy.min.json"));
  assert.deepEqual(edit.added, [RUN_A, RUN_B]);
  assert.deepEqual(edit.before, []);
  assert.ok(admitsSa(edit.document, "domino-compute", "run-646d27b817c28b5ea4b5b0c1"));
  assert.ok(!admitsSa(edit.document, "domino-compute", "run-646d27b817c28b5ea4b5b0c2"));
  assert.ok(
    !admitsSa(edit.document, "domino-compute", "run-646d27b817c28b5ea4b5b0c1", "other-audience"),
  );
});

Deno.test("parses the URL-encoded document that GetRole returns", () => {
  const encoded = encodeURIComponent(testdata("two_runs_trust_policy.min.json"));
  assert.ok(encoded.startsWith("%7B"));
  assert.deepEqual(
    parseTrustPolicy(encoded),
    JSON.parse(testdata("two_runs_trust_policy.min.json")),
  );
  assert.deepEqual(subjectsOf(encoded, OPTS), [RUN_A, RUN_B]);
});

Deno.test("an edit that changes nothing says so and is idempotent", () => {
  const once = editTrustPolicy(FRESH, { add: [RUN_A] }, OPTS);
  const twice = editTrustPolicy(once.document, { add: [RUN_A] }, OPTS);
  assert.equal(twice.changed, false);
  assert.equal(twice.document, once.document);
  assert.deepEqual(twice.added, []);
  const removeAbsent = editTrustPolicy(once.document, { remove: [RUN_B] }, OPTS);
  assert.equal(removeAbsent.changed, false);
  assert.deepEqual(removeAbsent.removed, []);
});

Deno.test("keeps existing subjects in their order and appends new ones sorted", () => {
  const start = editTrustPolicy(FRESH, { add: ["*:domino-compute:run-zz"] }, OPTS).document;
  const edit = editTrustPolicy(start, {
    add: ["*:domino-compute:run-bb", "*:domino-compute:run-aa"],
  }, OPTS);
  assert.deepEqual(edit.subjects, [
    "*:domino-compute:run-zz",
    "*:domino-compute:run-aa",
    "*:domino-compute:run-bb",
  ]);
  const batch = editTrustPolicy(edit.document, {
    add: [RUN_A],
    remove: ["*:domino-compute:run-aa"],
  }, OPTS);
  assert.deepEqual(batch.subjects, ["*:domino-compute:run-zz", "*:domino-compute:run-bb", RUN_A]);
  assert.deepEqual(batch.removed, ["*:domino-compute:run-aa"]);
});

Deno.test("statements it does not manage come out equal", () => {
  const policy = JSON.parse(FRESH);
  const ec2 = {
    Sid: "Ec2",
    Effect: "Allow",
    Principal: { Service: "ec2.amazonaws.com" },
    Action: "sts:AssumeRole",
  };
  const otherProvider = {
    Effect: "Allow",
    Principal: {
      Federated: oidcProviderArn("111111111111", "oidc.eks.eu-west-1.amazonaws.com/id/OTHER"),
    },
    Action: "sts:AssumeRoleWithWebIdentity",
    Condition: {
      StringEquals: {
        "oidc.eks.eu-west-1.amazonaws.com/id/OTHER:sub": "system:serviceaccount:a:b",
      },
    },
  };
  const deny = { Effect: "Deny", Principal: { AWS: "*" }, Action: "sts:TagSession" };
  policy.Statement = [ec2, ...policy.Statement, otherProvider, deny];
  let doc = JSON.stringify(policy, null, 2);
  for (const edit of [{ add: [RUN_A, RUN_B] }, { remove: [RUN_A] }, { remove: [RUN_B] }]) {
    doc = editTrustPolicy(doc, edit, OPTS).document;
    const out = JSON.parse(doc).Statement;
    assert.deepEqual([out[0], out[2], out[3]], [ec2, otherProvider, deny]);
  }
});

Deno.test("removing the last subject keeps the sub condition, which then matches nothing", () => {
  const added = editTrustPolicy(FRESH, { add: [RUN_A] }, OPTS).document;
  const edit = editTrustPolicy(added, { remove: [RUN_A] }, OPTS);
  assert.equal(edit.changed, true);
  const condition = JSON.parse(edit.document).Statement[0].Condition.StringLike;
  assert.equal(condition[`${HOST}:sub`], "");
  assert.equal(condition[`${HOST}:aud`], "sts.amazonaws.com");
  for (const sa of ["run-646d27b817c28b5ea4b5b0c1", "irsa", "default", ""]) {
    assert.ok(!admitsSa(edit.document, "domino-compute", sa), sa);
  }
});

Deno.test("refuses subjects with wildcards or outside the managed form", () => {
  for (
    const bad of [
      "*:domino-compute:*",
      "*:domino-compute:run-?",
      "*:*:run-646d27b817c28b5ea4b5b0c1",
      "*",
      "",
      "system:serviceaccount:domino-compute:run-1",
      "*:domino-compute:run-1:extra",
      "*:domino-compute:RUN-1",
      "*:domino-compute:${aws:username}",
      "*:domino compute:run-1",
    ]
  ) {
    assertAppError(() => editTrustPolicy(FRESH, { add: [bad] }, OPTS), "invalid_subject");
    assertAppError(() => editTrustPolicy(FRESH, { remove: [bad] }, OPTS), "invalid_subject");
  }
  assertAppError(() => editTrustPolicy(FRESH, { add: [RUN_A] }, EXACT), "invalid_subject");
});

Deno.test("refuses to add and remove the same subject in one edit", () => {
  assertAppError(
    () => editTrustPolicy(FRESH, { add: [RUN_A], remove: [RUN_A] }, OPTS),
    "bad_request",
  );
});

Deno.test("creates the provider's web-identity statement with its aud condition when missing", () => {
  const base = JSON.stringify({
    Version: "2012-10-17",
    Statement: {
      Effect: "Allow",
      Principal: { Service: "ec2.amazonaws.com" },
      Action: "sts:AssumeRole",
    },
  });
  const edit = editTrustPolicy(base, { add: [RUN_A] }, OPTS);
  const statements = JSON.parse(edit.document).Statement;
  assert.equal(statements.length, 2);
  assert.deepEqual(statements[1], {
    Effect: "Allow",
    Principal: { Federated: PROVIDER },
    Action: "sts:AssumeRoleWithWebIdentity",
    Condition: { StringLike: { [`${HOST}:aud`]: "sts.amazonaws.com", [`${HOST}:sub`]: [RUN_A] } },
  });
  assert.equal(editTrustPolicy(base, { remove: [RUN_A] }, OPTS).changed, false);
});

Deno.test("exact format writes system:serviceaccount subjects under StringEquals", () => {
  const sub = subjectFor("exact", { namespace: "domino-compute", name: "jdoe" });
  assert.equal(sub, "system:serviceaccount:domino-compute:jdoe");
  const edit = editTrustPolicy(FRESH, { add: [sub] }, EXACT);
  const statements = JSON.parse(edit.document).Statement;
  // The fresh statement holds its sub under StringLike, so the exact format adds its own statement.
  assert.equal(statements.length, 2);
  assert.deepEqual(statements[1].Condition, {
    StringEquals: { [`${HOST}:aud`]: "sts.amazonaws.com", [`${HOST}:sub`]: [sub] },
  });
  assert.ok(admitsSa(edit.document, "domino-compute", "jdoe"));
  assert.ok(!admitsSa(edit.document, "domino-compute", "jdoe2"));
  assert.deepEqual(subjectsOf(edit.document, EXACT), [sub]);
});

Deno.test("writes minified JSON and reports its length against the quota", () => {
  const edit = editTrustPolicy(FRESH, { add: [RUN_A] }, OPTS);
  assert.equal(edit.document, JSON.stringify(JSON.parse(edit.document)));
  assert.ok(!/\s/.test(edit.document.replaceAll("2012-10-17", "")));
  assert.equal(edit.length, edit.document.length);
  assert.equal(edit.quota, 2048);
});

Deno.test("refuses an edit over the quota before any write, saying how many subjects fit", () => {
  const runs = Array.from(
    { length: 40 },
    (_, i) => `*:domino-compute:run-${i.toString(16).padStart(24, "0")}`,
  );
  const fill = editTrustPolicy(FRESH, { add: runs.slice(0, 30) }, OPTS);
  assert.ok(fill.length <= 2048);
  try {
    editTrustPolicy(fill.document, { add: runs.slice(30) }, OPTS, "acme-list-bucket-role");
    assert.fail("expected a quota error");
  } catch (e) {
    assert.ok(e instanceof AppError);
    assert.equal(e.code, "policy_quota_exceeded");
    assert.match(
      e.message,
      /^Cannot add 10 subjects to role "acme-list-bucket-role": the policy would be \d+ characters, over its quota of 2048 \(it holds 30 subjects; \d more would fit\)$/,
    );
    const fits = e.details.fits as number;
    assert.ok(fits >= 0 && fits < 10);
    // The count is exact: that many fit, one more does not.
    assert.ok(
      editTrustPolicy(fill.document, { add: runs.slice(30, 30 + fits) }, OPTS).length <= 2048,
    );
    assertAppError(
      () => editTrustPolicy(fill.document, { add: runs.slice(30, 31 + fits) }, OPTS),
      "policy_quota_exceeded",
    );
  }
  const raised = editTrustPolicy(fill.document, { add: runs.slice(30) }, { ...OPTS, quota: 4096 });
  assert.equal(raised.subjects.length, 40);
  // Removals are always allowed, even from a policy already over a lowered quota.
  assert.equal(editTrustPolicy(raised.document, { remove: [runs[0]] }, OPTS).changed, true);
});

Deno.test("refuses to edit a policy whose web-identity statement admits every service account", () => {
  const open = JSON.stringify({
    Statement: [{
      Effect: "Allow",
      Principal: { Federated: PROVIDER },
      Action: "sts:AssumeRoleWithWebIdentity",
      Condition: { StringEquals: { [`${HOST}:aud`]: "sts.amazonaws.com" } },
    }],
  });
  assertAppError(
    () => editTrustPolicy(open, { add: [RUN_A] }, OPTS),
    "invalid_policy",
    /lets every service account/,
  );
});

Deno.test("refuses documents that are not trust policies", () => {
  for (
    const bad of [
      "",
      "not json",
      "%7Bnot",
      "[]",
      "{}",
      '{"Statement": [1]}',
      '{"Statement": "x"}',
      "%E0%A4%A",
    ]
  ) {
    assertAppError(() => editTrustPolicy(bad, { add: [RUN_A] }, OPTS), "invalid_policy");
  }
});

/** A web-identity statement of the provider that restricts sub with `operator` to `subjects`. */
const webIdentity = (operator: string, subjects: string | string[]) => ({
  Effect: "Allow",
  Principal: { Federated: PROVIDER },
  Action: "sts:AssumeRoleWithWebIdentity",
  Condition: {
    [operator]: { [`${HOST}:sub`]: subjects, [`${HOST}:aud`]: "sts.amazonaws.com" },
  },
});
/** The server's own role as DESIGN sets it up: StringEquals on irsa's service account. */
const SERVER_ROLE_POLICY = JSON.stringify({
  Version: "2012-10-17",
  Statement: [webIdentity("StringEquals", "system:serviceaccount:domino-field:irsa")],
});

Deno.test("never appends a statement next to one that restricts sub with another operator", () => {
  // A regression: a run start appended a StringLike run subject next to the broker's StringEquals one.
  assertAppError(
    () => editTrustPolicy(SERVER_ROLE_POLICY, { add: [RUN_A] }, OPTS, "irsa-service-role"),
    "invalid_policy",
    /^Refusing to edit role "irsa-service-role": its statement 0 restricts "oidc\.eks\.us-west-2\.amazonaws\.com\/id\/EXAMPLED539D4633E53DE1B71EXAMPLE:sub" with StringEquals, and irsa would add a StringLike statement next to it/,
  );
  // The other way round, with the exact format next to a live StringLike statement.
  const wildcardRole = editTrustPolicy(FRESH, { add: [RUN_A] }, OPTS).document;
  assertAppError(
    () =>
      editTrustPolicy(wildcardRole, { add: ["system:serviceaccount:domino-compute:jdoe"] }, EXACT),
    "invalid_policy",
    /restricts ".*:sub" with StringLike, and irsa would add a StringEquals statement/,
  );
  // Removing, or an edit with nothing to add, is harmless and answers "unchanged".
  const removal = editTrustPolicy(SERVER_ROLE_POLICY, { remove: [RUN_A] }, OPTS);
  assert.equal(removal.changed, false);
  assert.deepEqual(subjectsOf(SERVER_ROLE_POLICY, OPTS), []);
  // A role whose statement of our operator exists is edited there; nothing is appended.
  const both = JSON.stringify({
    Statement: [
      webIdentity("StringEquals", "system:serviceaccount:domino-field:irsa"),
      webIdentity("StringLike", ""),
    ],
  });
  const edit = editTrustPolicy(both, { add: [RUN_A] }, OPTS);
  assert.equal(JSON.parse(edit.document).Statement.length, 2);
  assert.deepEqual(edit.subjects, [RUN_A]);
});

Deno.test('a placeholder of the other operator (sub "", admits no one) does not block the append', () => {
  const placeholder = JSON.stringify({ Statement: [webIdentity("StringEquals", "")] });
  const edit = editTrustPolicy(placeholder, { add: [RUN_A] }, OPTS);
  assert.equal(JSON.parse(edit.document).Statement.length, 2);
  assert.ok(admitsSa(edit.document, "domino-compute", "run-646d27b817c28b5ea4b5b0c1"));
  assert.ok(!admitsSa(edit.document, "domino-compute", "run-646f604955daf764547c5b77"));
  // A list holding only "" is a placeholder too; one real value is not.
  const listed = JSON.stringify({ Statement: [webIdentity("StringEquals", ["", ""])] });
  assert.equal(editTrustPolicy(listed, { add: [RUN_A] }, OPTS).changed, true);
  const live = JSON.stringify({
    Statement: [webIdentity("StringEquals", ["", "system:serviceaccount:a:b"])],
  });
  assertAppError(() => editTrustPolicy(live, { add: [RUN_A] }, OPTS), "invalid_policy");
});

// Property: after any sequence of batched adds and removes, the set of service accounts the
// policy admits (judged by the independent evaluator) is exactly the intended set, never more.
const NAMESPACES = ["domino-compute", "domino-other"];
const NAMES = ["run-a", "run-ab", "run-b", "run-a.b", "jdoe", "j", "run-646d27b817c28b5ea4b5b0c1"];
const PROBES = [...NAMES, "run-", "run-abc", "run-aa", "jdoe2", "run-a-b", "default", "irsa"];
const seed = Deno.env.get("IRSA_PROPERTY_SEED");

for (const format of ["wildcard", "exact"] as SubjectFormat[]) {
  Deno.test(`property (${format}): the policy admits exactly the intended subjects`, () => {
    const options = { ...OPTS, format, quota: 1_000_000 };
    const sa = fc.record({
      namespace: fc.constantFrom(...NAMESPACES),
      name: fc.constantFrom(...NAMES),
    });
    const op = fc.record({
      add: fc.array(sa, { maxLength: 4 }),
      remove: fc.array(sa, { maxLength: 4 }),
    });
    // Someone else's role (the server's own, as it was found): its sub is restricted with the other
    // operator, so every add is refused and it keeps admitting exactly its own service account.
    const other = format === "wildcard" ? "StringEquals" : "StringLike";
    const otherSa = format === "wildcard"
      ? "system:serviceaccount:domino-field:irsa"
      : "*:domino-field:irsa";
    const guarded = JSON.stringify({ Statement: [webIdentity(other, otherSa)] });
    const start = fc.constantFrom(
      FRESH,
      JSON.stringify({ Version: "2012-10-17", Statement: [] }),
      JSON.stringify({ Statement: [webIdentity(other, "")] }),
      guarded,
    );
    fc.assert(
      fc.property(start, fc.array(op, { maxLength: 25 }), (initial, ops) => {
        let doc = initial;
        const intended = new Set<string>();
        for (const { add, remove } of ops) {
          const adds = add.map((s) => subjectFor(format, s));
          const removes = remove.map((s) => subjectFor(format, s)).filter((s) => !adds.includes(s));
          try {
            doc = editTrustPolicy(doc, { add: adds, remove: removes }, options).document;
            removes.forEach((s) => intended.delete(s));
            adds.forEach((s) => intended.add(s));
          } catch (e) {
            const refused = e instanceof AppError && e.code === "invalid_policy";
            if (!refused || initial !== guarded || adds.length === 0) throw e;
          }
          if (initial === guarded && doc !== initial) return false;
          if (admitsSa(doc, "domino-field", "irsa") !== (initial === guarded)) return false;
          for (const namespace of NAMESPACES) {
            for (const name of PROBES) {
              // Probes include names no service account can have, so build the string directly.
              const prefix = format === "wildcard" ? "*" : "system:serviceaccount";
              const want = intended.has(`${prefix}:${namespace}:${name}`);
              if (admitsSa(doc, namespace, name) !== want) return false;
              if (admitsSa(doc, namespace, name, "not-sts")) return false;
            }
          }
        }
        return true;
      }),
      { numRuns: 2000, ...(seed ? { seed: Number(seed) } : {}) },
    );
  });
}

Deno.test("property: an edit over the quota is refused and the last good policy stays within it", () => {
  const run = fc.integer({ min: 0, max: 200 }).map((i) =>
    `*:domino-compute:run-${i.toString(16).padStart(24, "0")}`
  );
  fc.assert(
    fc.property(
      fc.integer({ min: 600, max: 4096 }),
      fc.array(fc.array(run, { maxLength: 8 }), { maxLength: 40 }),
      (quota, batches) => {
        let doc = FRESH;
        for (const batch of batches) {
          try {
            const edit = editTrustPolicy(doc, { add: batch }, { ...OPTS, quota });
            if (edit.length > quota) return false;
            doc = edit.document;
          } catch (e) {
            if (!(e instanceof AppError) || e.code !== "policy_quota_exceeded") throw e;
          }
        }
        return true;
      },
    ),
    { numRuns: 300, ...(seed ? { seed: Number(seed) } : {}) },
  );
});
