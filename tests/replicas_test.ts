/**
 * Three real server processes against one moto and the real Kubernetes API server (Leases through
 * resourceVersion): many simultaneous starts on shared roles, and not one subject lost. Pod tokens
 * come from the TokenRequest API, verified against the API server's own discovery and JWKS.
 */
import assert from "node:assert/strict";
import { sharedKubeApiServer } from "./fixtures/kube_apiserver.ts";
import { startKubeFaultProxy } from "./kube_fault_proxy.ts";
import { EXAMPLE, seedExampleRoles, startMoto } from "./fixtures/moto.ts";
import { startOidcIssuer } from "./fixtures/oidc_issuer.ts";
import { startServerProcess } from "./server_process.ts";
import { heldSubjects, serverEnv } from "./world.ts";

const STARTS = Number(Deno.env.get("IRSA_REPLICA_TEST_STARTS") ?? "30");

Deno.test(`${STARTS} simultaneous starts over 3 replicas and 2 shared roles lose no subject`, async () => {
  const moto = await startMoto();
  const issuer = await startOidcIssuer();
  const cluster = await sharedKubeApiServer();
  const field = await cluster.createNamespace("field");
  const compute = await cluster.createNamespace("compute");
  const kube = startKubeFaultProxy(cluster);
  const iam = moto.iamClient();
  const servers: Awaited<ReturnType<typeof startServerProcess>>[] = [];
  try {
    const world = await seedExampleRoles(iam);
    const pair = (name: string) =>
      JSON.stringify({
        iam_role_arn: `arn:aws:iam::${EXAMPLE.assetsAccount}:role/${name}`,
        proxy_iam_role_arn: `arn:aws:iam::${EXAMPLE.eksAccount}:role/${name}`,
      });
    await cluster.setConfigMap(field, "domino-org-iamrole-mapping", {
      "org-list": pair("acme-list-bucket-role"),
      "org-read": pair("acme-read-bucket-role"),
    });
    const env = serverEnv(moto, world, issuer, {
      IRSA_TRUST_POLICY_QUOTA: "8192",
      DEFAULT_FIELD_NS: field,
      DEFAULT_COMPUTE_NS: compute,
      IRSA_CLUSTER_ISSUER: cluster.issuer,
      IRSA_CA_FILE: cluster.caCertPath,
    });
    const args = [
      "--insecure-http",
      "--mapping-store",
      "configmap",
      "--kubernetes-api",
      kube.url,
      "--kubernetes-token-file",
      cluster.adminTokenFile,
    ];
    for (let i = 0; i < 3; i++) servers.push(await startServerProcess(args, env));

    const user = await issuer.userToken({ username: "jdoe", groups: ["org-list", "org-read"] });
    const runs = Array.from(
      { length: STARTS },
      (_, i) => (0xabc000 + i).toString(16).padStart(24, "0"),
    );
    // Each run a Pending pod with its service account, and a pod-bound token as the kubelet mounts.
    const podTokens = await Promise.all(runs.map(async (id) => {
      const pod = `run-${id}-abcde`;
      await cluster.createPod(compute, {
        name: pod,
        // As the platform labels run pods: the starting user proves the token is the caller's.
        labels: {
          "dominodatalab.com/execution-id": id,
          "dominodatalab.com/starting-user-username": "jdoe",
        },
        serviceAccountName: `run-${id}`,
      });
      return await cluster.tokenRequest(compute, `run-${id}`, { pod });
    }));
    const answers = await Promise.all(runs.map(async (id, i) => {
      const sa = podTokens[i];
      const res = await servers[i % 3].fetch("/map_iam_roles_to_pod_sa", {
        method: "POST",
        headers: {
          Authorization: `Bearer ${user}`,
          "X-Irsa-Workload-Token": sa,
          Accept: "application/json",
        },
        body: JSON.stringify({ run_id: id }),
      });
      return { status: res.status, body: await res.json() };
    }));
    for (const a of answers) {
      assert.equal(a.status, 200, JSON.stringify(a.body));
      assert.deepEqual(a.body.roles.map((r: { status: string }) => r.status), ["added", "added"]);
    }
    for (const role of ["acme-list-bucket-role", "acme-read-bucket-role"]) {
      const held = await heldSubjects(iam, world, role);
      assert.deepEqual(held.sort(), runs.map((id) => `*:${compute}:run-${id}`).sort(), role);
    }
    // The replicas took turns through the Leases (and edited in batches, not once per request).
    const writes = await Promise.all(servers.map(async (s) => {
      const text = await (await s.fetch("/metrics")).text();
      return Number(
        /irsa_iam_calls_total\{operation="UpdateAssumeRolePolicy",outcome="ok"\} (\d+)/.exec(text)
          ?.[1] ?? 0,
      );
    }));
    const total = writes.reduce((a, b) => a + b, 0);
    assert.ok(total < 2 * STARTS, `expected fewer writes than requests, got ${total}`);
    assert.ok(kube.requests.some((r) => r.path.includes("/leases/") && r.method === "PUT"));
    console.log(
      `${STARTS} starts x 2 roles over 3 replicas: ${total} UpdateAssumeRolePolicy calls (${
        writes.join(" + ")
      })`,
    );
  } finally {
    for (const s of servers) await s.stop();
    iam.destroy();
    await kube.close();
    await issuer.close();
    await moto.stop();
  }
});
