/**
 * `deno task bench`: N simultaneous workspace starts over M shared proxy roles, against moto behind
 * the strict STS (no propagation delay, quota lifted) and the fault proxy set to IAM-like latencies, with 1 and with 3 server replicas; then the same
 * workload by the current service's per-request algorithm (for each request and role: read, edit,
 * write; no lock, as its replicas run) with 1, 5 and 16 concurrent workers, reporting the subjects
 * it loses; and the floor, measured: one read and one write per role, roles in parallel, through
 * the same proxy. Prints a table and the ratios, and writes both as JSON. A benchmark, not a test:
 * it asserts nothing, and exits 1 only when irsa loses a subject.
 *
 * Flags: --starts 500 --roles 3 --replicas 1,3 --repeat 3 --workers 1,5,16 --read-ms 60
 *        --write-ms 150 --baseline true --out dist/bench.json
 */
import {
  CreateRoleCommand,
  GetRoleCommand,
  UpdateAssumeRolePolicyCommand,
} from "@aws-sdk/client-iam";
import { createIamClient } from "../src/aws/iam.ts";
import { editTrustPolicy } from "../src/core/trust_policy.ts";
import type { IAMClient } from "@aws-sdk/client-iam";
import { startFaultProxy } from "../tests/fault_proxy.ts";
import { startKubeApiServer } from "../tests/fixtures/kube_apiserver.ts";
import {
  EXAMPLE,
  freshProxyTrustPolicy,
  inAccount,
  seedExampleRoles,
  startMoto,
} from "../tests/fixtures/moto.ts";
import { startOidcIssuer } from "../tests/fixtures/oidc_issuer.ts";
import { startStrictSts } from "../tests/fixtures/strict_sts.ts";
import { type ServerProcess, startServerProcess } from "../tests/server_process.ts";
import { heldSubjects, serverEnv } from "../tests/world.ts";

const flag = (name: string, fallback: string) => {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Deno.args[i + 1] : fallback;
};
const N = Number(flag("starts", "500"));
const M = Number(flag("roles", "3"));
const REPLICAS = flag("replicas", "1,3").split(",").map(Number);
const WORKERS = flag("workers", "1,5,16").split(",").map(Number);
const REPEAT = Number(flag("repeat", "3"));
const READ_MS = Number(flag("read-ms", "60"));
const WRITE_MS = Number(flag("write-ms", "150"));
const BASELINE = flag("baseline", "true") === "true";
const OUT = flag("out", "dist/bench.json");
const QUOTA = 1_000_000; // moto does not enforce the quota; pools are not what this measures.

interface Row {
  algorithm: string;
  replicas: number | null;
  /** Concurrent requests of the per-request algorithm; null for the others. */
  workers: number | null;
  wall_ms: number;
  p50_ms: number;
  p99_ms: number;
  iam_reads: number;
  iam_writes: number;
  failed_requests: number;
  subjects_lost: number;
  /** irsa rows: wall time and IAM writes of every repeat (the row is the median one's). */
  runs_wall_ms?: number[];
  runs_iam_writes?: number[];
  /** irsa rows: the largest VmHWM of the replicas after the burst (the server's peak memory). */
  server_vm_hwm_mib?: number;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : 0;
};

/**
 * The one Kubernetes API the replicas share (the role Leases, the run lookup, the grant record): a
 * real etcd and kube-apiserver (tests/fixtures/kube_apiserver.ts, ~5 s to start), in processes of
 * their own, so that their work does not slow the client's burst. The only place the bench knows
 * which API that is.
 */
async function startKubernetes() {
  const kube = await startKubeApiServer();
  await kube.createNamespace("domino-compute", { exact: true });
  return kube;
}

