import assert from "node:assert/strict";
import { explain, type ExplainInput, stringLike, webIdentityStatements } from "./explain.ts";
import { fromWire } from "./mapping.ts";
import { oidcProviderArn } from "./trust_policy.ts";

const HOST = "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
const PROVIDER = oidcProviderArn("111111111111", HOST);
const LIST = "arn:aws:iam::111111111111:role/acme-list-bucket-role";
const LIST_2 = "arn:aws:iam::111111111111:role/acme-list-bucket-role-2";
const ASSET = "arn:aws:iam::222222222222:role/acme-list-bucket-role";
const RUN = "646d27b817c28b5ea4b5b0c1";
const SUBJECT = `*:domino-compute:run-${RUN}`;
const ORG = "irsa-iamrole-list-bucket";

function policy(subjects: string[], audience = "sts.amazonaws.com", provider = PROVIDER) {
  return JSON.stringify({
    Version: "2012-10-17",
    Statement: [{
      Effect: "Allow",
      Principal: { Federated: provider },
      Action: "sts:AssumeRoleWithWebIdentity",
      Condition: {
        StringLike: { [`${HOST}:aud`]: audience, [`${HOST}:sub`]: subjects.length ? subjects : "" },
      },
    }],
  });
}

function input(over: Partial<ExplainInput> = {}): ExplainInput {
  return {
    user: "jdoe",
    run: RUN,
    subject: SUBJECT,
    grants: {
      [SUBJECT]: { user: "jdoe", organizations: [ORG], roles: [LIST], syncedAt: 1_700_000_000_000 },
    },
    mappings: new Map([[ORG, [fromWire({ iam_role_arn: ASSET, proxy_iam_role_arn: LIST })]]]),
    policies: new Map([[LIST, { document: policy([SUBJECT]) }]]),
    providerArnFor: () => PROVIDER,
    audience: "sts.amazonaws.com",
    format: "wildcard",
    quota: 2048,
    sampleSubject: `*:domino-compute:run-${"0".repeat(24)}`,
    ...over,
  };
}

const statuses = (e: ReturnType<typeof explain>) =>
  Object.fromEntries(e.steps.map((s) => [s.id, s.status]));

Deno.test("explain: every step passes when the subject is on the role with the right audience", () => {
  const e = explain(input());
  assert.equal(e.ok, true, JSON.stringify(e.steps));
  assert.equal(e.failed_step, undefined);
  assert.deepEqual(statuses(e), {
    organizations: "passed",
    mappings: "passed",
    proxy_role: "passed",
    update_trust_policy: "passed",
    subject_in_policy: "passed",
    provider_audience: "passed",
    propagation: "skipped",
  });
  assert.match(e.steps[0].detail, /grant record/);
});

Deno.test("explain: an unknown user fails at organizations, a user in no mapped organization at mappings", () => {
  assert.equal(explain(input({ grants: {} })).failed_step, "organizations");
  const e = explain(input({
    grants: { [SUBJECT]: { user: "jdoe", organizations: ["other"], roles: [], syncedAt: 1 } },
  }));
  assert.equal(e.failed_step, "mappings");
  assert.match(e.steps[1].detail, /"other"/);
  assert.ok(e.advice);
});

Deno.test("explain: a profile the user does not get fails at mappings", () => {
  const e = explain(input({ profile: "acme-read-bucket-role" }));
  assert.equal(e.failed_step, "mappings");
  assert.match(e.steps[1].detail, /"acme-list-bucket-role"/);
});

Deno.test("explain: a full pool fails at proxy_role, a member with room passes", () => {
  const many = Array.from(
    { length: 40 },
    (_, i) => `*:domino-compute:run-${String(i).padStart(24, "a")}`,
  );
  const full = explain(input({
    subject: SUBJECT,
    policies: new Map([[LIST, { document: policy(many) }]]),
  }));
  assert.equal(full.failed_step, "proxy_role");
  assert.match(full.steps[2].detail, /pool is full/);
  const pooled = explain(input({
    mappings: new Map([[ORG, [fromWire({
      iam_role_arn: ASSET,
      proxy_iam_role_arn: LIST,
      proxy_iam_role_arns: [LIST, LIST_2],
    })]]]),
    policies: new Map([[LIST, { document: policy(many) }], [LIST_2, { document: policy([]) }]]),
  }));
  assert.equal(statuses(pooled).proxy_role, "passed");
  assert.match(pooled.steps[2].detail, /acme-list-bucket-role-2/);
  assert.equal(pooled.failed_step, "subject_in_policy");
});

Deno.test("explain: update_iam_role_trust_policy false and the subject missing fails at update_trust_policy", () => {
  const e = explain(input({
    mappings: new Map([[ORG, [fromWire({
      iam_role_arn: ASSET,
      proxy_iam_role_arn: LIST,
      update_iam_role_trust_policy: "false",
    })]]]),
    policies: new Map([[LIST, { document: policy([]) }]]),
  }));
  assert.equal(e.failed_step, "update_trust_policy");
  assert.match(e.advice!, /by hand/);
});

Deno.test("explain: the subject present under another audience fails at provider_audience", () => {
  const e = explain(input({
    policies: new Map([[LIST, { document: policy([SUBJECT], "sts.amazonaws.com.cn") }]]),
  }));
  assert.equal(statuses(e).subject_in_policy, "passed");
  assert.equal(e.failed_step, "provider_audience");
  assert.match(
    e.steps.find((s) => s.id === "provider_audience")!.detail,
    /sts\.amazonaws\.com\.cn/,
  );
  const other = explain(input({
    policies: new Map([[LIST, {
      document: policy([SUBJECT], undefined, oidcProviderArn("111111111111", "other.example")),
    }]]),
  }));
  assert.equal(other.failed_step, "provider_audience");
});

Deno.test("explain: an unreadable policy fails at proxy_role with the reason", () => {
  const e = explain(input({ policies: new Map([[LIST, { error: "NoSuchEntity" }]]) }));
  assert.equal(e.failed_step, "proxy_role");
  assert.match(e.steps[2].detail, /NoSuchEntity/);
});

Deno.test("stringLike and webIdentityStatements read IAM's patterns", () => {
  assert.ok(stringLike("*:domino-compute:*", SUBJECT));
  assert.ok(stringLike("a?c", "abc"));
  assert.ok(!stringLike("a.c", "abc"));
  const [s] = webIdentityStatements(policy([SUBJECT, "*:x:y"]));
  assert.deepEqual(s.subjects.map((x) => x.value), [SUBJECT, "*:x:y"]);
  assert.deepEqual(s.audiences, ["sts.amazonaws.com"]);
});
