/** The server's grant record with Kubernetes: its shards, checked and merged at start. */

import type { KubeClient } from "../kube/client.ts";
import type { Logger } from "../lib/log.ts";
import type { ServerMetrics } from "../observe/metrics.ts";
import { createShardedGrantStore } from "../store/grant_shards.ts";
import { migrateSingleRecord, openShards } from "../store/grant_migration.ts";
import type { GrantStore } from "../store/grant_store.ts";
import type { ServerConfig } from "./config.ts";

/**
 * The grant record over its shards, once they are checked and the previous version's single
 * record is merged in (later, when the API does not answer at start); merged again each cleanup
 * interval, since that version's replicas (during a rolling upgrade, or after a rollback) may
 * write it meanwhile.
 */
export async function startGrantShards(
  config: ServerConfig,
  kube: KubeClient,
  logger: Logger,
  metrics: ServerMetrics,
  onStop: (undo: () => Promise<void>) => void,
): Promise<GrantStore> {
  const store = createShardedGrantStore(kube, {
    namespace: config.fieldNamespace,
    shards: config.grantShards,
    logger,
    gauges: {
      shardBytes: (shard, bytes) => metrics.grantShardBytes.set({ shard }, bytes),
      fillRatio: (ratio) => metrics.grantShardFill.set({}, ratio),
    },
  });
  await openShards(kube, store.shards, logger);
  // Every cleanup interval (a minute when the cleanup is off).
  let pass: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    pass = pass.then(() => migrateSingleRecord(kube, store.shards, { logger })).catch((error) =>
      logger.warn("cannot merge the single grant record into its shards", { error })
    );
  }, config.cleanupIntervalMs || 60_000);
  onStop(async () => {
    clearInterval(timer);
    await pass;
  });
  return store;
}
