import { shardName } from "../src/core/grant_shards.ts";
import { createKubeClient } from "../src/kube/client.ts";
import { checkPermissions, requiredPermissions } from "../src/kube/permissions.ts";
import { silentLogger } from "../src/lib/log.ts";
import { createShardedGrantStore } from "../src/store/grant_shards.ts";
import { openShards } from "../src/store/grant_migration.ts";
import { startKubeApiServer } from "../tests/fixtures/kube_apiserver.ts";
const cluster = await startKubeApiServer();
try {
  const ns = await cluster.createNamespace("field");
  const kube = createKubeClient({
    apiUrl: cluster.url,
    token: () => cluster.adminToken,
    caCert: cluster.caCert,
  });
  const use = (n: number) =>
    requiredPermissions({
      fieldNamespace: ns,
      computeNamespace: "c",
      grantConfigMap: "irsa-grants",
      mappingConfigMap: "m",
      serviceAccounts: true,
      grantShards: Array.from({ length: n }, (_, i) => shardName("irsa-grants", i)),
    });
  for (const n of [0, 64, 0, 64, 0, 64]) {
    const t = performance.now();
    await checkPermissions(kube, use(n), silentLogger);
    console.log(
      `permission check, ${use(n).length} actions (${n} shards): ${
        (performance.now() - t).toFixed(0)
      } ms`,
    );
  }
  for (let k = 0; k < 3; k++) {
    const store = createShardedGrantStore(kube, { namespace: ns, shards: 64 });
    if (k === 0) await store.update((r) => r); // nothing
    const t = performance.now();
    await openShards(kube, store.shards);
    console.log(`openShards (64 GETs, no single record): ${(performance.now() - t).toFixed(0)} ms`);
  }
  kube.close();
} finally {
  await cluster.stop();
}
