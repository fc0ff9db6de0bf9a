import assert from "node:assert/strict";
import { fromWire } from "../core/mapping.ts";
import type { RolePair } from "../core/role_chain.ts";
import { AppError } from "../errors.ts";
import { createKubeClient, type KubeClient } from "../kube/client.ts";
import { type FakeKubernetes, startFakeKubernetes } from "../../tests/fakes/kubernetes.ts";
import { createConfigMapStore } from "./configmap_store.ts";
import type { MappingStore } from "./mapping_store.ts";

const NS = "domino-field";
const NAME = "domino-org-iamrole-mapping";
const CM_PATH = `/api/v1/namespaces/${NS}/configmaps/${NAME}`;

// As a store reads it back: the pair and the wire object it came from.
const pair = (role: string): RolePair =>
  fromWire({
    iam_role_arn: `arn:aws:iam::222222222222:role/${role}`,
    proxy_iam_role_arn: `arn:aws:iam::111111111111:role/${role}`,
  });
const LIST = pair("acme-list-bucket-role");
const READ = pair("acme-read-bucket-role");

const noWait = () => Promise.resolve();

async function withKube(
  fn: (fake: FakeKubernetes, kube: KubeClient) => Promise<void>,
): Promise<void> {
  const fake = await startFakeKubernetes();
  const kube = createKubeClient({ apiUrl: fake.url, token: () => fake.token });
  try {
    await fn(fake, kube);
  } finally {
    kube.close();
    await fake.close();
  }
}

