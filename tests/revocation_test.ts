/**
 * Grants that end: the real server process over HTTPS, moto for IAM behind the strict STS, a real
 * kube-apiserver for the run pods, the ConfigMaps and the grant record. Each test is one way access
 * used to outlive its entitlement, with the bound it is taken back within, measured; and the pod's
 * own chain to the asset role, refused by STS once the propagation delay has passed.
 */
import { shardName } from "../src/core/grant_shards.ts";
import assert from "node:assert/strict";
import type { IAMClient } from "@aws-sdk/client-iam";
import { startFakePlatformApi } from "./fakes/platform_api.ts";
import { type KubeApiServer, sharedKubeApiServer } from "./fixtures/kube_apiserver.ts";
import { EXAMPLE, type Moto, type SeededWorld } from "./fixtures/moto.ts";
import { startOidcIssuer } from "./fixtures/oidc_issuer.ts";
import { startStrictSts } from "./fixtures/strict_sts.ts";
import { assumeChain, type ChainOutcome } from "./chain.ts";
import type { TestTls } from "./fixtures/tls.ts";
import { type ServerProcess, startIrsaProcess, startServerProcess } from "./server_process.ts";
import {
  configMapStoreArgs,
  heldSubjects,
  pairJson,
  serverEnv,
  sidecarEnv,
  useMotoWorld,
} from "./world.ts";

const RUN = "646d27b817c28b5ea4b5b0c1";
const LIST_ORG = "irsa-iamrole-list-bucket";
const READ_ORG = "irsa-iamrole-read-bucket";
const [LIST_ROLE, READ_ROLE] = EXAMPLE.roleNames;
const CLEANUP_SECONDS = 1;
/** How long a trust policy takes to reach the strict STS here. */
const PROPAGATION_MS = 700;
/** What the strict STS answers a chain whose subject left the proxy role's trust policy. */
const REFUSED: ChainOutcome = {
  ok: false,
  step: "AssumeRoleWithWebIdentity",
  error: "AccessDenied",
};

let moto: Moto;
let iam: IAMClient;
let tls: TestTls;
let world: SeededWorld;
useMotoWorld((w) => ({ moto, iam, tls, world } = w));

