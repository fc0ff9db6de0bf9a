/** The mappings store in ConfigMap `domino-org-iamrole-mapping`, in the current service's format. */

import * as v from "valibot";
import { decodeMappings, encodeValue, OrganizationName } from "../core/mapping.ts";
import type { RolePair } from "../core/role_chain.ts";
import { backoffDelay } from "../lib/backoff.ts";
import { AppError } from "../lib/errors.ts";
import type { ConfigMapSnapshot, KubeClient } from "../kube/client.ts";
import { KubeApiError, KubeConflictError } from "../kube/client.ts";
import { type Logger, silentLogger } from "../lib/log.ts";
import {
  encodeWrites,
  type MappingSnapshot,
  type MappingStore,
  withWrites,
} from "./mapping_store.ts";

/** Options of {@link createConfigMapStore}. */
export interface ConfigMapStoreOptions {
  /** Default `domino-field`. */
  readonly namespace?: string;
  /** Default `domino-org-iamrole-mapping`. */
  readonly name?: string;
  /** Attempts after the first when another writer changed the ConfigMap meanwhile; default 8. */
  readonly maxRetries?: number;
  /** Waits between attempts; tests pass one that does not wait. */
  readonly sleep?: (ms: number) => Promise<void>;
  /** In [0, 1), for backoff jitter; defaults to `Math.random`. */
  readonly random?: () => number;
  readonly logger?: Logger;
}

const DEFAULT_NAMESPACE = "domino-field";
const DEFAULT_NAME = "domino-org-iamrole-mapping";
const DEFAULT_MAX_RETRIES = 8;
const BACKOFF = { baseMs: 25, capMs: 1_000 };

/** An edit of a ConfigMap's data; undefined writes nothing. */
export type ConfigMapEdit = (
  data: Readonly<Record<string, string>>,
) => Record<string, string> | undefined;

/** Where a ConfigMap is and how hard to retry its writes. */
export interface ConfigMapTarget {
  readonly namespace: string;
  readonly name: string;
  readonly maxRetries?: number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
  readonly logger?: Logger;
}

/**
 * Read-edit-write of one ConfigMap at the resourceVersion read, started again (with jittered
 * backoff) when another writer got there first (409) or it was deleted meanwhile (404), so no
 * writer loses another's change; creates the ConfigMap when missing. Writes through one returned
 * function are also serialised in-process.
 */
export function configMapWriter(
  kube: Pick<KubeClient, "getConfigMap" | "createConfigMap" | "replaceConfigMap">,
  target: ConfigMapTarget,
): (edit: ConfigMapEdit) => Promise<void> {
  const { namespace, name } = target;
  const maxRetries = target.maxRetries ?? DEFAULT_MAX_RETRIES;
  const sleep = target.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const random = target.random ?? Math.random;
  const logger = target.logger ?? silentLogger;
  const lock = createLock();
  const where = `ConfigMap "${namespace}/${name}"`;

  // One read-edit-write. "stale" when the ConfigMap changed or was created by someone else (409)
  // or was deleted (404) since it was read.
  async function attempt(edit: ConfigMapEdit): Promise<"done" | "stale"> {
    const current = await kube.getConfigMap(namespace, name);
    const next = edit(current?.data ?? {});
    if (next === undefined) return "done";
    try {
      if (current === undefined) await kube.createConfigMap(namespace, name, next);
      // The labels and annotations go back as read: Helm's keep policy is one of them.
      else await kube.replaceConfigMap(namespace, name, next, current.resourceVersion, current);
      return "done";
    } catch (error) {
      if (error instanceof KubeConflictError) return "stale";
      if (current !== undefined && error instanceof KubeApiError && error.status === 404) {
        return "stale"; // the next attempt creates it
      }
      throw error;
    }
  }

  return (edit) =>
    lock(async () => {
      for (let n = 0;; n++) {
        if (await attempt(edit) === "done") return;
        if (n >= maxRetries) {
          throw new AppError(
            "conflict",
            `Cannot update ${where}: other writers kept changing it; gave up after ${
              n + 1
            } attempts`,
            { namespace, name, attempts: n + 1 },
          );
        }
        const delay = backoffDelay(n, BACKOFF, random);
        logger.debug("configmap changed meanwhile; retrying", {
          namespace,
          name,
          attempt: n + 1,
          delay_ms: Math.round(delay),
        });
        await sleep(delay);
      }
    });
}

