import assert from "node:assert/strict";
import fc from "fast-check";
import { admits } from "../../tests/iam_evaluator.ts";
import {
  decodeRecord,
  EMPTY_RECORD,
  encodeRecord,
  entitledRoles,
  entitledTo,
  type Grant,
  type GrantRecord,
  mappingRevocations,
  type Revocation,
  syncRevocations,
  withGrant,
  withGrants,
  withoutRevoked,
  withRoles,
} from "./grants.ts";
import { fromWire, type Mappings } from "./mapping.ts";
import { editTrustPolicy, oidcProviderArn, type TrustPolicyOptions } from "./trust_policy.ts";

const HOST = "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
const PROVIDER = oidcProviderArn("111111111111", HOST);
const OPTS: TrustPolicyOptions = {
  providerArn: PROVIDER,
  audience: "sts.amazonaws.com",
  format: "wildcard",
  quota: 1_000_000,
};
const FRESH = Deno.readTextFileSync(
  new URL("../../tests/testdata/fresh_proxy_trust_policy.json", import.meta.url),
);
const proxy = (name: string) => `arn:aws:iam::111111111111:role/${name}`;
const pair = (name: string, extra: Record<string, unknown> = {}) =>
  fromWire({
    iam_role_arn: `arn:aws:iam::222222222222:role/${name}`,
    proxy_iam_role_arn: proxy(name),
    ...extra,
  });
const LIST = proxy("list");
const READ = proxy("read");
const S1 = "*:domino-compute:run-1";
const S2 = "*:domino-compute:run-2";

const mappings = (entries: Record<string, ReturnType<typeof pair>[]>): Mappings =>
  new Map(Object.entries(entries));

Deno.test("entitledRoles: every pool member of the organizations' pairs, never an unmanaged role", () => {
  const m = mappings({
    a: [pair("list", { proxy_iam_role_arns: [LIST, proxy("list-2")] })],
    b: [pair("read"), pair("admin-kept", { update_iam_role_trust_policy: "false" })],
  });
  assert.deepEqual([...entitledRoles(m, ["a"])].sort(), [LIST, proxy("list-2")]);
  assert.deepEqual([...entitledRoles(m, ["b", "nope"])], [READ]);
  assert.deepEqual([...entitledRoles(m, [])], []);
});

Deno.test("withGrant and withRoles keep every role ever edited, and drop a grant with no role left", () => {
  let r = withGrant(EMPTY_RECORD, S1, {
    user: "jdoe",
    organizations: ["b", "a", "a"],
    roles: [READ, LIST],
    syncedAt: 5,
  });
  assert.deepEqual(r, {
    roles: [LIST, READ],
    grants: { [S1]: { user: "jdoe", organizations: ["a", "b"], roles: [LIST, READ], syncedAt: 5 } },
  });
  r = withRoles(r, S1, [LIST]);
  assert.deepEqual(r.grants[S1].roles, [LIST]);
  r = withRoles(r, S1, []);
  assert.deepEqual(r, { roles: [LIST, READ], grants: {} });
  assert.equal(withRoles(r, "unknown", []), r);
});

Deno.test("syncRevocations: recorded or held roles the subject is not entitled to now", () => {
  const r = withGrant(
    withGrant(EMPTY_RECORD, S2, {
      user: "asmith",
      organizations: [],
      roles: [proxy("old")],
      syncedAt: 1,
    }),
    S1,
    { user: "jdoe", organizations: ["a"], roles: [LIST, READ], syncedAt: 1 },
  );
  const holding = (role: string) => role === proxy("old");
  assert.deepEqual(syncRevocations(r, S1, new Set([LIST]), holding), [
    { role: proxy("old"), subject: S1, reason: "sync" },
    { role: READ, subject: S1, reason: "sync" },
  ]);
  assert.deepEqual(syncRevocations(r, S1, new Set([LIST, READ, proxy("old")]), holding), []);
});

Deno.test("mappingRevocations: grants whose organizations no longer map to the role", () => {
  const r = withGrant(EMPTY_RECORD, S1, {
    user: "jdoe",
    organizations: ["a"],
    roles: [LIST, READ],
    syncedAt: 1,
  });
  assert.deepEqual(mappingRevocations(r, mappings({ a: [pair("list")] })), [
    { role: READ, subject: S1, reason: "mapping" },
  ]);
  // A role the admin manages now is never touched.
  assert.deepEqual(
    mappingRevocations(
      r,
      mappings({ a: [pair("list")], x: [pair("read", { update_iam_role_trust_policy: false })] }),
    ),
    [],
  );
  const revoked: Revocation[] = [{ role: READ, subject: S1, reason: "mapping" }];
  assert.deepEqual(withoutRevoked(r, revoked).grants[S1].roles, [LIST]);
  assert.ok(entitledTo(r, mappings({ a: [pair("list")] }), S1, LIST));
  assert.ok(!entitledTo(r, mappings({ a: [pair("list")] }), S1, READ));
  // A subject irsa has no record of (granted before the record existed) is judged by liveness.
  assert.ok(entitledTo(r, mappings({}), S2, READ));
});

