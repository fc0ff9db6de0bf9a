/**
 * Issue 10's reproductions 3 to 6, against the real server process over HTTPS with moto as IAM:
 * only roles irsa may edit (the server's account and partition, never its own role), the admin
 * marker matching only its value, organization names Kubernetes refuses, and finished pods.
 */
import assert from "node:assert/strict";
import {
  CreateRoleCommand,
  GetRoleCommand,
  type IAMClient,
  UpdateAssumeRolePolicyCommand,
} from "@aws-sdk/client-iam";
import { AssumeRoleCommand, STSClient } from "@aws-sdk/client-sts";
import {
  EXAMPLE,
  freshProxyTrustPolicy,
  inAccount,
  type Moto,
  MOTO_REGION,
  type SeededWorld,
} from "./fixtures/moto.ts";
import { policySize, startStrictSts } from "./fixtures/strict_sts.ts";
import { sharedKubeApiServer } from "./fixtures/kube_apiserver.ts";
import { type OidcIssuer, startOidcIssuer } from "./fixtures/oidc_issuer.ts";
import type { TestTls } from "./fixtures/tls.ts";
import { type ServerProcess, startServerProcess } from "./server_process.ts";
import { pairJson, serverEnv, strictStsEnv, useMotoWorld } from "./world.ts";

const RUN = "646d27b817c28b5ea4b5b0c1";
const ORG = "irsa-iamrole-list-bucket";
const LIST_ROLE = EXAMPLE.roleNames[0];
/** The server's own role as DESIGN's IAM setup makes it: it trusts irsa's service account. */
const SERVER_ROLE = "irsa-service-role";
const OWN_ARN = `arn:aws:iam::${EXAMPLE.eksAccount}:role/${SERVER_ROLE}`;

let moto: Moto;
let iam: IAMClient;
let tls: TestTls;
let world: SeededWorld;
useMotoWorld((w) => ({ moto, iam, tls, world } = w));

/** A role's trust policy exactly as IAM returns it (URL-encoded), to compare byte for byte. */
async function policyOf(role: string): Promise<string> {
  const out = await iam.send(inAccount(EXAMPLE.eksAccount, new GetRoleCommand({ RoleName: role })));
  return out.Role!.AssumeRolePolicyDocument!;
}

/** Creates the server's role in the EKS account and returns a session of it, as IRSA gives one. */
async function serverRoleSession(): Promise<Record<string, string>> {
  await iam.send(inAccount(
    EXAMPLE.eksAccount,
    new CreateRoleCommand({
      RoleName: SERVER_ROLE,
      AssumeRolePolicyDocument: JSON.stringify({
        Version: "2012-10-17",
        Statement: [{
          Effect: "Allow",
          Principal: { Federated: world.oidcProviderArn },
          Action: "sts:AssumeRoleWithWebIdentity",
          Condition: {
            StringEquals: {
              [`${EXAMPLE.oidcHost}:sub`]: "system:serviceaccount:domino-field:irsa",
              [`${EXAMPLE.oidcHost}:aud`]: "sts.amazonaws.com",
            },
          },
        }],
      }),
    }),
  ));
  const sts = new STSClient({
    region: MOTO_REGION,
    endpoint: moto.endpoint,
    credentials: world.serverCredentials,
  });
  try {
    const { Credentials } = await sts.send(
      new AssumeRoleCommand({
        RoleArn: `arn:aws:iam::${EXAMPLE.eksAccount}:role/${SERVER_ROLE}`,
        RoleSessionName: "irsa",
      }),
    );
    return {
      AWS_ACCESS_KEY_ID: Credentials!.AccessKeyId!,
      AWS_SECRET_ACCESS_KEY: Credentials!.SecretAccessKey!,
      AWS_SESSION_TOKEN: Credentials!.SessionToken!,
    };
  } finally {
    sts.destroy();
  }
}

