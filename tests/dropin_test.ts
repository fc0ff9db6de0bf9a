/**
 * The current service's own published notebooks (1.8), cell by cell, against the real server
 * process over HTTPS: in both verifier modes and with both stores, the answers they recorded or
 * check. moto is IAM, a real kube-apiserver is Kubernetes; the platform API is its contract fake.
 */
import assert from "node:assert/strict";
import { GetRoleCommand, type IAMClient } from "@aws-sdk/client-iam";
import { type FakePlatformApi, startFakePlatformApi } from "./fakes/platform_api.ts";
import { EXAMPLE, inAccount, type Moto, type SeededWorld } from "./fixtures/moto.ts";
import { type KubeApiServer, sharedKubeApiServer } from "./fixtures/kube_apiserver.ts";
import { type OidcIssuer, startOidcIssuer } from "./fixtures/oidc_issuer.ts";
import type { TestTls } from "./fixtures/tls.ts";
import { type ServerProcess, startServerProcess } from "./server_process.ts";
import { configMapStoreArgs, heldSubjects, serverEnv, useMotoWorld } from "./world.ts";

const RUN = "646d27b817c28b5ea4b5b0c1";
const ORGS = ["irsa-iamrole-list-bucket", "irsa-iamrole-read-bucket", "irsa-iamrole-update-bucket"];
const ADMIN_KEY = "admin-api-key-0123456789";
const USER_KEY = "non-admin-api-key-0123456789";

/** The test notebook's role_1, role_2 and role_3: the flag as the string "false", as it posts it. */
const ROLE = EXAMPLE.roleNames.map((name, i) => ({
  domino_org: ORGS[i],
  proxy_iam_role_arn: `arn:aws:iam::${EXAMPLE.eksAccount}:role/${name}`,
  iam_role_arn: `arn:aws:iam::${EXAMPLE.assetsAccount}:role/${name}`,
  update_iam_role_trust_policy: "false",
}));

let moto: Moto;
let iam: IAMClient;
let tls: TestTls;
let world: SeededWorld;
useMotoWorld((w) => ({ moto, iam, tls, world } = w));

/** The trust-policy documents of the example proxy roles, exactly as IAM returns them. */
async function policies(): Promise<string[]> {
  return await Promise.all(EXAMPLE.roleNames.map(async (name) => {
    const out = await iam.send(
      inAccount(EXAMPLE.eksAccount, new GetRoleCommand({ RoleName: name })),
    );
    return out.Role!.AssumeRolePolicyDocument!;
  }));
}

/** A parse of the config text as Python's configparser reads it: section to key to value. */
function configSections(text: string): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  let section: Record<string, string> | undefined;
  for (const line of text.split("\n")) {
    const header = /^\[(.+)\]$/.exec(line.trim());
    if (header) out[header[1]] = section = {};
    else if (line.includes("=")) {
      assert.ok(section, `a setting outside a section: ${line}`);
      const at = line.indexOf("=");
      section[line.slice(0, at).trim()] = line.slice(at + 1).trim();
    }
  }
  return out;
}

interface Setup {
  readonly verifier: "jwt" | "domino";
  readonly store: "file" | "configmap";
}

