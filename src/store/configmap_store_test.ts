import assert from "node:assert/strict";
import { fromWire } from "../core/mapping.ts";
import type { RolePair } from "../core/role_chain.ts";
import { AppError } from "../lib/errors.ts";
import { createKubeClient, type KubeClient } from "../kube/client.ts";
import { type KubeApiServer, sharedKubeApiServer } from "../../tests/fixtures/kube_apiserver.ts";
import { type KubeFaultProxy, startKubeFaultProxy } from "../../tests/kube_fault_proxy.ts";
import { type ConfigMapStoreOptions, createConfigMapStore } from "./configmap_store.ts";
import type { MappingStore } from "./mapping_store.ts";

const NAME = "domino-org-iamrole-mapping";

// As a store reads it back: the pair and the wire object it came from.
const pair = (role: string): RolePair =>
  fromWire({
    iam_role_arn: `arn:aws:iam::222222222222:role/${role}`,
    proxy_iam_role_arn: `arn:aws:iam::111111111111:role/${role}`,
  });
const LIST = pair("acme-list-bucket-role");
const READ = pair("acme-read-bucket-role");

const noWait = () => Promise.resolve();

/** A test's own namespace on the shared API server, reached through a fault proxy. */
interface Kube {
  readonly cluster: KubeApiServer;
  readonly proxy: KubeFaultProxy;
  readonly kube: KubeClient;
  readonly ns: string;
  /** A store on the test's namespace. */
  store(client?: KubeClient, options?: ConfigMapStoreOptions): MappingStore;
  /** The ConfigMap as the API server holds it. */
  configMap(): Promise<{ data: Record<string, string>; resourceVersion: string } | undefined>;
}

async function withKube(fn: (k: Kube) => Promise<void>): Promise<void> {
  const cluster = await sharedKubeApiServer();
  const ns = await cluster.createNamespace("field");
  const proxy = startKubeFaultProxy(cluster);
  const kube = createKubeClient({ apiUrl: proxy.url, token: () => cluster.adminToken });
  try {
    await fn({
      cluster,
      proxy,
      kube,
      ns,
      store: (client = kube, options = {}) =>
        createConfigMapStore(client, { namespace: ns, ...options }),
      configMap: () => cluster.configMap(ns, NAME),
    });
  } finally {
    kube.close();
    await proxy.close();
  }
}

Deno.test("configmap store: writes the current service's format, one key per organization", async () => {
  await withKube(async (k) => {
    const store = k.store();
    assert.deepEqual(await store.read(), { mappings: new Map(), problems: [] });

    await store.put("irsa-iamrole-list-bucket", [LIST]);
    await store.put("irsa-iamrole-both", [LIST, READ]);
    assert.deepEqual((await k.configMap())?.data, {
      "irsa-iamrole-list-bucket":
        '{"iam_role_arn":"arn:aws:iam::222222222222:role/acme-list-bucket-role","proxy_iam_role_arn":"arn:aws:iam::111111111111:role/acme-list-bucket-role"}',
      "irsa-iamrole-both": JSON.stringify([
        {
          iam_role_arn: LIST.assetRoleArn,
          proxy_iam_role_arn: LIST.proxyRoleArn,
        },
        { iam_role_arn: READ.assetRoleArn, proxy_iam_role_arn: READ.proxyRoleArn },
      ]),
    });
    assert.deepEqual(
      (await store.read()).mappings,
      new Map([["irsa-iamrole-list-bucket", [LIST]], ["irsa-iamrole-both", [LIST, READ]]]),
    );
    // The first write created the ConfigMap, the second updated it.
    assert.deepEqual(
      k.proxy.requests.filter((r) => r.method !== "GET").map((r) => `${r.method} ${r.status}`),
      ["POST 201", "PUT 200"],
    );
  });
});

Deno.test("configmap store: reads what the current service wrote, spaces and all", async () => {
  await withKube(async (k) => {
    await k.cluster.setConfigMap(k.ns, NAME, {
      "irsa-iamrole-list-bucket":
        '{"iam_role_arn": "arn:aws:iam::222222222222:role/acme-list-bucket-role", "proxy_iam_role_arn": "arn:aws:iam::111111111111:role/acme-list-bucket-role"}',
    });
    assert.deepEqual(
      (await k.store().read()).mappings,
      new Map([["irsa-iamrole-list-bucket", [LIST]]]),
    );
  });
});

Deno.test("configmap store: put of an unchanged value writes nothing; remove reports whether it removed", async () => {
  await withKube(async (k) => {
    const store = k.store();
    await store.put("org-a", [LIST]);
    const version = (await k.configMap())?.resourceVersion;
    k.proxy.clearRequests();
    await store.put("org-a", [LIST]);
    assert.deepEqual(k.proxy.requests.map((r) => r.method), ["GET"]);
    assert.equal((await k.configMap())?.resourceVersion, version);

    assert.equal(await store.remove("org-b"), false);
    assert.equal(await store.remove("org-a"), true);
    assert.equal(await store.remove("org-a"), false);
    assert.deepEqual((await k.configMap())?.data, {});
  });
});

