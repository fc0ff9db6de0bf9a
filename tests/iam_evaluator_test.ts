/**
 * The independent evaluator held to IAM's documented behaviour, case by case, written by hand from
 * the IAM User Guide (policy evaluation logic, condition operators, the Principal element).
 */
import assert from "node:assert/strict";
import { admits, identityAllows, trustFor } from "./iam_evaluator.ts";

const HOST = "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLE";
const PROVIDER = `arn:aws:iam::111111111111:oidc-provider/${HOST}`;
const request = (sub: string, aud = "sts.amazonaws.com") => ({
  providerArn: PROVIDER,
  host: HOST,
  sub,
  aud,
});
const statement = (effect: string, condition: Record<string, unknown>) => ({
  Effect: effect,
  Principal: { Federated: PROVIDER },
  Action: "sts:AssumeRoleWithWebIdentity",
  Condition: condition,
});
const policy = (...statements: unknown[]) => ({ Version: "2012-10-17", Statement: statements });

Deno.test("StringLike: * matches any run of characters, ? exactly one, and nothing else is special", () => {
  const p = policy(statement("Allow", { StringLike: { [`${HOST}:sub`]: "*:compute:run-?" } }));
  assert.ok(admits(p, request("system:serviceaccount:compute:run-1")));
  assert.ok(!admits(p, request("system:serviceaccount:compute:run-12")));
  assert.ok(!admits(p, request("system:serviceaccount:compute:run-")));
  const dots = policy(statement("Allow", { StringLike: { [`${HOST}:sub`]: "a.b" } }));
  assert.ok(!admits(dots, request("axb")));
});

Deno.test("StringEquals is exact and case-sensitive in its values", () => {
  const p = policy(statement("Allow", { StringEquals: { [`${HOST}:sub`]: "system:sa:ns:x" } }));
  assert.ok(admits(p, request("system:sa:ns:x")));
  assert.ok(!admits(p, request("system:sa:ns:X")));
  assert.ok(!admits(p, request("system:sa:ns:*")));
});

Deno.test("condition keys are case-insensitive; a missing key fails its condition", () => {
  const upper = policy(
    statement("Allow", { StringEquals: { [`${HOST.toUpperCase()}:SUB`]: "system:sa:ns:x" } }),
  );
  assert.ok(admits(upper, request("system:sa:ns:x")));
  const other = policy(
    statement("Allow", { StringEquals: { "other.host:sub": "system:sa:ns:x" } }),
  );
  assert.ok(!admits(other, request("system:sa:ns:x")));
});

Deno.test("several values of one key match when any does; several keys must all hold", () => {
  const p = policy(statement("Allow", {
    StringLike: { [`${HOST}:sub`]: ["*:a", "*:b"], [`${HOST}:aud`]: "sts.amazonaws.com" },
  }));
  assert.ok(admits(p, request("x:a")));
  assert.ok(admits(p, request("x:b")));
  assert.ok(!admits(p, request("x:c")));
  assert.ok(!admits(p, request("x:a", "other")));
  const empty = policy(statement("Allow", { StringLike: { [`${HOST}:sub`]: "" } }));
  assert.ok(!admits(empty, request("x:a")), 'the fresh proxy role\'s "" matches no one');
});

Deno.test("an explicit Deny wins over any Allow, in whichever order", () => {
  const allow = statement("Allow", { StringLike: { [`${HOST}:sub`]: "*" } });
  const deny = statement("Deny", { StringEquals: { [`${HOST}:sub`]: "x:evil" } });
  assert.ok(!admits(policy(allow, deny), request("x:evil")));
  assert.ok(!admits(policy(deny, allow), request("x:evil")));
  assert.ok(admits(policy(deny, allow), request("x:good")));
  assert.ok(!admits(policy(), request("x:good")), "no statement: the implicit deny");
});

Deno.test("another provider's principal or another action does not admit", () => {
  const other = { ...statement("Allow", {}), Principal: { Federated: `${PROVIDER}-other` } };
  assert.ok(!admits(policy(other), request("x")));
  const action = { ...statement("Allow", {}), Action: "sts:AssumeRole" };
  assert.ok(!admits(policy(action), request("x")));
  const wildcard = { ...statement("Allow", {}), Action: "STS:AssumeRole*" };
  assert.ok(admits(policy(wildcard), request("x")), "actions match case-insensitively");
});

const CALLER = {
  account: "111111111111",
  principalArn: "arn:aws:iam::111111111111:role/proxy",
  sessionArn: "arn:aws:sts::111111111111:assumed-role/proxy/jdoe",
};
const trust = (effect: string, aws: unknown) =>
  policy({ Effect: effect, Principal: { AWS: aws }, Action: "sts:AssumeRole" });

Deno.test("AWS principals: the account (root or bare id) defers to the caller, a named role or session is named", () => {
  assert.equal(trustFor(trust("Allow", "arn:aws:iam::111111111111:root"), CALLER), "account");
  assert.equal(trustFor(trust("Allow", "111111111111"), CALLER), "account");
  assert.equal(trustFor(trust("Allow", CALLER.principalArn), CALLER), "named");
  assert.equal(trustFor(trust("Allow", [CALLER.sessionArn]), CALLER), "named");
  assert.equal(trustFor(trust("Allow", "arn:aws:iam::999999999999:root"), CALLER), "none");
  assert.equal(trustFor(trust("Allow", "arn:aws:iam::111111111111:role/other"), CALLER), "none");
  const both = policy(
    trust("Allow", "arn:aws:iam::111111111111:root").Statement[0],
    trust("Deny", CALLER.principalArn).Statement[0],
  );
  assert.equal(trustFor(both, CALLER), "denied");
});

Deno.test("identity policies: any policy's Allow on the resource, unless any Deny matches", () => {
  const allow = policy({
    Effect: "Allow",
    Action: "sts:AssumeRole",
    Resource: "arn:aws:iam::222222222222:role/acme-*",
  });
  const target = "arn:aws:iam::222222222222:role/acme-list";
  assert.ok(identityAllows([allow], "sts:AssumeRole", target));
  assert.ok(!identityAllows([allow], "sts:AssumeRole", "arn:aws:iam::222222222222:role/other"));
  assert.ok(!identityAllows([allow], "sts:TagSession", target));
  assert.ok(!identityAllows([], "sts:AssumeRole", target));
  const deny = policy({ Effect: "Deny", Action: "sts:*", Resource: "*" });
  assert.ok(!identityAllows([allow, deny], "sts:AssumeRole", target));
  const notAction = policy({ Effect: "Allow", NotAction: "iam:*", Resource: "*" });
  assert.ok(identityAllows([notAction], "sts:AssumeRole", target));
});
