import assert from "node:assert/strict";
import { AppError } from "../errors.ts";
import { startFakeKubernetes } from "../../tests/fakes/kubernetes.ts";
import { makeTestTls } from "../../tests/fixtures/tls.ts";
import {
  createKubeClient,
  inClusterKubeConfig,
  KubeApiError,
  KubeConflictError,
} from "./client.ts";

const NS = "domino-field";
const NAME = "domino-org-iamrole-mapping";

Deno.test("kube client: ConfigMap get, create, replace and a stale replace as KubeConflictError", async () => {
  const fake = await startFakeKubernetes();
  const kube = createKubeClient({ apiUrl: fake.url, token: () => fake.token });
  try {
    assert.equal(await kube.getConfigMap(NS, NAME), undefined);
    const created = await kube.createConfigMap(NS, NAME, { a: "1" });
    assert.deepEqual(created.data, { a: "1" });
    const replaced = await kube.replaceConfigMap(NS, NAME, { a: "2" }, created.resourceVersion);
    assert.deepEqual(await kube.getConfigMap(NS, NAME), replaced);

    await assert.rejects(
      kube.replaceConfigMap(NS, NAME, { a: "3" }, created.resourceVersion),
      (e) => e instanceof KubeConflictError && e.code === "conflict" && e.reason === "Conflict",
    );
    await assert.rejects(
      kube.createConfigMap(NS, NAME, {}),
      (e) => e instanceof KubeConflictError && e.reason === "AlreadyExists",
    );
    assert.deepEqual(fake.configMap(NS, NAME)?.data, { a: "2" });
  } finally {
    kube.close();
    await fake.close();
  }
});

Deno.test("kube client: an empty ConfigMap reads as empty data, and keys like __proto__ stay data", async () => {
  const fake = await startFakeKubernetes();
  const kube = createKubeClient({ apiUrl: fake.url, token: () => fake.token });
  try {
    await kube.createConfigMap(NS, "empty", {});
    assert.deepEqual((await kube.getConfigMap(NS, "empty"))?.data, {});
    fake.setConfigMap(NS, "odd", JSON.parse('{"__proto__": "x", "constructor": "y"}'));
    const odd = await kube.getConfigMap(NS, "odd");
    assert.deepEqual(Object.entries(odd!.data), [["__proto__", "x"], ["constructor", "y"]]);
  } finally {
    kube.close();
    await fake.close();
  }
});

Deno.test("kube client: listPods sends the label selector and keeps only the fields irsa reads", async () => {
  const fake = await startFakeKubernetes();
  const kube = createKubeClient({ apiUrl: fake.url, token: () => fake.token });
  try {
    fake.addPod("domino-compute", {
      metadata: { name: "p", labels: { app: "x" }, annotations: { big: "y" } },
      spec: { serviceAccountName: "run-1", containers: [] },
      status: { phase: "Pending", conditions: [] },
    });
    const pods = await kube.listPods("domino-compute", "app=x");
    assert.deepEqual(pods, [{
      metadata: { name: "p", namespace: "domino-compute", labels: { app: "x" } },
      spec: { serviceAccountName: "run-1" },
      status: { phase: "Pending" },
    }]);
    assert.deepEqual(fake.requests.map((r) => [r.method, r.path, r.query]), [
      ["GET", "/api/v1/namespaces/domino-compute/pods", "labelSelector=app%3Dx"],
    ]);
  } finally {
    kube.close();
    await fake.close();
  }
});

Deno.test("kube client: Status failures become AppErrors naming the verb and resource", async () => {
  const fake = await startFakeKubernetes();
  const kube = createKubeClient({ apiUrl: fake.url, token: () => fake.token });
  try {
    fake.failNext(1, 403);
    await assert.rejects(kube.getConfigMap(NS, NAME), (e) => {
      assert.ok(e instanceof KubeApiError);
      assert.equal(e.code, "upstream_error");
      assert.equal(e.status, 403);
      assert.equal(e.message, `Kubernetes API denied get configmaps "${NAME}" in "${NS}"`);
      assert.match(String(e.details.kubeMessage), /is forbidden/);
      return true;
    });
    fake.failNext(1, 403);
    await assert.rejects(
      kube.listPods("domino-compute", "a=b"),
      { message: 'Kubernetes API denied list pods in "domino-compute"' },
    );
    fake.failNext(1, 500);
    await assert.rejects(kube.replaceConfigMap(NS, NAME, {}, "1"), {
      code: "upstream_error",
      message:
        `Kubernetes API failed to update configmaps "${NAME}" in "${NS}": HTTP 500 (InternalError)`,
    });
    fake.failNext(1, 429);
    await assert.rejects(kube.getConfigMap(NS, NAME), { code: "unavailable" });
    await assert.rejects(
      kube.createConfigMap(NS, NAME, { "bad key": "x" }),
      (e) => e instanceof AppError && e.code === "bad_request" && /is invalid/.test(e.message),
    );
    await assert.rejects(kube.replaceConfigMap(NS, "missing", {}, "1"), { code: "not_found" });
  } finally {
    kube.close();
    await fake.close();
  }
});