Deno.test("configmap store: an invalid organization or an empty list is refused before any request", async () => {
  await withKube(async (k) => {
    const store = k.store();
    await assert.rejects(store.put("not a key", [LIST]), { code: "bad_request" });
    await assert.rejects(store.put("", [LIST]), { code: "bad_request" });
    await assert.rejects(store.put("org", []), { code: "bad_request" });
    await assert.rejects(store.remove("a/b"), { code: "bad_request" });
    assert.equal(k.proxy.requests.length, 0);
  });
});

Deno.test("configmap store: its key check agrees with the API server's, which refuses what it refuses", async () => {
  await withKube(async (k) => {
    const store = k.store();
    for (const key of ["..", ".", "..x", "a/b", "not a key", "x".repeat(254)]) {
      await assert.rejects(store.put(key, [LIST]), { code: "bad_request" }, key);
      assert.deepEqual(k.proxy.requests, [], `${key}: refused before any request`);
      const answer = await k.cluster.request("POST", `/api/v1/namespaces/${k.ns}/configmaps`, {
        metadata: { name: `probe-${k.proxy.requests.length}` },
        data: { [key]: "x" },
      });
      assert.equal(answer.status, 422, `the API server refuses ${JSON.stringify(key)} too`);
    }
    for (const key of ["irsa-iamrole-list-bucket", "Org_1.x", "x".repeat(253)]) {
      await store.put(key, [LIST]);
    }
    assert.equal(Object.keys((await k.configMap())?.data ?? {}).length, 3);
  });
});

Deno.test("configmap store: a malformed entry is reported, and kept as it was by writes of other organizations", async () => {
  await withKube(async (k) => {
    const broken = '{"iam_role_arn": "not-an-arn"';
    const wrongShape = '{"iam_role_arn": "arn:aws:iam::222222222222:role/x"}';
    await k.cluster.setConfigMap(k.ns, NAME, { "org-broken": broken, "org-shape": wrongShape });
    const store = k.store();

    const { mappings, problems } = await store.read();
    assert.equal(mappings.size, 0);
    assert.deepEqual(problems.map((p) => p.organization).sort(), ["org-broken", "org-shape"]);
    assert.match(
      problems.find((p) => p.organization === "org-broken")!.message,
      /^Value is not JSON/,
    );

    await store.put("org-good", [LIST]);
    assert.equal(await store.remove("org-good"), true);
    await store.put("org-new", [READ]);
    const data = (await k.configMap())?.data;
    assert.equal(data?.["org-broken"], broken);
    assert.equal(data?.["org-shape"], wrongShape);
    assert.deepEqual(Object.keys(data ?? {}).sort(), ["org-broken", "org-new", "org-shape"]);
  });
});

Deno.test("configmap store: two writers racing on one ConfigMap lose nothing; the loser retries on 409", async () => {
  await withKube(async (k) => {
    await k.cluster.setConfigMap(k.ns, NAME, {});
    const b = k.store(k.kube, { sleep: noWait });
    // Writer A reads, then stalls until B has written: A's replace carries a stale version.
    let stalled = false;
    const slowKube: KubeClient = {
      ...k.kube,
      async getConfigMap(ns, name) {
        const got = await k.kube.getConfigMap(ns, name);
        if (!stalled) {
          stalled = true;
          await b.put("org-b", [READ]);
        }
        return got;
      },
    };
    const a = k.store(slowKube, { sleep: noWait });
    await a.put("org-a", [LIST]);

    assert.deepEqual(
      (await a.read()).mappings,
      new Map([["org-b", [READ]], ["org-a", [LIST]]]),
    );
    const writes = k.proxy.requests.filter((r) => r.method === "PUT").map((r) => r.status);
    assert.deepEqual(
      writes,
      [200, 409, 200],
      "B wins, A gets the API server's Conflict, A's retry lands",
    );
  });
});

