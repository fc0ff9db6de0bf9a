/**
 * A run's end revoked under failure: real server processes against moto and the real
 * kube-apiserver (pods, Leases, the grant record), its watches going through the fault proxy. A
 * watch answered 410 relists without missing the run that ended meanwhile; a replica killed as the
 * run ends leaves the revocation to another, and a restarted one finds the runs that ended while
 * none ran; two replicas seeing the same end write once; with the watch down, the poll revokes.
 * The cleanup runs once an hour in every test but the last, so only the watch can revoke in time.
 */
import assert from "node:assert/strict";
import { shardName } from "../src/core/grant_shards.ts";
import { startFakePlatformApi } from "./fakes/platform_api.ts";
import { sharedKubeApiServer } from "./fixtures/kube_apiserver.ts";
import { EXAMPLE, type Moto, type SeededWorld } from "./fixtures/moto.ts";
import { startOidcIssuer } from "./fixtures/oidc_issuer.ts";
import { startFaultProxy } from "./fault_proxy.ts";
import { type KubeFaultProxy, startKubeFaultProxy } from "./kube_fault_proxy.ts";
import { type ServerProcess, startServerProcess } from "./server_process.ts";
import { heldSubjects, pairJson, serverEnv, useMotoWorld } from "./world.ts";
import type { IAMClient } from "@aws-sdk/client-iam";

const ORG = "irsa-iamrole-list-bucket";
const [ROLE] = EXAMPLE.roleNames;
const LABEL = "dominodatalab.com/execution-id";
/** The watch's own list: the run label alone (the cleanup's list also selects by phase). */
const WATCH_LIST = /^labelSelector=dominodatalab\.com%2Fexecution-id$/;

let moto: Moto;
let iam: IAMClient;
let world: SeededWorld;
useMotoWorld((w) => ({ moto, iam, world } = w));

async function startWorld() {
  const cluster = await sharedKubeApiServer();
  const field = await cluster.createNamespace("field");
  const compute = await cluster.createNamespace("compute");
  const platform = startFakePlatformApi();
  const issuer = await startOidcIssuer();
  // Counts IAM's writes (UpdateAssumeRolePolicy) on their way to moto.
  const aws = startFaultProxy(moto.endpoint);
  const kube = startKubeFaultProxy(cluster);
  platform.addUser({
    token: "user-token-jdoe",
    canonicalName: "jdoe",
    canonicalId: "u-jdoe",
    organizations: [ORG],
  });
  await cluster.setConfigMap(field, "domino-org-iamrole-mapping", {
    [ORG]: JSON.stringify(pairJson(ROLE)),
  });
  const servers: ServerProcess[] = [];
  const startServer = async (cleanupSeconds = 3600, kubeUrl = kube.url) => {
    const server = await startServerProcess(
      [
        "--insecure-http",
        "--verifier",
        "domino",
        "--mapping-store",
        "configmap",
        "--kubernetes-api",
        kubeUrl,
        "--kubernetes-token-file",
        cluster.adminTokenFile,
        "--kubernetes-ca-file",
        cluster.caCertPath,
      ],
      serverEnv(moto, world, issuer, {
        AWS_ENDPOINT_URL: aws.url,
        AWS_ENDPOINT_URL_IAM: aws.url,
        DOMINO_USER_HOST: platform.url,
        DEFAULT_FIELD_NS: field,
        DEFAULT_COMPUTE_NS: compute,
        IRSA_CLUSTER_ISSUER: cluster.issuer,
        IRSA_CA_FILE: cluster.caCertPath,
        IRSA_CLEANUP_INTERVAL_SECONDS: String(cleanupSeconds),
        IRSA_CLEANUP_GRACE_SECONDS: "1",
        // A killed replica's role Lease is taken over after this long.
        IRSA_LEASE_DURATION_SECONDS: "3",
      }),
    );
    servers.push(server);
    return server;
  };
  let runs = 0;
  /** A run's pod, started as the platform labels it, and synced by jdoe through `server`. */
  const startRun = async (server: ServerProcess) => {
    const run = (0xe0d000 + runs++).toString(16).padStart(24, "0");
    const pod = `run-${run}-abcde`;
    await cluster.createPod(compute, {
      name: pod,
      labels: {
        [LABEL]: run,
        "dominodatalab.com/starting-user-id": "u-jdoe",
        "dominodatalab.com/starting-user-username": "jdoe",
      },
      serviceAccountName: `run-${run}`,
    });
    const res = await server.fetch("/map_iam_roles_to_pod_sa", {
      method: "POST",
      headers: { Authorization: "Bearer user-token-jdoe", "Content-Type": "application/json" },
      body: JSON.stringify({ run_id: run }),
    });
    assert.equal(res.status, 200, await res.text());
    return { run, pod, subject: `*:${compute}:run-${run}` };
  };
  const held = () => heldSubjects(iam, world, ROLE);
  /** The subjects the grant record holds a grant for, over its 64 shards. */
  const recorded = async () => {
    const shards = await Promise.all(
      Array.from({ length: 64 }, (_, i) => cluster.configMap(field, shardName("irsa-grants", i))),
    );
    assert.ok(shards.some((s) => s !== undefined), "the grant record's shards exist");
    return shards.flatMap((s) =>
      Object.keys(JSON.parse(s?.data["grants.json"] ?? "{}")?.grants ?? {})
    );
  };
  return {
    cluster,
    compute,
    kube,
    aws,
    startServer,
    startRun,
    held,
    recorded,
    async [Symbol.asyncDispose]() {
      for (const s of servers) await s.stop("SIGKILL");
      await kube.close();
      await aws.close();
      await platform.close();
      await issuer.close();
    },
  };
}

