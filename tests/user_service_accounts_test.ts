/**
 * Per-user service accounts are tied to their user: the real server process over HTTPS (domino
 * verifier, ConfigMap store), moto for IAM, a real kube-apiserver for the run pods, their tokens,
 * the mappings and the grant record. A run of one user whose pod runs as another user's service
 * account (a platform mis-assignment, or anyone who may create pods in the compute namespace) gets
 * nothing, even while that other user has no live pod, and its refused start, sync and stop change
 * nothing: not a trust policy, not the grant record.
 */
import assert from "node:assert/strict";
import { GetRoleCommand, type IAMClient } from "@aws-sdk/client-iam";
import { startFakePlatformApi } from "./fakes/platform_api.ts";
import { sharedKubeApiServer } from "./fixtures/kube_apiserver.ts";
import { EXAMPLE, inAccount, type Moto, type SeededWorld } from "./fixtures/moto.ts";
import { startOidcIssuer } from "./fixtures/oidc_issuer.ts";
import type { TestTls } from "./fixtures/tls.ts";
import { startServerProcess } from "./server_process.ts";
import { configMapStoreArgs, heldSubjects, pairJson, serverEnv, useMotoWorld } from "./world.ts";

const RUN_A = "646d27b817c28b5ea4b5b0c1";
const RUN_B = "646f604955daf764547c5b77";
const RUN_C = "6470c0ffee0123456789abcd";
const ORGS = ["irsa-iamrole-list-bucket", "irsa-iamrole-read-bucket", "irsa-iamrole-update-bucket"];

let moto: Moto;
let iam: IAMClient;
let tls: TestTls;
let world: SeededWorld;
useMotoWorld((w) => ({ moto, iam, tls, world } = w));

/** The example proxy roles' trust policies, exactly as IAM returns them. */
async function policies(): Promise<string[]> {
  return await Promise.all(EXAMPLE.roleNames.map(async (name) => {
    const out = await iam.send(
      inAccount(EXAMPLE.eksAccount, new GetRoleCommand({ RoleName: name })),
    );
    return out.Role!.AssumeRolePolicyDocument!;
  }));
}

/** jdoe and bob with per-user service accounts, the server with the chart's user mappings. */
async function startWorld(userServiceAccounts: Record<string, string>) {
  const cluster = await sharedKubeApiServer();
  const field = await cluster.createNamespace("field");
  const compute = await cluster.createNamespace("compute");
  const platform = startFakePlatformApi();
  const issuer = await startOidcIssuer();
  platform.addUser({
    token: "user-token-jdoe",
    canonicalName: "jdoe",
    canonicalId: "u-jdoe",
    organizations: [ORGS[0], ORGS[1]],
  });
  platform.addUser({
    token: "user-token-bob",
    canonicalName: "bob",
    canonicalId: "u-bob",
    organizations: [ORGS[2]],
  });
  platform.addUser({
    token: "user-token-boss",
    canonicalName: "boss",
    canonicalId: "u-boss",
    isAdmin: true,
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
      IRSA_CLUSTER_ISSUER: cluster.issuer,
      IRSA_CA_FILE: cluster.caCertPath,
      IRSA_CLEANUP_INTERVAL_SECONDS: "0",
      IRSA_USER_SERVICE_ACCOUNTS: JSON.stringify(userServiceAccounts),
    }),
    tls.caCert,
  );
  const call = async (
    method: string,
    path: string,
    user: string,
    body: unknown,
    headers: Record<string, string> = {},
  ) => {
    const res = await server.fetch(path, {
      method,
      headers: {
        Authorization: `Bearer user-token-${user}`,
        Accept: "application/json",
        ...headers,
      },
      body: JSON.stringify(body),
    });
    return { status: res.status, json: await res.json() };
  };
  for (const [i, org] of ORGS.entries()) {
    const put = await call("POST", "/update_role_mapping", "boss", {
      domino_org: org,
      ...pairJson(EXAMPLE.roleNames[i]),
      update_iam_role_trust_policy: true,
    });
    assert.equal(put.status, 200, JSON.stringify(put.json));
  }
  /** A run pod as the platform labels it, running as `serviceAccount`. */
  const runPod = async (runId: string, user: string, serviceAccount: string) => {
    const name = `run-${runId}-pod01`;
    await cluster.createPod(compute, {
      name,
      labels: {
        "dominodatalab.com/execution-id": runId,
        "dominodatalab.com/starting-user-id": `u-${user}`,
        "dominodatalab.com/starting-user-username": user,
      },
      serviceAccountName: serviceAccount,
    });
    return name;
  };
  const grantRecord = async () => (await cluster.configMap(field, "irsa-grants"))?.data;
  return {
    cluster,
    compute,
    call,
    runPod,
    grantRecord,
    subjects: (role: string) => heldSubjects(iam, world, role),
    async [Symbol.asyncDispose]() {
      await server.stop();
      await platform.close();
      await issuer.close();
    },
  };
}

