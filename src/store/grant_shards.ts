/**
 * The grant record over a fixed number of ConfigMaps, `irsa-grants-00` to `irsa-grants-NN` in the
 * field namespace (the chart pre-creates them, and RBAC names each): a subject's grant lives in
 * the shard its hash picks (src/core/grant_shards.ts), so a start reads and writes one shard, no
 * object grows with the whole platform, and replicas starting different pods rarely meet on one.
 * Each shard holds a record of its own in the previous version's format (key `grants.json`) and
 * the shard count it was written with (key `shards`). The single record `irsa-grants` of the
 * previous version is merged into the shards (migration.ts) and kept, for `helm rollback`.
 */

import {
  joinShards,
  orphanRoles,
  shardName,
  shardOf,
  shardOfRecord,
} from "../core/grant_shards.ts";
import {
  EMPTY_RECORD,
  encodeRecord,
  type GrantRecord,
  type GrantSet,
  withGrants,
} from "../core/grants.ts";
import { backoffDelay } from "../lib/backoff.ts";
import { coalesce } from "../lib/coalesce.ts";
import { AppError } from "../lib/errors.ts";
import { type Logger, silentLogger } from "../lib/log.ts";
import { KubeApiError, type KubeClient, KubeConflictError } from "../kube/client.ts";
import type { ConfigMapSnapshot } from "../kube/client.ts";
import { createLock } from "./configmap_store.ts";
import {
  CONFIGMAP_MAX_BYTES,
  configMapBytes,
  GRANT_CONFIGMAP,
  GRANT_KEY,
  type GrantStore,
  parseRecord,
} from "./grant_store.ts";

/** The data key of a shard that says how many shards its writer had. */
export const SHARDS_KEY = "shards";

/** What the shards report as they are read and written. */
export interface ShardGauges {
  /** Bytes of shard `name` at its last read or write by this replica. */
  shardBytes(name: string, bytes: number): void;
  /** The largest shard's bytes over the per-object limit. */
  fillRatio(ratio: number): void;
}

/** Options of {@link createShardedGrantStore}. */
export interface ShardedGrantStoreOptions {
  readonly namespace: string;
  readonly shards: number;
  /** The shards' base name and the single record's name; default `irsa-grants`. */
  readonly base?: string;
  /** Attempts after the first when another replica changed a shard meanwhile; default 8. */
  readonly maxRetries?: number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
  readonly logger?: Logger;
  readonly gauges?: ShardGauges;
}

/** One shard as read: its record, and what its write must carry. */
export interface ShardSnapshot {
  readonly index: number;
  readonly record: GrantRecord;
  /** Undefined: the ConfigMap does not exist. */
  readonly stored?: ConfigMapSnapshot;
}

/** The record over shards; `shards` is what migration and start-up use. */
export interface ShardedGrantStore extends GrantStore {
  readonly shards: ShardAccess;
}

/** Reads and writes of single shards. */
export interface ShardAccess {
  readonly count: number;
  readonly namespace: string;
  readonly names: readonly string[];
  read(index: number): Promise<ShardSnapshot>;
  readAll(): Promise<ShardSnapshot[]>;
  /**
   * Writes shard `index` as `next` computes it from the shard (undefined: nothing to write), at
   * the resourceVersion read; on a conflict reads that shard again and computes again. `first`
   * saves the first read when the caller has just made it.
   */
  write(
    index: number,
    next: (shard: ShardSnapshot) => GrantRecord | undefined,
    first?: ShardSnapshot,
  ): Promise<void>;
}

const BACKOFF = { baseMs: 25, capMs: 1_000 };

