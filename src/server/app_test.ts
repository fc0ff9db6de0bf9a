import assert from "node:assert/strict";
import { createApp } from "./app.ts";
import type { RunLookup, RunPod } from "../kube/run_lookup.ts";
import type { ServiceAccountAdmin } from "../kube/service_accounts.ts";
import { createJwtVerifier } from "../auth/jwt_verifier.ts";
import { createWorkloadVerifier } from "../auth/workload_verifier.ts";
import { ROLE_ARN_MAX_LENGTH, ROLE_ARN_PATTERN } from "../core/arn.ts";
import { editTrustPolicy, subjectsOf } from "../core/trust_policy.ts";
import { AppError } from "../lib/errors.ts";
import { ApiDescription } from "../http/openapi.ts";
import { silentLogger } from "../lib/log.ts";
import { createServerMetrics } from "../observe/metrics.ts";
import { createFileStore } from "../store/file_store.ts";
import { createFileGrantStore } from "../store/grant_store.ts";
import { createTrustEditor } from "../trust/trust_editor.ts";
import { FakeIamRoles } from "../../tests/fakes/iam_roles.ts";
import { Conformance, KEYWORDS } from "../../tests/openapi_conformance.ts";
import { startOidcIssuer } from "../../tests/fixtures/oidc_issuer.ts";
import { sharedKubeApiServer } from "../../tests/fixtures/kube_apiserver.ts";

const HOST = "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
const RUN = "646d27b817c28b5ea4b5b0c1";
const OTHER_RUN = "646f604955daf764547c5b77";
const FRESH = Deno.readTextFileSync(
  new URL("../../tests/testdata/fresh_proxy_trust_policy.json", import.meta.url),
);
const ROLES = ["acme-list-bucket-role", "acme-read-bucket-role", "acme-update-bucket-role"];
const pairOf = (role: string) => ({
  iam_role_arn: `arn:aws:iam::222222222222:role/${role}`,
  proxy_iam_role_arn: `arn:aws:iam::111111111111:role/${role}`,
});
const MAPPINGS = {
  "irsa-iamrole-list-bucket": JSON.stringify(pairOf(ROLES[0])),
  "irsa-iamrole-read-bucket": JSON.stringify([pairOf(ROLES[1]), pairOf(ROLES[2])]),
  "broken-org": "{not json",
};
const JDOE_POD: RunPod = {
  name: `run-${RUN}-abcde`,
  serviceAccountName: `run-${RUN}`,
  startingUsername: "jdoe",
  phase: "Running",
};
const OPTS = {
  providerArn: `arn:aws:iam::111111111111:oidc-provider/${HOST}`,
  audience: "sts.amazonaws.com",
  format: "wildcard" as const,
  quota: 2048,
};

/**
 * One world per test: the user issuer, verifiers, file store, fake IAM, and the app. Pod tokens
 * come from the real API server's TokenRequest API (shared by this file's tests), for Pending pods
 * in domino-compute; the workload verifier reads that API server's discovery and JWKS. The run
 * lookup answers `pods` (jdoe's run RUN by default).
 */
