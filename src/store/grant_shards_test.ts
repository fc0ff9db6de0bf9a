import assert from "node:assert/strict";
import { shardOf } from "../core/grant_shards.ts";
import { EMPTY_RECORD, encodeRecord, type GrantRecord, withGrant } from "../core/grants.ts";
import { AppError } from "../lib/errors.ts";
import { createKubeClient, type KubeClient } from "../kube/client.ts";
import { sharedKubeApiServer } from "../../tests/fixtures/kube_apiserver.ts";
import { type KubeFaultProxy, startKubeFaultProxy } from "../../tests/kube_fault_proxy.ts";
import {
  CONFIGMAP_MAX_BYTES,
  createConfigMapGrantStore,
  GRANT_CONFIGMAP,
  GRANT_KEY,
} from "./grant_store.ts";
import { createShardedGrantStore, type ShardedGrantStoreOptions } from "./grant_shards.ts";
import { MIGRATED_ANNOTATION, openShards, SHARDS_ANNOTATION } from "./grant_migration.ts";

const role = (n: number) => `arn:aws:iam::111111111111:role/acme-proxy-role-${n}`;
const subject = (n: number) => `system:serviceaccount:domino-compute:run-${n.toString(16)}`;
// About 280 bytes stored: two organizations, two roles, a workload type.
const grant = (r: GrantRecord, n: number, syncedAt = 1_760_000_000_000 + n) =>
  withGrant(r, subject(n), {
    user: `user-${n}`,
    organizations: ["irsa-iamrole-list-bucket", "irsa-iamrole-read-bucket"],
    roles: [role(n % 7), role((n + 1) % 7)],
    syncedAt,
    workloadType: "Workspace",
  });
const many = (from: number, count: number, r = EMPTY_RECORD) =>
  Array.from({ length: count }, (_, i) => from + i).reduce((x, n) => grant(x, n), r);
const noWait = () => Promise.resolve();

interface Field {
  readonly ns: string;
  readonly proxy: KubeFaultProxy;
  readonly kube: KubeClient;
  store(options?: Partial<ShardedGrantStoreOptions>): ReturnType<typeof createShardedGrantStore>;
  writes(): string[];
}

async function withField(fn: (f: Field) => Promise<void>): Promise<void> {
  const cluster = await sharedKubeApiServer();
  const ns = await cluster.createNamespace("field");
  const proxy = startKubeFaultProxy(cluster);
  const kube = createKubeClient({ apiUrl: proxy.url, token: () => cluster.adminToken });
  try {
    await fn({
      ns,
      proxy,
      kube,
      store: (options = {}) =>
        createShardedGrantStore(kube, { namespace: ns, shards: 8, sleep: noWait, ...options }),
      writes: () =>
        proxy.requests.filter((r) => r.method === "PUT" || r.method === "POST")
          .map((r) => `${r.method} ${r.path.split("/").at(-1)}`),
    });
  } finally {
    kube.close();
    await proxy.close();
  }
}

Deno.test("grant shards: 5,000 subjects, past the old single object's 1 MiB, stored and read back exactly", async () => {
  await withField(async (f) => {
    const record = many(0, 5000);
    const bytes = new TextEncoder().encode(encodeRecord(record)).length;
    assert.ok(bytes > CONFIGMAP_MAX_BYTES, `${bytes} bytes: more than one object may hold`);
    const sizes = new Map<string, number>();
    let fill = 0;
    const store = f.store({
      shards: 64,
      gauges: { shardBytes: (s, b) => sizes.set(s, b), fillRatio: (r) => fill = r },
    });
    await store.update((r) => many(0, 5000, r));
    const back = await f.store({ shards: 64 }).read();
    assert.equal(encodeRecord(back), encodeRecord(record));
    // Each shard holds about 1/64 of it; the gauges say so.
    assert.equal(sizes.size, 64);
    const largest = Math.max(...sizes.values());
    assert.ok(largest < bytes / 64 * 1.4, `largest shard ${largest} bytes`);
    assert.equal(fill, largest / CONFIGMAP_MAX_BYTES);
    // The previous version's single object refuses the same record.
    await assert.rejects(
      createConfigMapGrantStore(f.kube, { namespace: f.ns }).update((r) => many(0, 5000, r)),
      (e) => e instanceof AppError && e.code === "unavailable",
    );
  });
});

Deno.test("grant shards: a start's set() reads and writes exactly its own shard", async () => {
  await withField(async (f) => {
    const store = f.store();
    await store.update((r) => many(0, 40, r));
    f.proxy.clearRequests();
    const s = subject(1000);
    await store.set({ subject: s, grant: () => grant(EMPTY_RECORD, 1000).grants[s] });
    const name = `irsa-grants-0${shardOf(s, 8)}`;
    assert.deepEqual(
      f.proxy.requests.map((r) => `${r.method} ${r.path.split("/").at(-1)}`),
      [`GET ${name}`, `PUT ${name}`],
    );
    assert.equal(Object.keys((await store.read()).grants).length, 41);
    // A burst of sets shares its shards' writes.
    f.proxy.clearRequests();
    await Promise.all(
      Array.from({ length: 40 }, (_, i) => {
        const t = subject(2000 + i);
        return store.set({ subject: t, grant: () => grant(EMPTY_RECORD, 2000 + i).grants[t] });
      }),
    );
    assert.ok(f.writes().length <= 16, `${f.writes().length} writes for 40 sets on 8 shards`);
  });
});

