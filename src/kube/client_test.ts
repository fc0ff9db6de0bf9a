import assert from "node:assert/strict";
import { AppError } from "../lib/errors.ts";
import { sharedKubeApiServer } from "../../tests/fixtures/kube_apiserver.ts";
import { startKubeFaultProxy } from "../../tests/kube_fault_proxy.ts";
import {
  createKubeClient,
  inClusterKubeConfig,
  KubeApiError,
  KubeConflictError,
} from "./client.ts";

const NS = "domino-field";
const NAME = "domino-org-iamrole-mapping";

// Every test gets its own namespace on the one real API server of the test run.
async function setup(prefix: string) {
  const cluster = await sharedKubeApiServer();
  const ns = await cluster.createNamespace(prefix);
  const proxy = startKubeFaultProxy(cluster);
  const kube = createKubeClient({ apiUrl: proxy.url, token: () => cluster.adminToken });
  return {
    cluster,
    ns,
    proxy,
    kube,
    async [Symbol.asyncDispose]() {
      kube.close();
      await proxy.close();
    },
  };
}

Deno.test("kube client: ConfigMap get, create, replace and a stale replace as KubeConflictError", async () => {
  await using t = await setup("cm");
  const { kube, ns } = t;
  assert.equal(await kube.getConfigMap(ns, NAME), undefined);
  const created = await kube.createConfigMap(ns, NAME, { a: "1" });
  assert.deepEqual(created.data, { a: "1" });
  const replaced = await kube.replaceConfigMap(ns, NAME, { a: "2" }, created.resourceVersion);
  assert.deepEqual(await kube.getConfigMap(ns, NAME), replaced);

  await assert.rejects(
    kube.replaceConfigMap(ns, NAME, { a: "3" }, created.resourceVersion),
    (e) => e instanceof KubeConflictError && e.code === "conflict" && e.reason === "Conflict",
  );
  await assert.rejects(
    kube.createConfigMap(ns, NAME, {}),
    (e) => e instanceof KubeConflictError && e.reason === "AlreadyExists",
  );
  assert.deepEqual((await t.cluster.configMap(ns, NAME))?.data, { a: "2" });
});

Deno.test("kube client: an empty ConfigMap reads as empty data, and keys like __proto__ stay data", async () => {
  await using t = await setup("cm");
  const { kube, ns } = t;
  await kube.createConfigMap(ns, "empty", {});
  assert.deepEqual((await kube.getConfigMap(ns, "empty"))?.data, {});
  await t.cluster.setConfigMap(ns, "odd", JSON.parse('{"__proto__": "x", "constructor": "y"}'));
  const odd = await kube.getConfigMap(ns, "odd");
  assert.deepEqual(Object.entries(odd!.data), [["__proto__", "x"], ["constructor", "y"]]);
});

Deno.test("kube client: the API server refuses keys that are not config keys, as 422 bad_request", async () => {
  await using t = await setup("cm");
  for (const key of ["bad key", "..", "a/b", ""]) {
    await assert.rejects(
      t.kube.createConfigMap(t.ns, NAME, { [key]: "x" }),
      (e) =>
        e instanceof KubeApiError && e.code === "bad_request" && e.status === 422 &&
        /is invalid/.test(e.message),
      JSON.stringify(key),
    );
  }
  assert.equal(await t.cluster.configMap(t.ns, NAME), undefined);
});

Deno.test("kube client: listPods sends the label selector and keeps only the fields irsa reads", async () => {
  await using t = await setup("pods");
  const { kube, ns } = t;
  await t.cluster.createPod(ns, {
    name: "p",
    labels: { app: "x" },
    annotations: { big: "y" },
    serviceAccountName: "run-1",
  });
  await t.cluster.createPod(ns, { name: "q", labels: { app: "y" }, serviceAccountName: "run-1" });
  const pods = await kube.listPods(ns, "app=x");
  assert.deepEqual(pods, [{
    metadata: { name: "p", namespace: ns, labels: { app: "x" } },
    spec: { serviceAccountName: "run-1" },
    status: { phase: "Pending" },
  }]);
  assert.deepEqual(t.proxy.requests.map((r) => [r.method, r.path, r.query]), [
    ["GET", `/api/v1/namespaces/${ns}/pods`, "labelSelector=app%3Dx"],
  ]);
});

Deno.test("kube client: Status failures become AppErrors naming the verb and resource", async () => {
  await using t = await setup("status");
  const { cluster, proxy, ns } = t;
  // A service account without any role: the API server's own 403s.
  await cluster.createServiceAccount(ns, "nobody");
  const nobodyToken = await cluster.tokenRequest(ns, "nobody", { audience: cluster.issuer });
  const nobody = createKubeClient({ apiUrl: proxy.url, token: () => nobodyToken });
  try {
    await assert.rejects(nobody.getConfigMap(ns, NAME), (e) => {
      assert.ok(e instanceof KubeApiError);
      assert.equal(e.code, "upstream_error");
      assert.equal(e.status, 403);
      assert.equal(e.message, `Kubernetes API denied get configmaps "${NAME}" in "${ns}"`);
      assert.match(String(e.details.kubeMessage), /is forbidden/);
      return true;
    });
    await assert.rejects(
      nobody.listPods(ns, "a=b"),
      { message: `Kubernetes API denied list pods in "${ns}"` },
    );
  } finally {
    nobody.close();
  }
  const { kube } = t;
  proxy.failNext(1, 500);
  await assert.rejects(kube.replaceConfigMap(ns, NAME, {}, "1"), {
    code: "upstream_error",
    message:
      `Kubernetes API failed to update configmaps "${NAME}" in "${ns}": HTTP 500 (InternalError)`,
  });
  proxy.failNext(1, 429);
  await assert.rejects(kube.getConfigMap(ns, NAME), { code: "unavailable" });
  await assert.rejects(kube.replaceConfigMap(ns, "missing", {}, "1"), { code: "not_found" });
  await assert.rejects(kube.listPods(ns, "a in (b"), { code: "bad_request" });
});