Deno.test("kube client: the token is read again for every request, and a rejected token is upstream_error", async () => {
  const fake = await startFakeKubernetes({ token: "t1" });
  let current = "t1";
  let reads = 0;
  const kube = createKubeClient({
    apiUrl: fake.url,
    token: () => {
      reads++;
      return Promise.resolve(`${current}\n`); // token files end with a newline sometimes
    },
  });
  try {
    await kube.getConfigMap(NS, NAME);
    fake.setToken("t2");
    current = "t2";
    await kube.getConfigMap(NS, NAME);
    assert.equal(reads, 2);
    fake.setToken("t3");
    await assert.rejects(kube.getConfigMap(NS, NAME), (e) => {
      assert.ok(e instanceof KubeApiError);
      assert.equal(e.code, "upstream_error");
      assert.equal(e.status, 401);
      assert.ok(!JSON.stringify({ m: e.message, d: e.details }).includes("t2"));
      return true;
    });
  } finally {
    kube.close();
    await fake.close();
  }
});

Deno.test("kube client: an unreadable token is unavailable, without a request", async () => {
  const fake = await startFakeKubernetes();
  const kube = createKubeClient({
    apiUrl: fake.url,
    token: () => Promise.reject(new Deno.errors.NotFound("no such file")),
  });
  try {
    await assert.rejects(kube.getConfigMap(NS, NAME), { code: "unavailable" });
    assert.equal(fake.requests.length, 0);
  } finally {
    kube.close();
    await fake.close();
  }
});

Deno.test("kube client: a refused connection and a silent server are unavailable", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const refused = createKubeClient({ apiUrl: `http://127.0.0.1:${port}`, timeoutMs: 2_000 });
  await assert.rejects(refused.getConfigMap(NS, NAME), (e) => {
    assert.ok(e instanceof AppError);
    assert.equal(e.code, "unavailable");
    assert.match(e.message, /^Cannot reach the Kubernetes API to get configmaps/);
    return true;
  });

  const { promise: release, resolve } = Promise.withResolvers<void>();
  const silent = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async () => {
      await release;
      return new Response("{}");
    },
  );
  const slow = createKubeClient({ apiUrl: `http://127.0.0.1:${silent.addr.port}`, timeoutMs: 50 });
  try {
    await assert.rejects(slow.listPods("domino-compute", "a=b"), {
      code: "unavailable",
      message:
        'Cannot reach the Kubernetes API to list pods in "domino-compute": no answer within 50 ms',
    });
  } finally {
    resolve();
    await silent.shutdown();
  }
});

Deno.test({
  name: "kube client: speaks TLS to a server signed by the given CA, and refuses it without",
  // Making the certificates runs openssl; `deno task test` allows it.
  ignore: (await Deno.permissions.query({ name: "run", command: "openssl" })).state !== "granted",
  async fn() {
    const tls = await makeTestTls();
    const fake = await startFakeKubernetes({ tls });
    const kube = createKubeClient({
      apiUrl: fake.url,
      token: () => fake.token,
      caCert: tls.caCert,
    });
    const untrusting = createKubeClient({ apiUrl: fake.url, token: () => fake.token });
    try {
      assert.ok(fake.url.startsWith("https://127.0.0.1:"));
      fake.setConfigMap(NS, NAME, { a: "1" });
      assert.deepEqual((await kube.getConfigMap(NS, NAME))?.data, { a: "1" });
      await assert.rejects(untrusting.getConfigMap(NS, NAME), { code: "unavailable" });
    } finally {
      kube.close();
      untrusting.close();
      await fake.close();
      await tls.cleanup();
    }
  },
});

Deno.test("inClusterKubeConfig: the API from the service env, token and CA from the mount", async () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  const files: string[] = [];
  const readFile = (path: string) => {
    files.push(path);
    return Promise.resolve("token-text");
  };
  const config = inClusterKubeConfig(
    env({ KUBERNETES_SERVICE_HOST: "10.100.0.1", KUBERNETES_SERVICE_PORT: "443" }),
    readFile,
  );
  assert.equal(config.apiUrl, "https://10.100.0.1:443");
  assert.equal(config.tokenFile, "/var/run/secrets/kubernetes.io/serviceaccount/token");
  assert.equal(config.caFile, "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt");
  assert.deepEqual(files, [], "nothing is read until a request needs the token");
  assert.equal(await config.token(), "token-text");
  assert.equal(await config.token(), "token-text");
  assert.deepEqual(files, [config.tokenFile, config.tokenFile]);

  const v6 = inClusterKubeConfig(
    env({ KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "443" }),
    readFile,
  );
  assert.equal(v6.apiUrl, "https://[fd00::1]:443");
  assert.throws(() => inClusterKubeConfig(env({}), readFile), {
    code: "unavailable",
    message: /KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set/,
  });
});
