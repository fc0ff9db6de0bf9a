/**
 * `deno task bench:scale`: irsa holding many run pods at once, with 3 server replicas on a real
 * kube-apiserver (its own etcd) and moto behind the strict STS (IAM's 2048-character trust-policy
 * quota enforced). N run pods are created (plain API objects: no kubelet, so each is set Running
 * through the status subresource) and each is started (its sidecar's POST), over pools of proxy
 * roles (50 at most each, one per organization) sized so that N subjects fit the quota (--per-role
 * subjects a role, default 20); a sample of starts and stops is timed with 0, N/2 and N pods held;
 * then --ends runs end by the deletion of their pods, and the time until each subject is off its proxy role is measured from outside
 * (GetRole). Every Kubernetes write of the replicas is counted by a proxy in front of the API
 * server. A benchmark, not a test: it exits 1 only when a subject is lost or a start fails.
 *
 * Flags: --pods 20000 --per-role 20 --sample 100 --ends 1000 --replicas 3 --concurrency 30
 *        --out dist/bench-scale.json
 */
import { CreateRoleCommand, GetRoleCommand } from "@aws-sdk/client-iam";
import { subjectsOf } from "../src/core/trust_policy.ts";
import { startKubeFaultProxy } from "../tests/kube_fault_proxy.ts";
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
import { serverEnv } from "../tests/world.ts";