Deno.test("configmap store: writes the current service's format, one key per organization", async () => {
  await withKube(async (fake, kube) => {
    const store = createConfigMapStore(kube);
    assert.deepEqual(await store.read(), { mappings: new Map(), problems: [] });

    await store.put("irsa-iamrole-list-bucket", [LIST]);
    await store.put("irsa-iamrole-both", [LIST, READ]);
    assert.deepEqual(fake.configMap(NS, NAME)?.data, {
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
      fake.requests.filter((r) => r.method !== "GET").map((r) => `${r.method} ${r.status}`),
      ["POST 201", "PUT 200"],
    );
  });
});

Deno.test("configmap store: reads what the current service wrote, spaces and all", async () => {
  await withKube(async (fake, kube) => {
    fake.setConfigMap(NS, NAME, {
      "irsa-iamrole-list-bucket":
        '{"iam_role_arn": "arn:aws:iam::222222222222:role/acme-list-bucket-role", "proxy_iam_role_arn": "arn:aws:iam::111111111111:role/acme-list-bucket-role"}',
    });
    const store = createConfigMapStore(kube);
    assert.deepEqual(
      (await store.read()).mappings,
      new Map([["irsa-iamrole-list-bucket", [LIST]]]),
    );
  });
});

Deno.test("configmap store: put of an unchanged value writes nothing; remove reports whether it removed", async () => {
  await withKube(async (fake, kube) => {
    const store = createConfigMapStore(kube);
    await store.put("org-a", [LIST]);
    const version = fake.configMap(NS, NAME)?.resourceVersion;
    fake.clearRequests();
    await store.put("org-a", [LIST]);
    assert.deepEqual(fake.requests.map((r) => r.method), ["GET"]);
    assert.equal(fake.configMap(NS, NAME)?.resourceVersion, version);

    assert.equal(await store.remove("org-b"), false);
    assert.equal(await store.remove("org-a"), true);
    assert.equal(await store.remove("org-a"), false);
    assert.deepEqual(fake.configMap(NS, NAME)?.data, {});
  });
});

Deno.test("configmap store: an invalid organization or an empty list is refused before any request", async () => {
  await withKube(async (fake, kube) => {
    const store = createConfigMapStore(kube);
    await assert.rejects(store.put("not a key", [LIST]), { code: "bad_request" });
    await assert.rejects(store.put("", [LIST]), { code: "bad_request" });
    await assert.rejects(store.put("org", []), { code: "bad_request" });
    await assert.rejects(store.remove("a/b"), { code: "bad_request" });
    assert.equal(fake.requests.length, 0);
  });
});

Deno.test("configmap store: a malformed entry is reported, and kept as it was by writes of other organizations", async () => {
  await withKube(async (fake, kube) => {
    const broken = '{"iam_role_arn": "not-an-arn"';
    const wrongShape = '{"iam_role_arn": "arn:aws:iam::222222222222:role/x"}';
    fake.setConfigMap(NS, NAME, { "org-broken": broken, "org-shape": wrongShape });
    const store = createConfigMapStore(kube);

    const { mappings, problems } = await store.read();
    assert.equal(mappings.size, 0);
    assert.deepEqual(problems.map((p) => p.organization), ["org-broken", "org-shape"]);
    assert.match(problems[0].message, /^Value is not JSON/);

    await store.put("org-good", [LIST]);
    assert.equal(await store.remove("org-good"), true);
    await store.put("org-new", [READ]);
    const data = fake.configMap(NS, NAME)?.data;
    assert.equal(data?.["org-broken"], broken);
    assert.equal(data?.["org-shape"], wrongShape);
    assert.deepEqual(Object.keys(data ?? {}), ["org-broken", "org-shape", "org-new"]);
  });
});

Deno.test("configmap store: two writers racing on one ConfigMap lose nothing; the loser retries on 409", async () => {
  await withKube(async (fake, kube) => {
    fake.setConfigMap(NS, NAME, {});
    const b = createConfigMapStore(kube, { sleep: noWait });
    // Writer A reads, then stalls until B has written: A's replace carries a stale version.
    let stalled = false;
    const slowKube: KubeClient = {
      ...kube,
      async getConfigMap(ns, name) {
        const got = await kube.getConfigMap(ns, name);
        if (!stalled) {
          stalled = true;
          await b.put("org-b", [READ]);
        }
        return got;
      },
    };
    const a = createConfigMapStore(slowKube, { sleep: noWait });
    await a.put("org-a", [LIST]);

    assert.deepEqual(
      (await a.read()).mappings,
      new Map([["org-b", [READ]], ["org-a", [LIST]]]),
    );
    const writes = fake.requests.filter((r) => r.method === "PUT").map((r) => r.status);
    assert.deepEqual(writes, [200, 409, 200], "B wins, A gets a Conflict, A's retry lands");
  });
});

Deno.test("configmap store: many concurrent puts from two store instances all land", async () => {
  await withKube(async (fake, kube) => {
    const stores: MappingStore[] = [createConfigMapStore(kube), createConfigMapStore(kube)];
    const orgs = Array.from({ length: 24 }, (_, i) => `org-${i}`);
    await Promise.all(orgs.map((org, i) => stores[i % 2].put(org, [i % 3 ? LIST : READ])));

    const { mappings, problems } = await stores[0].read();
    assert.deepEqual(problems, []);
    assert.deepEqual([...mappings.keys()].sort(), [...orgs].sort());
    for (const [i, org] of orgs.entries()) {
      assert.deepEqual(mappings.get(org), [i % 3 ? LIST : READ]);
    }

    // Both started on a missing ConfigMap: one create lost with AlreadyExists and became an update.
    const writes = fake.requests.filter((r) => r.method !== "GET");
    assert.equal(writes.filter((r) => r.method === "POST" && r.status === 201).length, 1);
    assert.ok(writes.some((r) => r.status === 409), "the race produced at least one 409");
    assert.equal(writes.filter((r) => r.status < 300).length, orgs.length);

    // Removes race too.
    await Promise.all(orgs.map((org, i) => stores[(i + 1) % 2].remove(org)));
    assert.deepEqual(fake.configMap(NS, NAME)?.data, {});
  });
});

Deno.test("configmap store: a create race (409 AlreadyExists) is retried as an update", async () => {
  await withKube(async (fake, kube) => {
    // Both writers see no ConfigMap before either creates it.
    let arrived = 0;
    const { promise: bothRead, resolve } = Promise.withResolvers<void>();
    const barrierKube: KubeClient = {
      ...kube,
      async getConfigMap(ns, name) {
        const got = await kube.getConfigMap(ns, name);
        if (++arrived === 2) resolve();
        if (arrived <= 2) await bothRead;
        return got;
      },
    };
    const a = createConfigMapStore(barrierKube, { sleep: noWait });
    const b = createConfigMapStore(barrierKube, { sleep: noWait });
    await Promise.all([a.put("org-a", [LIST]), b.put("org-b", [READ])]);

    assert.deepEqual(Object.keys(fake.configMap(NS, NAME)?.data ?? {}).sort(), ["org-a", "org-b"]);
    assert.deepEqual(
      fake.requests.filter((r) => r.method !== "GET").map((r) => `${r.method} ${r.status}`),
      ["POST 201", "POST 409", "PUT 200"],
    );
  });
});

Deno.test("configmap store: a ConfigMap deleted between read and write is read again", async () => {
  await withKube(async (fake, kube) => {
    fake.setConfigMap(NS, NAME, { "org-a": "kept as is" });
    fake.failNext(1, 404, { method: "PUT" });
    await createConfigMapStore(kube, { sleep: noWait }).put("org-b", [LIST]);
    assert.deepEqual(Object.keys(fake.configMap(NS, NAME)?.data ?? {}), ["org-a", "org-b"]);
    assert.deepEqual(fake.requests.map((r) => `${r.method} ${r.status}`), [
      "GET 200",
      "PUT 404",
      "GET 200",
      "PUT 200",
    ]);
  });
});

Deno.test("configmap store: a create refused for another reason than a race is not retried", async () => {
  await withKube(async (fake, kube) => {
    fake.failNext(1, 404, { method: "POST" }); // e.g. the namespace does not exist
    await assert.rejects(createConfigMapStore(kube, { sleep: noWait }).put("org", [LIST]), {
      code: "not_found",
    });
    assert.equal(fake.requests.length, 2);
  });
});

Deno.test("configmap store: gives up with a conflict after maxRetries, backing off between attempts", async () => {
  await withKube(async (fake, kube) => {
    fake.setConfigMap(NS, NAME, {});
    fake.failNext(100, 409, { method: "PUT" });
    const waits: number[] = [];
    const store = createConfigMapStore(kube, {
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
        `Cannot update ConfigMap "${NS}/${NAME}": other writers kept changing it; gave up after 4 attempts`,
      );
      return true;
    });
    assert.equal(fake.requests.filter((r) => r.method === "PUT").length, 4);
    assert.deepEqual(waits, [25, 50, 100]);
  });
});

