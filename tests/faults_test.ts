/**
 * Faults between the server and IAM: throttling, 5xx, and a server killed in the middle of a batch
 * while it holds the roles' Leases on the real Kubernetes API server.
 */
import assert from "node:assert/strict";
import type { IAMClient } from "@aws-sdk/client-iam";
import { startFaultProxy } from "./fault_proxy.ts";
import {
  EXAMPLE,
  type Moto,
  type SeededWorld,
  seedExampleRoles,
  startMoto,
} from "./fixtures/moto.ts";
import { type KubeApiServer, sharedKubeApiServer } from "./fixtures/kube_apiserver.ts";
import { type OidcIssuer, startOidcIssuer } from "./fixtures/oidc_issuer.ts";
import { type ServerProcess, startServerProcess } from "./server_process.ts";
import { heldSubjects, serverEnv } from "./world.ts";

let moto: Moto;
let iam: IAMClient;
let issuer: OidcIssuer;
let world: SeededWorld;
let dir: string;

Deno.test.beforeAll(async () => {
  moto = await startMoto();
  iam = moto.iamClient();
  issuer = await startOidcIssuer();
  dir = await Deno.makeTempDir();
  await Deno.writeTextFile(
    `${dir}/mappings.json`,
    JSON.stringify(
      Object.fromEntries(["acme-list-bucket-role", "acme-read-bucket-role"].map((r) => [
        `org-${r}`,
        JSON.stringify({
          iam_role_arn: `arn:aws:iam::${EXAMPLE.assetsAccount}:role/${r}`,
          proxy_iam_role_arn: `arn:aws:iam::${EXAMPLE.eksAccount}:role/${r}`,
        }),
      ])),
    ),
  );
});
Deno.test.afterAll(async () => {
  await issuer.close();
  await moto.stop();
  await Deno.remove(dir, { recursive: true });
});
Deno.test.beforeEach(async () => {
  await moto.reset();
  world = await seedExampleRoles(iam);
});

const server = (iamEndpoint: string, cluster: KubeApiServer, compute: string) =>
  startServerProcess(
    [
      "--insecure-http",
      "--mapping-file",
      `${dir}/mappings.json`,
      "--trust-policy-quota",
      "8192",
      // No run lookup (no Kubernetes API given): the pod's token alone proves the pod.
      "--trust-pod-token-alone",
    ],
    serverEnv(moto, world, issuer, {
      AWS_ENDPOINT_URL_IAM: iamEndpoint,
      IRSA_CLUSTER_ISSUER: cluster.issuer,
      IRSA_CA_FILE: cluster.caCertPath,
      DEFAULT_COMPUTE_NS: compute,
    }),
  );

/** A Pending run pod and its pod-bound token from the TokenRequest API. */
async function podToken(cluster: KubeApiServer, namespace: string, id: string): Promise<string> {
  const pod = `run-${id}-abcde`;
  await cluster.createPod(namespace, {
    name: pod,
    // As the platform labels run pods: the starting user proves the token is the caller's.
    labels: {
      "dominodatalab.com/execution-id": id,
      "dominodatalab.com/starting-user-username": "jdoe",
    },
    serviceAccountName: `run-${id}`,
  });
  return await cluster.tokenRequest(namespace, `run-${id}`, { pod });
}

const held = (role: string) => heldSubjects(iam, world, role);

/** One workspace start as the sidecar makes it: true when every role was mapped. */
async function start(s: ServerProcess, podToken: string): Promise<boolean> {
  try {
    const user = await issuer.userToken({
      username: "jdoe",
      groups: ["org-acme-list-bucket-role", "org-acme-read-bucket-role"],
    });
    const res = await s.fetch("/map_iam_roles_to_pod_sa", {
      method: "POST",
      headers: {
        Authorization: `Bearer ${user}`,
        "X-Irsa-Workload-Token": podToken,
        Accept: "application/json",
      },
      body: "{}",
    });
    const body = await res.json();
    return res.status === 200 && body.roles.every((r: { status: string }) => r.status !== "failed");
  } catch {
    return false; // No answer: the sidecar retries.
  }
}

const ids = (n: number, base: number) =>
  Array.from({ length: n }, (_, i) => (base + i).toString(16).padStart(24, "0"));