async function world(
  pods: Record<string, RunPod[]> = {},
  options: {
    userBasedServiceAccounts?: boolean;
    serviceAccounts?: ServiceAccountAdmin;
    userServiceAccounts?: Record<string, string>;
  } = {},
) {
  const issuer = await startOidcIssuer();
  const cluster = await sharedKubeApiServer();
  const compute = await cluster.createNamespace("domino-compute", { exact: true });
  // A pod's token: the run's pod `run-<id>-abcde` as `run-<id>`, or a given pod and account.
  const podToken = async (
    runId: string,
    serviceAccount = `run-${runId}`,
    name = `run-${runId}-abcde`,
  ) => {
    // Another test of this file may have made the pod already.
    await cluster.createServiceAccount(compute, serviceAccount);
    const created = await cluster.request("POST", `/api/v1/namespaces/${compute}/pods`, {
      metadata: { name },
      spec: {
        serviceAccountName: serviceAccount,
        containers: [{ name: "run", image: "registry.invalid/run:1" }],
      },
    });
    if (created.status !== 201 && created.status !== 409) {
      throw new Error(`Cannot create pod ${name}: HTTP ${created.status}`);
    }
    return await cluster.tokenRequest(compute, serviceAccount, { pod: name });
  };
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/mappings.json`, JSON.stringify(MAPPINGS));
  const users = createJwtVerifier({
    issuer: issuer.issuer,
    jwksUrl: issuer.jwksUri,
    timeoutMs: 2000,
  });
  const workloads = createWorkloadVerifier({
    issuer: cluster.issuer,
    audience: "sts.amazonaws.com",
    caCert: cluster.caCert,
    timeoutMs: 2000,
  });
  const iam = new FakeIamRoles();
  for (const role of ROLES) iam.policies.set(role, FRESH);
  const metrics = createServerMetrics();
  // jdoe's run, whose pod the world's pod token (`sa`) belongs to, unless a test says otherwise.
  const runPods: Record<string, RunPod[]> = { [RUN]: [JDOE_POD], ...pods };
  const runs: RunLookup = {
    findRunPods: (id) => Promise.resolve(runPods[id] ?? []),
    findPodsRunningAs: (name) =>
      Promise.resolve(Object.values(runPods).flat().filter((p) => p.serviceAccountName === name)),
  };
  const editor = createTrustEditor({
    roles: iam,
    oidcProvider: HOST,
    audience: "sts.amazonaws.com",
    format: "wildcard",
    quota: 2048,
    logger: silentLogger,
    metrics,
  });
  const app = createApp({
    users,
    workloads,
    runs,
    serviceAccounts: options.serviceAccounts,
    store: createFileStore(`${dir}/mappings.json`),
    grants: createFileGrantStore(`${dir}/irsa-grants.json`),
    now: () => Date.now(),
    editor,
    ownership: {
      computeNamespace: "domino-compute",
      runIdPattern: /^[0-9a-f]{24}$/,
      userBasedServiceAccounts: options.userBasedServiceAccounts ?? false,
      // The platform's user mappings, as the chart gives them to the mutation and the server: the
      // mutation runs jdoe's pods as "aws-test".
      userServiceAccounts: new Map(
        Object.entries(options.userServiceAccounts ?? { jdoe: "aws-test" }),
      ),
      trustPodTokenAlone: false,
      format: "wildcard",
    },
    webIdentityTokenFile: "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
    logger: silentLogger,
    metrics,
    api: new ApiDescription(),
  });
  const jdoe = await issuer.userToken({
    username: "jdoe",
    groups: ["irsa-iamrole-list-bucket", "irsa-iamrole-read-bucket"],
  });
  const admin = await issuer.userToken({ username: "boss", admin: true });
  const sa = await podToken(RUN);
  // Every answer a test receives is checked against the app's own /openapi.json.
  const conformance = new Conformance(await (await app.request("/openapi.json")).json());
  const call = async (
    method: string,
    path: string,
    opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
  ) => {
    const res = await app.request(path, {
      method,
      headers: {
        ...(opts.token ? { Authorization: `Bearer ${opts.token}` } : {}),
        ...(opts.body !== undefined ? { "Content-Type": "application/json" } : {}),
        ...opts.headers,
      },
      body: opts.body === undefined
        ? undefined
        : typeof opts.body === "string"
        ? opts.body
        : JSON.stringify(opts.body),
    });
    await conformance.checkResponse(
      method,
      path,
      res,
      typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body),
    );
    return res;
  };
  return {
    app,
    conformance,
    issuer,
    iam,
    metrics,
    call,
    jdoe,
    admin,
    sa,
    podToken,
    mappingsFile: `${dir}/mappings.json`,
    grantsFile: `${dir}/irsa-grants.json`,
    subjects: (role: string) => subjectsOf(iam.policies.get(role)!, OPTS),
    async [Symbol.asyncDispose]() {
      users.close();
      workloads.close();
      await issuer.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const SUBJECT = `*:domino-compute:run-${RUN}`;

Deno.test("healthz answers without a token", async () => {
  await using w = await world();
  const res = await w.call("GET", "/healthz");
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { status: "Healthy" });
});

Deno.test("map with the pod's token adds its subject and answers the config file as text", async () => {
  await using w = await world();
  const res = await w.call("POST", "/map_iam_roles_to_pod_sa", {
    token: w.jdoe,
    body: { run_id: RUN },
    headers: { "X-Irsa-Workload-Token": w.sa },
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type")!, /^text\/plain/);
  const text = await res.text();
  for (const role of ROLES) {
    assert.match(
      text,
      new RegExp(
        `\\[profile ${role}\\]\\nsource_profile = src_${role}\\nrole_arn = arn:aws:iam::222222222222:role/${role}\\n`,
      ),
    );
    assert.deepEqual(w.subjects(role), [SUBJECT]);
  }
});

Deno.test("map answers per-role outcomes in JSON, and a second map finds the subjects present", async () => {
  await using w = await world();
  const req = {
    token: w.jdoe,
    body: {},
    headers: { "X-Irsa-Workload-Token": w.sa, Accept: "application/json" },
  };
  const first = await (await w.call("POST", "/map_iam_roles_to_pod_sa", req)).json();
  assert.equal(first.subject, SUBJECT);
  assert.equal(first.run_id, RUN);
  assert.deepEqual(first.roles.map((r: { status: string }) => r.status), [
    "added",
    "added",
    "added",
  ]);
  const second = await (await w.call("POST", "/map_iam_roles_to_pod_sa", req)).json();
  assert.deepEqual(second.roles.map((r: { status: string }) => r.status), [
    "present",
    "present",
    "present",
  ]);
  assert.equal(second.roles[0].profile, "acme-list-bucket-role");
  assert.equal(second.roles[0].source_profile, "src_acme-list-bucket-role");
});

Deno.test("a run_id alone is proven by the run's pod and its starting user", async () => {
  await using w = await world({
    [RUN]: [{ name: `run-${RUN}-x`, serviceAccountName: `run-${RUN}`, startingUsername: "jdoe" }],
    [OTHER_RUN]: [{
      name: `run-${OTHER_RUN}-x`,
      serviceAccountName: `run-${OTHER_RUN}`,
      startingUsername: "mallory",
    }],
  });
  const ok = await w.call("POST", "/map_iam_roles_to_pod_sa", {
    token: w.jdoe,
    body: { run_id: RUN },
  });
  assert.equal(ok.status, 200);
  assert.deepEqual(w.subjects(ROLES[0]), [SUBJECT]);
  const theirs = await w.call("POST", "/map_iam_roles_to_pod_sa", {
    token: w.jdoe,
    body: { run_id: OTHER_RUN },
  });
  assert.equal(theirs.status, 403);
  const refusal = (await theirs.json()).message;
  assert.match(refusal, /has no live pod started by "jdoe"/);
  const missing = await w.call("POST", "/map_iam_roles_to_pod_sa", {
    token: w.jdoe,
    body: { run_id: "0".repeat(24) },
  });
  assert.equal(missing.status, 403);
  // No oracle: another user's live run and a run that does not exist answer alike.
  assert.equal(
    (await missing.json()).message,
    refusal.replace(OTHER_RUN, "0".repeat(24)),
  );
  assert.deepEqual(w.subjects(ROLES[0]), [SUBJECT]);
});

Deno.test("a workload token must agree with run_id, and a run_id must match the pattern", async () => {
  await using w = await world();
  const mismatch = await w.call("POST", "/map_iam_roles_to_pod_sa", {
    token: w.jdoe,
    body: { run_id: OTHER_RUN },
    headers: { "X-Irsa-Workload-Token": w.sa },
  });
  assert.equal(mismatch.status, 403);
  for (const bad of ["*", `${RUN}*`, "../../x", RUN.toUpperCase()]) {
    const res = await w.call("POST", "/map_iam_roles_to_pod_sa", {
      token: w.jdoe,
      body: { run_id: bad },
    });
    assert.equal(res.status, 400, bad);
    assert.match((await res.json()).message, /Invalid field "run_id": run_id must match/);
  }
  const userToken = await w.call("POST", "/map_iam_roles_to_pod_sa", {
    token: w.jdoe,
    body: {},
    headers: { "X-Irsa-Workload-Token": w.jdoe },
  });
  assert.equal(userToken.status, 401);
  for (const role of ROLES) assert.deepEqual(w.subjects(role), []);
});

Deno.test("bad or missing user tokens answer 401 with a reason and WWW-Authenticate", async () => {
  await using w = await world();
  const claims = { username: "jdoe", groups: ["irsa-iamrole-list-bucket"] };
  const cases: [string, string | undefined][] = [
    ["none", undefined],
    ["expired", await w.issuer.userToken({ ...claims, expiresIn: -60 })],
    [
      "wrong issuer",
      await w.issuer.userToken({
        ...claims,
        issuer: "https://evil.example/auth/realms/DominoRealm",
      }),
    ],
    ["alg none", w.issuer.noneAlgToken(claims)],
    ["forged", await w.issuer.forgedUserToken(claims)],
    ["garbage", "not-a-jwt"],
  ];
  for (const [name, token] of cases) {
    const res = await w.call("POST", "/map_iam_roles_to_pod_sa", {
      token,
      body: { run_id: RUN },
      headers: { "X-Irsa-Workload-Token": w.sa },
    });
    assert.equal(res.status, 401, name);
    assert.match(res.headers.get("www-authenticate")!, /^Bearer error="invalid_token"/, name);
    const body = await res.json();
    assert.equal(body.code, "unauthorized", name);
    assert.ok(body.message.length > 0 && body.request_id.length > 0, name);
    assert.ok(!token || !JSON.stringify(body).includes(token), name);
  }
  for (const role of ROLES) assert.deepEqual(w.subjects(role), []);
});

Deno.test("admin endpoints refuse non-admins with 403 and let admins manage mappings", async () => {
  await using w = await world();
  for (
    const [method, path, body] of [
      ["GET", "/role_mappings", undefined],
      ["POST", "/update_role_mapping", { domino_org: "x", ...pairOf("r") }],
      ["POST", "/update_multirole_mapping", { domino_org: "x", role_data: [pairOf("r")] }],
      ["DELETE", "/delete_role_mapping", { domino_org: "irsa-iamrole-list-bucket" }],
    ] as const
  ) {
    const res = await w.call(method, path, { token: w.jdoe, body });
    assert.equal(res.status, 403, path);
  }
  const put = await w.call("POST", "/update_role_mapping", {
    token: w.admin,
    body: { domino_org: "new-org", ...pairOf("r") },
  });
  assert.equal(put.status, 200);
  const multi = await w.call("POST", "/update_multirole_mapping", {
    token: w.admin,
    body: { domino_org: "multi", role_data: [pairOf("a"), pairOf("b")] },
  });
  assert.equal(multi.status, 200);
  const all = (await (await w.call("GET", "/role_mappings", { token: w.admin })).json())
    .all_role_mappings;
  // Echoed as posted, domino_org included; pairs stored without one get their organization's.
  assert.deepEqual(all["new-org"], [{ domino_org: "new-org", ...pairOf("r") }]);
  assert.deepEqual(all.multi, [
    { domino_org: "multi", ...pairOf("a") },
    { domino_org: "multi", ...pairOf("b") },
  ]);
  assert.deepEqual(all["irsa-iamrole-read-bucket"], [
    { domino_org: "irsa-iamrole-read-bucket", ...pairOf(ROLES[1]) },
    { domino_org: "irsa-iamrole-read-bucket", ...pairOf(ROLES[2]) },
  ]);
  assert.equal(all["broken-org"], undefined);
  assert.equal(
    (await w.call("DELETE", "/delete_role_mapping", {
      token: w.admin,
      body: { domino_org: "multi" },
    })).status,
    200,
  );
  const gone = await w.call("DELETE", "/delete_role_mapping", {
    token: w.admin,
    body: { domino_org: "multi" },
  });
  // Today's clients delete blindly and check for 200: nothing there is still 200, and says so.
  assert.equal(gone.status, 200);
  const absent = await gone.json();
  assert.equal(absent.status, "absent");
  assert.match(absent.message, /"multi" had no mapping/);
});

Deno.test("organization names that every object has are refused in every path, never half-stored", async () => {
  await using w = await world();
  const names = [
    "__proto__",
    "constructor",
    "prototype",
    "toString",
    "valueOf",
    "hasOwnProperty",
    "__defineGetter__",
  ];
  for (const name of names) {
    for (
      const [method, path, body] of [
        ["POST", "/update_role_mapping", { domino_org: name, ...pairOf("r") }],
        ["POST", "/update_multirole_mapping", { domino_org: name, role_data: [pairOf("r")] }],
        ["DELETE", "/delete_role_mapping", { domino_org: name }],
      ] as const
    ) {
      const res = await w.call(method, path, { token: w.admin, body });
      const answer = await res.json();
      assert.equal(res.status, 400, `${path} ${name}: ${JSON.stringify(answer)}`);
      assert.match(answer.message, /reserved|not accepted as keys/, `${path} ${name}`);
    }
  }
  // A name an older writer stored is skipped as malformed, the same for every reader.
  await Deno.writeTextFile(
    w.mappingsFile,
    JSON.stringify(
      Object.fromEntries(
        ["toString", "ok-org"].map((
          org,
        ) => [org, JSON.stringify({ domino_org: org, ...pairOf("r") })]),
      ),
    ),
  );
  const listed = (await (await w.call("GET", "/role_mappings", { token: w.admin })).json())
    .all_role_mappings;
  assert.deepEqual(Object.keys(listed), ["ok-org"]);
});

Deno.test("my_role_mappings shows only the caller's organizations", async () => {
  await using w = await world();
  const mine = await (await w.call("GET", "/my_role_mappings", { token: w.jdoe })).json();
  assert.deepEqual(mine.my_role_mappings.map((m: { domino_org: string }) => m.domino_org), [
    "irsa-iamrole-list-bucket",
    "irsa-iamrole-read-bucket",
    "irsa-iamrole-read-bucket",
  ]);
  const nobody = await w.issuer.userToken({ username: "nobody", groups: ["elsewhere"] });
  assert.deepEqual(await (await w.call("GET", "/my_role_mappings", { token: nobody })).json(), {
    my_role_mappings: [],
  });
});

Deno.test("a request id is echoed only when it is sane, replaced otherwise", async () => {
  await using w = await world();
  const sane = await w.call("GET", "/healthz", { headers: { "X-Request-Id": "abc-123.x" } });
  await sane.body?.cancel();
  assert.equal(sane.headers.get("x-request-id"), "abc-123.x");
  const forged = await w.call("GET", "/healthz", {
    headers: { "X-Request-Id": 'x" {"level":"error"}' },
  });
  await forged.body?.cancel();
  assert.match(forged.headers.get("x-request-id")!, /^[0-9a-f-]{36}$/);
});

Deno.test("bad bodies answer 4xx naming the problem, never 500", async () => {
  await using w = await world();
  const post = (path: string, body: unknown, token = w.admin) =>
    w.call("POST", path, { token, body });
  const expect = async (res: Response, status: number, pattern: RegExp) => {
    assert.equal(res.status, status);
    assert.match((await res.json()).message, pattern);
  };
  await expect(await post("/update_role_mapping", "{nope"), 400, /not valid JSON/);
  // A key a parser would drop is refused, wherever it sits.
  await expect(
    await post(
      "/update_role_mapping",
      `{"domino_org": "o", "iam_role_arn": "x", "proxy_iam_role_arn": "y", "__proto__": {"isAdmin": true}}`,
    ),
    400,
    /Invalid key "__proto__"/,
  );
  await expect(await post("/update_role_mapping", ""), 400, /empty/);
  await expect(
    await post("/update_role_mapping", { domino_org: 5, ...pairOf("r") }),
    400,
    /"domino_org"/,
  );
  await expect(
    await post("/update_role_mapping", {
      domino_org: "o",
      iam_role_arn: "arn:aws:s3:::b",
      proxy_iam_role_arn: pairOf("r").proxy_iam_role_arn,
    }),
    400,
    /"iam_role_arn".*not a valid IAM role ARN/,
  );
  await expect(
    await post("/update_multirole_mapping", { domino_org: "o", role_data: [] }),
    400,
    /at least one pair/,
  );
  await expect(
    await post("/update_multirole_mapping", { domino_org: "o", role_data: [{}] }),
    400,
    /"role_data.0.iam_role_arn"/,
  );
  await expect(await post("/map_iam_roles_to_pod_sa", { run_id: 7 }, w.jdoe), 400, /"run_id"/);
  await expect(
    await post(
      "/map_iam_roles_to_pod_sa",
      { run_id: RUN, irsa_workload_type: "x".repeat(65) },
      w.jdoe,
    ),
    400,
    /irsa_workload_type is longer than 64/,
  );
  await expect(
    await post("/update_role_mapping", {
      domino_org: "o",
      ...pairOf("r"),
      pad: "x".repeat(70_000),
    }),
    413,
    /over 65536 bytes/,
  );
  await expect(await w.call("GET", "/nothing-here"), 404, /No route/);
});

Deno.test("a failing role does not hide the others", async () => {
  await using w = await world();
  w.iam.failures.set(
    ROLES[1],
    new AppError("iam_access_denied", `Cannot read role "${ROLES[1]}": IAM denied iam:GetRole`),
  );
  const res = await w.call("POST", "/map_iam_roles_to_pod_sa", {
    token: w.jdoe,
    body: {},
    headers: { "X-Irsa-Workload-Token": w.sa, Accept: "application/json" },
  });
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.deepEqual(body.roles.map((r: { status: string }) => r.status), [
    "added",
    "failed",
    "added",
  ]);
  assert.equal(body.roles[1].error.code, "iam_access_denied");
  assert.ok(!body.config.includes(`[profile ${ROLES[1]}]`));
  assert.ok(body.config.includes(`[profile ${ROLES[2]}]`));
  assert.equal(w.metrics.failedMappingRequests.get(), 1);
});

Deno.test("a role over its quota answers 409 with the role and its subject count", async () => {
  await using w = await world();
  const fillers = Array.from(
    { length: 40 },
    (_, i) => `"*:domino-compute:run-${i.toString(16).padStart(24, "a")}"`,
  );
  const full = FRESH.replace(':sub": ""', `:sub": [${fillers.join(",")}]`);
  assert.notEqual(full, FRESH);
  w.iam.policies.set(ROLES[0], full);
  const only = await w.issuer.userToken({ username: "jdoe", groups: ["irsa-iamrole-list-bucket"] });
  const res = await w.call("POST", "/map_iam_roles_to_pod_sa", {
    token: only,
    body: {},
    headers: { "X-Irsa-Workload-Token": w.sa },
  });
  assert.equal(res.status, 409);
  assert.match(
    (await res.json()).message,
    /role "acme-list-bucket-role".*over its quota of 2048 \(it holds 40 subjects/,
  );
});

