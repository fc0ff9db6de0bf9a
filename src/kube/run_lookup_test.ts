import assert from "node:assert/strict";
import { sharedKubeApiServer } from "../../tests/fixtures/kube_apiserver.ts";
import { startKubeFaultProxy } from "../../tests/kube_fault_proxy.ts";
import { createKubeClient } from "./client.ts";
import { createRunLookup } from "./run_lookup.ts";

const RUN = "646d27b817c28b5ea4b5b0c1";
const OTHER = "646f604955daf764547c5b77";

// A run pod as the platform labels it; Pending for ever, since the test cluster has no nodes.
const runPod = (name: string, runId: string, extra: Record<string, string> = {}) => ({
  name,
  labels: {
    "dominodatalab.com/execution-id": runId,
    "dominodatalab.com/starting-user-id": "6400aa11bb22cc33dd44ee55",
    "dominodatalab.com/starting-user-username": "jdoe",
    "dominodatalab.com/workload-type": "Workspace",
    ...extra,
  },
  serviceAccountName: `run-${runId}`,
});

Deno.test("run lookup: one label-selector query in the compute namespace, mapped to RunPods", async () => {
  const cluster = await sharedKubeApiServer();
  const compute = await cluster.createNamespace("compute");
  const platform = await cluster.createNamespace("platform");
  const proxy = startKubeFaultProxy(cluster);
  const kube = createKubeClient({ apiUrl: proxy.url, token: () => cluster.adminToken });
  try {
    await cluster.createPod(compute, runPod(`run-${RUN}-fxc2q`, RUN));
    await cluster.createPod(compute, runPod(`run-${RUN}-worker-0`, RUN));
    await cluster.createPod(compute, runPod(`run-${OTHER}-abcde`, OTHER));
    await cluster.createPod(platform, runPod("impostor", RUN));

    const pods = await createRunLookup(kube, { namespace: compute }).findRunPods(RUN);
    assert.deepEqual(
      pods,
      [`run-${RUN}-fxc2q`, `run-${RUN}-worker-0`].map((name) => ({
        name,
        serviceAccountName: `run-${RUN}`,
        startingUserId: "6400aa11bb22cc33dd44ee55",
        startingUsername: "jdoe",
        phase: "Pending",
      })),
    );

    assert.equal(proxy.requests.length, 1);
    const [request] = proxy.requests;
    assert.equal(request.method, "GET");
    assert.equal(request.path, `/api/v1/namespaces/${compute}/pods`);
    assert.deepEqual(
      [...new URLSearchParams(request.query)],
      [["labelSelector", `dominodatalab.com/execution-id=${RUN}`]],
    );
  } finally {
    kube.close();
    await proxy.close();
  }
});

Deno.test("run lookup: a pod without the user labels yields only what it has; no pods is an empty list", async () => {
  const cluster = await sharedKubeApiServer();
  const compute = await cluster.createNamespace("compute");
  const kube = createKubeClient({
    apiUrl: cluster.url,
    token: () => cluster.adminToken,
    caCert: cluster.caCert,
  });
  try {
    await cluster.createPod(compute, {
      name: "bare",
      labels: { "dominodatalab.com/execution-id": RUN },
      serviceAccountName: "someone",
    });
    const runs = createRunLookup(kube, { namespace: compute });
    assert.deepEqual(await runs.findRunPods(RUN), [
      { name: "bare", serviceAccountName: "someone", phase: "Pending" },
    ]);
    assert.deepEqual(await runs.findRunPods(OTHER), []);
  } finally {
    kube.close();
  }
});

Deno.test("run lookup: a run id that could change the label selector is refused before any request", async () => {
  const selectors: string[] = [];
  const runs = createRunLookup({
    listPods: (_ns, selector) => {
      selectors.push(selector);
      return Promise.resolve([]);
    },
  });
  for (
    const bad of [
      `${RUN},dominodatalab.com/starting-user-id!=x`,
      `${RUN} `,
      "ABC",
      "",
      "-abc",
      "abc-",
      "a=b",
      "x in (a,b)",
      "a".repeat(64),
    ]
  ) {
    await assert.rejects(runs.findRunPods(bad), { code: "bad_request" }, JSON.stringify(bad));
  }
  assert.deepEqual(selectors, []);
  await runs.findRunPods("a-1");
  assert.deepEqual(selectors, ["dominodatalab.com/execution-id=a-1"]);
});