Deno.test("with 10% of IAM calls throttled and 5% failing, every start still ends mapped", async () => {
  // Deterministic draws: about one call in ten throttled and some 5xx, the very first call included,
  // so the test never passes for want of a fault.
  let draw = 0;
  const random = () => [0, 0.99, 0.99, 0.99, 0.99, 0.99, 0.01, 0.99, 0.99, 0.99][draw++ % 10];
  const proxy = startFaultProxy(moto.endpoint, {
    readLatencyMs: 5,
    writeLatencyMs: 10,
    throttleRate: 0.1,
    serverErrorRate: 0.05,
  }, random);
  const cluster = await sharedKubeApiServer();
  const compute = await cluster.createNamespace("compute");
  const runs = ids(30, 0x100);
  const tokens = new Map(
    await Promise.all(runs.map(async (id) => [id, await podToken(cluster, compute, id)] as const)),
  );
  const s = await server(proxy.url, cluster, compute);
  try {
    let pending = runs;
    for (let round = 0; pending.length > 0 && round < 5; round++) {
      const ok = await Promise.all(pending.map((id) => start(s, tokens.get(id)!)));
      pending = pending.filter((_, i) => !ok[i]);
    }
    assert.deepEqual(pending, []);
    for (const role of ["acme-list-bucket-role", "acme-read-bucket-role"]) {
      assert.deepEqual(
        (await held(role)).sort(),
        runs.map((id) => `*:${compute}:run-${id}`).sort(),
      );
    }
    assert.ok(proxy.counts.throttled + proxy.counts.serverErrors > 0, "faults were injected");
  } finally {
    await s.stop();
    await proxy.close();
  }
});

/** Servers that keep the mappings in a ConfigMap and lock roles with Leases, in fresh namespaces. */
async function kubeWorld(cluster: KubeApiServer) {
  const field = await cluster.createNamespace("field");
  const compute = await cluster.createNamespace("compute");
  const mappings = JSON.parse(await Deno.readTextFile(`${dir}/mappings.json`));
  await cluster.setConfigMap(field, "domino-org-iamrole-mapping", mappings);
  const start = (iamEndpoint: string) =>
    startServerProcess(
      [
        "--insecure-http",
        "--mapping-store",
        "configmap",
        "--kubernetes-api",
        cluster.url,
        "--kubernetes-ca-file",
        cluster.caCertPath,
        "--kubernetes-token-file",
        cluster.adminTokenFile,
        "--trust-policy-quota",
        "8192",
        "--lease-duration-seconds",
        String(LEASE_SECONDS),
      ],
      serverEnv(moto, world, issuer, {
        AWS_ENDPOINT_URL_IAM: iamEndpoint,
        DEFAULT_FIELD_NS: field,
        DEFAULT_COMPUTE_NS: compute,
        IRSA_CLUSTER_ISSUER: cluster.issuer,
        IRSA_CA_FILE: cluster.caCertPath,
      }),
    );
  const heldLeases = async () => {
    const leases = await cluster.must(
      "GET",
      `/apis/coordination.k8s.io/v1/namespaces/${field}/leases`,
    );
    return leases.items.filter((l: { spec: { holderIdentity?: string } }) => l.spec.holderIdentity)
      .length;
  };
  return { field, compute, start, heldLeases };
}

const LEASE_SECONDS = 3;

Deno.test("a server killed in the middle of a batch loses no subject it answered, and its Leases expire", async () => {
  // The first 10 starts are one batch, answered after about 1100 ms; the other 10 arrive at 300 ms,
  // during that write, and their batch is still writing when the server is killed at 1500 ms,
  // holding the roles' Leases.
  const cluster = await sharedKubeApiServer();
  const k = await kubeWorld(cluster);
  const proxy = startFaultProxy(moto.endpoint, { readLatencyMs: 50, writeLatencyMs: 1000 });
  const runs = ids(20, 0x200);
  const tokens = await Promise.all(runs.map((id) => podToken(cluster, k.compute, id)));
  const subject = (id: string) => `*:${k.compute}:run-${id}`;
  let s = await k.start(proxy.url);
  try {
    const answers = runs.map((_, i) =>
      i < 10
        ? start(s, tokens[i])
        : new Promise((r) => setTimeout(r, 300)).then(() => start(s, tokens[i]))
    );
    await new Promise((r) => setTimeout(r, 1500));
    await s.stop("SIGKILL");
    const ok = await Promise.all(answers);
    const answered = runs.filter((_, i) => ok[i]);
    const lost = runs.filter((_, i) => !ok[i]);
    assert.ok(lost.length > 0, "the kill interrupted some requests");
    assert.ok(answered.length > 0, "some requests were answered before the kill");
    assert.ok(await k.heldLeases() > 0, "the killed server still holds a Lease");
    for (const role of ["acme-list-bucket-role", "acme-read-bucket-role"]) {
      const now = await held(role);
      for (const id of answered) {
        assert.ok(now.includes(subject(id)), `${id} was answered but is missing from ${role}`);
      }
    }
    // The sidecars whose answers were lost retry against the restarted server: it waits out the
    // dead holder's Leases, then succeeds.
    s = await k.start(proxy.url);
    const t0 = Date.now();
    const retried = await Promise.all(lost.map((id) => start(s, tokens[runs.indexOf(id)])));
    assert.ok(retried.every(Boolean));
    assert.ok(Date.now() - t0 < (LEASE_SECONDS + 10) * 1000, "the Leases expired");
    for (const role of ["acme-list-bucket-role", "acme-read-bucket-role"]) {
      assert.deepEqual((await held(role)).sort(), runs.map(subject).sort());
    }
    assert.equal(await k.heldLeases(), 0, "every Lease released");
  } finally {
    await s.stop();
    await proxy.close();
  }
});