Deno.test("DELETE removes the pod's subject from every role", async () => {
  await using w = await world();
  const headers = { "X-Irsa-Workload-Token": w.sa };
  assert.equal(
    (await w.call("POST", "/map_iam_roles_to_pod_sa", { token: w.jdoe, body: {}, headers })).status,
    200,
  );
  const res = await w.call("DELETE", "/map_iam_roles_to_pod_sa", {
    token: w.jdoe,
    body: {},
    headers,
  });
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.deepEqual(body.roles.map((r: { status: string }) => r.status), [
    "removed",
    "removed",
    "removed",
  ]);
  for (const role of ROLES) assert.deepEqual(w.subjects(role), []);
});

Deno.test("openapi.json describes every route with the schemas that validate them", async () => {
  await using w = await world();
  const doc = await (await w.call("GET", "/openapi.json")).json();
  assert.equal(doc.openapi, "3.1.0");
  assert.deepEqual(Object.keys(doc.paths).sort(), [
    "/apply_role_mappings",
    "/audit",
    "/capacity",
    "/delete_role_mapping",
    "/explain",
    "/healthz",
    "/map_iam_roles_to_pod_sa",
    "/metrics",
    "/my_role_mappings",
    "/openapi.json",
    "/readyz",
    "/role_mappings",
    "/service_account",
    "/trust",
    "/update_multirole_mapping",
    "/update_role_mapping",
  ]);
  const schema =
    doc.paths["/map_iam_roles_to_pod_sa"].post.requestBody.content["application/json"].schema;
  assert.deepEqual(Object.keys(schema.properties), ["run_id", "irsa_workload_type"]);
  assert.deepEqual(schema.properties.irsa_workload_type, { type: "string", maxLength: 64 });
  // The server's checks, kept: the run-id pattern it was given, the ARN's form and length.
  assert.deepEqual(schema.properties.run_id, {
    type: "string",
    maxLength: 128,
    pattern: "^[0-9a-f]{24}$",
  });
  const update =
    doc.paths["/update_role_mapping"].post.requestBody.content["application/json"].schema;
  assert.deepEqual(update.required, ["domino_org", "iam_role_arn", "proxy_iam_role_arn"]);
  assert.equal(update.properties.iam_role_arn.pattern, ROLE_ARN_PATTERN);
  assert.equal(update.properties.iam_role_arn.maxLength, ROLE_ARN_MAX_LENGTH);
  assert.equal(update.properties.domino_org.pattern, "^[-._a-zA-Z0-9]{1,253}$");
});