Deno.test("the record round-trips as JSON; a malformed one is an error, never an empty record", () => {
  const r = withGrant(EMPTY_RECORD, S1, {
    user: "x",
    organizations: [],
    roles: [LIST],
    syncedAt: 0,
  });
  assert.deepEqual(decodeRecord(encodeRecord(r)), r);
  assert.throws(() => decodeRecord("{"), /not JSON/);
  assert.throws(() => decodeRecord('{"roles": 1, "grants": {}}'), /malformed/);
});

// Property: for random sequences of starts and syncs, stops, mapping changes, membership changes
// and cleanup passes, applied as the server applies them (src/grants/map_pod.ts,
// src/grants/mappings.ts, src/grants/cleanup.ts), every subject a role admits (judged by the
// independent evaluator) is one its pod's organizations at its last sync entitle it to under the
// current mappings: nothing outlives a mapping change, and a membership change lasts until the
// pod's next sync (its resync interval bounds it). A role outside the editable set is never
// edited, so it never admits anyone.
const ROLES = ["r0", "r1", "r2", "r3"].map(proxy);
const FOREIGN = "arn:aws:iam::333333333333:role/r0";
const ORGS = ["o0", "o1", "o2"];
const PODS = [0, 1, 2, 3];
const USERS = ["u0", "u1"];
const editable = (role: string) => role !== FOREIGN;
const seed = Deno.env.get("IRSA_PROPERTY_SEED");

type Event =
  | { kind: "sync"; pod: number }
  | { kind: "stop"; pod: number }
  | { kind: "map"; org: string; roles: string[] }
  | { kind: "unmap"; org: string }
  | { kind: "join" | "leave"; user: string; org: string }
  | { kind: "cleanup" };

const event: fc.Arbitrary<Event> = fc.oneof(
  fc.record({ kind: fc.constant("sync" as const), pod: fc.constantFrom(...PODS) }),
  fc.record({ kind: fc.constant("stop" as const), pod: fc.constantFrom(...PODS) }),
  fc.record({
    kind: fc.constant("map" as const),
    org: fc.constantFrom(...ORGS),
    roles: fc.uniqueArray(fc.constantFrom(...ROLES, FOREIGN), { minLength: 1, maxLength: 2 }),
  }),
  fc.record({ kind: fc.constant("unmap" as const), org: fc.constantFrom(...ORGS) }),
  fc.record({
    kind: fc.constantFrom("join" as const, "leave" as const),
    user: fc.constantFrom(...USERS),
    org: fc.constantFrom(...ORGS),
  }),
  fc.record({ kind: fc.constant("cleanup" as const) }),
);

