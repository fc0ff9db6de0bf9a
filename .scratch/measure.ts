import { shardOf } from "../src/core/grant_shards.ts";
import { EMPTY_RECORD, encodeRecord, type Grant, withGrants } from "../src/core/grants.ts";
import { createKubeClient } from "../src/kube/client.ts";
import { createShardedGrantStore } from "../src/store/grant_shards.ts";
import { CONFIGMAP_MAX_BYTES } from "../src/store/grant_store.ts";
import { startKubeApiServer } from "../tests/fixtures/kube_apiserver.ts";

const role = (n: number) => `arn:aws:iam::111111111111:role/acme-proxy-role-${n}`;
const subject = (n: number) =>
  `system:serviceaccount:domino-compute:run-${n.toString(16).padStart(24, "0")}`;
const g = (n: number): Grant => ({
  user: `user-${n}`,
  organizations: ["irsa-iamrole-list-bucket", "irsa-iamrole-read-bucket"],
  roles: [role(n % 7), role((n + 1) % 7)],
  syncedAt: 1_760_000_000_000 + n,
  workloadType: "Workspace",
});
const sets = (from: number, count: number) =>
  Array.from(
    { length: count },
    (_, i) => ({ subject: subject(from + i), grant: () => g(from + i) }),
  );
const per = encodeRecord(withGrants(EMPTY_RECORD, sets(0, 1000))).length / 1000;
console.log(`bytes per subject: ${per.toFixed(0)}`);
const SHARDS = Number(Deno.args[0] ?? 64);
// Pure: subjects until the first shard passes 1 MiB.
const bytes = new Array(SHARDS).fill(40);
let n = 0;
for (;; n++) {
  const s = shardOf(subject(n), SHARDS);
  bytes[s] += per;
  if (bytes[s] > CONFIGMAP_MAX_BYTES) break;
}
console.log(`${SHARDS} shards: the first shard passes 1 MiB at subject ${n + 1}`);
const N = Number(Deno.args[1] ?? 0);
if (N > 0) {
  const cluster = await startKubeApiServer();
  try {
    const ns = await cluster.createNamespace("field");
    const kube = createKubeClient({
      apiUrl: cluster.url,
      token: () => cluster.adminToken,
      caCert: cluster.caCert,
    });
    const sizes = new Map<string, number>();
    let fill = 0;
    const store = createShardedGrantStore(kube, {
      namespace: ns,
      shards: SHARDS,
      gauges: { shardBytes: (s, b) => sizes.set(s, b), fillRatio: (r) => fill = r },
    });
    let t = performance.now();
    await store.update((r) => withGrants(r, sets(0, N)));
    console.log(
      `stored ${N} subjects in ${SHARDS} shards: ${
        (performance.now() - t).toFixed(0)
      } ms; largest ${Math.max(...sizes.values())} bytes, fill ${fill.toFixed(3)}`,
    );
    t = performance.now();
    const back = await store.read();
    console.log(
      `read back ${Object.keys(back.grants).length} in ${(performance.now() - t).toFixed(0)} ms`,
    );
    const times: number[] = [];
    for (let i = 0; i < 20; i++) {
      const s0 = performance.now();
      await store.set({ subject: subject(N + 1000 + i), grant: () => g(N + 1000 + i) });
      times.push(performance.now() - s0);
    }
    times.sort((a, b) => a - b);
    console.log(
      `set() of one subject at ${N}: median ${times[10].toFixed(1)} ms, max ${
        times[19].toFixed(1)
      } ms`,
    );
    const more = Number(Deno.args[2] ?? 0);
    if (more > 0) {
      try {
        await store.update((r) => withGrants(r, sets(N + 5000, more)));
        console.log(`+${more}: stored`);
      } catch (e) {
        console.log(`+${more}: ${(e as Error).message.slice(0, 200)}`);
      }
    }
    kube.close();
  } finally {
    await cluster.stop();
  }
}