Deno.test("unknown methods on known paths answer 405 with Allow, before any token; unknown paths 404", async () => {
  await using w = await world();
  for (
    const [method, path, allow] of [
      ["PUT", "/capacity", "GET, HEAD"],
      ["POST", "/healthz", "GET, HEAD"],
      ["OPTIONS", "/openapi.json", "GET, HEAD"],
      ["GET", "/map_iam_roles_to_pod_sa", "DELETE, POST"],
      ["PATCH", "/service_account", "DELETE, POST"],
      ["DELETE", "/update_role_mapping", "POST"],
    ]
  ) {
    const res = await w.call(method, path);
    assert.equal(res.status, 405, `${method} ${path}`);
    assert.equal(res.headers.get("allow"), allow);
    const body = await res.json();
    assert.equal(body.code, "method_not_allowed");
    assert.match(body.message, new RegExp(`^Method ${method} is not allowed on ${path}`));
  }
  // The method is refused before the body is read or a token checked.
  const big = await w.call("PUT", "/update_role_mapping", { body: "x".repeat(70_000) });
  assert.equal(big.status, 405);
  await big.body?.cancel();
  assert.equal((await w.call("HEAD", "/healthz")).status, 200);
  const unknown = await w.call("PATCH", "/nothing-here");
  assert.equal(unknown.status, 404);
  assert.equal((await unknown.json()).code, "not_found");
});

