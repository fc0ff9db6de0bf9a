/**
 * From the previous version's single grant record (`irsa-grants`, key `grants.json`) to the shards,
 * and the start-up check of the shards. The single record is merged into the shards (a subject's
 * newer grant wins, roles joined: idempotent, so two replicas migrating at once agree), then
 * marked with the SHA-256 of the text it merged and the shard count, and kept as it was: a
 * `helm rollback` to the previous version finds every grant it held. When that text changes (the
 * previous version wrote it again: a rolling upgrade's old replicas, or a rollback then an
 * upgrade), the next migration merges it again.
 */

import { mergeIntoShard, shardOf } from "../core/grant_shards.ts";
import { EMPTY_RECORD } from "../core/grants.ts";
import { AppError } from "../lib/errors.ts";
import { type Logger, silentLogger } from "../lib/log.ts";
import { type KubeClient, KubeConflictError } from "../kube/client.ts";
import { GRANT_CONFIGMAP, GRANT_KEY, parseRecord } from "./grant_store.ts";
import type { ShardAccess } from "./grant_shards.ts";

/** On `irsa-grants`: the SHA-256 (hex) of the `grants.json` text last merged into the shards. */
export const MIGRATED_ANNOTATION = "irsa.dominodatalab.com/migrated-sha256";
/** On `irsa-grants`: how many shards it was merged into. */
export const SHARDS_ANNOTATION = "irsa.dominodatalab.com/grant-shards";

const hex = async (text: string) =>
  [...new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");

/** What a migration did: undefined when there is no single record, else the subjects merged. */
export type Migration = { readonly subjects: number; readonly merged: boolean } | undefined;

/**
 * Merges the single record into the shards unless it was merged as it is; marks it at the
 * version read (a replica that lost that race reads it again and finds it marked, or merges the
 * newer text). Never changes its data.
 */
export async function migrateSingleRecord(
  kube: Pick<KubeClient, "getConfigMap" | "replaceConfigMap">,
  shards: ShardAccess,
  options: { readonly name?: string; readonly logger?: Logger } = {},
): Promise<Migration> {
  const { namespace, count } = shards;
  const name = options.name ?? GRANT_CONFIGMAP;
  const logger = options.logger ?? silentLogger;
  for (let attempt = 0;; attempt++) {
    const legacy = await kube.getConfigMap(namespace, name);
    if (legacy === undefined) return undefined;
    const text = legacy.data[GRANT_KEY] ?? "";
    const digest = await hex(text);
    const annotations = legacy.annotations ?? {};
    const into = annotations[SHARDS_ANNOTATION];
    if (into !== undefined && into !== String(count)) {
      throw new AppError(
        "unavailable",
        `ConfigMap "${namespace}/${name}" was merged into ${
          JSON.stringify(into)
        } grant shards, and this server has ${count}: a subject's shard follows from the count, so it cannot change while grants are recorded; set --grant-shards (the chart's server.grantShards) back to ${into}`,
      );
    }
    if (annotations[MIGRATED_ANNOTATION] === digest && into === String(count)) {
      return { subjects: 0, merged: false };
    }
    const old = text === ""
      ? EMPTY_RECORD
      : parseRecord(text, `ConfigMap "${namespace}/${name}" key "${GRANT_KEY}"`);
    const touched = new Set(
      [...Object.keys(old.grants), ...old.roles].map((s) => shardOf(s, count)),
    );
    await Promise.all(
      [...touched].map((i) =>
        shards.write(i, (shard) => mergeIntoShard(shard.record, old, i, count))
      ),
    );
    try {
      await kube.replaceConfigMap(namespace, name, legacy.data, legacy.resourceVersion, {
        ...legacy,
        annotations: {
          ...annotations,
          [MIGRATED_ANNOTATION]: digest,
          [SHARDS_ANNOTATION]: String(count),
        },
      });
    } catch (error) {
      if (error instanceof KubeConflictError && attempt < 8) continue;
      throw error;
    }
    const subjects = Object.keys(old.grants).length;
    logger.info("grant record merged into its shards", {
      configmap: `${namespace}/${name}`,
      subjects,
      roles: old.roles.length,
      shards: count,
    });
    return { subjects, merged: true };
  }
}

/**
 * Start-up: every shard is read (a shard written with another count stops the start, naming
 * it), a missing shard needs ConfigMap create (which the chart's Role does not grant: it
 * pre-creates them), then the single record is merged in.
 */
export async function openShards(
  kube: Pick<KubeClient, "getConfigMap" | "replaceConfigMap" | "canI">,
  shards: ShardAccess,
  logger: Logger = silentLogger,
): Promise<Migration> {
  const missing = (await shards.readAll()).filter((s) => s.stored === undefined)
    .map((s) => shards.names[s.index]);
  if (missing.length > 0) {
    const may = await kube.canI({
      verb: "create",
      group: "",
      resource: "configmaps",
      namespace: shards.namespace,
    }).catch(() => true); // unknown: the first write to a missing shard says what is wrong
    if (!may) {
      throw new AppError(
        "forbidden",
        `Cannot start: the grant record's ConfigMaps ${
          missing.map((m) => JSON.stringify(m)).join(", ")
        } are missing from namespace ${
          JSON.stringify(shards.namespace)
        } and the server may not create them; the chart creates ${shards.names[0]} to ${
          shards.names.at(-1)
        } (helm upgrade renders missing ones again; --grant-shards must be the chart's server.grantShards)`,
        { missing },
      );
    }
  }
  return await migrateSingleRecord(kube, shards, { logger });
}