Deno.test("kube client: the token is read again for every request, and a rejected token is upstream_error", async () => {
  await using t = await setup("token");
  const { cluster, ns } = t;
  const rules = [{ apiGroups: [""], resources: ["configmaps"], verbs: ["get"] }];
  const tokens: string[] = [];
  for (const sa of ["reader-1", "reader-2"]) {
    await cluster.createServiceAccount(ns, sa);
    await cluster.bindRole(ns, sa, { namespace: ns, serviceAccount: sa }, rules);
    tokens.push(await cluster.tokenRequest(ns, sa, { audience: cluster.issuer }));
  }
  let current = tokens[0];
  let reads = 0;
  const kube = createKubeClient({
    apiUrl: t.proxy.url,
    token: () => {
      reads++;
      return Promise.resolve(`${current}\n`); // token files end with a newline sometimes
    },
  });
  try {
    await kube.getConfigMap(ns, NAME);
    current = tokens[1];
    await kube.getConfigMap(ns, NAME);
    assert.equal(reads, 2);
    current = "not-a-token";
    await assert.rejects(kube.getConfigMap(ns, NAME), (e) => {
      assert.ok(e instanceof KubeApiError);
      assert.equal(e.code, "upstream_error");
      assert.equal(e.status, 401);
      assert.ok(!JSON.stringify({ m: e.message, d: e.details }).includes(tokens[1]));
      return true;
    });
    assert.deepEqual(t.proxy.requests.map((r) => r.status), [404, 404, 401]);
  } finally {
    kube.close();
  }
});

Deno.test("kube client: an unreadable token is unavailable, without a request", async () => {
  await using t = await setup("token");
  const kube = createKubeClient({
    apiUrl: t.proxy.url,
    token: () => Promise.reject(new Deno.errors.NotFound("no such file")),
  });
  try {
    await assert.rejects(kube.getConfigMap(t.ns, NAME), { code: "unavailable" });
    assert.equal(t.proxy.requests.length, 0);
  } finally {
    kube.close();
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

Deno.test("kube client: speaks TLS to the API server signed by the given CA, and refuses it without", async () => {
  const cluster = await sharedKubeApiServer();
  const ns = await cluster.createNamespace("tls");
  const kube = createKubeClient({
    apiUrl: cluster.url,
    token: () => cluster.adminToken,
    caCert: cluster.caCert,
  });
  const untrusting = createKubeClient({ apiUrl: cluster.url, token: () => cluster.adminToken });
  try {
    assert.ok(cluster.url.startsWith("https://127.0.0.1:"));
    await cluster.setConfigMap(ns, NAME, { a: "1" });
    assert.deepEqual((await kube.getConfigMap(ns, NAME))?.data, { a: "1" });
    await assert.rejects(untrusting.getConfigMap(ns, NAME), { code: "unavailable" });
  } finally {
    kube.close();
    untrusting.close();
  }
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

Deno.test("kube client: a watch ends as its signal aborts, even when the abort never reaches the body's read", async () => {
  // A response body that ignores the request's signal. In bench:scale, two of three replicas took
  // minutes to stop, each ending just as its first watch's timeoutSeconds ran out: the abort had
  // not ended the body's read in flight. Here only a cancel can end it.
  const cancelled = Promise.withResolvers<void>();
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(
        new TextEncoder().encode(
          JSON.stringify({ type: "BOOKMARK", object: { metadata: { resourceVersion: "7" } } }) +
            "\n",
        ),
      );
    },
    cancel: () => cancelled.resolve(),
  });
  const realFetch = globalThis.fetch;
  globalThis.fetch = () => Promise.resolve(new Response(body));
  try {
    const kube = createKubeClient({ apiUrl: "http://127.0.0.1:1" });
    const abort = new AbortController();
    const events: string[] = [];
    const watching = (async () => {
      for await (const e of kube.watchPods("domino-compute", "a=b", "1", abort.signal)) {
        events.push(e.type);
      }
    })();
    // Aborted while the watch waits on a read that nothing will ever answer.
    await new Promise((r) => setTimeout(r, 50));
    abort.abort();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const outcome = await Promise.race([
      watching.then(() => "ended", (e) => `threw ${(e as Error).name}`),
      new Promise((r) => timer = setTimeout(() => r("still reading after 2 s"), 2_000)),
    ]);
    clearTimeout(timer);
    assert.deepEqual(events, ["BOOKMARK"]);
    assert.equal(outcome, "threw AbortError");
    await cancelled.promise; // the body was let go: its connection is released
  } finally {
    globalThis.fetch = realFetch;
  }
});