Deno.test("every route the app answers is described, and every description is answered", async () => {
  await using w = await world();
  const doc = await (await w.call("GET", "/openapi.json")).json();
  const described = Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.keys(ops as object).map((m) => `${m.toUpperCase()} ${path}`)
  ).sort();
  const routed = [
    ...new Set(
      w.app.routes.filter((r) => r.method !== "ALL").map((r) => `${r.method} ${r.path}`),
    ),
  ].sort();
  assert.deepEqual(routed, described);
});

Deno.test("every route's access is enforced as declared: public answers without a token, user needs one, admin refuses a user", async () => {
  await using w = await world();
  const doc = await (await w.call("GET", "/openapi.json")).json();
  const routes = Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.entries(ops as Record<string, { security?: unknown[]; description?: string }>).map((
      [method, op],
    ) => ({
      method: method.toUpperCase(),
      path,
      access: op.security?.length === 0
        ? "public"
        : op.description?.includes("Admins only.")
        ? "admin"
        : "user",
    }))
  );
  assert.ok(routes.some((r) => r.access === "admin") && routes.some((r) => r.access === "public"));
  for (const r of routes) {
    // No body: a guard answers before the body is read, so 400 would mean no guard ran.
    const anonymous = await w.call(r.method, r.path);
    await anonymous.body?.cancel();
    if (r.access === "public") assert.notEqual(anonymous.status, 401, `${r.method} ${r.path}`);
    else assert.equal(anonymous.status, 401, `${r.method} ${r.path} without a token`);
    if (r.access !== "admin") continue;
    const user = await w.call(r.method, r.path, { token: w.jdoe });
    await user.body?.cancel();
    assert.equal(user.status, 403, `${r.method} ${r.path} as a user`);
  }
});

Deno.test("the conformance check knows every keyword of the document's schemas", async () => {
  await using w = await world();
  const doc = await (await w.call("GET", "/openapi.json")).json();
  const used = new Set<string>();
  const walk = (schema: Record<string, unknown>) => {
    for (const [keyword, rule] of Object.entries(schema)) {
      used.add(keyword);
      if (keyword === "properties") Object.values(rule as object).forEach(walk);
      else if (keyword === "anyOf") (rule as Record<string, unknown>[]).forEach(walk);
      else if (typeof rule === "object" && rule !== null && keyword !== "enum") {
        if (!Array.isArray(rule)) walk(rule as Record<string, unknown>);
      }
    }
  };
  const schemas: Record<string, unknown>[] = [...Object.values(doc.components.schemas)] as never;
  JSON.stringify(doc.paths, (key, value) => {
    if (key === "schema") schemas.push(value);
    return value;
  });
  schemas.forEach(walk);
  assert.deepEqual([...used].filter((k) => !KEYWORDS.has(k)), []);
  for (const k of ["pattern", "maxLength", "minItems", "additionalProperties", "not", "anyOf"]) {
    assert.ok(used.has(k), k);
  }
});

Deno.test("the conformance check refuses answers the document does not describe", async () => {
  await using w = await world();
  const json = new Headers({ "Content-Type": "application/json" });
  const ok = { method: "GET", path: "/healthz", status: 200, headers: json };
  w.conformance.check({ ...ok, body: '{"status":"Healthy"}' });
  const refused: [string, Parameters<typeof w.conformance.check>[0]][] = [
    ["unexpected property", { ...ok, body: '{"status":"Healthy","extra":1}' }],
    ["expected", { ...ok, body: '{"status":"Sick"}' }],
    ["status not described", { ...ok, status: 201, body: '{"status":"Healthy"}' }],
    ["media type text/html", {
      ...ok,
      headers: new Headers({ "Content-Type": "text/html" }),
      body: "",
    }],
    ["must answer 405", { ...ok, method: "PUT", body: "{}" }],
    ["not in the document", { ...ok, path: "/nope", body: "{}" }],
    [
      "header WWW-Authenticate",
      {
        method: "GET",
        path: "/capacity",
        status: 401,
        headers: json,
        body: '{"code":"unauthorized","message":"m","request_id":"r"}',
      },
    ],
    [
      '"forbidden" is not one of',
      {
        method: "GET",
        path: "/capacity",
        status: 401,
        headers: new Headers({ "Content-Type": "application/json", "WWW-Authenticate": "Bearer" }),
        body: '{"code":"forbidden","message":"m","request_id":"r"}',
      },
    ],
    [
      "does not match",
      {
        method: "POST",
        path: "/map_iam_roles_to_pod_sa",
        status: 200,
        headers: new Headers({ "Content-Type": "text/plain; charset=UTF-8" }),
        body: "[profile a]\nrole_arn=x\n",
      },
    ],
  ];
  for (const [why, answer] of refused) {
    assert.throws(
      () => w.conformance.check(answer),
      new RegExp(why.replace(/[[\]]/g, "\\$&")),
      why,
    );
  }
});

Deno.test("metrics carry the current service's names, latency histograms and IAM counters", async () => {
  await using w = await world();
  await w.call("POST", "/map_iam_roles_to_pod_sa", {
    token: w.jdoe,
    body: {},
    headers: { "X-Irsa-Workload-Token": w.sa },
  });
  const text = await (await w.call("GET", "/metrics")).text();
  for (
    const name of [
      "irsa_mapping_requests_total 1",
      "irsa_failed_maping_requests_total 0",
      "irsa_query_user_principal_total",
      "irsa_failed_query_user_principal_total",
      "irsa_query_user_org_membership_total",
      "irsa_failed_query_user_org_membership_total",
      "irsa_query_config_map_org_to_iamrole_mapping_total 1",
      'irsa_trust_policy_edits_total{action="add",outcome="added"} 3',
      'irsa_http_request_duration_seconds_bucket{method="POST",route="/map_iam_roles_to_pod_sa",status="200",le="+Inf"} 1',
    ]
  ) assert.ok(text.includes(name), name);
  assert.ok(!text.includes(RUN) && !text.includes("jdoe") && !text.includes("arn:aws"));
});

