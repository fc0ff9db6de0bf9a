/**
 * The durable grant record (src/core/grants.ts): its interface, the JSON file beside the mappings
 * file (no Kubernetes), and the single ConfigMap `irsa-grants` of the previous version. With
 * Kubernetes the server keeps it in shards (grant_shards.ts), into which that single record is
 * merged (grant_migration.ts). It survives restarts and mapping deletions, and every replica reads
 * and writes the same one.
 */

import {
  decodeRecord,
  EMPTY_RECORD,
  encodeRecord,
  type GrantRecord,
  type GrantSet,
  withGrants,
} from "../core/grants.ts";
import { coalesce } from "../lib/coalesce.ts";
import { AppError } from "../lib/errors.ts";
import type { KubeClient } from "../kube/client.ts";
import { type ConfigMapTarget, configMapWriter } from "./configmap_store.ts";
import { type FileStoreFs, jsonObjectFile } from "./file_store.ts";

/** The record, read and changed whole. */
export interface GrantStore {
  read(): Promise<GrantRecord>;
  /**
   * Applies `edit` to the current record and stores it; resolves once it is stored. Edits that
   * arrive while a write is in flight are applied together in the next write, so a burst of syncs
   * costs a few writes, not one each.
   */
  update(edit: (record: GrantRecord) => GrantRecord): Promise<void>;
  /** Sets one subject's grant, like `update` with {@link withGrant}, batched in linear time. */
  set(grant: GrantSet): Promise<void>;
}

/** The ConfigMap of the record, in the field namespace. */
export const GRANT_CONFIGMAP = "irsa-grants";
/** The data key of the record (and of each shard). */
export const GRANT_KEY = "grants.json";

// A stored record that cannot be read is an error, never an empty record: writing over it would
// forget grants that must still be taken back.
export function parseRecord(text: string, where: string): GrantRecord {
  try {
    return decodeRecord(text);
  } catch (e) {
    // 503, not 500: the server works, its record needs an admin (and says where it is).
    throw new AppError("unavailable", `${(e as Error).message} (in ${where}); fix or remove it`);
  }
}

/**
 * The record in one key of one ConfigMap, written at the resourceVersion read: the previous
 * version's layout, byte for byte (tests write with it as that version did; the server reads it
 * only to merge it into the shards).
 */
export function createConfigMapGrantStore(
  kube: Pick<KubeClient, "getConfigMap" | "createConfigMap" | "replaceConfigMap">,
  target: Omit<ConfigMapTarget, "name"> & { name?: string },
): GrantStore {
  const namespace = target.namespace;
  const name = target.name ?? GRANT_CONFIGMAP;
  const where = `ConfigMap "${namespace}/${name}" key "${GRANT_KEY}"`;
  const write = configMapWriter(kube, { ...target, name });
  const decode = (data: Readonly<Record<string, string>>) =>
    data[GRANT_KEY] === undefined ? EMPTY_RECORD : parseRecord(data[GRANT_KEY], where);
  return coalesced({
    read: async () => decode((await kube.getConfigMap(namespace, name))?.data ?? {}),
    write: (edit) =>
      write((data) => {
        const before = decode(data);
        const after = edit(before);
        if (after === before) return undefined;
        const next = { ...data, [GRANT_KEY]: encodeRecord(after) };
        const size = configMapBytes(next);
        if (size > CONFIGMAP_MAX_BYTES) {
          // Said here, before the API server's "Too long", which a start would answer as a 400.
          throw new AppError(
            "unavailable",
            `The grant record would be ${size} bytes with ${
              Object.keys(after.grants).length
            } subjects, over the ${CONFIGMAP_MAX_BYTES} bytes Kubernetes allows in ${where}: too many pods hold roles at once (the cleanup takes off ended runs; see "Grants and how they end" in docs/admin-guide.md)`,
          );
        }
        return next;
      }),
  });
}

/** What Kubernetes allows in a ConfigMap's data, keys and values together. */
export const CONFIGMAP_MAX_BYTES = 1_048_576;

/** Bytes of a ConfigMap's data, as Kubernetes counts them against its limit. */
export const configMapBytes = (data: Readonly<Record<string, string>>) => {
  const encoder = new TextEncoder();
  return Object.entries(data).reduce(
    (n, [k, v]) => n + encoder.encode(k).length + encoder.encode(v).length,
    0,
  );
};

/** The record in a JSON file, `{"roles": [...], "grants": {...}}`, replaced atomically. */
export function createFileGrantStore(path: string, fs: Partial<FileStoreFs> = {}): GrantStore {
  const file = jsonObjectFile(path, fs, { label: "grant record", contents: "roles and grants" });
  const decode = (data: Readonly<Record<string, unknown>> | undefined) =>
    data === undefined ? EMPTY_RECORD : parseRecord(JSON.stringify(data), JSON.stringify(path));
  return coalesced({
    read: async () => decode(await file.load()),
    write: (edit) =>
      file.modify((data) => {
        const before = decode(Object.keys(data).length ? data : undefined);
        const after = edit(before);
        return {
          data: after === before ? undefined : JSON.parse(encodeRecord(after)),
          result: undefined,
        };
      }),
  });
}

/** The grant file beside a mappings file: `<its folder>/irsa-grants.json`. */
export function grantFileBeside(mappingFile: string): string {
  const slash = mappingFile.lastIndexOf("/");
  return `${slash < 0 ? "" : mappingFile.slice(0, slash + 1)}irsa-grants.json`;
}

interface Backend {
  read(): Promise<GrantRecord>;
  write(edit: (record: GrantRecord) => GrantRecord): Promise<void>;
}

type Change = ((record: GrantRecord) => GrantRecord) | GrantSet;

/** The record with changes applied in order, each run of grant sets in one pass. */
function applyChanges(record: GrantRecord, changes: readonly Change[]): GrantRecord {
  let r = record;
  for (let i = 0; i < changes.length;) {
    const change = changes[i];
    if (typeof change === "function") {
      r = change(r);
      i++;
      continue;
    }
    let j = i;
    while (j < changes.length && typeof changes[j] !== "function") j++;
    r = withGrants(r, changes.slice(i, j) as GrantSet[]);
    i = j;
  }
  return r;
}

// One write in flight; changes queued meanwhile go together into the next one, each caller
// learning the outcome of the write that carried its change.
function coalesced(backend: Backend): GrantStore {
  const change = coalesce(async (changes: readonly Change[]) => {
    await backend.write((record) => applyChanges(record, changes));
    return changes.map(() => undefined);
  });
  return { read: () => backend.read(), update: change, set: change };
}

/** The record in memory, for one process that needs no durability (tests of the shell). */
export function createMemoryGrantStore(initial: GrantRecord = EMPTY_RECORD): GrantStore & {
  /** The record as stored now. */
  current(): GrantRecord;
} {
  let record = initial;
  const store = coalesced({
    read: () => Promise.resolve(record),
    write: (edit) => {
      record = edit(record);
      return Promise.resolve();
    },
  });
  return { ...store, current: () => record };
}