Deno.test("configmap store: an injected 500 or 403 surfaces as an AppError and is not retried", async () => {
  await withKube(async (fake, kube) => {
    const store = createConfigMapStore(kube, { sleep: noWait });
    fake.failNext(1, 500);
    await assert.rejects(store.read(), (e) => {
      assert.ok(e instanceof AppError);
      assert.equal(e.code, "upstream_error");
      assert.match(e.message, /HTTP 500/);
      return true;
    });

    fake.setConfigMap(NS, NAME, {});
    fake.failNext(1, 500, { method: "PUT" });
    await assert.rejects(store.put("org", [LIST]), { code: "upstream_error" });
    assert.deepEqual(fake.configMap(NS, NAME)?.data, {});

    fake.failNext(1, 403, { path: CM_PATH });
    await assert.rejects(store.remove("org"), {
      code: "upstream_error",
      message: `Kubernetes API denied get configmaps "${NAME}" in "${NS}"`,
    });

    // A failed write does not wedge the store's lock.
    await store.put("org", [LIST]);
    assert.deepEqual((await store.read()).mappings, new Map([["org", [LIST]]]));
  });
});

Deno.test("configmap store: honours a custom namespace and name", async () => {
  await withKube(async (fake, kube) => {
    const store = createConfigMapStore(kube, { namespace: "irsa", name: "mappings" });
    await store.put("org", [LIST]);
    assert.ok(fake.configMap("irsa", "mappings"));
    assert.equal(fake.configMap(NS, NAME), undefined);
  });
});