Deno.test("readyz reports ready once keys and mappings load", async () => {
  await using w = await world();
  const res = await w.call("GET", "/readyz");
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { status: "Ready" });
});

Deno.test("a grant names the pool member the subject was put on, recorded before its edit; never a member found full first, nor an untried one", async () => {
  await using w = await world();
  const arn = (name: string) => `arn:aws:iam::111111111111:role/${name}`;
  const members = [ROLES[0], "acme-list-bucket-role-2", "acme-list-bucket-role-3"];
  for (const m of members.slice(1)) w.iam.policies.set(m, FRESH);
  // The first member is full, and this replica has not seen it yet: its policy is read before it
  // is recorded or locked, and it is skipped (before, it was recorded, locked and refused).
  const fillers = Array.from(
    { length: 40 },
    (_, i) => `"*:domino-compute:run-${i.toString(16).padStart(24, "a")}"`,
  );
  w.iam.policies.set(ROLES[0], FRESH.replace(':sub": ""', `:sub": [${fillers.join(",")}]`));
  const put = await w.call("POST", "/update_multirole_mapping", {
    token: w.admin,
    body: {
      domino_org: "pooled",
      role_data: [{ ...pairOf(ROLES[0]), proxy_iam_role_arns: members.map(arn) }],
    },
  });
  assert.equal(put.status, 200);
  w.iam.calls.length = 0; // the mapping's check read every member
  // What the record says at the moment each trust policy is written.
  const recordedAtWrite: Record<string, string[]> = {};
  const write = w.iam.putTrustPolicy.bind(w.iam);
  w.iam.putTrustPolicy = async (role, document) => {
    const record = JSON.parse(await Deno.readTextFile(w.grantsFile));
    recordedAtWrite[role] = record.grants[SUBJECT]?.roles ?? [];
    return await write(role, document);
  };
  const user = await w.issuer.userToken({ username: "jdoe", groups: ["pooled"] });
  const res = await w.call("POST", "/map_iam_roles_to_pod_sa", {
    token: user,
    body: {},
    headers: { "X-Irsa-Workload-Token": w.sa, Accept: "application/json" },
  });
  assert.equal(res.status, 200);
  assert.equal((await res.json()).roles[0].proxy_iam_role_arn, arn(members[1]));
  // The second member was in the record before its policy was written.
  assert.ok(recordedAtWrite[members[1]].includes(arn(members[1])), JSON.stringify(recordedAtWrite));
  const record = JSON.parse(await Deno.readTextFile(w.grantsFile));
  assert.deepEqual(record.grants[SUBJECT].roles, [arn(members[1])]);
  assert.deepEqual(
    w.iam.calls.filter((c) => c.role === members[0]).map((c) => c.op),
    ["GetRole"],
    "the full member was read, never written",
  );
  assert.ok(!record.roles.includes(arn(members[2])));
  // Neither the start nor the stop (its grant names every role it may hold) read the untried member.
  const stop = await w.call("DELETE", "/map_iam_roles_to_pod_sa", {
    token: user,
    body: {},
    headers: { "X-Irsa-Workload-Token": w.sa },
  });
  assert.equal(stop.status, 200);
  assert.deepEqual(w.iam.calls.filter((c) => c.role === members[2]), []);
  assert.ok(!w.subjects(members[1]).includes(SUBJECT));
});

Deno.test("proxy-role pools: a full first role sends the subject to the next, and a full pool answers 409", async () => {
  const otherPod = {
    name: `run-${OTHER_RUN}-abcde`,
    serviceAccountName: `run-${OTHER_RUN}`,
    startingUsername: "jdoe",
    phase: "Running",
  };
  await using w = await world({ [OTHER_RUN]: [otherPod] });
  // The second member has room for exactly one more subject.
  const filler = (i: number) => `*:domino-compute:run-${i.toString(16).padStart(24, "b")}`;
  let room = FRESH;
  for (let i = 0;; i++) {
    try {
      editTrustPolicy(room, { add: [filler(i), filler(i + 1)] }, OPTS);
      room = editTrustPolicy(room, { add: [filler(i)] }, OPTS).document;
    } catch {
      break;
    }
  }
  w.iam.policies.set("acme-list-bucket-role-2", room);
  const fillers = Array.from(
    { length: 40 },
    (_, i) => `"*:domino-compute:run-${i.toString(16).padStart(24, "a")}"`,
  );
  w.iam.policies.set(ROLES[0], FRESH.replace(':sub": ""', `:sub": [${fillers.join(",")}]`));
  const pool = {
    ...pairOf(ROLES[0]),
    proxy_iam_role_arns: [
      pairOf(ROLES[0]).proxy_iam_role_arn,
      "arn:aws:iam::111111111111:role/acme-list-bucket-role-2",
    ],
  };
  const put = await w.call("POST", "/update_multirole_mapping", {
    token: w.admin,
    body: { domino_org: "pooled", role_data: [pool] },
  });
  assert.equal(put.status, 200);
  assert.deepEqual((await put.json()).role_data, [pool]);
  const user = await w.issuer.userToken({ username: "jdoe", groups: ["pooled"] });
  const res = await w.call("POST", "/map_iam_roles_to_pod_sa", {
    token: user,
    body: {},
    headers: { "X-Irsa-Workload-Token": w.sa, Accept: "application/json" },
  });
  const body = await res.json();
  assert.equal(res.status, 200);
  assert.equal(body.roles[0].status, "added");
  assert.equal(
    body.roles[0].proxy_iam_role_arn,
    "arn:aws:iam::111111111111:role/acme-list-bucket-role-2",
  );
  assert.match(
    body.config,
    /\[profile src_acme-list-bucket-role\]\n.*\nrole_arn = arn:aws:iam::111111111111:role\/acme-list-bucket-role-2\n/,
  );
  assert.ok(subjectsOf(w.iam.policies.get("acme-list-bucket-role-2")!, OPTS).includes(SUBJECT));
  // Now the second member is full too: the pool is exhausted.
  const other = await w.podToken(OTHER_RUN);
  const full = await w.call("POST", "/map_iam_roles_to_pod_sa", {
    token: user,
    body: {},
    headers: { "X-Irsa-Workload-Token": other },
  });
  assert.equal(full.status, 409);
  assert.match((await full.json()).message, /all 2 proxy roles of its pool are full/);
  assert.equal(w.metrics.poolExhausted.get(), 1);
  const capacity = await (await w.call("GET", "/capacity", { token: w.admin })).json();
  const second = capacity.roles.find((r: { proxy_iam_role_arn: string }) =>
    r.proxy_iam_role_arn.endsWith("-2")
  );
  assert.equal(
    second.subjects,
    subjectsOf(w.iam.policies.get("acme-list-bucket-role-2")!, OPTS).length,
  );
  assert.equal(second.quota, 2048);
  assert.ok(second.characters <= 2048 && second.free_characters < 48);
});

