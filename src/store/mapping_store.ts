/** The mappings store interface, shared by the file and ConfigMap stores. */

import type { MappingProblem, Mappings } from "../core/mapping.ts";
import type { RolePair } from "../core/role_chain.ts";
import { coalesce } from "../lib/coalesce.ts";

/** A snapshot of every mapping, with the entries that could not be read. */
export interface MappingSnapshot {
  readonly mappings: Mappings;
  readonly problems: readonly MappingProblem[];
}

/** Organization-to-role mappings, kept by the file or the ConfigMap store. */
export interface MappingStore {
  /** Every mapping; malformed entries are reported in `problems` and skipped. */
  read(): Promise<MappingSnapshot>;
  /** Sets an organization's pairs, replacing what it had; never loses another writer's change. */
  put(organization: string, pairs: readonly RolePair[]): Promise<void>;
  /** Removes an organization; returns false when it had no mapping. */
  remove(organization: string): Promise<boolean>;
  /**
   * Sets (pairs) or removes (null) several organizations in one write: all of them or none
   * (`irsa admin mappings apply`).
   */
  putAll(writes: ReadonlyMap<string, readonly RolePair[] | null>): Promise<void>;
}

/** `data` with every write applied: entries set to their stored value, or removed. */
export function withWrites<T>(
  data: Readonly<Record<string, T>>,
  writes: ReadonlyMap<string, T | null>,
): Record<string, T> {
  const entries = Object.entries(data).filter(([k]) => !writes.has(k) || writes.get(k) !== null)
    .map(([k, value]) => [k, writes.has(k) ? writes.get(k)! : value] as [string, T]);
  for (const [k, value] of writes) {
    if (value !== null && !Object.hasOwn(data, k)) entries.push([k, value]);
  }
  // Object.fromEntries, not assignment: a key such as "__proto__" must stay plain data.
  return Object.fromEntries(entries);
}

/** The stored values of a set of writes, checked before anything is written. */
export function encodeWrites(
  writes: ReadonlyMap<string, readonly RolePair[] | null>,
  encode: (organization: string, pairs: readonly RolePair[]) => string,
): Map<string, string | null> {
  return new Map(
    [...writes].map(([org, pairs]) => [org, pairs === null ? null : encode(org, pairs)]),
  );
}

/**
 * The store, with reads asked while one is in flight answered by the next one: a burst of starts
 * reads the ConfigMap (or the file) two or three times, and no read is older than its question.
 */
export function withSharedReads(store: MappingStore): MappingStore {
  const read = coalesce(async (asks: readonly void[]) => {
    const snapshot = await store.read();
    return asks.map(() => snapshot);
  });
  return {
    read: () => read(undefined),
    put: (organization, pairs) => store.put(organization, pairs),
    remove: (organization) => store.remove(organization),
    putAll: (writes) => store.putAll(writes),
  };
}