/** The record over `shards` ConfigMaps, read and written by shard. */
export function createShardedGrantStore(
  kube: Pick<KubeClient, "getConfigMap" | "createConfigMap" | "replaceConfigMap">,
  options: ShardedGrantStoreOptions,
): ShardedGrantStore {
  const { namespace, shards: count } = options;
  const base = options.base ?? GRANT_CONFIGMAP;
  const names = Array.from({ length: count }, (_, i) => shardName(base, i));
  const locks = names.map(() => createLock());
  const maxRetries = options.maxRetries ?? 8;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const random = options.random ?? Math.random;
  const logger = options.logger ?? silentLogger;
  const sizes = new Map<string, number>();
  // Every role ever edited, as far as this replica has read: a set() hands it to the grant, which
  // judges the subject by it (syncRevocations); start-up reads every shard, so it starts whole.
  const knownRoles = new Set<string>();
  const where = (i: number) => `ConfigMap "${namespace}/${names[i]}" key "${GRANT_KEY}"`;

  const measure = (i: number, data: Readonly<Record<string, string>>) => {
    if (!options.gauges) return;
    const bytes = configMapBytes(data);
    sizes.set(names[i], bytes);
    options.gauges.shardBytes(names[i], bytes);
    options.gauges.fillRatio(Math.max(...sizes.values()) / CONFIGMAP_MAX_BYTES);
  };

  function decode(i: number, stored: ConfigMapSnapshot | undefined): ShardSnapshot {
    const data = stored?.data ?? {};
    const written = data[SHARDS_KEY];
    if (written !== undefined && written !== String(count)) {
      throw new AppError(
        "unavailable",
        `ConfigMap "${namespace}/${names[i]}" was written by a server with ${
          JSON.stringify(written)
        } grant shards, and this one has ${count}: a subject's shard follows from the count, so it cannot change while grants are recorded; set --grant-shards (the chart's server.grantShards) back to ${written}`,
      );
    }
    measure(i, data); // an absent shard holds 0 bytes
    const record = data[GRANT_KEY] === undefined
      ? EMPTY_RECORD
      : parseRecord(data[GRANT_KEY], where(i));
    record.roles.forEach((r) => knownRoles.add(r));
    return { index: i, record, ...(stored ? { stored } : {}) };
  }

  const read = async (i: number) => decode(i, await kube.getConfigMap(namespace, names[i]));
  const readAll = () => Promise.all(names.map((_, i) => read(i)));

  // One write at the version read; "stale" when another writer got there first.
  async function attempt(
    shard: ShardSnapshot,
    next: (shard: ShardSnapshot) => GrantRecord | undefined,
  ): Promise<"done" | "stale"> {
    const after = next(shard);
    if (after === undefined) return "done";
    const text = encodeRecord(after);
    if (text === encodeRecord(shard.record)) return "done";
    const data = { ...shard.stored?.data, [GRANT_KEY]: text, [SHARDS_KEY]: String(count) };
    const size = configMapBytes(data);
    if (size > CONFIGMAP_MAX_BYTES) {
      // Said here, before the API server's "Too long", which a start would answer as a 400.
      throw new AppError(
        "unavailable",
        `The grant record's shard would be ${size} bytes with ${
          Object.keys(after.grants).length
        } subjects, over the ${CONFIGMAP_MAX_BYTES} bytes Kubernetes allows in ${
          where(shard.index)
        }: too many pods hold roles at once (the cleanup takes off ended runs; see "Grants and how they end" in docs/admin-guide.md)`,
      );
    }
    try {
      const name = names[shard.index];
      if (shard.stored === undefined) await kube.createConfigMap(namespace, name, data);
      // The labels and annotations go back as read: Helm's keep policy is one of them.
      else {
        await kube.replaceConfigMap(
          namespace,
          name,
          data,
          shard.stored.resourceVersion,
          shard.stored,
        );
      }
      measure(shard.index, data);
      after.roles.forEach((r) => knownRoles.add(r));
      return "done";
    } catch (error) {
      if (error instanceof KubeConflictError) return "stale";
      if (shard.stored !== undefined && error instanceof KubeApiError && error.status === 404) {
        return "stale";
      }
      throw error;
    }
  }

  const write: ShardAccess["write"] = (index, next, first) =>
    locks[index](async () => {
      let shard = first;
      for (let n = 0;; n++) {
        shard ??= await read(index);
        if (await attempt(shard, next) === "done") return;
        shard = undefined;
        if (n >= maxRetries) {
          throw new AppError(
            "conflict",
            `Cannot update ConfigMap "${namespace}/${
              names[index]
            }": other writers kept changing it; gave up after ${n + 1} attempts`,
            { namespace, name: names[index], attempts: n + 1 },
          );
        }
        const delay = backoffDelay(n, BACKOFF, random);
        logger.debug("grant shard changed meanwhile; retrying", {
          name: names[index],
          attempt: n + 1,
          delay_ms: Math.round(delay),
        });
        await sleep(delay);
      }
    });

  // A start's grant: one shard read and written, sets of one shard batched together.
  const setters = names.map((_, i) =>
    coalesce(async (sets: readonly GrantSet[]) => {
      await write(i, (shard) => {
        const roles = [...new Set([...knownRoles, ...shard.record.roles])].sort();
        const after = withGrants({ roles, grants: shard.record.grants }, sets);
        return shardOfRecord(after, i, count, shard.record);
      });
      return sets.map(() => undefined);
    })
  );

  // An edit of the whole record: every shard read, only the shards it changed written, each at
  // its own version; a shard that changed meanwhile is read again and the edit applied again to
  // the record with that shard as it is now. Atomic per shard (every edit irsa makes is per
  // subject, and a subject lives in one shard).
  async function edit(edits: readonly ((r: GrantRecord) => GrantRecord)[]) {
    const apply = (r: GrantRecord) => edits.reduce((x, e) => e(x), r);
    const snapshots = await readAll();
    const before = joinShards(snapshots.map((s) => s.record));
    const after = apply(before);
    if (after === before) return edits.map(() => undefined);
    const orphans = orphanRoles(after, new Set(before.roles));
    await Promise.all(snapshots.map((first, i) =>
      write(i, (shard) => {
        if (shard === first) return shardOfRecord(after, i, count, shard.record, orphans);
        const whole = joinShards(snapshots.map((s, j) => (j === i ? shard : s).record));
        const next = apply(whole);
        return shardOfRecord(next, i, count, shard.record, orphanRoles(next, new Set(whole.roles)));
      }, first)
    ));
    return edits.map(() => undefined);
  }

  const reads = coalesce(async (inputs: readonly unknown[]) => {
    const record = joinShards((await readAll()).map((s) => s.record));
    return inputs.map(() => record);
  });

  return {
    read: () => reads(undefined),
    update: coalesce(edit),
    set: (grant) => setters[shardOf(grant.subject, count)](grant),
    shards: { count, namespace, names, read, readAll, write },
  };
}