Deno.test("X-Domino-Api-Key without a platform API answers 401 naming the header and the setting", async () => {
  await using w = await world();
  const res = await w.call("GET", "/role_mappings", { headers: { "X-Domino-Api-Key": "k-123" } });
  assert.equal(res.status, 401);
  const body = await res.json();
  assert.match(body.message, /X-Domino-Api-Key is not accepted here/);
  assert.match(body.message, /DOMINO_USER_HOST/);
  assert.ok(!JSON.stringify(body).includes("k-123"));
});

Deno.test("/service_account: admins only, DNS-1123 names checked first, 503 without Kubernetes", async () => {
  await using w = await world();
  const body = { service_account_name: "fake-sa" };
  for (const method of ["POST", "DELETE"]) {
    assert.equal((await w.call(method, "/service_account", { token: w.jdoe, body })).status, 403);
    const bad = await w.call(method, "/service_account", {
      token: w.admin,
      body: { service_account_name: "Not_A_Label" },
    });
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).message, /DNS-1123 label/);
    const none = await w.call(method, "/service_account", { token: w.admin, body });
    assert.equal(none.status, 503);
    assert.match((await none.json()).message, /no Kubernetes API/);
  }
});

Deno.test("update_iam_role_trust_policy false: the profiles are written, the policy never read or written", async () => {
  await using w = await world({
    [RUN]: [{ name: `run-${RUN}-x`, serviceAccountName: `run-${RUN}`, startingUsername: "jdoe" }],
  });
  for (const flag of [false, "false", "False"]) {
    const put = await w.call("POST", "/update_role_mapping", {
      token: w.admin,
      body: {
        domino_org: "irsa-iamrole-list-bucket",
        ...pairOf(ROLES[0]),
        update_iam_role_trust_policy: flag,
      },
    });
    assert.equal(put.status, 200);
    const before = w.iam.policies.get(ROLES[0]);
    const calls = w.iam.calls.length;
    const res = await w.call("POST", "/map_iam_roles_to_pod_sa", {
      token: w.jdoe,
      body: { run_id: RUN, irsa_workload_type: "cluster-edge" },
      headers: { Accept: "application/json" },
    });
    assert.equal(res.status, 200);
    const answer = await res.json();
    const list = answer.roles.find((r: { profile: string }) => r.profile === ROLES[0]);
    assert.equal(list.status, "unmanaged");
    assert.match(answer.config, /\[profile acme-list-bucket-role\]/);
    assert.equal(w.iam.policies.get(ROLES[0]), before);
    // The other roles were edited; the unmanaged one was not even read.
    assert.ok(w.iam.calls.slice(calls).every((c) => c.role !== ROLES[0]), JSON.stringify(flag));
    assert.deepEqual(w.subjects(ROLES[1]), [`*:domino-compute:run-${RUN}`]);
  }
  const capacity = await (await w.call("GET", "/capacity", { token: w.admin })).json();
  assert.deepEqual(
    capacity.roles.find((r: { proxy_iam_role_arn: string }) =>
      r.proxy_iam_role_arn.endsWith(ROLES[0])
    ),
    { proxy_iam_role_arn: `arn:aws:iam::111111111111:role/${ROLES[0]}`, managed: false },
  );
  // DELETE leaves it alone too.
  const before = w.iam.policies.get(ROLES[0]);
  const del = await w.call("DELETE", "/map_iam_roles_to_pod_sa", {
    token: w.jdoe,
    body: { run_id: RUN },
  });
  assert.equal(del.status, 200);
  assert.equal(w.iam.policies.get(ROLES[0]), before);
  assert.deepEqual(w.subjects(ROLES[1]), []);
});

Deno.test("per-user service accounts: the subject is the pod's own service account, by run lookup and by token", async () => {
  // The platform's mutation mapped jdoe to "aws-test" (user_mappings), not to "jdoe".
  const pod = {
    name: `run-${RUN}-pu123`,
    serviceAccountName: "aws-test",
    startingUsername: "jdoe",
    phase: "Running",
  };
  await using w = await world({ [RUN]: [pod] }, { userBasedServiceAccounts: true });
  const map = async (token: string, headers: Record<string, string> = {}) => {
    const res = await w.call("POST", "/map_iam_roles_to_pod_sa", {
      token,
      body: { run_id: RUN },
      headers: { Accept: "application/json", ...headers },
    });
    return { status: res.status, body: await res.json() };
  };
  const lookedUp = await map(w.jdoe);
  assert.equal(lookedUp.status, 200, JSON.stringify(lookedUp.body));
  assert.equal(lookedUp.body.subject, "*:domino-compute:aws-test");
  assert.equal(lookedUp.body.proof, "run-lookup");
  assert.deepEqual(w.subjects(ROLES[0]), ["*:domino-compute:aws-test"]);

  const token = await w.podToken(RUN, "aws-test", pod.name);
  const byToken = await map(w.jdoe, { "X-Irsa-Workload-Token": token });
  assert.equal(byToken.status, 200, JSON.stringify(byToken.body));
  assert.equal(byToken.body.subject, "*:domino-compute:aws-test");
  assert.equal(byToken.body.proof, "workload-token");

  // Another user's token with jdoe's pod token: the run is not theirs.
  const asmith = await w.issuer.userToken({
    username: "asmith",
    groups: ["irsa-iamrole-list-bucket"],
  });
  assert.equal((await map(asmith, { "X-Irsa-Workload-Token": token })).status, 403);
  // A token of a service account the run's pods do not run as.
  const other = await w.podToken(RUN, "someone-else", "someone-elses-pod");
  const refused = await map(w.jdoe, { "X-Irsa-Workload-Token": other });
  assert.equal(refused.status, 403);
  assert.match(refused.body.message, /no live pod of run/);
});

