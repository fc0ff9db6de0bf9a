import assert from "node:assert/strict";
import { editTrustPolicy } from "../core/trust_policy.ts";
import { FRESH, OPTS, ROLE, run } from "../../tests/fixtures/example_trust.ts";
import { FakeIamRoles } from "../../tests/fakes/iam_roles.ts";
import { createPolicyCache } from "./policy_cache.ts";

const OTHER = "arn:aws:iam::111111111111:role/acme-athena-role";

function setup() {
  const iam = new FakeIamRoles();
  iam.policies.set("acme-list-bucket-role", FRESH);
  iam.policies.set("acme-athena-role", FRESH);
  let t = 1_000_000;
  const cache = createPolicyCache({
    roles: iam,
    optionsFor: () => OPTS,
    maxAgeMs: 60_000,
    now: () => t,
  });
  return { iam, cache, pass: (ms: number) => t += ms };
}

Deno.test("a cached policy is served only while it is fresh and the lock's version is its own", async () => {
  const { iam, cache, pass } = setup();
  assert.equal(await cache.current(ROLE, undefined), FRESH);
  const version = cache.peek(ROLE)!.version;
  assert.equal(await cache.current(ROLE, version), FRESH);
  assert.equal(iam.count("GetRole"), 1, "the lock says no one wrote since: no read");
  await cache.current(ROLE, "another-version");
  assert.equal(iam.count("GetRole"), 2, "someone wrote since: read again");
  await cache.current(ROLE, undefined);
  assert.equal(iam.count("GetRole"), 3, "no version recorded: read again");
  pass(59_999);
  await cache.current(ROLE, version);
  assert.equal(iam.count("GetRole"), 3);
  pass(1);
  assert.equal(cache.fresh(ROLE), undefined, "older than the longest age");
  assert.equal(cache.peek(ROLE)?.version, version, "but still known");
  await cache.current(ROLE, version);
  assert.equal(iam.count("GetRole"), 4, "an out-of-band edit would show by now");
  assert.ok(cache.fresh(ROLE));
});

Deno.test("a write reaches IAM and is cached with its version, subjects and size", async () => {
  const { iam, cache } = setup();
  await cache.current(ROLE, undefined);
  const before = cache.peek(ROLE)!.version;
  const edit = editTrustPolicy(FRESH, { add: [run(1), run(2)] }, OPTS);
  const version = await cache.write(ROLE, edit.document);
  assert.notEqual(version, before);
  assert.equal(iam.policies.get("acme-list-bucket-role"), edit.document);
  const cached = cache.peek(ROLE)!;
  assert.equal(cached.version, version);
  assert.deepEqual([...cached.subjects], [run(1), run(2)]);
  assert.equal(await cache.current(ROLE, version), edit.document);
  assert.equal(iam.count("GetRole"), 1);
  // The same document has the same version, whoever read it.
  const other = createPolicyCache({
    roles: iam,
    optionsFor: () => OPTS,
    maxAgeMs: 1,
    now: () => 0,
  });
  await other.current(ROLE, undefined);
  assert.equal(other.peek(ROLE)?.version, version);
  await cache.current(OTHER, undefined);
  assert.deepEqual(cache.capacity(), [
    { roleArn: OTHER, subjects: 0, length: FRESH.length, quota: 2048 },
    { roleArn: ROLE, subjects: 2, length: edit.length, quota: 2048 },
  ]);
});