/**
 * A store over one ConfigMap: one key per organization, its value the JSON text of its pairs
 * (`encodeValue`), written through {@link configMapWriter}. Entries it cannot read are reported by
 * `read` and copied unchanged by writes of other organizations.
 */
export function createConfigMapStore(
  kube: Pick<KubeClient, "getConfigMap" | "createConfigMap" | "replaceConfigMap">,
  options: ConfigMapStoreOptions = {},
): MappingStore {
  const namespace = options.namespace ?? DEFAULT_NAMESPACE;
  const name = options.name ?? DEFAULT_NAME;
  const modify = configMapWriter(kube, { ...options, namespace, name });

  return {
    async read(): Promise<MappingSnapshot> {
      const current: ConfigMapSnapshot | undefined = await kube.getConfigMap(namespace, name);
      return decodeMappings(current?.data ?? {});
    },

    async put(organization: string, pairs: readonly RolePair[]): Promise<void> {
      const value = entryValue(organization, pairs);
      await modify((data) =>
        Object.hasOwn(data, organization) && data[organization] === value
          ? undefined
          : withEntry(data, organization, value)
      );
    },

    async remove(organization: string): Promise<boolean> {
      checkOrganization(organization);
      let removed = false;
      await modify((data) => {
        removed = Object.hasOwn(data, organization);
        return removed ? withoutEntry(data, organization) : undefined;
      });
      return removed;
    },

    async putAll(writes): Promise<void> {
      for (const org of writes.keys()) checkOrganization(org);
      const values = encodeWrites(writes, entryValue);
      if (values.size === 0) return;
      await modify((data) => withWrites(data, values));
    },
  };
}

/** The stored value of an organization's pairs; throws `bad_request` for a bad name or no pairs. */
export function entryValue(organization: string, pairs: readonly RolePair[]): string {
  checkOrganization(organization);
  if (pairs.length === 0) {
    throw new AppError(
      "bad_request",
      `Cannot map organization ${JSON.stringify(organization)} to no roles; remove it instead`,
    );
  }
  return encodeValue(pairs);
}

/** Throws `bad_request` unless `organization` can be a ConfigMap key (and so a mapping). */
export function checkOrganization(organization: string): void {
  const result = v.safeParse(OrganizationName, organization);
  if (!result.success) {
    throw new AppError(
      "bad_request",
      `Invalid organization ${JSON.stringify(organization)}: ${result.issues[0].message}`,
    );
  }
}

/** A copy of `data` with `key` set, other entries (even unreadable ones) untouched and in order. */
export function withEntry<T>(
  data: Readonly<Record<string, T>>,
  key: string,
  value: T,
): Record<string, T> {
  // Object.fromEntries, not assignment: a key such as "__proto__" must stay plain data.
  const entries = Object.entries(data);
  const at = entries.findIndex(([k]) => k === key);
  if (at >= 0) entries[at] = [key, value];
  else entries.push([key, value]);
  return Object.fromEntries(entries);
}

/** A copy of `data` without `key`. */
export function withoutEntry<T>(data: Readonly<Record<string, T>>, key: string): Record<string, T> {
  return Object.fromEntries(Object.entries(data).filter(([k]) => k !== key));
}

/** Serialises tasks in call order (an in-process lock); a failed task does not stop the next. */
export function createLock(): <T>(task: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(task: () => Promise<T>) => {
    const run = tail.then(task);
    tail = run.catch(() => {});
    return run;
  };
}