/** Polls until `check` holds; returns the milliseconds it took, or throws after `limitMs`. */
async function within(limitMs: number, check: () => Promise<boolean>): Promise<number> {
  const started = performance.now();
  while (!(await check())) {
    if (performance.now() - started > limitMs) throw new Error(`not within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return Math.round(performance.now() - started);
}

const metric = async (server: ServerProcess, line: RegExp) =>
  line.exec(await (await server.fetch("/metrics")).text())?.[1];

/** The watch of `kube`'s clients is listed and watching (its first list and watch were asked). */
const watching = (kube: KubeFaultProxy, n = 1) =>
  within(10_000, () =>
    Promise.resolve(
      kube.requests.filter((r) => r.query.includes("watch=1") && r.status === 200).length >= n,
    ));

Deno.test("a watch answered 410 Gone lists again and revokes the run that ended while it was away", async () => {
  await using w = await startWorld();
  const server = await w.startServer();
  const { pod, subject } = await w.startRun(server);
  assert.deepEqual(await w.held(), [subject]);
  assert.deepEqual(await w.recorded(), [subject]);
  await watching(w.kube);
  // The watch ends (as the API server ends every watch after a while); the next is held 1 s, then
  // asked from a version the API server no longer has. Meanwhile the run's pod is deleted, so no
  // watch delivers its DELETED event: only the relist can tell.
  w.kube.goneNextWatch(1000);
  w.kube.endWatches();
  await w.cluster.deletePod(w.compute, pod);
  const ms = await within(8_000, async () => (await w.held()).length === 0);
  console.error(`revoked ${ms} ms after the pod's deletion, through a 410 and a relist`);
  // The record is narrowed just after the trust policy is edited.
  await within(3_000, async () => (await w.recorded()).length === 0);
  assert.equal(await metric(server, /^irsa_pod_watch_relists_total\{reason="gone"\} (\d+)$/m), "1");
  assert.equal(await metric(server, /^irsa_pod_watch_connected (\d+)$/m), "1");
  const lists = w.kube.requests.filter((r) => WATCH_LIST.test(r.query)).length;
  assert.equal(lists, 2, "the first list and the relist after the 410");
  // Observed once the record is written too, just after the trust policy.
  await within(
    2_000,
    async () => (await metric(server, /^irsa_revocation_latency_seconds_count (\d+)$/m)) === "1",
  );
});

Deno.test("a replica killed as a run ends leaves the revocation to another; one restarted finds the runs that ended while none ran", async () => {
  await using w = await startWorld();
  const a = await w.startServer();
  const b = await w.startServer();
  await watching(w.kube, 2);
  const first = await w.startRun(a);
  const second = await w.startRun(b);
  assert.deepEqual((await w.held()).sort(), [first.subject, second.subject].sort());
  // A dies (no SIGTERM, no hand-over) at the moment the run's pod goes.
  await Promise.all([a.stop("SIGKILL"), w.cluster.deletePod(w.compute, first.pod)]);
  const ms = await within(10_000, async () => !(await w.held()).includes(first.subject));
  console.error(`the surviving replica revoked ${ms} ms after the pod's deletion`);
  assert.deepEqual(await w.held(), [second.subject]);

  // Now no replica runs while the second run ends; the first replica to start revokes it at its
  // first list (the grant is older than the margin between replicas' clocks), not at the cleanup.
  await b.stop("SIGKILL");
  await w.cluster.deletePod(w.compute, second.pod);
  await new Promise((r) => setTimeout(r, 30_500)); // the grant older than UNLISTED_MARGIN_MS
  const c = await w.startServer();
  const restarted = await within(5_000, async () => (await w.held()).length === 0);
  console.error(`the restarted replica revoked ${restarted} ms after it listened`);
  // The record is narrowed just after the trust policy is edited.
  await within(3_000, async () => (await w.recorded()).length === 0);
  assert.match(
    (await metric(c, /^(irsa_revoked_subjects_total\{reason="run_ended"\} \d+)$/m))!,
    / 1$/,
  );
});

Deno.test("two replicas seeing the same end revoke once: one IAM write, one revocation counted, the record emptied", async () => {
  await using w = await startWorld();
  const servers = [await w.startServer(), await w.startServer()];
  await watching(w.kube, 2);
  const { pod, subject } = await w.startRun(servers[0]);
  assert.deepEqual(await w.held(), [subject]);
  w.aws.reset();
  await w.cluster.deletePod(w.compute, pod);
  await within(8_000, async () => (await w.held()).length === 0);
  // Both replicas have seen the DELETED event and acted on it; give the second time to finish.
  await new Promise((r) => setTimeout(r, 2000));
  assert.equal(w.aws.counts.writes, 1, "one UpdateAssumeRolePolicy for the end, not two");
  // The record is narrowed just after the trust policy is edited.
  await within(3_000, async () => (await w.recorded()).length === 0);
  const revoked = await Promise.all(
    servers.map((s) => metric(s, /^irsa_revoked_subjects_total\{reason="run_ended"\} (\d+)$/m)),
  );
  assert.equal(revoked.map((n) => Number(n ?? 0)).reduce((x, y) => x + y), 1, `${revoked}`);
  assert.deepEqual(await w.held(), []);
});

Deno.test("with the watch down (its lists and watches failing), the poll still revokes the ended run", async () => {
  await using w = await startWorld();
  const server = await w.startServer(2);
  const { pod, subject } = await w.startRun(server);
  await watching(w.kube);
  // From now on every watch and every list of the watch fails; the cleanup's list and the run
  // lookup still pass.
  w.kube.failNext(100_000, 500, { query: /watch=1/ });
  w.kube.failNext(100_000, 500, { query: WATCH_LIST });
  w.kube.endWatches();
  await within(
    5_000,
    async () => (await metric(server, /^irsa_pod_watch_connected (\d+)$/m)) === "0",
  );
  assert.deepEqual(await w.held(), [subject]);
  await w.cluster.deletePod(w.compute, pod);
  const ms = await within(10_000, async () => (await w.held()).length === 0);
  console.error(`the poll (every 2 s) revoked ${ms} ms after the pod's deletion, the watch down`);
  assert.equal(await metric(server, /^irsa_pod_watch_connected (\d+)$/m), "0");
  assert.ok(Number(await metric(server, /^irsa_pod_watch_lag_seconds ([\d.]+)$/m)) > 1);
  assert.ok(
    Number(await metric(server, /^irsa_pod_watch_relists_total\{reason="error"\} (\d+)$/m)) >= 1,
    "the watch kept trying",
  );
  // Counted just after the trust policy is written.
  await within(
    2_000,
    async () => (await metric(server, /^irsa_cleanup_removed_subjects_total (\d+)$/m)) === "1",
  ); // the cleanup, not the watch, took it off
});
