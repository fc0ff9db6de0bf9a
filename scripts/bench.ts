/**
 * `deno task bench`: N simultaneous workspace starts over M shared proxy roles, against moto behind
 * the fault proxy set to IAM-like latencies, with 1 and with 3 server replicas; then the same
 * workload by the current service's per-request algorithm (for each request and role: read, edit,
 * write, under one lock) against the same moto, and the floor (one read and one write per role).
 * Prints a table and writes JSON. A benchmark, not a test: it asserts nothing but reports losses.
 *
 * Flags: --starts 500 --roles 3 --replicas 1,3 --read-ms 60 --write-ms 150 --baseline true --out dist/bench.json
 */
import {
  CreateRoleCommand,
  GetRoleCommand,
  UpdateAssumeRolePolicyCommand,
} from "@aws-sdk/client-iam";
import { createIamClient } from "../src/aws/iam.ts";
import { editTrustPolicy } from "../src/core/trust_policy.ts";
import { startKubeApiServer } from "../tests/fixtures/kube_apiserver.ts";
import { startFaultProxy } from "../tests/fault_proxy.ts";
import {
  EXAMPLE,
  freshProxyTrustPolicy,
  inAccount,
  seedExampleRoles,
  startMoto,
} from "../tests/fixtures/moto.ts";
import { startOidcIssuer } from "../tests/fixtures/oidc_issuer.ts";
import { type ServerProcess, startServerProcess } from "../tests/server_process.ts";
import { heldSubjects, serverEnv } from "../tests/world.ts";

const flag = (name: string, fallback: string) => {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Deno.args[i + 1] : fallback;
};
const N = Number(flag("starts", "500"));
const M = Number(flag("roles", "3"));
const REPLICAS = flag("replicas", "1,3").split(",").map(Number);
const READ_MS = Number(flag("read-ms", "60"));
const WRITE_MS = Number(flag("write-ms", "150"));
const BASELINE = flag("baseline", "true") === "true";
const OUT = flag("out", "dist/bench.json");
const QUOTA = 1_000_000; // moto does not enforce the quota; pools are not what this measures.

interface Row {
  algorithm: string;
  replicas: number | null;
  wall_ms: number;
  p50_ms: number;
  p99_ms: number;
  iam_reads: number;
  iam_writes: number;
  failed_requests: number;
  subjects_lost: number;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : 0;
};

const moto = await startMoto();
const issuer = await startOidcIssuer();
// Replicas coordinate through Leases on a real API server (etcd and kube-apiserver, ~5 s to start).
const kube = await startKubeApiServer();
const proxy = startFaultProxy(moto.endpoint, { readLatencyMs: READ_MS, writeLatencyMs: WRITE_MS });
const dir = await Deno.makeTempDir({ prefix: "irsa-bench-" });
const admin = moto.iamClient();
const rows: Row[] = [];
const roleNames = Array.from({ length: M }, (_, i) => `bench-proxy-${i}`);
const runIds = Array.from({ length: N }, (_, i) => (0xbe0000 + i).toString(16).padStart(24, "0"));
const expected = new Set(runIds.map((id) => `*:domino-compute:run-${id}`));

