import assert from "node:assert/strict";
import { fromWire } from "../core/mapping.ts";
import { sharedKubeApiServer } from "../../tests/fixtures/kube_apiserver.ts";
import { createKubeClient } from "../kube/client.ts";
import { createConfigMapStore } from "./configmap_store.ts";
import { createFileStore } from "./file_store.ts";

const pair = (name: string) =>
  fromWire({
    iam_role_arn: `arn:aws:iam::222222222222:role/${name}`,
    proxy_iam_role_arn: `arn:aws:iam::111111111111:role/${name}`,
  });

Deno.test("putAll sets and removes several organizations in one write, or refuses them all", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/mappings.json`;
    const store = createFileStore(path);
    await store.put("a", [pair("r1")]);
    await store.put("b", [pair("r2")]);
    await store.putAll(new Map([["a", null], ["b", [pair("r3")]], ["c", [pair("r4")]]]));
    const { mappings } = await store.read();
    assert.deepEqual([...mappings.keys()], ["b", "c"]);
    assert.equal(mappings.get("b")![0].proxyRoleArn, "arn:aws:iam::111111111111:role/r3");
    const before = await Deno.readTextFile(path);
    await assert.rejects(() => store.putAll(new Map([["d", [pair("r5")]], ["e", []]])), /no roles/);
    assert.equal(await Deno.readTextFile(path), before);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("configmap store putAll: one write on a real API server, or none when a value is refused", async () => {
  const cluster = await sharedKubeApiServer();
  const ns = await cluster.createNamespace("field");
  const kube = createKubeClient({
    apiUrl: cluster.url,
    token: () => cluster.adminToken,
    caCert: cluster.caCert,
  });
  try {
    const store = createConfigMapStore(kube, { namespace: ns });
    await store.put("a", [pair("r1")]);
    await store.put("b", [pair("r2")]);
    const before = (await cluster.configMap(ns, "domino-org-iamrole-mapping"))!;
    await store.putAll(new Map([["a", null], ["b", [pair("r3")]], ["c", [pair("r4")]]]));
    const after = (await cluster.configMap(ns, "domino-org-iamrole-mapping"))!;
    assert.deepEqual(Object.keys(after.data), ["b", "c"]);
    assert.equal(Number(after.resourceVersion) > Number(before.resourceVersion), true);
    await assert.rejects(() => store.putAll(new Map([["d", [pair("r5")]], ["e", []]])), /no roles/);
    assert.equal(
      (await cluster.configMap(ns, "domino-org-iamrole-mapping"))!.resourceVersion,
      after.resourceVersion,
    );
  } finally {
    kube.close();
  }
});