Deno.test("per-user service accounts: an account that another user's live pods run as is nobody's to map", async () => {
  const OTHER = "646f604955daf764547c5b77";
  // The platform mis-assigned mallory's run to jdoe's account "aws-test" (or mallory made the pod).
  await using w = await world({
    [RUN]: [{
      name: `run-${RUN}-a`,
      serviceAccountName: "aws-test",
      startingUsername: "jdoe",
      phase: "Running",
    }],
    [OTHER]: [{
      name: `run-${OTHER}-b`,
      serviceAccountName: "aws-test",
      startingUsername: "mallory",
      phase: "Running",
    }],
  }, { userBasedServiceAccounts: true });
  const mallory = await w.issuer.userToken({
    username: "mallory",
    groups: ["irsa-iamrole-update-bucket"],
  });
  // mallory: the account is not the one the user mappings give her; jdoe, whose it is: another
  // user's live pods run as it.
  for (
    const [token, run, message] of [
      [mallory, OTHER, /"aws-test" is not "mallory"'s/],
      [w.jdoe, RUN, /is not yours alone/],
    ] as const
  ) {
    const res = await w.call("POST", "/map_iam_roles_to_pod_sa", {
      token,
      body: { run_id: run },
    });
    assert.equal(res.status, 403, run);
    assert.match((await res.json()).message, message);
  }
  for (const role of ROLES) assert.deepEqual(w.subjects(role), [], role);
});

Deno.test("deleting a per-user ServiceAccount takes its subject off every trust policy first", async () => {
  const pod = {
    name: `run-${RUN}-pu123`,
    serviceAccountName: "aws-test",
    startingUsername: "jdoe",
    phase: "Running",
  };
  const deleted: { name: string; subjectsLeft: string[][] }[] = [];
  let subjectsNow = (): string[][] => [];
  const serviceAccounts: ServiceAccountAdmin = {
    create: () => Promise.resolve("created"),
    remove: (name) => {
      deleted.push({ name, subjectsLeft: subjectsNow() });
      return Promise.resolve("deleted");
    },
  };
  await using w = await world({ [RUN]: [pod] }, {
    userBasedServiceAccounts: true,
    serviceAccounts,
  });
  subjectsNow = () => ROLES.map((r) => w.subjects(r));
  const mapped = await w.call("POST", "/map_iam_roles_to_pod_sa", {
    token: w.jdoe,
    body: { run_id: RUN },
  });
  assert.equal(mapped.status, 200);
  assert.deepEqual(w.subjects(ROLES[0]), ["*:domino-compute:aws-test"]);
  const res = await w.call("DELETE", "/service_account", {
    token: w.admin,
    body: { service_account_name: "aws-test" },
  });
  assert.equal(res.status, 200);
  // A later account of the same name inherits nothing: the subject left before the account did.
  assert.deepEqual(deleted, [{ name: "aws-test", subjectsLeft: [[], [], []] }]);
});

Deno.test("per-user service accounts: a run on the shared default service account or an ended pod proves nothing", async () => {
  const OTHER = "646f604955daf764547c5b77";
  await using w = await world({
    [RUN]: [{
      name: "p",
      serviceAccountName: "default",
      startingUsername: "jdoe",
      phase: "Running",
    }],
    [OTHER]: [{
      name: "q",
      serviceAccountName: "jdoe",
      startingUsername: "jdoe",
      phase: "Succeeded",
    }],
  }, { userBasedServiceAccounts: true });
  const shared = await w.call("POST", "/map_iam_roles_to_pod_sa", {
    token: w.jdoe,
    body: { run_id: RUN },
  });
  assert.equal(shared.status, 403);
  assert.match((await shared.json()).message, /"default", which every pod without its own shares/);
  const ended = await w.call("POST", "/map_iam_roles_to_pod_sa", {
    token: w.jdoe,
    body: { run_id: OTHER },
  });
  assert.equal(ended.status, 403);
  assert.match((await ended.json()).message, /no live pod/);
  for (const role of ROLES) assert.deepEqual(w.subjects(role), []);
});

Deno.test("a start whose pod is not proven answers 403 even while the mappings cannot be read (they are read during the proof)", async () => {
  await using w = await world();
  // A directory where the mapping file was: every read of the store fails.
  await Deno.remove(w.mappingsFile);
  await Deno.mkdir(w.mappingsFile);
  const asmith = await w.issuer.userToken({
    username: "asmith",
    groups: ["irsa-iamrole-list-bucket", "irsa-iamrole-read-bucket"],
  });
  const stranger = await w.call("POST", "/map_iam_roles_to_pod_sa", {
    token: asmith,
    body: { run_id: RUN },
    headers: { "X-Irsa-Workload-Token": w.sa },
  });
  assert.equal(stranger.status, 403);
  assert.match((await stranger.json()).message, /has no live pod started by "asmith"/);
  // The pod's own user gets the store's error, which names the file.
  const own = await w.call("POST", "/map_iam_roles_to_pod_sa", {
    token: w.jdoe,
    body: { run_id: RUN },
    headers: { "X-Irsa-Workload-Token": w.sa },
  });
  assert.equal(own.status, 503);
  assert.match((await own.json()).message, /mappings\.json/);
  for (const role of ROLES) assert.deepEqual(w.subjects(role), []);
});

Deno.test("a pod token is bound to its user: another user's pod token answers 403 and changes nothing", async () => {
  await using w = await world();
  // asmith presents jdoe's pod token (a token read from a shared volume, say).
  const asmith = await w.issuer.userToken({
    username: "asmith",
    groups: ["irsa-iamrole-list-bucket", "irsa-iamrole-read-bucket"],
  });
  for (const method of ["POST", "DELETE"]) {
    const res = await w.call(method, "/map_iam_roles_to_pod_sa", {
      token: asmith,
      body: { run_id: RUN },
      headers: { "X-Irsa-Workload-Token": w.sa },
    });
    assert.equal(res.status, 403, method);
    assert.match((await res.json()).message, /has no live pod started by "asmith"/);
  }
  for (const role of ROLES) assert.deepEqual(w.subjects(role), []);
  // A token of a pod that is not the run's (another pod running as the run's account).
  const stray = await w.podToken(RUN, `run-${RUN}`, "a-stray-pod");
  const res = await w.call("POST", "/map_iam_roles_to_pod_sa", {
    token: w.jdoe,
    body: { run_id: RUN },
    headers: { "X-Irsa-Workload-Token": stray },
  });
  assert.equal(res.status, 403);
  assert.match((await res.json()).message, /which no live pod of run/);
});