try {
  console.error(`creating ${N} run pods and their tokens (TokenRequest)...`);
  const user = await issuer.userToken({
    username: "student",
    groups: roleNames.map((r) => `org-${r}`),
    expiresIn: 3600,
  });
  // Pending pods in domino-compute and pod-bound tokens from the API server, 20 at a time.
  const compute = await kube.createNamespace("domino-compute", { exact: true });
  const saTokens: string[] = [];
  for (let i = 0; i < runIds.length; i += 20) {
    saTokens.push(
      ...await Promise.all(
        runIds.slice(i, i + 20).map(async (id) => {
          const pod = `run-${id}-bench`;
          // Labelled as the platform labels run pods: the run lookup proves the token is the user's.
          await kube.createPod(compute, {
            name: pod,
            serviceAccountName: `run-${id}`,
            labels: {
              "dominodatalab.com/execution-id": id,
              "dominodatalab.com/starting-user-username": "student",
            },
          });
          return await kube.tokenRequest(compute, `run-${id}`, { pod });
        }),
      ),
    );
  }
  const mappings = Object.fromEntries(roleNames.map((r, i) => [
    `org-${r}`,
    JSON.stringify({
      iam_role_arn: `arn:aws:iam::${EXAMPLE.assetsAccount}:role/bench-asset-${i}`,
      proxy_iam_role_arn: `arn:aws:iam::${EXAMPLE.eksAccount}:role/${r}`,
    }),
  ]));

  /** Fresh roles for one run of the workload; returns the server's credentials. */
  const freshWorld = async () => {
    await moto.reset();
    const world = await seedExampleRoles(admin);
    for (const r of roleNames) {
      await admin.send(
        inAccount(
          EXAMPLE.eksAccount,
          new CreateRoleCommand({
            RoleName: r,
            AssumeRolePolicyDocument: freshProxyTrustPolicy(
              world.oidcProviderArn,
              EXAMPLE.oidcHost,
            ),
          }),
        ),
      );
    }
    proxy.reset();
    return world;
  };

  const lost = async (world: Awaited<ReturnType<typeof freshWorld>>): Promise<number> => {
    let missing = 0;
    for (const r of roleNames) {
      const held = new Set(await heldSubjects(admin, world, r));
      for (const s of expected) if (!held.has(s)) missing++;
    }
    return missing;
  };

  for (const replicas of REPLICAS) {
    const world = await freshWorld();
    // A namespace per run, so that Leases and mappings of the last run are not this one's.
    const field = await kube.createNamespace("field");
    await kube.setConfigMap(field, "domino-org-iamrole-mapping", mappings);
    await Deno.writeTextFile(`${dir}/mappings.json`, JSON.stringify(mappings));
    // One replica runs embedded (file store, in-process queue); several coordinate through Leases.
    const args = replicas > 1
      ? [
        "--insecure-http",
        "--mapping-store",
        "configmap",
        "--kubernetes-api",
        kube.url,
        "--kubernetes-token-file",
        kube.adminTokenFile,
        "--kubernetes-ca-file",
        kube.caCertPath,
      ]
      // No run lookup without Kubernetes: the pod's token alone proves the pod (the admin's opt-in).
      : ["--insecure-http", "--mapping-file", `${dir}/mappings.json`, "--trust-pod-token-alone"];
    const env = serverEnv(moto, world, issuer, {
      AWS_ENDPOINT_URL_IAM: proxy.url,
      IRSA_TRUST_POLICY_QUOTA: String(QUOTA),
      IRSA_CLEANUP_INTERVAL_SECONDS: "0",
      DEFAULT_FIELD_NS: field,
      IRSA_CLUSTER_ISSUER: kube.issuer,
      IRSA_CA_FILE: kube.caCertPath,
    });
    const servers: ServerProcess[] = [];
    for (let i = 0; i < replicas; i++) {
      servers.push(
        // Timed: the tests' check of every answer against the document would be timed with it.
        await startServerProcess(args, env, undefined, { checkAnswers: false }),
      );
    }
    // Warm each replica's user-token keys, so the run measures starts, not the first JWKS fetch.
    await Promise.all(
      servers.map(async (s) =>
        (await s.fetch("/my_role_mappings", { headers: { Authorization: `Bearer ${user}` } })).body
          ?.cancel()
      ),
    );
    proxy.reset();
    console.error(`irsa, ${replicas} replica(s): ${N} starts over ${M} roles...`);
    const t0 = performance.now();
    const results = await Promise.all(runIds.map(async (_, i) => {
      const res = await servers[i % replicas].fetch("/map_iam_roles_to_pod_sa", {
        method: "POST",
        headers: {
          Authorization: `Bearer ${user}`,
          "X-Irsa-Workload-Token": saTokens[i],
          Accept: "application/json",
        },
        body: "{}",
      });
      const body = await res.json();
      return {
        ms: performance.now() - t0,
        ok: res.status === 200 &&
          body.roles.every((r: { status: string }) => r.status !== "failed"),
      };
    }));
    const wall = performance.now() - t0;
    for (const s of servers) await s.stop();
    rows.push({
      algorithm: "irsa (coalesced)",
      replicas,
      wall_ms: Math.round(wall),
      p50_ms: Math.round(pct(results.map((r) => r.ms), 50)),
      p99_ms: Math.round(pct(results.map((r) => r.ms), 99)),
      iam_reads: proxy.counts.reads,
      iam_writes: proxy.counts.writes,
      failed_requests: results.filter((r) => !r.ok).length,
      subjects_lost: await lost(world),
    });
  }

  if (BASELINE) {
    const world = await freshWorld();
    const iam = createIamClient({
      region: "us-east-1",
      endpoint: proxy.url,
      credentials: world.serverCredentials,
    });
    const options = {
      providerArn: world.oidcProviderArn,
      audience: "sts.amazonaws.com",
      format: "wildcard" as const,
      quota: QUOTA,
    };
    console.error(
      `per-request algorithm: ${N} starts over ${M} roles (read, edit, write under one lock)...`,
    );
    let tail = Promise.resolve();
    const t0 = performance.now();
    const latencies = await Promise.all(runIds.map((id) => {
      const mine = tail.then(async () => {
        for (const r of roleNames) {
          const got = await iam.send(new GetRoleCommand({ RoleName: r }));
          const edit = editTrustPolicy(decodeURIComponent(got.Role!.AssumeRolePolicyDocument!), {
            add: [`*:domino-compute:run-${id}`],
          }, options);
          if (edit.changed) {
            await iam.send(
              new UpdateAssumeRolePolicyCommand({ RoleName: r, PolicyDocument: edit.document }),
            );
          }
        }
        return performance.now() - t0;
      });
      tail = mine.then(() => {});
      return mine;
    }));
    const wall = performance.now() - t0;
    iam.destroy();
    rows.push({
      algorithm: "per-request (current service)",
      replicas: 1,
      wall_ms: Math.round(wall),
      p50_ms: Math.round(pct(latencies, 50)),
      p99_ms: Math.round(pct(latencies, 99)),
      iam_reads: proxy.counts.reads,
      iam_writes: proxy.counts.writes,
      failed_requests: 0,
      subjects_lost: await lost(world),
    });
  }
  rows.push({
    algorithm: "floor (one read + one write per role)",
    replicas: null,
    wall_ms: READ_MS + WRITE_MS,
    p50_ms: READ_MS + WRITE_MS,
    p99_ms: READ_MS + WRITE_MS,
    iam_reads: M,
    iam_writes: M,
    failed_requests: 0,
    subjects_lost: 0,
  });

  const header = [
    "algorithm",
    "replicas",
    "wall ms",
    "p50 ms",
    "p99 ms",
    "IAM reads",
    "IAM writes",
    "failed",
    "lost",
  ];
  const table = [
    header,
    ...rows.map((r) =>
      [
        r.algorithm,
        r.replicas ?? "-",
        r.wall_ms,
        r.p50_ms,
        r.p99_ms,
        r.iam_reads,
        r.iam_writes,
        r.failed_requests,
        r.subjects_lost,
      ].map(String)
    ),
  ];
  const widths = header.map((_, c) => Math.max(...table.map((row) => row[c].length)));
  const line = (row: string[]) => `| ${row.map((cell, c) => cell.padEnd(widths[c])).join(" | ")} |`;
  console.log(
    `\n${N} simultaneous starts, ${M} shared proxy roles, IAM latency ${READ_MS} ms read / ${WRITE_MS} ms write\n`,
  );
  console.log(line(table[0]));
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const row of table.slice(1)) console.log(line(row));
  const base = rows.find((r) => r.algorithm.startsWith("per-request"));
  if (base) {
    for (const r of rows.filter((x) => x.algorithm.startsWith("irsa"))) {
      console.log(
        `\n${r.replicas} replica(s): ${
          (base.wall_ms / r.wall_ms).toFixed(1)
        }x faster to all mapped, ` +
          `${
            ((base.iam_reads + base.iam_writes) / Math.max(1, r.iam_reads + r.iam_writes)).toFixed(
              1,
            )
          }x fewer IAM calls than per-request`,
      );
    }
  }
  await Deno.mkdir(OUT.slice(0, OUT.lastIndexOf("/")) || ".", { recursive: true });
  await Deno.writeTextFile(
    OUT,
    JSON.stringify(
      {
        starts: N,
        roles: M,
        read_ms: READ_MS,
        write_ms: WRITE_MS,
        cores: navigator.hardwareConcurrency,
        rows,
      },
      null,
      2,
    ) + "\n",
  );
  console.log(`\nwritten ${OUT}`);
  if (rows.some((r) => r.subjects_lost > 0)) Deno.exitCode = 1;
} finally {
  admin.destroy();
  await proxy.close();
  await kube.stop();
  await issuer.close();
  await moto.stop();
  await Deno.remove(dir, { recursive: true });
}
