/**
 * The real server, started as users start it, over HTTPS: against moto's IAM, the test OIDC
 * issuer, the real Kubernetes API server, and the contract fake of the platform API.
 */
import assert from "node:assert/strict";
import type { IAMClient } from "@aws-sdk/client-iam";
import { startFakePlatformApi } from "./fakes/platform_api.ts";
import { EXAMPLE, type Moto, type SeededWorld } from "./fixtures/moto.ts";
import { sharedKubeApiServer } from "./fixtures/kube_apiserver.ts";
import { startOidcIssuer } from "./fixtures/oidc_issuer.ts";
import { startKubeFaultProxy } from "./kube_fault_proxy.ts";
import type { TestTls } from "./fixtures/tls.ts";
import { startServerProcess } from "./server_process.ts";
import { heldSubjects, pairJson, serverEnv, useMotoWorld } from "./world.ts";

const RUN = "646d27b817c28b5ea4b5b0c1";
const OTHER_RUN = "646f604955daf764547c5b77";
const SUBJECT = `*:domino-compute:run-${RUN}`;

let moto: Moto;
let iam: IAMClient;
let tls: TestTls;
let world: SeededWorld;
useMotoWorld((w) => ({ moto, iam, tls, world } = w));

const subjectsIn = (role: string) => heldSubjects(iam, world, role);

/** The status of an answer whose body the test does not read. */
async function statusOf(answer: Promise<Response>): Promise<number> {
  const res = await answer;
  await res.body?.cancel();
  return res.status;
}