Deno.test("configmap store: many concurrent puts from two store instances all land", async () => {
  await withKube(async (k) => {
    const stores: MappingStore[] = [k.store(), k.store()];
    const orgs = Array.from({ length: 24 }, (_, i) => `org-${i}`);
    await Promise.all(orgs.map((org, i) => stores[i % 2].put(org, [i % 3 ? LIST : READ])));

    const { mappings, problems } = await stores[0].read();
    assert.deepEqual(problems, []);
    assert.deepEqual([...mappings.keys()].sort(), [...orgs].sort());
    for (const [i, org] of orgs.entries()) {
      assert.deepEqual(mappings.get(org), [i % 3 ? LIST : READ]);
    }

    // Both started on a missing ConfigMap: one create lost with AlreadyExists and became an update.
    const writes = k.proxy.requests.filter((r) => r.method !== "GET");
    assert.equal(writes.filter((r) => r.method === "POST" && r.status === 201).length, 1);
    assert.ok(writes.some((r) => r.status === 409), "the race produced at least one 409");
    assert.equal(writes.filter((r) => r.status < 300).length, orgs.length);

    // Removes race too.
    await Promise.all(orgs.map((org, i) => stores[(i + 1) % 2].remove(org)));
    assert.deepEqual((await k.configMap())?.data, {});
  });
});

Deno.test("configmap store: a create race (409 AlreadyExists) is retried as an update", async () => {
  await withKube(async (k) => {
    // Both writers see no ConfigMap before either creates it.
    let arrived = 0;
    const { promise: bothRead, resolve } = Promise.withResolvers<void>();
    const barrierKube: KubeClient = {
      ...k.kube,
      async getConfigMap(ns, name) {
        const got = await k.kube.getConfigMap(ns, name);
        if (++arrived === 2) resolve();
        if (arrived <= 2) await bothRead;
        return got;
      },
    };
    const a = k.store(barrierKube, { sleep: noWait });
    const b = k.store(barrierKube, { sleep: noWait });
    await Promise.all([a.put("org-a", [LIST]), b.put("org-b", [READ])]);

    assert.deepEqual(Object.keys((await k.configMap())?.data ?? {}).sort(), ["org-a", "org-b"]);
    // The two creates race: the proxy may record the refused one's answer first.
    const writes = k.proxy.requests.filter((r) => r.method !== "GET");
    assert.deepEqual(
      writes.slice(0, 2).map((r) => `${r.method} ${r.status}`).sort(),
      ["POST 201", "POST 409"],
    );
    assert.deepEqual(writes.slice(2).map((r) => `${r.method} ${r.status}`), ["PUT 200"]);
  });
});

Deno.test("configmap store: a ConfigMap deleted between read and write is read again", async () => {
  await withKube(async (k) => {
    await k.cluster.setConfigMap(k.ns, NAME, { "org-a": "kept as is" });
    // Deleted (and made again) behind the store's back, between its read and its write.
    let deleted = false;
    const racingKube: KubeClient = {
      ...k.kube,
      async getConfigMap(ns, name) {
        const got = await k.kube.getConfigMap(ns, name);
        if (!deleted) {
          deleted = true;
          await k.cluster.must("DELETE", `/api/v1/namespaces/${ns}/configmaps/${name}`);
          await k.cluster.setConfigMap(ns, name, { "org-a": "kept as is" });
        }
        return got;
      },
    };
    await k.store(racingKube, { sleep: noWait }).put("org-b", [LIST]);
    assert.deepEqual(Object.keys((await k.configMap())?.data ?? {}), ["org-a", "org-b"]);
    // A recreated ConfigMap has a new resourceVersion: the stale replace is a real 409.
    assert.deepEqual(k.proxy.requests.map((r) => `${r.method} ${r.status}`), [
      "GET 200",
      "PUT 409",
      "GET 200",
      "PUT 200",
    ]);

    // Deleted for good: the replace is the API server's 404, and the store creates it again.
    k.proxy.clearRequests();
    let gone = false;
    const deletingKube: KubeClient = {
      ...k.kube,
      async getConfigMap(ns, name) {
        const got = await k.kube.getConfigMap(ns, name);
        if (!gone) {
          gone = true;
          await k.cluster.must("DELETE", `/api/v1/namespaces/${ns}/configmaps/${name}`);
        }
        return got;
      },
    };
    await k.store(deletingKube, { sleep: noWait }).put("org-c", [READ]);
    assert.deepEqual(Object.keys((await k.configMap())?.data ?? {}), ["org-c"]);
    assert.deepEqual(k.proxy.requests.map((r) => `${r.method} ${r.status}`), [
      "GET 200",
      "PUT 404",
      "GET 404",
      "POST 201",
    ]);
  });
});

Deno.test("configmap store: a create refused for another reason than a race is not retried", async () => {
  await withKube(async (k) => {
    // The namespace does not exist: the API server's own 404 to the create.
    const store = createConfigMapStore(k.kube, { namespace: `${k.ns}-missing`, sleep: noWait });
    await assert.rejects(store.put("org", [LIST]), { code: "not_found" });
    assert.deepEqual(k.proxy.requests.map((r) => `${r.method} ${r.status}`), [
      "GET 404",
      "POST 404",
    ]);
  });
});

