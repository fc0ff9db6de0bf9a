import assert from "node:assert/strict";
import { startFakeKubernetes } from "../../tests/fakes/kubernetes.ts";
import { createKubeClient } from "./client.ts";
import { createRunLookup } from "./run_lookup.ts";

const RUN = "646d27b817c28b5ea4b5b0c1";
const OTHER = "646f604955daf764547c5b77";

const runPod = (name: string, runId: string, extra: Record<string, string> = {}) => ({
  metadata: {
    name,
    labels: {
      "dominodatalab.com/execution-id": runId,
      "dominodatalab.com/starting-user-id": "6400aa11bb22cc33dd44ee55",
      "dominodatalab.com/starting-user-username": "jdoe",
      "dominodatalab.com/workload-type": "Workspace",
      ...extra,
    },
  },
  spec: { serviceAccountName: `run-${runId}`, containers: [{ name: "run" }] },
  status: { phase: "Running" },
});

Deno.test("run lookup: one label-selector query in the compute namespace, mapped to RunPods", async () => {
  const fake = await startFakeKubernetes();
  const kube = createKubeClient({ apiUrl: fake.url, token: () => fake.token });
  try {
    fake.addPod("domino-compute", runPod(`run-${RUN}-fxc2q`, RUN));
    fake.addPod("domino-compute", runPod(`run-${RUN}-worker-0`, RUN));
    fake.addPod("domino-compute", runPod(`run-${OTHER}-abcde`, OTHER));
    fake.addPod("domino-platform", runPod("impostor", RUN));

    const pods = await createRunLookup(kube).findRunPods(RUN);
    assert.deepEqual(
      pods,
      [`run-${RUN}-fxc2q`, `run-${RUN}-worker-0`].map((name) => ({
        name,
        serviceAccountName: `run-${RUN}`,
        startingUserId: "6400aa11bb22cc33dd44ee55",
        startingUsername: "jdoe",
        phase: "Running",
      })),
    );

    assert.equal(fake.requests.length, 1);
    const [request] = fake.requests;
    assert.equal(request.method, "GET");
    assert.equal(request.path, "/api/v1/namespaces/domino-compute/pods");
    assert.deepEqual(
      [...new URLSearchParams(request.query)],
      [["labelSelector", `dominodatalab.com/execution-id=${RUN}`]],
    );
  } finally {
    kube.close();
    await fake.close();
  }
});

Deno.test("run lookup: a pod without the labels yields only what it has; no pods is an empty list", async () => {
  const fake = await startFakeKubernetes();
  const kube = createKubeClient({ apiUrl: fake.url, token: () => fake.token });
  try {
    fake.addPod("compute", {
      metadata: { name: "bare", labels: { "dominodatalab.com/execution-id": RUN } },
    });
    const runs = createRunLookup(kube, { namespace: "compute" });
    assert.deepEqual(await runs.findRunPods(RUN), [{ name: "bare" }]);
    assert.deepEqual(await runs.findRunPods(OTHER), []);
  } finally {
    kube.close();
    await fake.close();
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
  const fake = await startFakeKubernetes();
  const kube = createKubeClient({ apiUrl: fake.url, token: () => fake.token });
  try {
    fake.failNext(1, 403);
    await assert.rejects(createRunLookup(kube).findRunPods(RUN), {
      code: "upstream_error",
      message: 'Kubernetes API denied list pods in "domino-compute"',
    });
    fake.failNext(1, 503);
    await assert.rejects(createRunLookup(kube).findRunPods(RUN), { code: "upstream_error" });
  } finally {
    kube.close();
    await fake.close();
  }
});