Deno.test("grant shards: an update writes only the shards it changed, each at its own version", async () => {
  await withField(async (f) => {
    const store = f.store();
    await store.update((r) => many(0, 40, r));
    f.proxy.clearRequests();
    await store.update((r) => {
      const { [subject(3)]: _, ...grants } = r.grants;
      return { roles: r.roles, grants };
    });
    assert.deepEqual(f.writes(), [`PUT irsa-grants-0${shardOf(subject(3), 8)}`]);
    const record = await store.read();
    assert.equal(record.grants[subject(3)], undefined);
    assert.equal(Object.keys(record.grants).length, 39);
    // The roles ever edited survive the grants that carried them.
    await store.update((r) => ({ roles: r.roles, grants: {} }));
    const emptied = await f.store().read();
    assert.deepEqual(emptied.grants, {});
    assert.deepEqual(emptied.roles, Array.from({ length: 7 }, (_, i) => role(i)).sort());
  });
});

Deno.test("grant shards: two replicas setting different subjects of one shard at once lose nothing", async () => {
  await withField(async (f) => {
    const same = Array.from({ length: 400 }, (_, n) => n).filter((n) =>
      shardOf(subject(n), 8) === 3
    )
      .slice(0, 30);
    assert.equal(same.length, 30);
    const a = f.store();
    const b = f.store();
    await Promise.all(
      same.map((n, i) =>
        (i % 2 ? a : b).set({
          subject: subject(n),
          grant: () => grant(EMPTY_RECORD, n).grants[subject(n)],
        })
      ),
    );
    const record = await f.store().read();
    assert.deepEqual(Object.keys(record.grants).sort(), same.map(subject).sort());
    assert.ok(
      f.proxy.requests.some((r) => r.method === "PUT" && r.status === 409),
      "the replicas did meet on the shard (a 409, read again, retried)",
    );
  });
});

Deno.test("grant shards: migration from the previous version's single record, by two replicas at once, kept for a rollback", async () => {
  await withField(async (f) => {
    // The previous version's store wrote it: encodeRecord in one key of irsa-grants.
    const previous = createConfigMapGrantStore(f.kube, { namespace: f.ns });
    await previous.update((r) => many(0, 300, r));
    const before = (await f.kube.getConfigMap(f.ns, GRANT_CONFIGMAP))!;
    assert.equal(before.data[GRANT_KEY], encodeRecord(many(0, 300)));

    // Two replicas start together; a newer grant already in a shard is kept.
    const a = f.store();
    const b = f.store();
    await a.set({
      subject: subject(5),
      grant: () => grant(EMPTY_RECORD, 5, 2e12).grants[subject(5)],
    });
    const [ma, mb] = await Promise.all([
      openShards(f.kube, a.shards),
      openShards(f.kube, b.shards),
    ]);
    assert.ok(ma?.merged || mb?.merged);
    const merged = await a.read();
    assert.equal(Object.keys(merged.grants).length, 300);
    assert.equal(merged.grants[subject(5)].syncedAt, 2e12);
    assert.equal(
      encodeRecord({
        ...merged,
        grants: { ...merged.grants, [subject(5)]: many(0, 300).grants[subject(5)] },
      }),
      encodeRecord(many(0, 300)),
    );

    // The single record is kept byte for byte, marked with what was merged.
    const after = (await f.kube.getConfigMap(f.ns, GRANT_CONFIGMAP))!;
    assert.equal(after.data[GRANT_KEY], before.data[GRANT_KEY]);
    assert.equal(after.annotations?.[SHARDS_ANNOTATION], "8");
    assert.match(after.annotations?.[MIGRATED_ANNOTATION] ?? "", /^[0-9a-f]{64}$/);
    // A restart merges nothing again.
    f.proxy.clearRequests();
    assert.deepEqual(await openShards(f.kube, f.store().shards), { subjects: 0, merged: false });
    assert.deepEqual(f.writes(), []);

    // Grants made after the migration are in the shards only.
    await a.update((r) => many(300, 10, r));
    // Rollback: the previous version reads every grant that existed at migration time, and
    // writes (keeping the mark); the upgrade again merges what it wrote, and loses nothing.
    assert.equal(Object.keys((await previous.read()).grants).length, 300);
    await previous.update((r) => many(500, 5, r));
    assert.equal(
      (await f.kube.getConfigMap(f.ns, GRANT_CONFIGMAP))?.annotations?.[SHARDS_ANNOTATION],
      "8",
    );
    assert.deepEqual(await openShards(f.kube, f.store().shards), { subjects: 305, merged: true });
    assert.equal(Object.keys((await a.read()).grants).length, 315);
  });
});

Deno.test("grant shards: a changed shard count stops the start, naming the count that wrote them", async () => {
  await withField(async (f) => {
    await f.store().update((r) => many(0, 20, r));
    for (const shards of [4, 16]) {
      await assert.rejects(openShards(f.kube, f.store({ shards }).shards), (e) => {
        assert.ok(e instanceof AppError && e.code === "unavailable");
        assert.match(e.message, /written by a server with "8" grant shards, and this one has/);
        assert.match(e.message, /back to 8/);
        return true;
      });
    }
  });
});

Deno.test("grant shards: a missing shard stops the start when the server may not create it", async () => {
  await withField(async (f) => {
    const store = f.store();
    const kube = { ...f.kube, canI: () => Promise.resolve(false) };
    await assert.rejects(openShards(kube, store.shards), (e) => {
      assert.ok(e instanceof AppError && e.code === "forbidden");
      assert.match(e.message, /"irsa-grants-00", .*"irsa-grants-07" are missing/);
      return true;
    });
    // Allowed to create (no chart): the start goes on, and writes create shards as needed.
    assert.equal(await openShards(f.kube, store.shards), undefined);
  });
});