interface World {
  readonly issuer: OidcIssuer;
  readonly server: ServerProcess;
  readonly admin: Record<string, string>;
  /** A user of ORG, with their pod's projected token as proof. */
  readonly user: Record<string, string>;
  call(method: string, path: string, auth: Record<string, string>, body?: unknown): Promise<{
    status: number;
    // deno-lint-ignore no-explicit-any
    json: any;
  }>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** The server with the jwt verifier and the file store, holding `mappings` (ConfigMap data). */
async function startWorld(
  o: {
    mappings?: Record<string, unknown>;
    env?: Record<string, string>;
    args?: string[];
  } = {},
): Promise<World> {
  const issuer = await startOidcIssuer({ tls: { cert: tls.cert, key: tls.key } });
  const dir = await Deno.makeTempDir();
  const file = `${dir}/mappings.json`;
  await Deno.writeTextFile(
    file,
    JSON.stringify(
      Object.fromEntries(
        Object.entries(o.mappings ?? {}).map(([org, value]) => [org, JSON.stringify(value)]),
      ),
    ),
  );
  let server: ServerProcess;
  try {
    server = await startServerProcess(
      [
        "--tls-cert",
        tls.certPath,
        "--tls-key",
        tls.keyPath,
        "--ca-file",
        tls.caCertPath,
        "--mapping-file",
        file,
        // No run lookup here: the pod's token alone proves the pod, as the admin opts in.
        "--trust-pod-token-alone",
        ...(o.args ?? []),
      ],
      serverEnv(moto, world, issuer, o.env),
      tls.caCert,
    );
  } catch (e) {
    await issuer.close();
    await Deno.remove(dir, { recursive: true });
    throw e;
  }
  const admin = {
    Authorization: `Bearer ${await issuer.userToken({ username: "boss", admin: true })}`,
  };
  const user = {
    Authorization: `Bearer ${await issuer.userToken({ username: "jdoe", groups: [ORG] })}`,
    "X-Irsa-Workload-Token": await issuer.serviceAccountToken({ serviceAccount: `run-${RUN}` }),
  };
  return {
    issuer,
    server,
    admin,
    user,
    async call(method, path, auth, body) {
      const res = await server.fetch(path, {
        method,
        headers: { "Content-Type": "application/json", Accept: "application/json", ...auth },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      let json: unknown = text;
      try {
        json = JSON.parse(text);
      } catch { /* not JSON: keep the text for the assertion message */ }
      return { status: res.status, json };
    },
    async [Symbol.asyncDispose]() {
      await server.stop();
      await issuer.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("a mapping whose proxy role is in another account or partition is refused with 400, and nothing is edited", async () => {
  await using w = await startWorld();
  const before = await policyOf(LIST_ROLE);
  const elsewhere = [
    `arn:aws:iam::333333333333:role/${LIST_ROLE}`,
    `arn:aws-cn:iam::${EXAMPLE.eksAccount}:role/${LIST_ROLE}`,
  ];
  for (const proxy of elsewhere) {
    const one = await w.call("POST", "/update_role_mapping", w.admin, {
      domino_org: ORG,
      ...pairJson(LIST_ROLE),
      proxy_iam_role_arn: proxy,
    });
    assert.equal(one.status, 400, JSON.stringify(one.json));
    assert.match(one.json.message, /proxy_iam_role_arn/);
    assert.ok(one.json.message.includes(JSON.stringify(proxy)), one.json.message);
    assert.match(one.json.message, /not editable/);
    // A pool member elsewhere is refused as well, in a multi-role mapping.
    const pool = await w.call("POST", "/update_multirole_mapping", w.admin, {
      domino_org: ORG,
      role_data: [{
        ...pairJson(LIST_ROLE),
        proxy_iam_role_arns: [pairJson(LIST_ROLE).proxy_iam_role_arn, proxy],
      }],
    });
    assert.equal(pool.status, 400, JSON.stringify(pool.json));
    assert.match(pool.json.message, /proxy_iam_role_arns/);
  }
  const all = await w.call("GET", "/role_mappings", w.admin);
  assert.deepEqual(all.json, { all_role_mappings: {} });
  // Had it been stored, a run start would have edited the same-named role of the EKS account.
  const start = await w.call("POST", "/map_iam_roles_to_pod_sa", w.user, { run_id: RUN });
  assert.equal(start.status, 200, JSON.stringify(start.json));
  assert.equal(await policyOf(LIST_ROLE), before);
});

Deno.test("a pool of more than 50 proxy roles answers 400 naming its size and the limit, and nothing is stored", async () => {
  await using w = await startWorld();
  const members = Array.from(
    { length: 51 },
    (_, i) => `arn:aws:iam::${EXAMPLE.eksAccount}:role/pool-member-${i}`,
  );
  const res = await w.call("POST", "/update_multirole_mapping", w.admin, {
    domino_org: ORG,
    role_data: [{ ...pairJson(LIST_ROLE), proxy_iam_role_arns: members }],
  });
  assert.equal(res.status, 400, JSON.stringify(res.json));
  assert.match(res.json.message, /proxy_iam_role_arns holds 51 roles; a pool holds at most 50/);
  const all = await w.call("GET", "/role_mappings", w.admin);
  assert.deepEqual(all.json, { all_role_mappings: {} });
});

Deno.test("a stored mapping (old data) whose proxy role is in another account is never edited", async () => {
  const foreign = `arn:aws:iam::333333333333:role/${LIST_ROLE}`;
  await using w = await startWorld({
    mappings: { [ORG]: { ...pairJson(LIST_ROLE), proxy_iam_role_arn: foreign } },
  });
  const before = await policyOf(LIST_ROLE);
  const start = await w.call("POST", "/map_iam_roles_to_pod_sa", w.user, { run_id: RUN });
  assert.equal(start.status, 400, JSON.stringify(start.json));
  assert.equal(start.json.code, "role_not_editable");
  assert.ok(start.json.message.includes(JSON.stringify(foreign)), start.json.message);
  assert.equal(await policyOf(LIST_ROLE), before);
});

Deno.test("the server's own role, learned from STS: a mapping to it is refused with 400", async () => {
  const session = await serverRoleSession();
  const before = await policyOf(SERVER_ROLE);
  await using w = await startWorld({ env: session });
  const put = await w.call("POST", "/update_role_mapping", w.admin, {
    domino_org: ORG,
    ...pairJson(LIST_ROLE),
    proxy_iam_role_arn: OWN_ARN,
  });
  assert.equal(put.status, 400, JSON.stringify(put.json));
  assert.match(put.json.message, /server's own role/);
  assert.equal(await policyOf(SERVER_ROLE), before);
});

Deno.test("the server's own role in old data: a run start and a stop leave its policy byte for byte", async () => {
  const session = await serverRoleSession();
  const before = await policyOf(SERVER_ROLE);
  await using w = await startWorld({
    env: session,
    mappings: {
      [ORG]: [pairJson(LIST_ROLE), {
        ...pairJson(LIST_ROLE, "acme-read-bucket-role"),
        proxy_iam_role_arn: OWN_ARN,
      }],
    },
  });
  const start = await w.call("POST", "/map_iam_roles_to_pod_sa", w.user, { run_id: RUN });
  assert.equal(start.status, 200, JSON.stringify(start.json));
  const own = start.json.roles.find((r: { proxy_iam_role_arn: string }) =>
    r.proxy_iam_role_arn === OWN_ARN
  );
  assert.equal(own.status, "failed", JSON.stringify(own));
  assert.equal(own.error.code, "role_not_editable");
  // The other pair still works: one role failing does not hide the others.
  assert.equal(start.json.roles[0].status, "added");
  const stop = await w.call("DELETE", "/map_iam_roles_to_pod_sa", w.user, { run_id: RUN });
  assert.equal(stop.status, 200, JSON.stringify(stop.json));
  assert.equal(await policyOf(SERVER_ROLE), before);
});

Deno.test("the server's own role named by a setting is never editable, with plain IAM user credentials", async () => {
  await using w = await startWorld({ args: ["--server-role-name", LIST_ROLE] });
  const put = await w.call("POST", "/update_role_mapping", w.admin, {
    domino_org: ORG,
    ...pairJson(LIST_ROLE),
  });
  assert.equal(put.status, 400, JSON.stringify(put.json));
  assert.match(put.json.message, /server's own role/);
});

Deno.test("a boolean admin claim does not make an admin: mapping writes answer 403", async () => {
  await using w = await startWorld();
  const token = await w.issuer.userToken({
    username: "mallory",
    extraClaims: { realm_access: { roles: true } },
  });
  const put = await w.call("POST", "/update_role_mapping", { Authorization: `Bearer ${token}` }, {
    domino_org: ORG,
    ...pairJson(LIST_ROLE),
  });
  assert.equal(put.status, 403, JSON.stringify(put.json));
  const multi = await w.call(
    "POST",
    "/update_multirole_mapping",
    { Authorization: `Bearer ${token}` },
    { domino_org: ORG, role_data: [pairJson(LIST_ROLE)] },
  );
  assert.equal(multi.status, 403, JSON.stringify(multi.json));
  assert.deepEqual((await w.call("GET", "/role_mappings", w.admin)).json, {
    all_role_mappings: {},
  });
});

Deno.test("organization names Kubernetes refuses as ConfigMap keys answer 400 naming the rule", async () => {
  await using w = await startWorld();
  for (const org of [".", "..", "..x"]) {
    const put = await w.call("POST", "/update_role_mapping", w.admin, {
      domino_org: org,
      ...pairJson(LIST_ROLE),
    });
    assert.equal(put.status, 400, org);
    assert.match(put.json.message, /domino_org must not be "\." or start with "\.\."/, org);
    const multi = await w.call("POST", "/update_multirole_mapping", w.admin, {
      domino_org: org,
      role_data: [pairJson(LIST_ROLE)],
    });
    assert.equal(multi.status, 400, org);
  }
  assert.deepEqual((await w.call("GET", "/role_mappings", w.admin)).json, {
    all_role_mappings: {},
  });
});

Deno.test("only Pending and Running pods prove a run: Succeeded and Failed ones answer 403", async () => {
  const cluster = await sharedKubeApiServer();
  const field = await cluster.createNamespace("field");
  const compute = await cluster.createNamespace("compute");
  const runs = {
    running: "646d27b817c28b5ea4b5b0a1",
    succeeded: "646d27b817c28b5ea4b5b0a2",
    failed: "646d27b817c28b5ea4b5b0a3",
  };
  for (const [phase, run] of Object.entries(runs)) {
    const name = `run-${run}-abcde`;
    await cluster.createPod(compute, {
      name,
      labels: {
        "dominodatalab.com/execution-id": run,
        "dominodatalab.com/starting-user-id": "u-jdoe",
        "dominodatalab.com/starting-user-username": "jdoe",
      },
      serviceAccountName: `run-${run}`,
    });
    await cluster.setPodPhase(compute, name, phase[0].toUpperCase() + phase.slice(1));
  }
  await using w = await startWorld({
    mappings: { [ORG]: pairJson(LIST_ROLE) },
    args: [
      "--kubernetes-api",
      cluster.url,
      "--kubernetes-token-file",
      cluster.adminTokenFile,
      "--kubernetes-ca-file",
      cluster.caCertPath,
    ],
    env: { DEFAULT_FIELD_NS: field, DEFAULT_COMPUTE_NS: compute },
  });
  // The run lookup alone, as today's sidecar proves a pod: the bearer token and the run id.
  const user = { Authorization: w.user.Authorization };
  const ok = await w.call("POST", "/map_iam_roles_to_pod_sa", user, { run_id: runs.running });
  assert.equal(ok.status, 200, JSON.stringify(ok.json));
  for (const run of [runs.succeeded, runs.failed]) {
    const ended = await w.call("POST", "/map_iam_roles_to_pod_sa", user, { run_id: run });
    assert.equal(ended.status, 403, JSON.stringify(ended.json));
  }
  const held = (await w.call("GET", "/capacity", w.admin)).json.roles[0];
  assert.equal(held.subjects, 1);
});

Deno.test("a prefix or a list of names narrows the editable set; a write outside it names the setting", async () => {
  await using w = await startWorld({
    args: ["--proxy-role-prefix", "acme-list-", "--proxy-role-names", "acme-update-bucket-role"],
  });
  for (const name of [LIST_ROLE, "acme-update-bucket-role"]) {
    const put = await w.call("POST", "/update_role_mapping", w.admin, {
      domino_org: ORG,
      ...pairJson(name),
    });
    assert.equal(put.status, 200, JSON.stringify(put.json));
  }
  const before = await policyOf("acme-read-bucket-role");
  const put = await w.call("POST", "/update_multirole_mapping", w.admin, {
    domino_org: ORG,
    role_data: [pairJson(LIST_ROLE), pairJson("acme-read-bucket-role")],
  });
  assert.equal(put.status, 400, JSON.stringify(put.json));
  assert.equal(
    put.json.message,
    'Invalid field "role_data[1].proxy_iam_role_arn": Role "arn:aws:iam::111111111111:role/acme-read-bucket-role" is not editable by irsa: its name "acme-read-bucket-role" must start with "acme-list-" (--proxy-role-prefix) or be one of "acme-update-bucket-role" (--proxy-role-names)',
  );
  // An unmanaged pair is stored: irsa never reads or writes its proxy role.
  const unmanaged = await w.call("POST", "/update_role_mapping", w.admin, {
    domino_org: ORG,
    ...pairJson("acme-read-bucket-role"),
    update_iam_role_trust_policy: "false",
  });
  assert.equal(unmanaged.status, 200, JSON.stringify(unmanaged.json));
  const start = await w.call("POST", "/map_iam_roles_to_pod_sa", w.user, { run_id: RUN });
  assert.equal(start.status, 200, JSON.stringify(start.json));
  assert.equal(start.json.roles[0].status, "unmanaged");
  assert.equal(await policyOf("acme-read-bucket-role"), before);
});

Deno.test("a configured account that is not the credentials' own stops the server at start", async () => {
  const issuer = await startOidcIssuer({ tls: { cert: tls.cert, key: tls.key } });
  try {
    await assert.rejects(
      startServerProcess(
        ["--insecure-http", "--proxy-role-account", "333333333333"],
        serverEnv(moto, world, issuer),
      ),
      /The account of the editable proxy roles is \\"333333333333\\" \(--proxy-role-account\), but the server's credentials are in account \\"111111111111\\"/,
    );
  } finally {
    await issuer.close();
  }
});

Deno.test("without STS, the server starts only with the account and partition set", async () => {
  const issuer = await startOidcIssuer({ tls: { cert: tls.cert, key: tls.key } });
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const noSts = `http://127.0.0.1:${(closed.addr as Deno.NetAddr).port}`;
  closed.close();
  const env = serverEnv(moto, world, issuer, {
    AWS_ENDPOINT_URL_STS: noSts,
    IRSA_IAM_TIMEOUT_MS: "1000",
  });
  try {
    await assert.rejects(
      startServerProcess(["--insecure-http"], env),
      /Cannot learn the server's own AWS identity from STS GetCallerIdentity/,
    );
    const server = await startServerProcess([
      "--insecure-http",
      "--proxy-role-account",
      EXAMPLE.eksAccount,
      "--proxy-role-partition",
      "aws",
      "--server-role-name",
      SERVER_ROLE,
    ], env);
    try {
      const health = await server.fetch("/healthz");
      await health.body?.cancel();
      assert.equal(health.status, 200);
      const set = server.logs.map((l) => JSON.parse(l)).find((l) =>
        l.msg === "editable proxy roles"
      );
      assert.deepEqual(
        [set.account, set.partition, set.never],
        [EXAMPLE.eksAccount, "aws", [SERVER_ROLE]],
      );
    } finally {
      assert.equal(await server.stop(), 0);
    }
  } finally {
    await issuer.close();
  }
});

Deno.test("a role of the account that restricts sub with StringEquals is never given a StringLike statement next to it", async () => {
  // Another application's IRSA role: inside the editable set (no prefix or list), not a proxy role.
  const other = "other-app-role";
  await iam.send(inAccount(
    EXAMPLE.eksAccount,
    new CreateRoleCommand({
      RoleName: other,
      AssumeRolePolicyDocument: JSON.stringify({
        Version: "2012-10-17",
        Statement: [{
          Effect: "Allow",
          Principal: { Federated: world.oidcProviderArn },
          Action: "sts:AssumeRoleWithWebIdentity",
          Condition: {
            StringEquals: { [`${EXAMPLE.oidcHost}:sub`]: "system:serviceaccount:apps:reporter" },
          },
        }],
      }),
    }),
  ));
  const before = await policyOf(other);
  await using w = await startWorld({
    mappings: {
      [ORG]: {
        ...pairJson(LIST_ROLE),
        proxy_iam_role_arn: `arn:aws:iam::${EXAMPLE.eksAccount}:role/${other}`,
      },
    },
  });
  const start = await w.call("POST", "/map_iam_roles_to_pod_sa", w.user, { run_id: RUN });
  assert.equal(start.status, 400, JSON.stringify(start.json));
  assert.equal(start.json.code, "invalid_policy");
  assert.match(
    start.json.message,
    /restricts ".*:sub" with StringEquals, and irsa would add a StringLike statement next to it/,
  );
  assert.equal(await policyOf(other), before);
});

/** Fills `role`'s trust policy in moto with subjects as long as `subject`, until one more would not fit `quota`. */
async function fillToQuota(role: string, subject: string, quota: number): Promise<void> {
  const document = (n: number) => {
    const policy = JSON.parse(freshProxyTrustPolicy(world.oidcProviderArn, EXAMPLE.oidcHost));
    policy.Statement[0].Condition.StringLike[`${EXAMPLE.oidcHost}:sub`] = Array.from(
      { length: n },
      (_, i) => subject.replace(/.{4}$/, String(i).padStart(4, "0")),
    );
    return JSON.stringify(policy);
  };
  let n = 1;
  while (policySize(document(n + 1)) <= quota) n++;
  await iam.send(inAccount(
    EXAMPLE.eksAccount,
    new UpdateAssumeRolePolicyCommand({ RoleName: role, PolicyDocument: document(n) }),
  ));
}

Deno.test("a start that would overflow a proxy role is refused by irsa's own quota check before IAM's", async () => {
  const subject = `*:domino-compute:run-${RUN}`;
  await fillToQuota(LIST_ROLE, subject, 2048);
  const sts = startStrictSts({ motoEndpoint: moto.endpoint });
  try {
    const updates = async (w: World) => {
      const metrics = await (await w.server.fetch("/metrics")).text();
      return [...metrics.matchAll(
        /irsa_iam_calls_total\{operation="UpdateAssumeRolePolicy",outcome="([^"]+)"\} (\d+)/g,
      )].map((m) => `${m[1]} ${m[2]}`);
    };
    {
      // IAM's quota (the strict IAM's, 2048) is irsa's default: irsa refuses without writing.
      await using w = await startWorld({
        mappings: { [ORG]: pairJson(LIST_ROLE) },
        env: strictStsEnv(sts.endpoint),
      });
      const start = await w.call("POST", "/map_iam_roles_to_pod_sa", w.user, { run_id: RUN });
      assert.equal(start.status, 409, JSON.stringify(start.json));
      assert.equal(start.json.code, "policy_quota_exceeded");
      assert.match(
        start.json.message,
        /the policy would be \d+ characters, over its quota of 2048/,
      );
      assert.deepEqual(await updates(w), []);
    }
    {
      // With irsa's quota set above IAM's, the write reaches IAM, which refuses it as AWS does.
      await using w = await startWorld({
        mappings: { [ORG]: pairJson(LIST_ROLE) },
        env: strictStsEnv(sts.endpoint),
        args: ["--trust-policy-quota", "4096"],
      });
      const start = await w.call("POST", "/map_iam_roles_to_pod_sa", w.user, { run_id: RUN });
      assert.equal(start.status, 409, JSON.stringify(start.json));
      assert.equal(start.json.code, "policy_quota_exceeded");
      assert.match(start.json.message, /over its IAM size quota of 2048 characters/);
      assert.deepEqual(await updates(w), ["policy_quota_exceeded 1"]);
    }
  } finally {
    await sts.close();
  }
});
