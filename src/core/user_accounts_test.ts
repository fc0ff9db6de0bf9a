import assert from "node:assert/strict";
import fc from "fast-check";
import {
  accountOf,
  judgeAccount,
  parseUserServiceAccounts,
  userServiceAccountsProblem,
} from "./user_accounts.ts";

const MAPPINGS = parseUserServiceAccounts('{"integration-test":"aws-test","bob":"team-b"}');

Deno.test("a user's account is the mapped one, else the one named as the user", () => {
  assert.equal(accountOf("integration-test", MAPPINGS), "aws-test");
  assert.equal(accountOf("jdoe", MAPPINGS), "jdoe");
  assert.deepEqual(judgeAccount("integration-test", "aws-test", MAPPINGS), { ok: true });
  assert.deepEqual(judgeAccount("jdoe", "jdoe", MAPPINGS), { ok: true });
  // Another user's account, mapped or named as them, is not jdoe's.
  assert.deepEqual(judgeAccount("jdoe", "bob", MAPPINGS), {
    ok: false,
    rule: "not-the-users",
    expected: "jdoe",
  });
  assert.deepEqual(judgeAccount("jdoe", "aws-test", MAPPINGS), {
    ok: false,
    rule: "not-the-users",
    expected: "jdoe",
  });
  // A mapped user's own name is not theirs: the mutation never runs their pods as it.
  assert.deepEqual(judgeAccount("bob", "bob", MAPPINGS), {
    ok: false,
    rule: "not-the-users",
    expected: "team-b",
  });
  // No normalization: "JDoe" is not "jdoe".
  assert.equal(judgeAccount("JDoe", "jdoe", MAPPINGS).ok, false);
});

Deno.test("an account the mappings give to two users is neither's", () => {
  const shared = parseUserServiceAccounts('{"alice":"team","bob":"team","carol":"dave"}');
  assert.deepEqual(judgeAccount("alice", "team", shared), {
    ok: false,
    rule: "shared",
    otherUsers: 1,
  });
  // carol's pods run as "dave": dave's own name is then dave's no longer.
  assert.deepEqual(judgeAccount("dave", "dave", shared), {
    ok: false,
    rule: "shared",
    otherUsers: 1,
  });
  assert.deepEqual(judgeAccount("carol", "dave", shared), { ok: true });
});

Deno.test("the setting's text: a JSON object of user names to service-account names", () => {
  assert.equal(userServiceAccountsProblem("{}"), undefined);
  assert.equal(parseUserServiceAccounts("{}").size, 0);
  assert.match(userServiceAccountsProblem("{")!, /not valid JSON/);
  assert.match(userServiceAccountsProblem("[]")!, /a JSON object/);
  assert.match(userServiceAccountsProblem("null")!, /a JSON object/);
  assert.match(userServiceAccountsProblem('"jdoe"')!, /a JSON object/);
  assert.match(userServiceAccountsProblem('{"jdoe":1}')!, /user "jdoe" to map/);
  assert.match(userServiceAccountsProblem('{"jdoe":"Aws_Test"}')!, /"Aws_Test"/);
  assert.match(userServiceAccountsProblem('{"jdoe":"*"}')!, /"\*"/);
  assert.match(userServiceAccountsProblem('{"":"x"}')!, /non-empty user names/);
  // Names every object has are data.
  const odd = parseUserServiceAccounts('{"__proto__":"p","constructor":"c"}');
  assert.equal(accountOf("__proto__", odd), "p");
  assert.equal(accountOf("constructor", odd), "c");
  assert.equal(accountOf("toString", odd), "toString");
  assert.throws(() => parseUserServiceAccounts("[1]"), /a JSON object/);
});

// Property: whatever the mappings, an account belongs to at most one user, and only to the user
// the platform's mutation runs as it.
Deno.test("property: an account is at most one user's, and only the one the mutation gives it", () => {
  const seed = Deno.env.get("IRSA_PROPERTY_SEED");
  const name = fc.constantFrom("jdoe", "bob", "aws-test", "team", "integration-test", "x");
  const mappings = fc.dictionary(name, name, { maxKeys: 5 }).map((o) => new Map(Object.entries(o)));
  fc.assert(
    fc.property(mappings, name, (m, account) => {
      const users = new Set([...m.keys(), ...m.values(), account]);
      const owners = [...users].filter((u) => judgeAccount(u, account, m).ok);
      if (owners.length > 1) return false;
      for (const u of owners) {
        if ((m.get(u) ?? u) !== account) return false;
        // Nobody else is mapped to it.
        if ([...m].some(([v, a]) => v !== u && a === account)) return false;
      }
      // The account the mutation gives a user is theirs unless the mappings give it to another.
      for (const u of users) {
        const own = accountOf(u, m);
        const others = [...m].filter(([v, a]) => v !== u && a === own).length;
        if (judgeAccount(u, own, m).ok !== (others === 0)) return false;
      }
      return true;
    }),
    seed === undefined ? {} : { seed: Number(seed) },
  );
});
