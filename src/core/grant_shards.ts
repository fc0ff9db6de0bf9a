/**
 * The grant record spread over a fixed number of shards: a subject's grant lives in the shard its
 * hash picks, and each shard keeps the roles its own grants touched, so that no shard grows with
 * the whole platform. Pure: the shell stores each shard as a record of its own (encodeRecord).
 */

import type { Grant, GrantRecord } from "./grants.ts";

/** The fewest and the most shards; two digits name them all (`irsa-grants-00` to `-99`). */
export const MIN_SHARDS = 1;
export const MAX_SHARDS = 100;

/**
 * The shard of a subject among `count`: FNV-1a (32 bits) of its UTF-8 bytes, modulo `count`.
 * Stable across versions and replicas: changing it would move subjects between shards.
 */
export function shardOf(subject: string, count: number): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(subject)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % count;
}

/** The name of shard `index`: `<base>-07`. */
export function shardName(base: string, index: number): string {
  return `${base}-${String(index).padStart(2, "0")}`;
}

const sorted = (xs: Iterable<string>) => [...new Set(xs)].sort();

/** The whole record from its shards: every grant, and the union of their roles. */
export function joinShards(shards: readonly GrantRecord[]): GrantRecord {
  const grants: [string, Grant][] = [];
  const roles = new Set<string>();
  for (const shard of shards) {
    shard.roles.forEach((r) => roles.add(r));
    grants.push(...Object.entries(shard.grants));
  }
  return { roles: sorted(roles), grants: Object.fromEntries(grants) };
}

/**
 * Shard `index` of `record`, given what it held before (`previous`): the grants whose subjects
 * hash to it, and the roles it held plus those its grants touch. Roles of the record that no
 * grant holds and no shard knew yet (`orphans`) go to the shard of their own hash, so no role
 * ever edited is forgotten.
 */
export function shardOfRecord(
  record: GrantRecord,
  index: number,
  count: number,
  previous: GrantRecord,
  orphans: readonly string[] = [],
): GrantRecord {
  const grants = Object.entries(record.grants).filter(([s]) => shardOf(s, count) === index);
  const roles = new Set(previous.roles);
  for (const [, g] of grants) g.roles.forEach((r) => roles.add(r));
  for (const r of orphans) if (shardOf(r, count) === index) roles.add(r);
  return { roles: sorted(roles), grants: Object.fromEntries(grants) };
}

/** The roles of `after` that none of `known` holds: new roles no grant may carry. */
export function orphanRoles(after: GrantRecord, known: ReadonlySet<string>): string[] {
  const inGrants = new Set(Object.values(after.grants).flatMap((g) => g.roles));
  return after.roles.filter((r) => !known.has(r) && !inGrants.has(r));
}

/**
 * Shard `index` with the grants of an older single record merged in (its subjects of this shard):
 * a subject's newer grant (by `syncedAt`) wins, its roles joined with the other's, so the merge
 * never forgets a role a subject may hold, nor a newer grant of the shard. Idempotent.
 */
export function mergeIntoShard(
  shard: GrantRecord,
  old: GrantRecord,
  index: number,
  count: number,
): GrantRecord {
  const grants = new Map(Object.entries(shard.grants));
  const roles = new Set(shard.roles);
  for (const [subject, o] of Object.entries(old.grants)) {
    if (shardOf(subject, count) !== index) continue;
    const s = grants.get(subject);
    const newer = s === undefined || o.syncedAt > s.syncedAt ? o : s;
    const merged = { ...newer, roles: sorted([...(s?.roles ?? []), ...o.roles]) };
    grants.set(subject, merged);
    merged.roles.forEach((r) => roles.add(r));
  }
  // The old record's roles ever edited: each kept by the shard of its hash.
  for (const r of old.roles) if (shardOf(r, count) === index) roles.add(r);
  return { roles: sorted(roles), grants: Object.fromEntries(grants) };
}