/** A world for one verifier and one store: the platform's users, the server, and its clients. */
async function startWorld({ verifier, store }: Setup) {
  const issuer: OidcIssuer = await startOidcIssuer({ tls: { cert: tls.cert, key: tls.key } });
  const platform: FakePlatformApi = startFakePlatformApi();
  const dir = await Deno.makeTempDir();
  // With the ConfigMap store, the real API server, in namespaces of this test's own.
  const cluster: KubeApiServer | undefined = store === "configmap"
    ? await sharedKubeApiServer()
    : undefined;
  const field = cluster ? await cluster.createNamespace("field") : "domino-field";
  const compute = cluster ? await cluster.createNamespace("compute") : "domino-compute";
  // Bearer tokens: the identity provider's JWTs (jwt) or tokens the platform knows (domino).
  const adminToken = verifier === "jwt"
    ? await issuer.userToken({ username: "boss", admin: true })
    : "user-token-boss";
  const userToken = verifier === "jwt"
    ? await issuer.userToken({ username: "jdoe", groups: [ORGS[0], ORGS[1]] })
    : "user-token-jdoe";
  platform.addUser({
    token: "user-token-boss",
    apiKey: ADMIN_KEY,
    canonicalName: "boss",
    canonicalId: "u-boss",
    isAdmin: true,
  });
  platform.addUser({
    token: "user-token-jdoe",
    apiKey: USER_KEY,
    canonicalName: "jdoe",
    canonicalId: "u-jdoe",
    organizations: [ORGS[0], ORGS[1]],
  });
  const args = ["--tls-cert", tls.certPath, "--tls-key", tls.keyPath, "--ca-file", tls.caCertPath];
  if (verifier === "domino") args.push("--verifier", "domino");
  if (cluster) {
    // The run's pod as the platform labels it; Pending, since the test cluster has no nodes.
    await cluster.createPod(compute, {
      name: `run-${RUN}-abcde`,
      labels: {
        "dominodatalab.com/execution-id": RUN,
        "dominodatalab.com/starting-user-id": "u-jdoe",
        "dominodatalab.com/starting-user-username": "jdoe",
      },
      serviceAccountName: `run-${RUN}`,
    });
    args.push(
      ...configMapStoreArgs(cluster),
    );
  } else {
    // No Kubernetes: the pod's token alone proves the pod, as the admin opts in.
    args.push("--mapping-file", `${dir}/mappings.json`, "--trust-pod-token-alone");
  }
  // DOMINO_USER_HOST is set in both modes, as the 1.8 chart sets it: with jwt, it resolves API keys.
  const server: ServerProcess = await startServerProcess(
    args,
    serverEnv(moto, world, issuer, {
      DOMINO_USER_HOST: platform.url,
      DEFAULT_FIELD_NS: field,
      DEFAULT_COMPUTE_NS: compute,
    }),
    tls.caCert,
  );
  // Without Kubernetes, the pod proves itself with its projected token, as the sidecar sends it.
  const podToken = cluster ? undefined : await issuer.serviceAccountToken({
    serviceAccount: `run-${RUN}`,
  });

  const call = async (
    method: string,
    path: string,
    auth: Record<string, string>,
    body?: unknown,
  ) => {
    const res = await server.fetch(path, {
      method,
      headers: { "Content-Type": "application/json", ...auth },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, text, json: () => JSON.parse(text) };
  };
  return {
    cluster,
    field,
    compute,
    server,
    admin: { Authorization: `Bearer ${adminToken}` },
    user: { Authorization: `Bearer ${userToken}` },
    nonAdminKey: { "X-Domino-Api-Key": USER_KEY },
    adminKey: { "X-Domino-Api-Key": ADMIN_KEY },
    pod: (podToken ? { "X-Irsa-Workload-Token": podToken } : {}) as Record<string, string>,
    call,
    async [Symbol.asyncDispose]() {
      await server.stop();
      await platform.close();
      await issuer.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const SETUPS: Setup[] = [
  { verifier: "jwt", store: "file" },
  { verifier: "jwt", store: "configmap" },
  { verifier: "domino", store: "file" },
  { verifier: "domino", store: "configmap" },
];

for (const setup of SETUPS) {
  Deno.test(`1.8 test notebook, ${setup.verifier} verifier, ${setup.store} store: every check holds`, async () => {
    await using w = await startWorld(setup);
    const untouched = await policies();

    // check_health_endpoint; `curl -k .../healthz` prints {"status": "Healthy"}.
    const health = await w.call("GET", "/healthz", {});
    assert.equal(health.status, 200);
    assert.deepEqual(health.json(), { status: "Healthy" });

    // add_one_org_to_one_role_mappings
    for (const role of ROLE) {
      assert.equal((await w.call("POST", "/update_role_mapping", w.admin, role)).status, 200);
    }

    // get_all_mappings_one_to_one: [org][0] == role_n; a non-admin's API key answers 403.
    const all = await w.call("GET", "/role_mappings", w.admin);
    assert.equal(all.status, 200);
    const mappings = all.json().all_role_mappings;
    ROLE.forEach((role, i) => assert.deepEqual(mappings[ORGS[i]][0], role));
    assert.equal((await w.call("GET", "/role_mappings", w.nonAdminKey)).status, 403);
    // An admin's key is as good as the admin's token.
    assert.deepEqual((await w.call("GET", "/role_mappings", w.adminKey)).json(), all.json());

    // get_my_role_mappings: a list; each of the caller's pairs equals what was posted.
    const mine = await w.call("GET", "/my_role_mappings", w.user);
    assert.equal(mine.status, 200);
    const list = mine.json().my_role_mappings;
    assert.ok(Array.isArray(list));
    assert.deepEqual(list, [ROLE[0], ROLE[1]]);
    assert.deepEqual((await w.call("GET", "/my_role_mappings", w.nonAdminKey)).json(), mine.json());

    // get_aws_config_file: configparser reads both profiles of each pair; the flag is "false",
    // so the proxy roles' trust policies stay byte for byte as they were.
    const mapped = await w.call("POST", "/map_iam_roles_to_pod_sa", { ...w.user, ...w.pod }, {
      run_id: RUN,
      irsa_workload_type: "edge-workload",
    });
    assert.equal(mapped.status, 200, mapped.text);
    const sections = configSections(mapped.text);
    assert.deepEqual(Object.keys(sections).sort(), [
      "profile acme-list-bucket-role",
      "profile acme-read-bucket-role",
      "profile src_acme-list-bucket-role",
      "profile src_acme-read-bucket-role",
    ]);
    assert.equal(
      sections["profile src_acme-list-bucket-role"].role_arn,
      ROLE[0].proxy_iam_role_arn,
    );
    assert.equal(sections["profile acme-read-bucket-role"].role_arn, ROLE[1].iam_role_arn);
    assert.deepEqual(await policies(), untouched);

    // delete_role_mappings: 200 each; afterwards len(all_role_mappings) == 0.
    for (const org of ORGS) {
      assert.equal(
        (await w.call("DELETE", "/delete_role_mapping", w.admin, { domino_org: org })).status,
        200,
      );
    }
    assert.deepEqual((await w.call("GET", "/role_mappings", w.admin)).json(), {
      all_role_mappings: {},
    });

    // add_one_org_to_many_role_mappings: items keep their own domino_org; [0] and [1] as posted.
    for (
      const [org, data] of [[ORGS[0], [ROLE[0], ROLE[1]]], [ORGS[1], [ROLE[0], ROLE[2]]]] as const
    ) {
      const res = await w.call("POST", "/update_multirole_mapping", w.admin, {
        domino_org: org,
        role_data: data,
      });
      assert.equal(res.status, 200, res.text);
    }
    const multi = (await w.call("GET", "/role_mappings", w.admin)).json().all_role_mappings;
    assert.deepEqual(multi[ORGS[0]][0], ROLE[0]);
    assert.deepEqual(multi[ORGS[0]][1], ROLE[1]);
    assert.deepEqual(multi[ORGS[1]][0], ROLE[0]);
    assert.deepEqual(multi[ORGS[1]][1], ROLE[2]);
    assert.equal((await w.call("GET", "/role_mappings", w.nonAdminKey)).status, 403);

    // get_aws_config_file again, as a cluster's edge pod; then delete blindly: the third
    // organization has no mapping, and the answer is still 200.
    const edge = await w.call("POST", "/map_iam_roles_to_pod_sa", { ...w.user, ...w.pod }, {
      run_id: RUN,
      irsa_workload_type: "cluster-edge",
    });
    assert.equal(edge.status, 200, edge.text);
    assert.equal(Object.keys(configSections(edge.text)).length, 6);
    assert.deepEqual(await policies(), untouched);
    for (const org of ORGS) {
      const res = await w.call("DELETE", "/delete_role_mapping", w.admin, { domino_org: org });
      assert.equal(res.status, 200, res.text);
    }
    assert.equal(
      Object.keys((await w.call("GET", "/role_mappings", w.admin)).json().all_role_mappings).length,
      0,
    );

    // The flag as the boolean true (a 1.7 recording): irsa edits the proxy role as before.
    const managed = { ...ROLE[0], update_iam_role_trust_policy: true };
    assert.equal((await w.call("POST", "/update_role_mapping", w.admin, managed)).status, 200);
    assert.deepEqual((await w.call("GET", "/my_role_mappings", w.user)).json(), {
      my_role_mappings: [managed],
    });
    const granted = await w.call("POST", "/map_iam_roles_to_pod_sa", { ...w.user, ...w.pod }, {
      run_id: RUN,
    });
    assert.equal(granted.status, 200, granted.text);
    assert.deepEqual(await heldSubjects(iam, world, EXAMPLE.roleNames[0]), [
      `*:${w.compute}:run-${RUN}`,
    ]);

    // A workload type no mutation sets today is accepted, and logged as unknown.
    const unknown = await w.call("POST", "/map_iam_roles_to_pod_sa", { ...w.user, ...w.pod }, {
      run_id: RUN,
      irsa_workload_type: "spark-driver",
    });
    assert.equal(unknown.status, 200, unknown.text);
    assert.ok(
      w.server.logs.some((l) =>
        l.includes('"unknown workload type"') && l.includes("spark-driver")
      ),
    );
    // No line of the log carries a token or an API key.
    for (const secret of [ADMIN_KEY, USER_KEY, w.admin.Authorization.slice(7)]) {
      assert.ok(!w.server.logs.some((l) => l.includes(secret)));
    }
  });
}

Deno.test("values the current service wrote into the ConfigMap read as before, and a rewrite of another organization drops nothing", async () => {
  await using w = await startWorld({ verifier: "domino", store: "configmap" });
  const old = {
    // A 1.7-era value: one object, the flag a boolean, no domino_org.
    [ORGS[0]]: `{"iam_role_arn": "${ROLE[0].iam_role_arn}", "proxy_iam_role_arn": "${
      ROLE[0].proxy_iam_role_arn
    }", "update_iam_role_trust_policy": true}`,
    // A 1.8 value: a list of the posted bodies, the flag a string, an extra key.
    [ORGS[1]]: JSON.stringify([{ ...ROLE[1], note: "kept" }, ROLE[2]]),
  };
  await w.cluster!.setConfigMap(w.field, "domino-org-iamrole-mapping", old);
  const all = (await w.call("GET", "/role_mappings", w.admin)).json().all_role_mappings;
  assert.deepEqual(all, {
    [ORGS[0]]: [{
      domino_org: ORGS[0],
      iam_role_arn: ROLE[0].iam_role_arn,
      proxy_iam_role_arn: ROLE[0].proxy_iam_role_arn,
      update_iam_role_trust_policy: true,
    }],
    [ORGS[1]]: [{ ...ROLE[1], note: "kept" }, ROLE[2]],
  });
  const put = await w.call("POST", "/update_role_mapping", w.admin, ROLE[2]);
  assert.equal(put.status, 200);
  const data = (await w.cluster!.configMap(w.field, "domino-org-iamrole-mapping"))!.data;
  assert.equal(data[ORGS[0]], old[ORGS[0]]);
  assert.equal(data[ORGS[1]], old[ORGS[1]]);
  assert.deepEqual(JSON.parse(data[ORGS[2]]), ROLE[2]);
});

Deno.test("1.8 test notebook: /service_account creates and deletes a per-user ServiceAccount, only irsa's own", async () => {
  await using w = await startWorld({ verifier: "domino", store: "configmap" });
  const cluster = w.cluster!;
  const path = `/api/v1/namespaces/${w.compute}/serviceaccounts`;
  const body = { service_account_name: "fake-sa" };
  // create_sa and delete_sa; a non-admin's key answers 403, as 1.8 recorded.
  assert.equal((await w.call("POST", "/service_account", w.nonAdminKey, body)).status, 403);
  const created = await w.call("POST", "/service_account", w.admin, body);
  assert.equal(created.status, 200, created.text);
  assert.equal(created.json().status, "created");
  const sa = await cluster.must("GET", `${path}/fake-sa`);
  assert.equal(sa.metadata.labels["app.kubernetes.io/managed-by"], "irsa");
  const again = await w.call("POST", "/service_account", w.adminKey, body);
  assert.equal(again.status, 200);
  assert.equal(again.json().status, "exists");
  assert.equal((await w.call("DELETE", "/service_account", w.nonAdminKey, body)).status, 403);
  const deleted = await w.call("DELETE", "/service_account", w.admin, body);
  assert.equal(deleted.status, 200, deleted.text);
  assert.equal(deleted.json().status, "deleted");
  assert.equal((await cluster.request("GET", `${path}/fake-sa`)).status, 404);
  const absent = await w.call("DELETE", "/service_account", w.admin, body);
  assert.equal(absent.status, 200);
  assert.equal(absent.json().status, "absent");

  // A ServiceAccount irsa did not create is never deleted, nor claimed.
  await cluster.createServiceAccount(w.compute, "platform-made");
  const theirs = { service_account_name: "platform-made" };
  for (const method of ["POST", "DELETE"]) {
    const res = await w.call(method, "/service_account", w.admin, theirs);
    assert.equal(res.status, 409, res.text);
    assert.match(res.json().message, /was not created by irsa/);
  }
  assert.equal((await cluster.request("GET", `${path}/platform-made`)).status, 200);
  // A name that is no DNS-1123 label is refused before any call.
  const bad = await w.call("POST", "/service_account", w.admin, {
    service_account_name: "Fake_SA",
  });
  assert.equal(bad.status, 400);
});

Deno.test("per-user service accounts: a pod the mutation ran as another name gets exactly its subject, by run lookup and by its token", async () => {
  const cluster = await sharedKubeApiServer();
  const field = await cluster.createNamespace("field");
  const compute = await cluster.createNamespace("compute");
  const platform = startFakePlatformApi();
  const issuer = await startOidcIssuer();
  platform.addUser({
    token: "user-token-integration-test",
    canonicalName: "integration-test",
    canonicalId: "u-it",
    organizations: [ORGS[0]],
  });
  platform.addUser({
    token: "user-token-boss",
    canonicalName: "boss",
    canonicalId: "u-boss",
    isAdmin: true,
  });
  // The mutation's user_mappings said integration-test: aws-test.
  const pod = `run-${RUN}-xyz12`;
  await cluster.createPod(compute, {
    name: pod,
    labels: {
      "dominodatalab.com/execution-id": RUN,
      "dominodatalab.com/starting-user-id": "u-it",
      "dominodatalab.com/starting-user-username": "integration-test",
    },
    serviceAccountName: "aws-test",
  });
  const server = await startServerProcess(
    [
      "--tls-cert",
      tls.certPath,
      "--tls-key",
      tls.keyPath,
      "--verifier",
      "domino",
      "--user-based-service-accounts",
      ...configMapStoreArgs(cluster),
    ],
    serverEnv(moto, world, issuer, {
      DOMINO_USER_HOST: platform.url,
      DEFAULT_FIELD_NS: field,
      DEFAULT_COMPUTE_NS: compute,
      // Pod tokens are the API server's own, verified against its discovery and JWKS.
      IRSA_CLUSTER_ISSUER: cluster.issuer,
      IRSA_CA_FILE: cluster.caCertPath,
      // The same user_mappings, as the chart gives them to the server.
      IRSA_USER_SERVICE_ACCOUNTS: JSON.stringify({ "integration-test": "aws-test" }),
    }),
    tls.caCert,
  );
  try {
    const user = { Authorization: "Bearer user-token-integration-test" };
    const put = await server.fetch("/update_role_mapping", {
      method: "POST",
      headers: { Authorization: "Bearer user-token-boss" },
      body: JSON.stringify({ ...ROLE[0], update_iam_role_trust_policy: true }),
    });
    assert.equal(put.status, 200);
    await put.body?.cancel();
    const map = async (headers: Record<string, string>) => {
      const res = await server.fetch("/map_iam_roles_to_pod_sa", {
        method: "POST",
        headers: { ...user, ...headers, Accept: "application/json" },
        body: JSON.stringify({ run_id: RUN, irsa_workload_type: "edge-workload" }),
      });
      return { status: res.status, body: await res.json() };
    };
    const lookedUp = await map({});
    assert.equal(lookedUp.status, 200, JSON.stringify(lookedUp.body));
    assert.equal(lookedUp.body.subject, `*:${compute}:aws-test`);
    assert.equal(lookedUp.body.proof, "run-lookup");
    const token = await cluster.tokenRequest(compute, "aws-test", {
      audience: "sts.amazonaws.com",
      pod,
    });
    const byToken = await map({ "X-Irsa-Workload-Token": token });
    assert.equal(byToken.status, 200, JSON.stringify(byToken.body));
    assert.equal(byToken.body.subject, `*:${compute}:aws-test`);
    assert.equal(byToken.body.proof, "workload-token");
    assert.deepEqual(await heldSubjects(iam, world, EXAMPLE.roleNames[0]), [
      `*:${compute}:aws-test`,
    ]);
  } finally {
    await server.stop();
    await platform.close();
    await issuer.close();
  }
});