const moto = await startMoto();
const issuer = await startOidcIssuer();
// IAM goes through the strict STS of the tests (its quota lifted like irsa's, no propagation
// delay), behind the latency proxy: the writes it takes are the ones AWS would take.
const strict = startStrictSts({ motoEndpoint: moto.endpoint, quota: QUOTA });
const proxy = startFaultProxy(strict.endpoint, {
  readLatencyMs: READ_MS,
  writeLatencyMs: WRITE_MS,
});
const dir = await Deno.makeTempDir({ prefix: "irsa-bench-" });
const admin = moto.iamClient();
const rows: Row[] = [];
const closers: (() => Promise<void>)[] = [];
const roleNames = Array.from({ length: M }, (_, i) => `bench-proxy-${i}`);
const runIds = Array.from({ length: N }, (_, i) => (0xbe0000 + i).toString(16).padStart(24, "0"));
const expected = new Set(runIds.map((id) => `*:domino-compute:run-${id}`));

try {
  const kube = await startKubernetes();
  closers.push(() => kube.stop());
  console.error(`creating ${N} run pods and their tokens (TokenRequest)...`);
  const user = await issuer.userToken({
    username: "student",
    groups: roleNames.map((r) => `org-${r}`),
    expiresIn: 3600,
  });
  // Pending pods in domino-compute, labelled as the platform labels run pods (the run lookup
  // proves each token is the student's), and pod-bound tokens from the API server, 20 at a time.
  const saTokens: string[] = [];
  for (let i = 0; i < runIds.length; i += 20) {
    saTokens.push(
      ...await Promise.all(
        runIds.slice(i, i + 20).map(async (id) => {
          const pod = `run-${id}-bench`;
          await kube.createPod("domino-compute", {
            name: pod,
            serviceAccountName: `run-${id}`,
            labels: {
              "dominodatalab.com/execution-id": id,
              "dominodatalab.com/starting-user-username": "student",
            },
          });
          return await kube.tokenRequest("domino-compute", `run-${id}`, { pod });
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
  // Verifies a user token and a pod token but maps no role: warms each replica's signing keys.
  const nobody = await issuer.userToken({ username: "nobody", groups: [], expiresIn: 3600 });
  const warmRun = "f".repeat(24);
  await kube.createPod("domino-compute", {
    name: `run-${warmRun}-warm`,
    serviceAccountName: `run-${warmRun}`,
    labels: {
      "dominodatalab.com/execution-id": warmRun,
      "dominodatalab.com/starting-user-username": "nobody",
    },
  });
  const warmPod = await kube.tokenRequest("domino-compute", `run-${warmRun}`, {
    pod: `run-${warmRun}-warm`,
  });

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

  /** The i-th workspace start's request: the student's token and its pod's. */
  const start = (i: number): RequestInit => ({
    method: "POST",
    headers: {
      Authorization: `Bearer ${user}`,
      "X-Irsa-Workload-Token": saTokens[i],
      Accept: "application/json",
    },
    body: "{}",
  });

  /** One burst on irsa with this many replicas, on fresh roles. */
  const runIrsa = async (replicas: number): Promise<Row> => {
    const world = await freshWorld();
    await Deno.writeTextFile(`${dir}/mappings.json`, JSON.stringify(mappings));
    // A field namespace per run: its Leases and grant record are this run's alone.
    const field = await kube.createNamespace("field");
    // Every replica count the same way (file store, Leases on the one Kubernetes API), so the
    // ratio measures the replicas. The ConfigMap store would add a Kubernetes GET to every start.
    const args = [
      "--insecure-http",
      "--mapping-file",
      `${dir}/mappings.json`,
      "--kubernetes-api",
      kube.url,
      "--kubernetes-token-file",
      kube.adminTokenFile,
      "--kubernetes-ca-file",
      kube.caCertPath,
    ];
    // The replicas seal their hand-off with one key, as the chart's Secret gives them.
    const keyFile = `${dir}/handoff.key`;
    await Deno.writeTextFile(keyFile, crypto.randomUUID() + crypto.randomUUID());
    const env = serverEnv(moto, world, issuer, {
      IRSA_HANDOFF_KEY_FILE: keyFile,
      AWS_ENDPOINT_URL_IAM: proxy.url,
      IRSA_TRUST_POLICY_QUOTA: String(QUOTA),
      IRSA_CLEANUP_INTERVAL_SECONDS: "0",
      DEFAULT_FIELD_NS: field,
      // Pod tokens are the API server's own, verified against its discovery and JWKS.
      IRSA_CLUSTER_ISSUER: kube.issuer,
      IRSA_CA_FILE: kube.caCertPath,
    });
    const servers: ServerProcess[] = [];
    for (let i = 0; i < replicas; i++) {
      servers.push(await startServerProcess(args, env, undefined, { checkAnswers: false }));
    }
    // Warm each replica's keys (user and cluster), so the run measures starts, not the first
    // JWKS fetches, which the issuer in this busy process would answer late.
    await Promise.all(servers.map(async (s) => {
      await (await s.fetch("/my_role_mappings", { headers: { Authorization: `Bearer ${user}` } }))
        .body?.cancel();
      await (await s.fetch("/map_iam_roles_to_pod_sa", {
        method: "POST",
        headers: { Authorization: `Bearer ${nobody}`, "X-Irsa-Workload-Token": warmPod },
        body: "{}",
      })).body?.cancel();
    }));
    proxy.reset();
    console.error(`irsa, ${replicas} replica(s): ${N} starts over ${M} roles...`);
    const t0 = performance.now();
    const results = await Promise.all(runIds.map(async (_, i) => {
      const res = await servers[i % replicas].fetch("/map_iam_roles_to_pod_sa", start(i));
      const body = await res.json();
      return {
        ms: performance.now() - t0,
        ok: res.status === 200 &&
          body.roles.every((r: { status: string }) => r.status !== "failed"),
      };
    }));
    const wall = performance.now() - t0;
    // Peak resident memory of each replica, from /proc (which Deno reads only with --allow-all).
    const hwm = await Promise.all(servers.map(async (s) => {
      const status = new TextDecoder().decode(
        (await new Deno.Command("cat", { args: [`/proc/${s.pid}/status`] }).output()).stdout,
      );
      return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
    }));
    for (const s of servers) await s.stop();
    return {
      algorithm: "irsa (coalesced)",
      replicas,
      workers: null,
      wall_ms: Math.round(wall),
      p50_ms: Math.round(pct(results.map((r) => r.ms), 50)),
      p99_ms: Math.round(pct(results.map((r) => r.ms), 99)),
      iam_reads: proxy.counts.reads,
      iam_writes: proxy.counts.writes,
      failed_requests: results.filter((r) => !r.ok).length,
      subjects_lost: await lost(world),
      server_vm_hwm_mib: Math.round(Math.max(...hwm) * 10) / 10,
    };
  };
  /**
   * The same burst from the same client to a server that only answers (a Deno hello world in a
   * process of its own, with an answer of irsa's size): what delivering 500 requests and their
   * answers costs on this machine, which the IAM floor does not include.
   */
  const runHttpFloor = async (): Promise<number> => {
    const code = `const body = JSON.stringify({ roles: [], config: "x".repeat(1500) });
      Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: ({ port }) => console.log(port) },
        async (r) => { await r.text(); return new Response(body, { headers: { "content-type": "application/json" } }); });`;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-config", code],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n")) text += (await reader.read()).value ?? "";
    const url = `http://127.0.0.1:${text.trim()}`;
    try {
      const t0 = performance.now();
      await Promise.all(runIds.map(async (_, i) => {
        const res = await fetch(`${url}/map_iam_roles_to_pod_sa`, start(i));
        await res.json();
      }));
      return performance.now() - t0;
    } finally {
      child.kill("SIGTERM");
      await child.status;
      reader.releaseLock();
      await child.stdout.cancel().catch(() => {});
    }
  };

  // Interleaved repeats (1, 3, 1, 3, ...): each irsa row is the run of median wall time, and
  // what any run lost or failed counts, since the machine's noise is larger than the differences.
  const runs = new Map<number, Row[]>(REPLICAS.map((r) => [r, []]));
  const httpFloor: number[] = [];
  for (let k = 0; k < REPEAT; k++) {
    for (const replicas of REPLICAS) runs.get(replicas)!.push(await runIrsa(replicas));
    httpFloor.push(await runHttpFloor());
  }
  for (const [replicas, all] of runs) {
    const sorted = [...all].sort((a, b) => a.wall_ms - b.wall_ms);
    const median = sorted[Math.floor((sorted.length - 1) / 2)];
    rows.push({
      ...median,
      failed_requests: all.reduce((n, r) => n + r.failed_requests, 0),
      subjects_lost: all.reduce((n, r) => n + r.subjects_lost, 0),
      runs_wall_ms: all.map((r) => r.wall_ms),
      runs_iam_writes: all.map((r) => r.iam_writes),
      server_vm_hwm_mib: Math.max(...all.map((r) => r.server_vm_hwm_mib ?? 0)),
    });
    console.error(
      `irsa, ${replicas} replica(s): wall ms of ${all.length} runs ${
        all.map((r) => r.wall_ms).join(", ")
      }; IAM writes ${all.map((r) => r.iam_writes).join(", ")}`,
    );
  }

  /** An IAM client of the server's own credentials, through the latency proxy. */
  const iamFor = (world: Awaited<ReturnType<typeof freshWorld>>) =>
    createIamClient({
      region: "us-east-1",
      endpoint: proxy.url,
      credentials: world.serverCredentials,
    });
  const policyOptions = (world: Awaited<ReturnType<typeof freshWorld>>) => ({
    providerArn: world.oidcProviderArn,
    audience: "sts.amazonaws.com",
    format: "wildcard" as const,
    quota: QUOTA,
  });
  /** Read, edit, write: what the current service does for each request and role. */
  const readEditWrite = async (
    iam: IAMClient,
    world: Awaited<ReturnType<typeof freshWorld>>,
    role: string,
    subjects: string[],
  ) => {
    const got = await iam.send(new GetRoleCommand({ RoleName: role }));
    const edit = editTrustPolicy(
      decodeURIComponent(got.Role!.AssumeRolePolicyDocument!),
      { add: subjects },
      policyOptions(world),
    );
    if (edit.changed) {
      await iam.send(
        new UpdateAssumeRolePolicyCommand({ RoleName: role, PolicyDocument: edit.document }),
      );
    }
  };

  if (BASELINE) {
    for (const workers of WORKERS) {
      const world = await freshWorld();
      const iam = iamFor(world);
      console.error(
        `per-request algorithm, ${workers} concurrent worker(s), no lock: ${N} starts over ${M} roles...`,
      );
      let next = 0;
      const latencies: number[] = [];
      const t0 = performance.now();
      await Promise.all(Array.from({ length: workers }, async () => {
        while (next < N) {
          const id = runIds[next++];
          for (const r of roleNames) {
            await readEditWrite(iam, world, r, [`*:domino-compute:run-${id}`]);
          }
          latencies.push(performance.now() - t0);
        }
      }));
      const wall = performance.now() - t0;
      iam.destroy();
      rows.push({
        algorithm: "per-request (current service)",
        replicas: null,
        workers,
        wall_ms: Math.round(wall),
        p50_ms: Math.round(pct(latencies, 50)),
        p99_ms: Math.round(pct(latencies, 99)),
        iam_reads: proxy.counts.reads,
        iam_writes: proxy.counts.writes,
        failed_requests: 0,
        subjects_lost: await lost(world),
      });
    }
  }

  {
    // The floor, measured: every subject of every role in one read and one write per role.
    const world = await freshWorld();
    const iam = iamFor(world);
    console.error(`floor: one read and one write per role, ${M} roles in parallel...`);
    const t0 = performance.now();
    await Promise.all(roleNames.map((r) => readEditWrite(iam, world, r, [...expected])));
    const wall = performance.now() - t0;
    iam.destroy();
    rows.push({
      algorithm: "floor (one read + one write per role)",
      replicas: null,
      workers: null,
      wall_ms: Math.round(wall),
      p50_ms: Math.round(wall),
      p99_ms: Math.round(wall),
      iam_reads: proxy.counts.reads,
      iam_writes: proxy.counts.writes,
      failed_requests: 0,
      subjects_lost: await lost(world),
    });
  }

  {
    const ms = Math.round(
      [...httpFloor].sort((a, b) => a - b)[Math.floor((httpFloor.length - 1) / 2)],
    );
    rows.push({
      algorithm: "HTTP floor (same requests, hello-world server)",
      replicas: null,
      workers: null,
      wall_ms: ms,
      p50_ms: ms,
      p99_ms: ms,
      iam_reads: 0,
      iam_writes: 0,
      failed_requests: 0,
      subjects_lost: 0,
    });
  }

  const header = [
    "algorithm",
    "replicas",
    "workers",
    "wall ms",
    "p50 ms",
    "p99 ms",
    "IAM reads",
    "IAM writes",
    "failed",
    "lost",
    "server MiB",
  ];
  const table = [
    header,
    ...rows.map((r) =>
      [
        r.algorithm,
        r.replicas ?? "-",
        r.workers ?? "-",
        r.wall_ms,
        r.p50_ms,
        r.p99_ms,
        r.iam_reads,
        r.iam_writes,
        r.failed_requests,
        r.subjects_lost,
        r.server_vm_hwm_mib ?? "-",
      ].map(String)
    ),
  ];
  const widths = header.map((_, c) => Math.max(...table.map((row) => row[c].length)));
  const line = (row: string[]) => `| ${row.map((cell, c) => cell.padEnd(widths[c])).join(" | ")} |`;
  const load = new TextDecoder().decode(
    (await new Deno.Command("cat", { args: ["/proc/loadavg"] }).output()).stdout,
  ).split(" ").slice(0, 3).join(" ");
  console.log(
    `\n${N} simultaneous starts, ${M} shared proxy roles, IAM latency ${READ_MS} ms read / ${WRITE_MS} ms write; ${navigator.hardwareConcurrency} cores, load average ${load}\n`,
  );
  console.log(line(table[0]));
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const row of table.slice(1)) console.log(line(row));

  const irsa = (replicas: number) =>
    rows.find((r) => r.algorithm.startsWith("irsa") && r.replicas === replicas);
  const floor = rows.find((r) => r.algorithm.startsWith("floor"))!;
  const http = rows.find((r) => r.algorithm.startsWith("HTTP floor"))!;
  const ratio = (a: number, b: number) => Number((a / Math.max(1, b)).toFixed(2));
  const ratios: Record<string, number | string> = {};
  const one = irsa(1);
  const three = irsa(3);
  // Printed first, so that the last lines are the ones docs/development.md quotes. Not a floor either (the two overlap), but what any HTTP broker pays on top of IAM here.
  if (one) {
    ratios["irsa/(floor + HTTP floor), 1 replica"] = ratio(
      one.wall_ms,
      floor.wall_ms + http.wall_ms,
    );
  }
  if (one) ratios["irsa/floor, 1 replica"] = ratio(one.wall_ms, floor.wall_ms);
  if (one && three) ratios["3 replicas/1 replica"] = ratio(three.wall_ms, one.wall_ms);
  ratios["lost by irsa"] = rows.filter((r) => r.algorithm.startsWith("irsa"))
    .reduce((n, r) => n + r.subjects_lost, 0);
  for (const r of rows.filter((x) => x.algorithm.startsWith("per-request"))) {
    if (!one) break;
    ratios[`per-request ${r.workers} workers/irsa`] = `${
      ratio(r.wall_ms, one.wall_ms)
    }, lost ${r.subjects_lost} of ${N * M}`;
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
        load_average: load,
        rows,
        ratios,
      },
      null,
      2,
    ) + "\n",
  );
  console.log(`\nwritten ${OUT}\n`);
  for (const [name, value] of Object.entries(ratios)) console.log(`${name}: ${value}`);
  if (ratios["lost by irsa"] !== 0) Deno.exitCode = 1;
} finally {
  admin.destroy();
  await proxy.close();
  await strict.close();
  for (const close of closers) await close();
  await issuer.close();
  await moto.stop();
  await Deno.remove(dir, { recursive: true });
}