Deno.test("configmap store: gives up with a conflict after maxRetries, backing off between attempts", async () => {
  await withKube(async (k) => {
    await k.cluster.setConfigMap(k.ns, NAME, {});
    k.proxy.failNext(100, 409, { method: "PUT" });
    const waits: number[] = [];
    const store = k.store(k.kube, {
      maxRetries: 3,
      random: () => 0.999,
      sleep: (ms) => {
        waits.push(Math.round(ms));
        return Promise.resolve();
      },
    });
    await assert.rejects(store.put("org", [LIST]), (e) => {
      assert.ok(e instanceof AppError);
      assert.equal(e.code, "conflict");
      assert.equal(
        e.message,
        `Cannot update ConfigMap "${k.ns}/${NAME}": other writers kept changing it; gave up after 4 attempts`,
      );
      return true;
    });
    assert.equal(k.proxy.requests.filter((r) => r.method === "PUT").length, 4);
    assert.deepEqual(waits, [25, 50, 100]);
  });
});

Deno.test("configmap store: a 500 or a 403 surfaces as an AppError and is not retried", async () => {
  await withKube(async (k) => {
    const store = k.store(k.kube, { sleep: noWait });
    k.proxy.failNext(1, 500);
    await assert.rejects(store.read(), (e) => {
      assert.ok(e instanceof AppError);
      assert.equal(e.code, "upstream_error");
      assert.match(e.message, /HTTP 500/);
      return true;
    });

    await k.cluster.setConfigMap(k.ns, NAME, {});
    k.proxy.failNext(1, 500, { method: "PUT" });
    await assert.rejects(store.put("org", [LIST]), { code: "upstream_error" });
    assert.deepEqual((await k.configMap())?.data, {});

    // A service account that may not read the ConfigMap: the API server's own 403.
    await k.cluster.createServiceAccount(k.ns, "nobody");
    const token = await k.cluster.tokenRequest(k.ns, "nobody", { audience: k.cluster.issuer });
    const nobody = createKubeClient({ apiUrl: k.proxy.url, token: () => token });
    try {
      await assert.rejects(k.store(nobody).remove("org"), {
        code: "upstream_error",
        message: `Kubernetes API denied get configmaps "${NAME}" in "${k.ns}"`,
      });
    } finally {
      nobody.close();
    }

    // A failed write does not wedge the store's lock.
    await store.put("org", [LIST]);
    assert.deepEqual((await store.read()).mappings, new Map([["org", [LIST]]]));
  });
});

Deno.test("configmap store: a write keeps the ConfigMap's labels and annotations (Helm's keep policy)", async () => {
  await withKube(async (k) => {
    const metadata = {
      name: NAME,
      labels: { "app.kubernetes.io/managed-by": "Helm" },
      annotations: { "helm.sh/resource-policy": "keep", "meta.helm.sh/release-name": "irsa" },
    };
    await k.cluster.must("POST", `/api/v1/namespaces/${k.ns}/configmaps`, { metadata, data: {} });
    await k.store().put("org", [LIST]);
    assert.equal(await k.store().remove("org"), true);
    const cm = await k.cluster.must("GET", `/api/v1/namespaces/${k.ns}/configmaps/${NAME}`);
    assert.deepEqual(cm.metadata.labels, metadata.labels);
    assert.deepEqual(cm.metadata.annotations, metadata.annotations);
  });
});

Deno.test("configmap store: honours a custom namespace and name", async () => {
  await withKube(async (k) => {
    const other = await k.cluster.createNamespace("irsa");
    const store = createConfigMapStore(k.kube, { namespace: other, name: "mappings" });
    await store.put("org", [LIST]);
    assert.ok(await k.cluster.configMap(other, "mappings"));
    assert.equal(await k.cluster.configMap(other, NAME), undefined);
    assert.equal(await k.configMap(), undefined);
  });
});

Deno.test("configmap store: a write keeps the ConfigMap's labels and annotations (Helm's ownership and keep policy)", async () => {
  await withKube(async (k) => {
    const metadata = {
      labels: { "app.kubernetes.io/managed-by": "Helm" },
      annotations: {
        "helm.sh/resource-policy": "keep",
        "meta.helm.sh/release-name": "irsa",
        "meta.helm.sh/release-namespace": k.ns,
      },
    };
    await k.cluster.must("POST", `/api/v1/namespaces/${k.ns}/configmaps`, {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: NAME, ...metadata },
      data: {},
    });
    await k.store().put("org-a", [LIST]);
    const live = await k.cluster.must("GET", `/api/v1/namespaces/${k.ns}/configmaps/${NAME}`);
    assert.deepEqual(live.metadata.labels, metadata.labels);
    assert.deepEqual(live.metadata.annotations, metadata.annotations);
    assert.ok(live.data["org-a"]);
  });
});