Deno.test("run lookup: API failures surface as AppErrors", async () => {
  const cluster = await sharedKubeApiServer();
  const compute = await cluster.createNamespace("compute");
  await cluster.createServiceAccount(compute, "nobody");
  const token = await cluster.tokenRequest(compute, "nobody", { audience: cluster.issuer });
  const proxy = startKubeFaultProxy(cluster);
  const kube = createKubeClient({ apiUrl: proxy.url, token: () => token });
  try {
    // The API server's own answer to a service account without the pods rule.
    await assert.rejects(createRunLookup(kube, { namespace: compute }).findRunPods(RUN), {
      code: "upstream_error",
      message: `Kubernetes API denied list pods in "${compute}"`,
    });
    proxy.failNext(1, 503);
    await assert.rejects(createRunLookup(kube).findRunPods(RUN), { code: "upstream_error" });
  } finally {
    kube.close();
    await proxy.close();
  }
});

Deno.test("run lookup: a burst of lookups shares a few set-based lists, each answered with its own run's pods", async () => {
  const cluster = await sharedKubeApiServer();
  const compute = await cluster.createNamespace("compute");
  const proxy = startKubeFaultProxy(cluster);
  const kube = createKubeClient({ apiUrl: proxy.url, token: () => cluster.adminToken });
  const ids = Array.from({ length: 150 }, (_, i) => (0xa00000 + i).toString(16).padStart(24, "0"));
  try {
    // Every other run has a pod; the rest must answer an empty list, not a neighbour's pods.
    for (const [i, id] of ids.entries()) {
      if (i % 2 === 0) await cluster.createPod(compute, runPod(`run-${id}-x`, id));
    }
    const runs = createRunLookup(kube, { namespace: compute });
    const answers = await Promise.all(ids.map((id) => runs.findRunPods(id)));
    for (const [i, id] of ids.entries()) {
      assert.deepEqual(answers[i].map((p) => p.name), i % 2 === 0 ? [`run-${id}-x`] : [], id);
    }
    // The first lookup is listed at once and alone; the 149 asked meanwhile in two lists of at
    // most 100 runs each.
    const selectors = proxy.requests.map((r) => new URLSearchParams(r.query).get("labelSelector")!);
    assert.equal(selectors.length, 3);
    assert.equal(selectors[0], `dominodatalab.com/execution-id=${ids[0]}`);
    assert.deepEqual(
      selectors.slice(1).map((s) =>
        s.replace(/^dominodatalab.com\/execution-id in \((.*)\)$/, "$1").split(",").length
      ).sort((a, b) => b - a), // sent together: either may reach the API server first
      [100, 49],
    );
    // A list that fails fails every lookup it carried, and the next burst lists again.
    proxy.failNext(1, 503);
    const failed = await Promise.allSettled([runs.findRunPods(ids[0]), runs.findRunPods(ids[2])]);
    assert.equal(failed[0].status, "rejected");
    assert.deepEqual((await runs.findRunPods(ids[2])).map((p) => p.name), [`run-${ids[2]}-x`]);
  } finally {
    kube.close();
    await proxy.close();
  }
});

Deno.test("run lookup: the run pods that run as a service account, by field selector, any run", async () => {
  const cluster = await sharedKubeApiServer();
  const compute = await cluster.createNamespace("compute");
  const kube = createKubeClient({
    apiUrl: cluster.url,
    caCert: cluster.caCert,
    token: () => cluster.adminToken,
  });
  try {
    await cluster.createServiceAccount(compute, "aws-test");
    await cluster.createPod(compute, {
      ...runPod(`run-${RUN}-a`, RUN),
      serviceAccountName: "aws-test",
    });
    await cluster.createPod(compute, {
      ...runPod(`run-${OTHER}-b`, OTHER, { "dominodatalab.com/starting-user-username": "mallory" }),
      serviceAccountName: "aws-test",
    });
    await cluster.createPod(compute, runPod(`run-${OTHER}-c`, OTHER));
    const lookup = createRunLookup(kube, { namespace: compute });
    const pods = await lookup.findPodsRunningAs("aws-test");
    assert.deepEqual(pods.map((p) => [p.name, p.startingUsername]).sort(), [
      [`run-${RUN}-a`, "jdoe"],
      [`run-${OTHER}-b`, "mallory"],
    ]);
    await assert.rejects(lookup.findPodsRunningAs("a,b"), { code: "bad_request" });
  } finally {
    kube.close();
  }
});