Deno.test("jwt verifier, file store, workload-token proof: the pod's subject lands in moto and leaves on DELETE", async () => {
  const issuer = await startOidcIssuer({ tls: { cert: tls.cert, key: tls.key } });
  // Pod tokens from the real API server's TokenRequest, for Pending pods in domino-compute.
  const cluster = await sharedKubeApiServer();
  const compute = await cluster.createNamespace("domino-compute", { exact: true });
  const podToken = async (id: string) => {
    await cluster.createPod(compute, { name: `run-${id}-abcde`, serviceAccountName: `run-${id}` });
    return await cluster.tokenRequest(compute, `run-${id}`, { pod: `run-${id}-abcde` });
  };
  const dir = await Deno.makeTempDir();
  // The server trusts both private CAs: the user issuer's and the API server's (its issuer).
  await Deno.writeTextFile(`${dir}/ca.pem`, tls.caCert + cluster.caCert);
  const mappings = `${dir}/mappings.json`;
  await Deno.writeTextFile(
    mappings,
    JSON.stringify({
      "irsa-iamrole-list-bucket": JSON.stringify(pairJson(EXAMPLE.roleNames[0])),
      "irsa-iamrole-read-bucket": JSON.stringify([
        pairJson(EXAMPLE.roleNames[1]),
        pairJson(EXAMPLE.roleNames[2]),
      ]),
    }),
  );
  const server = await startServerProcess(
    [
      "--tls-cert",
      tls.certPath,
      "--tls-key",
      tls.keyPath,
      "--ca-file",
      `${dir}/ca.pem`,
      "--mapping-file",
      mappings,
      "--trust-pod-token-alone",
    ],
    serverEnv(moto, world, issuer, { IRSA_CLUSTER_ISSUER: cluster.issuer }),
    tls.caCert,
  );
  try {
    const user = await issuer.userToken({ username: "jdoe", groups: ["irsa-iamrole-list-bucket"] });
    const sa = await podToken(RUN);
    const headers = {
      Authorization: `Bearer ${user}`,
      "X-Irsa-Workload-Token": sa,
      "Content-Type": "application/json",
    };
    assert.deepEqual(await (await server.fetch("/healthz")).json(), { status: "Healthy" });
    assert.equal(await statusOf(server.fetch("/readyz")), 200);

    const mapped = await server.fetch("/map_iam_roles_to_pod_sa", {
      method: "POST",
      headers,
      body: JSON.stringify({ run_id: RUN }),
    });
    assert.equal(mapped.status, 200);
    assert.equal(
      await mapped.text(),
      "[profile src_acme-list-bucket-role]\nweb_identity_token_file = /var/run/secrets/eks.amazonaws.com/serviceaccount/token\n" +
        "role_arn = arn:aws:iam::111111111111:role/acme-list-bucket-role\n\n[profile acme-list-bucket-role]\n" +
        "source_profile = src_acme-list-bucket-role\nrole_arn = arn:aws:iam::222222222222:role/acme-list-bucket-role\n",
    );
    assert.deepEqual(await subjectsIn("acme-list-bucket-role"), [SUBJECT]);
    assert.deepEqual(await subjectsIn("acme-read-bucket-role"), []);

    // A second user's pod joins the same role; the first stays.
    const other = await issuer.userToken({
      username: "asmith",
      groups: ["irsa-iamrole-list-bucket", "irsa-iamrole-read-bucket"],
    });
    const otherSa = await podToken(OTHER_RUN);
    const json = await server.fetch("/map_iam_roles_to_pod_sa", {
      method: "POST",
      headers: {
        Authorization: `Bearer ${other}`,
        "X-Irsa-Workload-Token": otherSa,
        Accept: "application/json",
      },
      body: "{}",
    });
    const body = await json.json();
    assert.deepEqual(body.roles.map((r: { status: string }) => r.status), [
      "added",
      "added",
      "added",
    ]);
    assert.deepEqual(await subjectsIn("acme-list-bucket-role"), [
      SUBJECT,
      `*:domino-compute:run-${OTHER_RUN}`,
    ]);

    // The workload token cannot be swapped for another run's id.
    const swapped = await server.fetch("/map_iam_roles_to_pod_sa", {
      method: "POST",
      headers,
      body: JSON.stringify({ run_id: OTHER_RUN }),
    });
    assert.equal(swapped.status, 403);
    await swapped.body?.cancel();

    // Every rejection answers 4xx and changes nothing.
    const claims = { username: "jdoe", groups: ["irsa-iamrole-list-bucket"] };
    const evil = "https://evil.example/auth/realms/DominoRealm";
    const rejected: [string, Record<string, string>, string, number][] = [
      ["no token", { "X-Irsa-Workload-Token": sa }, "{}", 401],
      [
        // Shaped like the cluster's, but signed by a key the cluster never published.
        "pod token of another issuer",
        {
          Authorization: `Bearer ${user}`,
          "X-Irsa-Workload-Token": await issuer.serviceAccountToken({
            serviceAccount: `run-${RUN}`,
            issuer: cluster.issuer,
          }),
        },
        "{}",
        401,
      ],
      [
        "expired",
        { Authorization: `Bearer ${await issuer.userToken({ ...claims, expiresIn: -60 })}` },
        "{}",
        401,
      ],
      [
        "wrong issuer",
        { Authorization: `Bearer ${await issuer.userToken({ ...claims, issuer: evil })}` },
        "{}",
        401,
      ],
      ["alg none", { Authorization: `Bearer ${issuer.noneAlgToken(claims)}` }, "{}", 401],
      ["forged", { Authorization: `Bearer ${await issuer.forgedUserToken(claims)}` }, "{}", 401],
      ["malformed body", headers, "{run_id:", 400],
      ["wrong type", headers, '{"run_id": 5}', 400],
      [
        "run_id with *",
        { Authorization: `Bearer ${user}` },
        '{"run_id": "646d27b817c28b5ea4b5b0c*"}',
        400,
      ],
      ["oversized body", headers, JSON.stringify({ run_id: RUN, pad: "x".repeat(70_000) }), 413],
      ["no proof", { Authorization: `Bearer ${user}` }, JSON.stringify({ run_id: RUN }), 403],
    ];
    for (const [name, h, body, status] of rejected) {
      const res = await server.fetch("/map_iam_roles_to_pod_sa", {
        method: "POST",
        headers: h,
        body,
      });
      assert.equal(res.status, status, name);
      assert.ok((await res.json()).message, name);
    }
    const nonAdmin = await server.fetch("/role_mappings", {
      headers: { Authorization: `Bearer ${user}` },
    });
    assert.equal(nonAdmin.status, 403);
    await nonAdmin.body?.cancel();
    assert.deepEqual(await subjectsIn("acme-list-bucket-role"), [
      SUBJECT,
      `*:domino-compute:run-${OTHER_RUN}`,
    ]);

    const removed = await server.fetch("/map_iam_roles_to_pod_sa", {
      method: "DELETE",
      headers,
      body: "{}",
    });
    assert.equal(removed.status, 200);
    await removed.body?.cancel();
    assert.deepEqual(await subjectsIn("acme-list-bucket-role"), [
      `*:domino-compute:run-${OTHER_RUN}`,
    ]);

    const metrics = await (await server.fetch("/metrics")).text();
    assert.match(
      metrics,
      /irsa_iam_calls_total\{operation="UpdateAssumeRolePolicy",outcome="ok"\} 5/,
    );
    const audit = server.logs.filter((l) => l.includes('"audit":true'));
    assert.equal(audit.length, 5);
    assert.ok(
      server.logs.every((l) => !l.includes(user) && !l.includes(sa)),
      "no token in the logs",
    );
  } finally {
    assert.equal(await server.stop(), 0);
    await issuer.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("domino verifier, ConfigMap store, run-lookup proof, over the Kubernetes API", async () => {
  const issuer = await startOidcIssuer();
  const platform = startFakePlatformApi();
  const cluster = await sharedKubeApiServer();
  const field = await cluster.createNamespace("field");
  const compute = await cluster.createNamespace("compute");
  // Over HTTPS, as in a pod; the proxy only watches.
  const kube = startKubeFaultProxy(cluster, { tls: { cert: tls.cert, key: tls.key } });
  const subject = `*:${compute}:run-${RUN}`;
  platform.addUser({
    token: "user-token-jdoe",
    canonicalName: "jdoe",
    canonicalId: "u-jdoe",
    organizations: ["irsa-iamrole-list-bucket"],
  });
  platform.addUser({
    token: "user-token-boss",
    canonicalName: "boss",
    canonicalId: "u-boss",
    isAdmin: true,
  });
  // Run pods as the platform labels them; Pending, since the test cluster has no nodes.
  await cluster.createPod(compute, {
    name: `run-${RUN}-abcde`,
    labels: {
      "dominodatalab.com/execution-id": RUN,
      "dominodatalab.com/starting-user-id": "u-jdoe",
    },
    serviceAccountName: `run-${RUN}`,
  });
  await cluster.createPod(compute, {
    name: `run-${OTHER_RUN}-abcde`,
    labels: {
      "dominodatalab.com/execution-id": OTHER_RUN,
      "dominodatalab.com/starting-user-id": "u-other",
    },
    serviceAccountName: `run-${OTHER_RUN}`,
  });
  const server = await startServerProcess(
    [
      "--tls-cert",
      tls.certPath,
      "--tls-key",
      tls.keyPath,
      "--verifier",
      "domino",
      "--mapping-store",
      "configmap",
      "--kubernetes-api",
      kube.url,
      "--kubernetes-token-file",
      cluster.adminTokenFile,
      "--kubernetes-ca-file",
      tls.caCertPath,
    ],
    serverEnv(moto, world, issuer, {
      DOMINO_USER_HOST: platform.url,
      DEFAULT_FIELD_NS: field,
      DEFAULT_COMPUTE_NS: compute,
    }),
    tls.caCert,
  );
  try {
    const admin = { Authorization: "Bearer user-token-boss" };
    const user = { Authorization: "Bearer user-token-jdoe" };
    assert.equal(await statusOf(server.fetch("/role_mappings", { headers: user })), 403);
    const put = await server.fetch("/update_role_mapping", {
      method: "POST",
      headers: admin,
      body: JSON.stringify({
        domino_org: "irsa-iamrole-list-bucket",
        ...pairJson(EXAMPLE.roleNames[0]),
      }),
    });
    assert.equal(put.status, 200);
    await put.body?.cancel();
    // The ConfigMap holds the current service's format: the body as the admin posted it.
    const cm = (await cluster.configMap(field, "domino-org-iamrole-mapping"))!;
    assert.deepEqual(JSON.parse(cm.data["irsa-iamrole-list-bucket"]), {
      domino_org: "irsa-iamrole-list-bucket",
      ...pairJson(EXAMPLE.roleNames[0]),
    });

    const mine = await server.fetch("/map_iam_roles_to_pod_sa", {
      method: "POST",
      headers: user,
      body: JSON.stringify({ run_id: RUN }),
    });
    assert.equal(mine.status, 200);
    assert.match(await mine.text(), /\[profile acme-list-bucket-role\]/);
    assert.deepEqual(await subjectsIn("acme-list-bucket-role"), [subject]);
    // The lookup was one label-selector query, never a listing of every pod.
    const podQueries = kube.requests.filter((r) => r.path.endsWith("/pods"));
    assert.ok(
      podQueries.length >= 1 && podQueries.every((r) => r.query.includes("labelSelector=")),
    );

    const theirs = await server.fetch("/map_iam_roles_to_pod_sa", {
      method: "POST",
      headers: user,
      body: JSON.stringify({ run_id: OTHER_RUN }),
    });
    assert.equal(theirs.status, 403);
    assert.match((await theirs.json()).message, /has no live pod started by "jdoe"/);
    const wild = await server.fetch("/map_iam_roles_to_pod_sa", {
      method: "POST",
      headers: user,
      body: JSON.stringify({ run_id: "*" }),
    });
    assert.equal(wild.status, 400);
    await wild.body?.cancel();
    const noToken = await server.fetch("/map_iam_roles_to_pod_sa", {
      method: "POST",
      body: JSON.stringify({ run_id: RUN }),
    });
    assert.equal(noToken.status, 401);
    await noToken.body?.cancel();
    assert.deepEqual(await subjectsIn("acme-list-bucket-role"), [subject]);
    assert.deepEqual(await (await server.fetch("/my_role_mappings", { headers: user })).json(), {
      my_role_mappings: [{
        domino_org: "irsa-iamrole-list-bucket",
        ...pairJson(EXAMPLE.roleNames[0]),
      }],
    });
    assert.equal(
      await statusOf(server.fetch("/delete_role_mapping", {
        method: "DELETE",
        headers: admin,
        body: JSON.stringify({ domino_org: "irsa-iamrole-list-bucket" }),
      })),
      200,
    );
    assert.equal(
      (await cluster.configMap(field, "domino-org-iamrole-mapping"))!
        .data["irsa-iamrole-list-bucket"],
      undefined,
    );
  } finally {
    assert.equal(await server.stop(), 0);
    await kube.close();
    await platform.close();
    await issuer.close();
  }
});