/** A cluster namespace pair, the platform's users, and a way to start servers on them. */
async function startWorld(options: { cleanupSeconds?: number } = {}) {
  const cluster: KubeApiServer = await sharedKubeApiServer();
  const field = await cluster.createNamespace("field");
  const compute = await cluster.createNamespace("compute");
  const platform = startFakePlatformApi();
  const issuer = await startOidcIssuer();
  // IAM writes and STS calls go through the strict STS: it keeps the written documents and refuses
  // a chain its trust policies do not allow, once the propagation delay has passed.
  const sts = startStrictSts({
    motoEndpoint: moto.endpoint,
    propagationMs: PROPAGATION_MS,
    issuers: { [EXAMPLE.oidcHost]: { url: cluster.issuer, caCert: cluster.caCert } },
  });
  const dir = await Deno.makeTempDir();
  const jdoe = {
    token: "user-token-jdoe",
    canonicalName: "jdoe",
    canonicalId: "u-jdoe",
    organizations: [LIST_ORG, READ_ORG],
  };
  platform.addUser(jdoe);
  platform.addUser({
    token: "user-token-boss",
    canonicalName: "boss",
    canonicalId: "u-boss",
    isAdmin: true,
  });
  platform.addUser({
    token: "user-token-asmith",
    canonicalName: "asmith",
    canonicalId: "u-asmith",
    organizations: [LIST_ORG, READ_ORG],
  });
  const pod = `run-${RUN}-abcde`;
  await cluster.createPod(compute, {
    name: pod,
    labels: {
      "dominodatalab.com/execution-id": RUN,
      "dominodatalab.com/starting-user-id": "u-jdoe",
      "dominodatalab.com/starting-user-username": "jdoe",
    },
    serviceAccountName: `run-${RUN}`,
  });
  const servers: ServerProcess[] = [];
  const startServer = async () => {
    const server = await startServerProcess(
      [
        "--tls-cert",
        tls.certPath,
        "--tls-key",
        tls.keyPath,
        "--verifier",
        "domino",
        ...configMapStoreArgs(cluster),
      ],
      serverEnv(moto, world, issuer, {
        AWS_ENDPOINT_URL: sts.endpoint,
        AWS_ENDPOINT_URL_IAM: sts.endpoint,
        AWS_ENDPOINT_URL_STS: sts.endpoint,
        DOMINO_USER_HOST: platform.url,
        DEFAULT_FIELD_NS: field,
        DEFAULT_COMPUTE_NS: compute,
        IRSA_CLUSTER_ISSUER: cluster.issuer,
        IRSA_CA_FILE: cluster.caCertPath,
        IRSA_CLEANUP_INTERVAL_SECONDS: String(options.cleanupSeconds ?? CLEANUP_SECONDS),
        IRSA_CLEANUP_GRACE_SECONDS: "1",
        IRSA_PRINCIPAL_CACHE_SECONDS: "1",
        IRSA_CALLER_CACHE_SECONDS: "1",
      }),
      tls.caCert,
    );
    servers.push(server);
    return server;
  };
  const server = await startServer();
  const subject = `*:${compute}:run-${RUN}`;
  const call = async (
    s: ServerProcess,
    method: string,
    path: string,
    token: string,
    body: unknown,
    headers: Record<string, string> = {},
  ) => {
    const res = await s.fetch(path, {
      method,
      headers: { Authorization: `Bearer ${token}`, Accept: "application/json", ...headers },
      body: JSON.stringify(body),
    });
    return { status: res.status, json: await res.json() };
  };
  const map = (org: string, role: string, s = server) =>
    call(s, "POST", "/update_role_mapping", "user-token-boss", {
      domino_org: org,
      ...pairJson(role),
    });
  const sync = (token = "user-token-jdoe", headers: Record<string, string> = {}, s = server) =>
    call(s, "POST", "/map_iam_roles_to_pod_sa", token, { run_id: RUN }, headers);
  /** The pod's chain to `role`'s asset role, asked once the propagation delay has passed. */
  const podToken = () =>
    cluster.tokenRequest(compute, `run-${RUN}`, { audience: "sts.amazonaws.com", pod });
  const chain = async (role: string, token?: string): Promise<ChainOutcome> => {
    await new Promise((r) => setTimeout(r, PROPAGATION_MS + 100));
    const pair = world.pairs.find((p) => p.name === role)!;
    return assumeChain(sts.endpoint, token ?? await podToken(), pair);
  };
  const chained = (role: string) => ({
    ok: true,
    arn: `arn:aws:sts::${EXAMPLE.assetsAccount}:assumed-role/${role}/jdoe`,
  });
  return {
    cluster,
    field,
    compute,
    platform,
    jdoe,
    pod,
    dir,
    server,
    startServer,
    subject,
    call,
    map,
    sync,
    sts: sts.endpoint,
    podToken,
    chain,
    chained,
    held: (role: string) => heldSubjects(iam, world, role),
    async [Symbol.asyncDispose]() {
      for (const s of servers) await s.stop();
      await sts.close();
      await platform.close();
      await issuer.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Polls until `check` holds; returns the milliseconds it took, or throws after `limitMs`. */
async function within(limitMs: number, check: () => Promise<boolean>): Promise<number> {
  const started = performance.now();
  while (!(await check())) {
    if (performance.now() - started > limitMs) throw new Error(`not within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return Math.round(performance.now() - started);
}

Deno.test("a deleted mapping takes the subject off its role at once, and a stop after it leaves nothing behind", async () => {
  await using w = await startWorld();
  assert.equal((await w.map(LIST_ORG, LIST_ROLE)).status, 200);
  assert.equal((await w.map(READ_ORG, READ_ROLE)).status, 200);
  assert.equal((await w.sync()).status, 200);
  assert.deepEqual(await w.held(LIST_ROLE), [w.subject]);
  assert.deepEqual(await w.held(READ_ROLE), [w.subject]);
  assert.deepEqual(await w.chain(LIST_ROLE), w.chained(LIST_ROLE));
  assert.deepEqual(await w.chain(READ_ROLE), w.chained(READ_ROLE));

  const deleted = await w.call(w.server, "DELETE", "/delete_role_mapping", "user-token-boss", {
    domino_org: LIST_ORG,
  });
  assert.equal(deleted.status, 200);
  assert.equal(deleted.json.revoked_subjects, 1);
  assert.deepEqual(await w.held(LIST_ROLE), []);
  assert.deepEqual(await w.held(READ_ROLE), [w.subject]);
  assert.deepEqual(await w.chain(LIST_ROLE), REFUSED);
  assert.deepEqual(await w.chain(READ_ROLE), w.chained(READ_ROLE));

  // The stop visits every role irsa ever edited, mapped or not.
  assert.equal((await w.map(LIST_ORG, LIST_ROLE)).status, 200);
  assert.equal((await w.sync()).status, 200);
  await w.call(w.server, "DELETE", "/delete_role_mapping", "user-token-boss", {
    domino_org: READ_ORG,
  });
  await w.cluster.setConfigMap(w.field, "domino-org-iamrole-mapping", {}); // every mapping gone
  const stop = await w.call(w.server, "DELETE", "/map_iam_roles_to_pod_sa", "user-token-jdoe", {
    run_id: RUN,
  });
  assert.equal(stop.status, 200);
  assert.deepEqual(await w.held(LIST_ROLE), []);
  assert.deepEqual(await w.held(READ_ROLE), []);
  assert.deepEqual(await w.chain(LIST_ROLE), REFUSED);
  assert.deepEqual(await w.chain(READ_ROLE), REFUSED);
  const metrics = await (await w.server.fetch("/metrics")).text();
  assert.match(metrics, /irsa_revoked_subjects_total\{reason="mapping"\} 2/);
  assert.match(metrics, /irsa_revoked_subjects_total\{reason="stop"\} 1/);
  assert.ok(
    w.server.logs.some((l) => l.includes('"subject revoked"') && l.includes('"audit":true')),
  );
});

Deno.test("a mapping changed behind the server's back (kubectl edit) is enforced within one cleanup interval", async () => {
  await using w = await startWorld();
  assert.equal((await w.map(LIST_ORG, LIST_ROLE)).status, 200);
  assert.equal((await w.sync()).status, 200);
  assert.deepEqual(await w.held(LIST_ROLE), [w.subject]);
  await w.cluster.setConfigMap(w.field, "domino-org-iamrole-mapping", {});
  const ms = await within(
    4 * CLEANUP_SECONDS * 1000,
    async () => (await w.held(LIST_ROLE)).length === 0,
  );
  console.error(
    `revoked by the cleanup ${ms} ms after the mapping was deleted (interval ${CLEANUP_SECONDS} s)`,
  );
  assert.deepEqual(await w.chain(LIST_ROLE), REFUSED);
});

Deno.test("a user removed from an organization loses its role at the next sync", async () => {
  await using w = await startWorld();
  assert.equal((await w.map(LIST_ORG, LIST_ROLE)).status, 200);
  assert.equal((await w.map(READ_ORG, READ_ROLE)).status, 200);
  assert.equal((await w.sync()).status, 200);
  assert.deepEqual(await w.held(READ_ROLE), [w.subject]);
  assert.deepEqual(await w.chain(READ_ROLE), w.chained(READ_ROLE));
  w.platform.addUser({ ...w.jdoe, organizations: [LIST_ORG] });
  // The principal and caller caches (1 s here, 30 s by default).
  await new Promise((r) => setTimeout(r, 1100));
  const synced = await w.sync();
  assert.equal(synced.status, 200);
  assert.deepEqual(synced.json.roles.map((r: { profile: string }) => r.profile), [LIST_ROLE]);
  assert.deepEqual(await w.held(LIST_ROLE), [w.subject]);
  assert.deepEqual(await w.held(READ_ROLE), []);
  assert.deepEqual(await w.chain(READ_ROLE), REFUSED);
  assert.deepEqual(await w.chain(LIST_ROLE), w.chained(LIST_ROLE));
});

Deno.test("a run that ended loses its roles at the next cleanup: its token, still valid, is refused by STS", async () => {
  await using w = await startWorld();
  assert.equal((await w.map(LIST_ORG, LIST_ROLE)).status, 200);
  assert.equal((await w.sync()).status, 200);
  const token = await w.podToken(); // as the kubelet mounted it while the run ran
  assert.deepEqual(await w.chain(LIST_ROLE, token), w.chained(LIST_ROLE));
  await w.cluster.setPodPhase(w.compute, w.pod, "Succeeded");
  const ms = await within(
    4 * CLEANUP_SECONDS * 1000 + 2000,
    async () => (await w.held(LIST_ROLE)).length === 0,
  );
  console.error(`revoked by the cleanup ${ms} ms after the run's pod ended`);
  assert.deepEqual(await w.chain(LIST_ROLE, token), REFUSED);
});

Deno.test("a run's end revokes at once, as the pod watch sees it, with no cleanup pass due for an hour", async () => {
  await using w = await startWorld({ cleanupSeconds: 3600 });
  assert.equal((await w.map(LIST_ORG, LIST_ROLE)).status, 200);
  assert.equal((await w.sync()).status, 200);
  const token = await w.podToken();
  assert.deepEqual(await w.chain(LIST_ROLE, token), w.chained(LIST_ROLE));
  await w.cluster.setPodPhase(w.compute, w.pod, "Succeeded");
  const ms = await within(5_000, async () => (await w.held(LIST_ROLE)).length === 0);
  console.error(`revoked by the pod watch ${ms} ms after the run's pod ended`);
  assert.deepEqual(await w.chain(LIST_ROLE, token), REFUSED);
});

Deno.test("a restarted server still knows what was granted: the record survives, the next replica revokes", async () => {
  await using w = await startWorld();
  assert.equal((await w.map(LIST_ORG, LIST_ROLE)).status, 200);
  assert.equal((await w.sync()).status, 200);
  // The grant is in the shard its subject's hash picks.
  const shards = await Promise.all(
    Array.from({ length: 64 }, (_, i) => w.cluster.configMap(w.field, shardName("irsa-grants", i))),
  );
  assert.equal(shards.filter((s) => s?.data["grants.json"]?.includes('"user"')).length, 1);
  await w.server.stop();
  // While no server runs, the mapping goes away out of band.
  await w.cluster.setConfigMap(w.field, "domino-org-iamrole-mapping", {});
  await w.startServer();
  const ms = await within(
    4 * CLEANUP_SECONDS * 1000,
    async () => (await w.held(LIST_ROLE)).length === 0,
  );
  console.error(`revoked by the new replica ${ms} ms after it started`);
  assert.deepEqual(await w.chain(LIST_ROLE), REFUSED);
});

Deno.test("a pod token is bound to its user: another user with jdoe's pod token answers 403 and changes nothing", async () => {
  await using w = await startWorld();
  assert.equal((await w.map(LIST_ORG, LIST_ROLE)).status, 200);
  const token = await w.cluster.tokenRequest(w.compute, `run-${RUN}`, {
    audience: "sts.amazonaws.com",
    pod: w.pod,
  });
  const pod = { "X-Irsa-Workload-Token": token };
  const stolen = await w.sync("user-token-asmith", pod);
  assert.equal(stolen.status, 403);
  assert.match(stolen.json.message, /no live pod started by "asmith"/);
  assert.deepEqual(await w.held(LIST_ROLE), []);
  assert.deepEqual(await w.chain(LIST_ROLE, token), REFUSED);
  assert.equal((await w.sync("user-token-jdoe", pod)).status, 200);
  assert.deepEqual(await w.held(LIST_ROLE), [w.subject]);
  const strip = await w.call(w.server, "DELETE", "/map_iam_roles_to_pod_sa", "user-token-asmith", {
    run_id: RUN,
  }, pod);
  assert.equal(strip.status, 403);
  assert.deepEqual(await w.held(LIST_ROLE), [w.subject]);
});

Deno.test("a workspace's sidecar stopped after its mapping was deleted takes its subject off every role", async () => {
  await using w = await startWorld();
  assert.equal((await w.map(LIST_ORG, LIST_ROLE)).status, 200);
  const dir = `${w.dir}/pod`;
  await Deno.mkdir(`${dir}/.aws`, { recursive: true });
  w.platform.setAccessToken("user-token-jdoe");
  await Deno.writeTextFile(
    `${dir}/token`,
    await w.cluster.tokenRequest(w.compute, `run-${RUN}`, {
      audience: "sts.amazonaws.com",
      pod: w.pod,
    }),
  );
  await Deno.writeTextFile(
    `${dir}/labels`,
    `dominodatalab.com/execution-id="${RUN}"\ndominodatalab.com/irsa-workload-type="edge-workload"\n`,
  );
  const sidecar = await startIrsaProcess(
    "sidecar",
    ["--propagation-check=false"],
    sidecarEnv({
      apiProxy: w.platform.url,
      serverUrl: w.server.url,
      caFile: tls.caCertPath,
      dir,
      runId: RUN,
      username: "jdoe",
      sts: w.sts,
    }),
  );
  try {
    await within(10_000, async () => (await w.held(LIST_ROLE)).length === 1);
    assert.deepEqual(await w.chain(LIST_ROLE), w.chained(LIST_ROLE));
    // The admin deletes the mapping, out of band, while the workspace runs; then it stops.
    await w.cluster.setConfigMap(w.field, "domino-org-iamrole-mapping", {});
  } finally {
    assert.equal(await sidecar.stop("SIGTERM"), 0);
  }
  assert.deepEqual(await w.held(LIST_ROLE), []);
  assert.deepEqual(await w.chain(LIST_ROLE), REFUSED);
});