Deno.test("property: the subjects each role admits stay within what the current mappings entitle", () => {
  fc.assert(
    fc.property(fc.array(event, { maxLength: 40 }), (events) => {
      const policies = new Map([...ROLES, FOREIGN].map((r) => [r, FRESH]));
      const members = new Map(USERS.map((u) => [u, new Set<string>()]));
      const entries = new Map<string, ReturnType<typeof pair>[]>();
      const live = new Set<number>();
      let record: GrantRecord = EMPTY_RECORD;
      const current = (): Mappings => entries;
      const subjectOf = (pod: number) => `*:domino-compute:run-${pod}`;
      const userOf = (pod: number) => USERS[pod % USERS.length];
      // The editor, behind the editable-set guard.
      const edit = (role: string, change: { add?: string; remove?: string }) => {
        if (!editable(role)) return;
        const e = editTrustPolicy(policies.get(role)!, {
          add: change.add ? [change.add] : [],
          remove: change.remove ? [change.remove] : [],
        }, OPTS);
        policies.set(role, e.document);
      };
      const holds = (role: string, s: string) => admitsSubject(policies.get(role)!, s);
      const apply = (revs: Revocation[]) => {
        revs.forEach((r) => edit(r.role, { remove: r.subject }));
        record = withoutRevoked(record, revs);
      };

      for (const e of events) {
        if (e.kind === "sync") {
          const s = subjectOf(e.pod);
          live.add(e.pod);
          const orgs = [...members.get(userOf(e.pod))!];
          const entitled = entitledRoles(current(), orgs);
          const before = record;
          record = withGrant(record, s, {
            user: userOf(e.pod),
            organizations: orgs,
            roles: [...(record.grants[s]?.roles ?? []), ...entitled],
            syncedAt: 0,
          });
          entitled.forEach((role) => edit(role, { add: s }));
          apply(syncRevocations(before, s, entitled, (role) => holds(role, s)));
          // And nothing less: a synced pod holds every editable role it is entitled to.
          if ([...entitled].some((role) => editable(role) && !holds(role, s))) return false;
        } else if (e.kind === "stop") {
          const s = subjectOf(e.pod);
          live.delete(e.pod);
          for (const role of new Set([...record.roles, ...ROLES])) edit(role, { remove: s });
          record = withRoles(record, s, []);
        } else if (e.kind === "map" || e.kind === "unmap") {
          if (e.kind === "map") entries.set(e.org, e.roles.map((r) => pairFor(r)));
          else entries.delete(e.org);
          apply(mappingRevocations(record, current()));
        } else if (e.kind === "join") members.get(e.user)!.add(e.org);
        else if (e.kind === "leave") members.get(e.user)!.delete(e.org);
        else {
          const revs: Revocation[] = [];
          for (const role of record.roles) {
            for (const pod of PODS) {
              const s = subjectOf(pod);
              if (!holds(role, s)) continue;
              if (!live.has(pod) || !entitledTo(record, current(), s, role)) {
                revs.push({ role, subject: s, reason: live.has(pod) ? "mapping" : "run_ended" });
              }
            }
          }
          apply(revs);
        }

        // The invariant, after every event.
        for (const [role, doc] of policies) {
          for (const pod of PODS) {
            const s = subjectOf(pod);
            if (!admitsSubject(doc, s)) continue;
            if (!editable(role) || !live.has(pod)) return false;
            const grant = record.grants[s];
            if (!grant || !entitledRoles(current(), grant.organizations).has(role)) return false;
          }
        }
      }
      return true;
    }),
    { numRuns: 1000, ...(seed ? { seed: Number(seed) } : {}) },
  );
});

function pairFor(role: string) {
  return fromWire({
    iam_role_arn: role.replace("111111111111", "222222222222"),
    proxy_iam_role_arn: role,
  });
}

function admitsSubject(doc: string, subject: string): boolean {
  const [, namespace, name] = subject.split(":");
  return admits(JSON.parse(doc), {
    providerArn: PROVIDER,
    host: HOST,
    sub: `system:serviceaccount:${namespace}:${name}`,
    aud: "sts.amazonaws.com",
  });
}

Deno.test("withGrants sets a burst of grants as setting them one after another would (property)", () => {
  const subjects = ["*:c:run-1", "*:c:run-2", "*:c:run-3"];
  const roleArns = ["arn:aws:iam::1:role/a", "arn:aws:iam::1:role/b", "arn:aws:iam::1:role/c"];
  const set = fc.record({
    subject: fc.constantFrom(...subjects),
    organizations: fc.subarray(["o1", "o2", "o3"]),
    added: fc.subarray(roleArns),
    keep: fc.boolean(),
    at: fc.nat(),
  });
  fc.assert(
    fc.property(
      fc.array(set, { maxLength: 8 }),
      fc.array(set, { maxLength: 12 }),
      (start, burst) => {
        // Each grant keeps (or not) what the subject held before, as a sync does.
        const make =
          (s: { organizations: string[]; added: string[]; keep: boolean; at: number }) =>
          (previous: Grant | undefined) => ({
            user: "jdoe",
            organizations: s.organizations,
            roles: [...(s.keep ? previous?.roles ?? [] : []), ...s.added],
            syncedAt: s.at,
          });
        // The record as its definition reads, one grant at a time, independently of grants.ts.
        const uniq = (xs: readonly string[]) => [...new Set(xs)].sort();
        const reference = (r: GrantRecord, s: typeof start[number]): GrantRecord => {
          const g = make(s)(r.grants[s.subject]);
          const entry = { ...g, organizations: uniq(g.organizations), roles: uniq(g.roles) };
          return {
            roles: uniq([...r.roles, ...g.roles]),
            grants: { ...r.grants, [s.subject]: entry },
          };
        };
        const base = start.reduce(reference, EMPTY_RECORD);
        const oneByOne = burst.reduce(reference, base);
        const together = withGrants(
          base,
          burst.map((s) => ({ subject: s.subject, grant: make(s) })),
        );
        assert.deepEqual(together, oneByOne);
        assert.equal(encodeRecord(together), encodeRecord(oneByOne));
      },
    ),
    { numRuns: 300, ...(seed ? { seed: Number(seed) } : {}) },
  );
});