Deno.test("a run whose pod runs as another user's service account gets nothing, while that user has no live pod", async () => {
  await using w = await startWorld({});
  const [listRole, readRole, updateRole] = EXAMPLE.roleNames;
  // bob's own run, as his own account: granted; then it ends. His account keeps its subject (the
  // next run of his is on the same account), and no live pod runs as it now.
  const bobsPod = await w.runPod(RUN_B, "bob", "bob");
  const bobs = await w.call("POST", "/map_iam_roles_to_pod_sa", "bob", { run_id: RUN_B });
  assert.equal(bobs.status, 200, JSON.stringify(bobs.json));
  const bobSubject = `*:${w.compute}:bob`;
  assert.equal(bobs.json.subject, bobSubject);
  await w.cluster.deletePod(w.compute, bobsPod);

  // jdoe's run, whose pod the platform (or anyone who may create pods there) ran as "bob".
  const jdoesPod = await w.runPod(RUN_A, "jdoe", "bob");
  const before = { policies: await policies(), record: await w.grantRecord() };
  assert.deepEqual(await w.subjects(updateRole), [bobSubject]);

  const start = await w.call("POST", "/map_iam_roles_to_pod_sa", "jdoe", { run_id: RUN_A });
  assert.equal(start.status, 403, JSON.stringify(start.json));
  assert.match(start.json.message, /"bob"/);
  assert.match(start.json.message, /"jdoe"/);
  assert.match(start.json.message, /user mappings|--user-service-accounts/);
  // By the pod's own token too: it proves which pod calls, not that its account is jdoe's.
  const token = await w.cluster.tokenRequest(w.compute, "bob", { pod: jdoesPod });
  const byToken = await w.call("POST", "/map_iam_roles_to_pod_sa", "jdoe", { run_id: RUN_A }, {
    "X-Irsa-Workload-Token": token,
  });
  assert.equal(byToken.status, 403, JSON.stringify(byToken.json));
  assert.match(byToken.json.message, /"bob"/);
  // Nor can jdoe's stop take bob's subject away.
  const stop = await w.call("DELETE", "/map_iam_roles_to_pod_sa", "jdoe", { run_id: RUN_A });
  assert.equal(stop.status, 403, JSON.stringify(stop.json));

  // Nothing changed: bob keeps his role, jdoe's roles never reached bob's account.
  assert.deepEqual(await policies(), before.policies);
  assert.deepEqual(await w.grantRecord(), before.record);
  assert.deepEqual(await w.subjects(listRole), []);
  assert.deepEqual(await w.subjects(readRole), []);
  assert.deepEqual(await w.subjects(updateRole), [bobSubject]);
});

Deno.test("an account is the user's when named as the user or by the chart's user mappings, and no one else's", async () => {
  await using w = await startWorld({ "integration-test": "aws-test", bob: "team-b" });
  const [listRole] = EXAMPLE.roleNames;
  // jdoe, unmapped, runs as "jdoe": granted.
  await w.runPod(RUN_A, "jdoe", "jdoe");
  const own = await w.call("POST", "/map_iam_roles_to_pod_sa", "jdoe", { run_id: RUN_A });
  assert.equal(own.status, 200, JSON.stringify(own.json));
  assert.equal(own.json.subject, `*:${w.compute}:jdoe`);
  // bob is mapped to "team-b": a run of his as "bob" is not the platform's doing, and is refused;
  // the message says which account the mapping gives him.
  await w.runPod(RUN_B, "bob", "bob");
  const unmapped = await w.call("POST", "/map_iam_roles_to_pod_sa", "bob", { run_id: RUN_B });
  assert.equal(unmapped.status, 403, JSON.stringify(unmapped.json));
  assert.match(unmapped.json.message, /"team-b"/);
  // jdoe's run on integration-test's mapped account: refused.
  await w.runPod(RUN_C, "jdoe", "aws-test");
  const mapped = await w.call("POST", "/map_iam_roles_to_pod_sa", "jdoe", { run_id: RUN_C });
  assert.equal(mapped.status, 403, JSON.stringify(mapped.json));
  assert.match(mapped.json.message, /"aws-test"/);
  assert.deepEqual(await w.subjects(listRole), [`*:${w.compute}:jdoe`]);
});
