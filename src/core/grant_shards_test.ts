import assert from "node:assert/strict";
import fc from "fast-check";
import {
  joinShards,
  MAX_SHARDS,
  mergeIntoShard,
  orphanRoles,
  shardName,
  shardOf,
  shardOfRecord,
} from "./grant_shards.ts";
import { EMPTY_RECORD, encodeRecord, type Grant, type GrantRecord, withGrant } from "./grants.ts";

const seed = Deno.env.get("IRSA_PROPERTY_SEED");
const params = seed === undefined ? {} : { seed: Number(seed) };
const role = (n: number) => `arn:aws:iam::111111111111:role/r${n}`;
const grant = (n: number, roles: string[], syncedAt = n): Grant => ({
  user: `u${n}`,
  organizations: ["o"],
  roles,
  syncedAt,
});

Deno.test("shardOf: pinned values, so that a change of the hash (which would move subjects) fails here", () => {
  // FNV-1a 32 of the UTF-8 bytes: "" is the offset basis, "a" the published test vector.
  assert.equal(shardOf("", 2 ** 31), 0x811c9dc5 % 2 ** 31);
  assert.equal(shardOf("a", 2 ** 31), 0xe40c292c % 2 ** 31);
  assert.equal(shardOf("system:serviceaccount:domino-compute:run-1", 64), 47);
  assert.equal(shardName("irsa-grants", 7), "irsa-grants-07");
  assert.equal(shardName("irsa-grants", 63), "irsa-grants-63");
});

Deno.test("property: shardOf is deterministic and in range for any subject and count", () => {
  fc.assert(
    fc.property(fc.string({ unit: "binary" }), fc.integer({ min: 1, max: MAX_SHARDS }), (s, n) => {
      const i = shardOf(s, n);
      assert.ok(Number.isInteger(i) && i >= 0 && i < n);
      assert.equal(shardOf(s, n), i);
    }),
    params,
  );
});

Deno.test("property: run subjects spread evenly (every shard within 25% of the mean over 20,000)", () => {
  fc.assert(
    fc.property(
      fc.constantFrom(16, 32, 64, 100),
      fc.constantFrom("*:domino-compute:run-", "system:serviceaccount:domino-compute:run-"),
      fc.integer({ min: 0, max: 1_000_000 }),
      (count, prefix, start) => {
        const counts = new Array(count).fill(0);
        for (let i = 0; i < 20_000; i++) {
          counts[shardOf(`${prefix}${(start + i).toString(16).padStart(24, "0")}`, count)]++;
        }
        const mean = 20_000 / count;
        assert.ok(
          counts.every((c) => Math.abs(c - mean) <= mean * 0.25),
          `${count} shards: ${Math.min(...counts)} to ${Math.max(...counts)} (mean ${mean})`,
        );
      },
    ),
    { ...params, numRuns: 20 },
  );
});

const record: fc.Arbitrary<GrantRecord> = fc.array(
  fc.record({
    n: fc.integer({ min: 0, max: 200 }),
    roles: fc.uniqueArray(fc.integer({ min: 0, max: 9 }).map(role), { maxLength: 3 }),
  }),
  { maxLength: 40 },
).map((gs) => gs.reduce((r, { n, roles }) => withGrant(r, `s${n}`, grant(n, roles)), EMPTY_RECORD));

Deno.test("property: a record split into shards and joined again is the same record", () => {
  fc.assert(
    fc.property(record, fc.integer({ min: 1, max: 70 }), (r, count) => {
      const shards = Array.from(
        { length: count },
        (_, i) => shardOfRecord(r, i, count, EMPTY_RECORD, orphanRoles(r, new Set())),
      );
      assert.equal(encodeRecord(joinShards(shards)), encodeRecord(r));
      shards.forEach((shard, i) => {
        for (const s of Object.keys(shard.grants)) assert.equal(shardOf(s, count), i);
      });
    }),
    params,
  );
});

Deno.test("property: merging the old single record is idempotent, keeps newer shard grants and every role", () => {
  fc.assert(
    fc.property(record, record, fc.integer({ min: 1, max: 8 }), (old, current, count) => {
      const shards = Array.from(
        { length: count },
        (_, i) => shardOfRecord(current, i, count, EMPTY_RECORD, orphanRoles(current, new Set())),
      );
      const merged = shards.map((s, i) => mergeIntoShard(s, old, i, count));
      const again = merged.map((s, i) => mergeIntoShard(s, old, i, count));
      assert.deepEqual(again.map(encodeRecord), merged.map(encodeRecord));
      const joined = joinShards(merged);
      for (const r of [...old.roles, ...current.roles]) assert.ok(joined.roles.includes(r));
      for (const [s, g] of [...Object.entries(old.grants), ...Object.entries(current.grants)]) {
        const m = joined.grants[s];
        assert.ok(m.syncedAt >= g.syncedAt);
        for (const r of g.roles) assert.ok(m.roles.includes(r), `${s} keeps ${r}`);
      }
    }),
    params,
  );
});

Deno.test("mergeIntoShard: a newer grant in the shard is kept, an older one is replaced, roles joined", () => {
  const old = withGrant(withGrant(EMPTY_RECORD, "a", grant(1, [role(1)], 10)), "b", {
    ...grant(2, [role(2)], 10),
    organizations: ["old"],
  });
  const shard = withGrant(withGrant(EMPTY_RECORD, "a", grant(1, [role(3)], 20)), "b", {
    ...grant(2, [role(4)], 5),
    organizations: ["shard"],
  });
  const merged = mergeIntoShard(shard, old, 0, 1);
  assert.equal(merged.grants.a.syncedAt, 20);
  assert.deepEqual(merged.grants.a.roles, [role(1), role(3)]);
  assert.deepEqual(merged.grants.b.organizations, ["old"]);
  assert.deepEqual(merged.grants.b.roles, [role(2), role(4)]);
});
