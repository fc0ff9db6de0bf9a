import assert from "node:assert/strict";
import { EMPTY_RECORD, type GrantRecord, withGrant } from "../core/grants.ts";
import { AppError } from "../lib/errors.ts";
import { createKubeClient } from "../kube/client.ts";
import { sharedKubeApiServer } from "../../tests/fixtures/kube_apiserver.ts";
import { startKubeFaultProxy } from "../../tests/kube_fault_proxy.ts";
import {
  createConfigMapGrantStore,
  createFileGrantStore,
  GRANT_CONFIGMAP,
  grantFileBeside,
  type GrantStore,
} from "./grant_store.ts";

const ROLE = "arn:aws:iam::111111111111:role/acme-list-bucket-role";
const grant = (record: GrantRecord, n: number) =>
  withGrant(record, `*:domino-compute:run-${n}`, {
    user: `user-${n}`,
    organizations: ["irsa-iamrole-list-bucket"],
    roles: [ROLE],
    syncedAt: n,
  });

/** What every store must do: start empty, keep every concurrent update, survive a re-open. */
async function contract(open: () => GrantStore, writes: () => number) {
  assert.deepEqual(await open().read(), EMPTY_RECORD);
  const store = open();
  await Promise.all(Array.from({ length: 40 }, (_, n) => store.update((r) => grant(r, n))));
  const record = await open().read();
  assert.equal(Object.keys(record.grants).length, 40);
  assert.deepEqual(record.roles, [ROLE]);
  // Updates queued behind a write in flight share the next write.
  assert.ok(writes() <= 3, `${writes()} writes for 40 updates`);
}

Deno.test("grant store (file): empty at first, every concurrent update kept, in a few writes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = grantFileBeside(`${dir}/mappings.json`);
    assert.equal(path, `${dir}/irsa-grants.json`);
    let writes = 0;
    const open = () =>
      createFileGrantStore(path, {
        rename: async (from, to) => {
          writes++;
          await Deno.rename(from, to);
        },
      });
    await contract(open, () => writes);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("grant store (ConfigMap): on the real API server, every concurrent update kept", async () => {
  const cluster = await sharedKubeApiServer();
  const ns = await cluster.createNamespace("field");
  const proxy = startKubeFaultProxy(cluster);
  const kube = createKubeClient({ apiUrl: proxy.url, token: () => cluster.adminToken });
  try {
    const writes = () =>
      proxy.requests.filter((r) => r.method === "PUT" || r.method === "POST").length;
    await contract(() => createConfigMapGrantStore(kube, { namespace: ns }), writes);
    const stored = await cluster.configMap(ns, GRANT_CONFIGMAP);
    assert.deepEqual(Object.keys(stored!.data), ["grants.json"]);
    // Two replicas writing at once lose nothing (409, read again, retry).
    const a = createConfigMapGrantStore(kube, { namespace: ns });
    const b = createConfigMapGrantStore(kube, { namespace: ns });
    await Promise.all([
      ...Array.from({ length: 10 }, (_, n) => a.update((r) => grant(r, 100 + n))),
      ...Array.from({ length: 10 }, (_, n) => b.update((r) => grant(r, 200 + n))),
    ]);
    assert.equal(Object.keys((await a.read()).grants).length, 60);
  } finally {
    kube.close();
    await proxy.close();
  }
});

Deno.test("grant store (ConfigMap): a record over Kubernetes' 1 MiB is refused with 503 naming the limit, and the stored one is kept", async () => {
  const cluster = await sharedKubeApiServer();
  const ns = await cluster.createNamespace("field");
  const kube = createKubeClient({
    apiUrl: cluster.url,
    token: () => cluster.adminToken,
    caCert: cluster.caCert,
  });
  try {
    const store = createConfigMapGrantStore(kube, { namespace: ns });
    const many = (from: number, count: number) => (r: GrantRecord) =>
      Array.from({ length: count }, (_, i) => from + i).reduce(grant, r);
    // About 165 bytes a subject: 3 000 fit, 7 000 do not.
    await store.update(many(0, 3000));
    await assert.rejects(store.update(many(3000, 4000)), (e) => {
      assert.ok(e instanceof AppError);
      assert.equal(e.code, "unavailable");
      assert.match(
        e.message,
        /over the 1048576 bytes Kubernetes allows in ConfigMap ".*\/irsa-grants"/,
      );
      assert.match(e.message, /with 7000 subjects/);
      return true;
    });
    assert.equal(Object.keys((await store.read()).grants).length, 3000);
  } finally {
    kube.close();
  }
});

Deno.test("grant store: a malformed record is an error naming it, and is never written over", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/irsa-grants.json`;
    await Deno.writeTextFile(path, '{"roles": "not a list"}');
    const store = createFileGrantStore(path);
    await assert.rejects(store.read(), (e) => {
      assert.ok(e instanceof AppError && e.code === "unavailable");
      assert.match(e.message, /grant record is malformed/);
      assert.match(e.message, /irsa-grants\.json/);
      return true;
    });
    await assert.rejects(store.update((r) => grant(r, 1)), AppError);
    assert.equal(await Deno.readTextFile(path), '{"roles": "not a list"}');
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