const flag = (name: string, fallback: string) => {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Deno.args[i + 1] : fallback;
};
const N = Number(flag("pods", "20000"));
const PER_ROLE = Number(flag("per-role", "20"));
const SAMPLE = Number(flag("sample", "100"));
const ENDS = Math.min(N, Number(flag("ends", "1000")));
const REPLICAS = Number(flag("replicas", "3"));
const CONCURRENCY = Number(flag("concurrency", "30"));
const OUT = flag("out", "dist/bench-scale.json");
const COMPUTE = "domino-compute";
const LABEL = "dominodatalab.com/execution-id";

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : 0;
};
const round = (x: number) => Math.round(x);
class RetryableError extends Error {}
const log = (line: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${line}`);

/** Runs `f` over `items`, `limit` at a time; the first failure stops the rest. */
async function pooled<T, R>(
  items: readonly T[],
  limit: number,
  f: (x: T, i: number) => Promise<R>,
) {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      try {
        out[i] = await f(items[i], i);
      } catch (error) {
        next = items.length; // the other workers stop at their next item
        throw error;
      }
    }
  }));
  return out;
}

const moto = await startMoto();
const issuer = await startOidcIssuer();
const strict = startStrictSts({ motoEndpoint: moto.endpoint }); // IAM's quota: 2048
const kube = await startKubeApiServer();
const counter = startKubeFaultProxy(kube);
const servers: ServerProcess[] = [];
const dir = await Deno.makeTempDir({ prefix: "irsa-bench-scale-" });
let failed = false;
let sampler: ReturnType<typeof setInterval> | undefined;
try {
  const admin = moto.iamClient();
  const world = await seedExampleRoles(admin);
  await kube.createNamespace(COMPUTE, { exact: true });
  const field = await kube.createNamespace("field");

  // The pools: enough proxy roles for every pod's subject (and the sample's) within the quota. A
  // pool holds at most 50 roles (the mapping's limit), so the pods belong to G organizations, each
  // a user of its own with one pair whose pool is G's share of the roles.
  const totalRoles = Math.ceil((N + SAMPLE) / PER_ROLE);
  const G = Math.ceil(totalRoles / 50);
  const perPool = Math.ceil(totalRoles / G);
  const roles = Array.from(
    { length: G * perPool },
    (_, i) => `scale-proxy-${String(i).padStart(5, "0")}`,
  );
  const pools = Array.from({ length: G }, (_, g) => roles.slice(g * perPool, (g + 1) * perPool));
  log(
    `creating ${roles.length} proxy roles in ${G} pools (${PER_ROLE} subjects each fit the 2048 quota)...`,
  );
  await pooled(roles, 8, (name) =>
    admin.send(inAccount(
      EXAMPLE.eksAccount,
      new CreateRoleCommand({
        RoleName: name,
        AssumeRolePolicyDocument: freshProxyTrustPolicy(world.oidcProviderArn, EXAMPLE.oidcHost),
      }),
    )));
  const arn = (name: string) => `arn:aws:iam::${EXAMPLE.eksAccount}:role/${name}`;
  await Deno.writeTextFile(
    `${dir}/mappings.json`,
    JSON.stringify(Object.fromEntries(pools.map((pool, g) => [
      `org-scale-${g}`,
      JSON.stringify({
        iam_role_arn: `arn:aws:iam::${EXAMPLE.assetsAccount}:role/scale-asset-${g}`,
        proxy_iam_role_arn: arn(pool[0]),
        proxy_iam_role_arns: pool.map(arn),
      }),
    ]))),
  );
  /** The organization (and user) of the i-th run: round robin over the pools. */
  const groupOf = new Map<string, number>();

  const runId = (i: number) => {
    const run = (0x5ca1e000000 + i).toString(16).padStart(24, "0");
    groupOf.set(run, i % G);
    return run;
  };
  const bulk = Array.from({ length: N }, (_, i) => runId(i));
  const sample = Array.from({ length: SAMPLE }, (_, i) => runId(N + i));
  const subject = (run: string) => `*:${COMPUTE}:run-${run}`;

  log(`creating ${N + SAMPLE} run pods, each set Running...`);
  const t0 = performance.now();
  await pooled([...bulk, ...sample], 16, async (run) => {
    const name = `run-${run}-scale`;
    await kube.createPod(COMPUTE, {
      name,
      serviceAccountName: `run-${run}`,
      labels: {
        [LABEL]: run,
        "dominodatalab.com/starting-user-username": `student-${groupOf.get(run)}`,
      },
    });
    await kube.setPodPhase(COMPUTE, name, "Running");
  });
  log(`pods created in ${round((performance.now() - t0) / 1000)} s`);

  const args = [
    "--insecure-http",
    "--mapping-file",
    `${dir}/mappings.json`,
    "--kubernetes-api",
    counter.url,
    "--kubernetes-token-file",
    kube.adminTokenFile,
    "--kubernetes-ca-file",
    kube.caCertPath,
  ];
  const keyFile = `${dir}/handoff.key`;
  await Deno.writeTextFile(keyFile, crypto.randomUUID() + crypto.randomUUID());
  const env = serverEnv(moto, world, issuer, {
    IRSA_HANDOFF_KEY_FILE: keyFile,
    AWS_ENDPOINT_URL_IAM: strict.endpoint,
    AWS_ENDPOINT_URL_STS: strict.endpoint,
    DEFAULT_FIELD_NS: field,
    DEFAULT_COMPUTE_NS: COMPUTE,
    IRSA_CLUSTER_ISSUER: kube.issuer,
    IRSA_CA_FILE: kube.caCertPath,
  });
  for (let i = 0; i < REPLICAS; i++) {
    servers.push(await startServerProcess(args, env, undefined, { checkAnswers: false }));
  }
  // etcd's database, sampled every 5 s: what the record's writes cost the cluster's store (its
  // default quota is 2 GiB; the API server compacts history every 5 minutes).
  const etcd = { peak: 0, peakInUse: 0, last: 0 };
  const sampleEtcd = async () => {
    const text = await (await fetch(`${kube.etcdUrl}/metrics`)).text();
    const gauge = (name: string) =>
      Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? 0);
    etcd.last = gauge("etcd_mvcc_db_total_size_in_bytes");
    etcd.peak = Math.max(etcd.peak, etcd.last);
    etcd.peakInUse = Math.max(etcd.peakInUse, gauge("etcd_mvcc_db_total_size_in_use_in_bytes"));
  };
  sampler = setInterval(() => sampleEtcd().catch(() => {}), 5_000);
  const users = await Promise.all(
    pools.map((_, g) =>
      issuer.userToken({
        username: `student-${g}`,
        groups: [`org-scale-${g}`],
        expiresIn: 4 * 3600,
      })
    ),
  );
  let turn = 0;
  let retried = 0;
  /**
   * One pod's sidecar start or stop on the next replica, tried again (on the next replica, after
   * 1 s, at most 3 times) when it answers 5xx, as the sidecar does; its time, retries included.
   */
  const call = async (method: "POST" | "DELETE", run: string) => {
    const t = performance.now();
    for (let attempt = 0;; attempt++) {
      try {
        await once(method, run);
        return performance.now() - t;
      } catch (error) {
        if (!(error instanceof RetryableError) || attempt >= 3) throw error;
        retried++;
        log(`retrying (${attempt + 1}): ${error.message.slice(0, 300)}`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  };
  const once = async (method: "POST" | "DELETE", run: string) => {
    const server = servers[turn++ % servers.length];
    const t = performance.now();
    const res = await server.fetch("/map_iam_roles_to_pod_sa", {
      method,
      headers: {
        Authorization: `Bearer ${users[groupOf.get(run)!]}`,
        "Content-Type": "application/json",
        Accept: "application/json",
      },
      body: JSON.stringify({ run_id: run }),
    });
    const text = await res.text();
    if (res.status >= 500) throw new RetryableError(`${method} ${run}: ${res.status} ${text}`);
    if (res.status !== 200) throw new Error(`${method} ${run}: ${res.status} ${text}`);
    // A start answers 200 with every role's outcome: one that failed or mapped nothing is a failure.
    const roles = method === "POST" ? JSON.parse(text).roles : undefined;
    if (
      roles && (roles.length === 0 || roles.some((r: { status: string }) => r.status === "failed"))
    ) {
      throw new Error(`${method} ${run}: ${text.slice(0, 600)}`);
    }
    return performance.now() - t;
  };
  const writes = () => counter.requests.filter((r) => r.method !== "GET").length;
  const writesByKind = () => {
    const kinds: Record<string, number> = {};
    for (const r of counter.requests) {
      if (r.method === "GET") continue;
      const kind = r.path.includes("/leases/")
        ? "lease"
        : r.path.includes("/configmaps/irsa-grants")
        ? "grant_shard"
        : "other";
      const key = `${kind}_${r.method.toLowerCase()}_${r.status}`;
      kinds[key] = (kinds[key] ?? 0) + 1;
    }
    return kinds;
  };
  /** Bytes the replicas wrote to the grant record's shards so far. */
  const recordBytes = () =>
    counter.requests.filter((r) => r.method === "PUT" && r.path.includes("/configmaps/irsa-grants"))
      .reduce((n, r) => n + r.bytes, 0);

  const checkpoints: Record<string, unknown>[] = [];
  /** The sample started, then stopped, one at a time: latencies and Kubernetes writes per start. */
  const measure = async (held: number) => {
    const w0 = writes();
    const k0 = writesByKind();
    const starts = [];
    for (const run of sample) starts.push(await call("POST", run));
    const startWrites = (writes() - w0) / sample.length;
    const k1 = writesByKind();
    // The writes while the sample started, by kind: what a start costs beyond its three.
    const startWritesByKind = Object.fromEntries(
      Object.entries(k1).map(([k, n]) => [k, n - (k0[k] ?? 0)]).filter(([, n]) => n !== 0),
    );
    const w1 = writes();
    const stops = [];
    for (const run of sample) stops.push(await call("DELETE", run));
    const stopWrites = (writes() - w1) / sample.length;
    const c = {
      held,
      start_p50_ms: round(pct(starts, 50)),
      start_p99_ms: round(pct(starts, 99)),
      stop_p50_ms: round(pct(stops, 50)),
      stop_p99_ms: round(pct(stops, 99)),
      kubernetes_writes_per_start: Math.round(startWrites * 100) / 100,
      kubernetes_writes_per_stop: Math.round(stopWrites * 100) / 100,
      kubernetes_writes_while_starting: startWritesByKind,
    };
    checkpoints.push(c);
    log(`at ${held} held: ${JSON.stringify(c)}`);
    return c;
  };

  await measure(0);
  const bulkWrites: number[] = [];
  const bulkBytes: number[] = [];
  for (const [from, to] of [[0, Math.floor(N / 2)], [Math.floor(N / 2), N]]) {
    log(`starting pods ${from}..${to} (${CONCURRENCY} at a time over ${REPLICAS} replicas)...`);
    const w0 = writes();
    const b0 = recordBytes();
    const t = performance.now();
    await pooled(bulk.slice(from, to), CONCURRENCY, (run) => call("POST", run));
    bulkWrites.push((writes() - w0) / Math.max(1, to - from));
    bulkBytes.push((recordBytes() - b0) / Math.max(1, to - from));
    log(`${to - from} starts in ${round((performance.now() - t) / 1000)} s`);
    await measure(to);
  }

  log(`reading every proxy role's trust policy...`);
  const holder = new Map<string, string>();
  await pooled(roles, 8, async (name) => {
    const out = await admin.send(
      inAccount(EXAMPLE.eksAccount, new GetRoleCommand({ RoleName: name })),
    );
    for (
      const s of subjectsOf(out.Role!.AssumeRolePolicyDocument!, {
        providerArn: world.oidcProviderArn,
        audience: "sts.amazonaws.com",
        format: "wildcard",
        quota: Number.MAX_SAFE_INTEGER,
      })
    ) holder.set(s, name);
  });
  const held = bulk.filter((run) => holder.has(subject(run))).length;
  const lost = N - held;

  // Runs end: their pods deleted in waves of 50; each subject's absence seen by GetRole.
  log(`ending ${ENDS} runs by deleting their pods...`);
  const latencies: number[] = [];
  const ending = bulk.slice(0, ENDS);
  for (let i = 0; i < ending.length; i += 50) {
    const wave = ending.slice(i, i + 50);
    const deleted = new Map<string, number>();
    await pooled(wave, 16, async (run) => {
      await kube.deletePod(COMPUTE, `run-${run}-scale`);
      deleted.set(run, performance.now());
    });
    const waiting = new Set(wave.filter((run) => holder.has(subject(run))));
    const deadline = performance.now() + 60_000;
    while (waiting.size > 0 && performance.now() < deadline) {
      const byRole = new Set([...waiting].map((run) => holder.get(subject(run))!));
      await pooled([...byRole], 8, async (name) => {
        const out = await admin.send(
          inAccount(EXAMPLE.eksAccount, new GetRoleCommand({ RoleName: name })),
        );
        const now = performance.now();
        const still = new Set(subjectsOf(out.Role!.AssumeRolePolicyDocument!, {
          providerArn: world.oidcProviderArn,
          audience: "sts.amazonaws.com",
          format: "wildcard",
          quota: Number.MAX_SAFE_INTEGER,
        }));
        for (const run of [...waiting]) {
          if (holder.get(subject(run)) === name && !still.has(subject(run))) {
            latencies.push(now - deleted.get(run)!);
            waiting.delete(run);
          }
        }
      });
      if (waiting.size > 0) await new Promise((r) => setTimeout(r, 50));
    }
    if (waiting.size > 0) {
      failed = true;
      log(`${waiting.size} subjects still held 60 s after their pods were deleted`);
      const run = [...waiting][0];
      for (const [i, s] of servers.entries()) {
        for (const line of s.logs.filter((l) => l.includes(run)).slice(-6)) {
          log(`replica ${i}: ${line.slice(0, 400)}`);
        }
      }
    }
  }

  clearInterval(sampler);
  await sampleEtcd();
  const at0 = checkpoints[0] as { start_p50_ms: number; start_p99_ms: number };
  const atN = checkpoints.at(-1) as { start_p50_ms: number; start_p99_ms: number };
  const perStart = bulkWrites.reduce((a, b) => a + b, 0) / bulkWrites.length;
  // What the replicas warned of, counted by message.
  const warnings: Record<string, number> = {};
  for (const s of servers) {
    for (const line of s.logs) {
      if (!/"level":"(warn|error)"/.test(line)) continue;
      const msg = /"msg":"([^"]*)"/.exec(line)?.[1] ?? line.slice(0, 80);
      warnings[msg] = (warnings[msg] ?? 0) + 1;
    }
  }
  log(`the replicas' warnings: ${JSON.stringify(warnings)}`);
  // Through `cat`: Deno reads /proc files only with every permission.
  const loadavg = new TextDecoder().decode(
    (await new Deno.Command("cat", { args: ["/proc/loadavg"] }).output()).stdout,
  ).split(" ").slice(0, 3).join(" ");
  const result = {
    date: new Date().toISOString().slice(0, 10),
    machine: `${navigator.hardwareConcurrency} cores`,
    load_average_at_end: loadavg,
    pods: N,
    replicas: REPLICAS,
    proxy_roles: roles.length,
    pools: G,
    per_role: PER_ROLE,
    sample: SAMPLE,
    checkpoints,
    bulk_kubernetes_writes_per_start: bulkWrites.map((w) => Math.round(w * 100) / 100),
    bulk_grant_record_bytes_per_start: bulkBytes.map(round),
    // Every write of the replicas by kind, over the whole run; a 409 is a write that lost a race.
    kubernetes_writes: writesByKind(),
    etcd_db_peak_mib: Math.round(etcd.peak / 2 ** 20),
    etcd_db_peak_in_use_mib: Math.round(etcd.peakInUse / 2 ** 20),
    etcd_db_at_end_mib: Math.round(etcd.last / 2 ** 20),
    held,
    lost,
    ends: ENDS,
    revocation_p50_ms: round(pct(latencies, 50)),
    revocation_p99_ms: round(pct(latencies, 99)),
    requests_retried: retried,
    warnings,
  };
  await Deno.mkdir(OUT.replace(/\/[^/]*$/, ""), { recursive: true }).catch(() => {});
  await Deno.writeTextFile(OUT, JSON.stringify(result, null, 2) + "\n");
  if (lost > 0) failed = true;
  console.log(`wrote ${OUT}`);
  console.log(
    `grant record bytes written per start: ${
      bulkBytes.map(round).join(", ")
    } (first and second half); etcd database peak ${result.etcd_db_peak_mib} MiB (${result.etcd_db_peak_in_use_mib} MiB in use)`,
  );
  console.log(`held: ${held} pods, ${lost} lost`);
  console.log(
    `start p50/p99 at 0 held: ${at0.start_p50_ms}/${at0.start_p99_ms} ms, at ${N} held: ${atN.start_p50_ms}/${atN.start_p99_ms} ms`,
  );
  console.log(`kubernetes writes per start: ${Math.round(perStart * 100) / 100}`);
  console.log(
    `revocation after pod end p50/p99: ${result.revocation_p50_ms}/${result.revocation_p99_ms} ms`,
  );
} catch (error) {
  failed = true;
  console.error(error);
} finally {
  clearInterval(sampler);
  // How long each replica takes to stop on SIGTERM: a rolling upgrade waits for it.
  const stopping = servers.map(async (s, i) => {
    const t = performance.now();
    await s.stop();
    log(`replica ${i} stopped in ${round(performance.now() - t)} ms`);
    for (const line of s.logs.filter((l) => l.includes('"slow to stop"'))) {
      log(`replica ${i}: ${line}`);
    }
  });
  await Promise.all(stopping);
  await counter.close();
  await kube.stop();
  await strict.close();
  await issuer.close();
  await moto.stop();
  await Deno.remove(dir, { recursive: true });
}
if (failed) Deno.exit(1);
