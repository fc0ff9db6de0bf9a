/**
 * `deno task bench:propagation`: the time from a workspace sidecar's start to the first successful
 * chained call (AssumeRoleWithWebIdentity on the proxy role with the pod's token, then AssumeRole on
 * the asset role), through the strict STS of the tests with a simulated propagation delay; and when
 * the sidecar's /healthz said the role was usable. Each run starts moto's world, the strict STS,
 * `irsa server` and `irsa sidecar` afresh; the chain is tried every 50 ms from the sidecar's start.
 * A benchmark, not a test: it prints and writes its figures and asserts nothing.
 *
 * Flags: --delay-ms 0 --jitter-ms 0 --runs 3 --out dist/bench-propagation.json
 */
import { startFakePlatformApi } from "../tests/fakes/platform_api.ts";
import { EXAMPLE, seedExampleRoles, startMoto } from "../tests/fixtures/moto.ts";
import { startOidcIssuer } from "../tests/fixtures/oidc_issuer.ts";
import { startStrictSts } from "../tests/fixtures/strict_sts.ts";
import { makeTestTls } from "../tests/fixtures/tls.ts";
import { assumeChain } from "../tests/chain.ts";
import { pairJson, startFileStoreServer, startWorkspace, strictStsEnv } from "../tests/world.ts";

const flag = (name: string, fallback: string) => {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Deno.args[i + 1] : fallback;
};
const DELAY_MS = Number(flag("delay-ms", "0"));
const JITTER_MS = Number(flag("jitter-ms", "0"));
const RUNS = Number(flag("runs", "3"));
const OUT = flag("out", "dist/bench-propagation.json");
const POLL_MS = 50;
const GIVE_UP_MS = 120_000;
const RUN = "646d27b817c28b5ea4b5b0c1";
const ROLE = EXAMPLE.roleNames[0];
const ORG = "irsa-iamrole-list-bucket";

/** One run's figures, in milliseconds from the sidecar's spawn. */
interface Run {
  first_chain_ms: number;
  healthz_usable_ms: number | null;
  chain_attempts: number;
}

const moto = await startMoto();
const issuer = await startOidcIssuer();
const tls = await makeTestTls();
const runs: Run[] = [];
try {
  for (let i = 0; i < RUNS; i++) runs.push(await oneRun());
} finally {
  await tls.cleanup();
  await issuer.close();
  await moto.stop();
}

const sorted = runs.map((r) => r.first_chain_ms).sort((a, b) => a - b);
const median = sorted[Math.floor(sorted.length / 2)];
await Deno.mkdir(OUT.replace(/\/[^/]*$/, ""), { recursive: true }).catch(() => {});
await Deno.writeTextFile(
  OUT,
  JSON.stringify(
    {
      delay_ms: DELAY_MS,
      jitter_ms: JITTER_MS,
      poll_ms: POLL_MS,
      cores: navigator.hardwareConcurrency,
      load_average: Deno.loadavg(),
      median_first_chain_ms: median,
      runs,
    },
    null,
    2,
  ) + "\n",
);
for (const [i, r] of runs.entries()) {
  console.log(
    `run ${i + 1}: first chained call ${r.first_chain_ms} ms after the sidecar's start ` +
      `(attempt ${r.chain_attempts}); /healthz usable at ${r.healthz_usable_ms ?? "-"} ms`,
  );
}
console.log(`written ${OUT}`);
console.log(
  `sidecar start to first chained call, simulated delay ${DELAY_MS} ms: median ${median} ms of ${RUNS}`,
);

async function oneRun(): Promise<Run> {
  await moto.reset();
  const iam = moto.iamClient();
  const world = await seedExampleRoles(iam);
  iam.destroy();
  const pair = world.pairs.find((p) => p.name === ROLE)!;
  const sts = startStrictSts({
    motoEndpoint: moto.endpoint,
    propagationMs: DELAY_MS,
    jitterMs: JITTER_MS,
    issuers: { [EXAMPLE.oidcHost]: { url: issuer.clusterIssuer } },
  });
  const platform = startFakePlatformApi();
  const dir = await Deno.makeTempDir({ prefix: "irsa-bench-propagation-" });
  const stops: (() => Promise<unknown>)[] = [
    () => Deno.remove(dir, { recursive: true }),
    () => sts.close(),
    () => platform.close(),
  ];
  try {
    await Deno.writeTextFile(
      `${dir}/mappings.json`,
      JSON.stringify({ [ORG]: JSON.stringify(pairJson(ROLE)) }),
    );
    const server = await startFileStoreServer(
      moto,
      world,
      issuer,
      tls,
      `${dir}/mappings.json`,
      undefined,
      strictStsEnv(sts.endpoint),
    );
    stops.push(() => server.stop());
    const spawned = performance.now();
    const { sidecar } = await startWorkspace({
      issuer,
      platform,
      server,
      caFile: tls.caCertPath,
      sts: sts.endpoint,
      dir,
      runId: RUN,
      username: "jdoe",
      groups: [ORG],
    });
    stops.push(() => sidecar.stop());
    const token = await Deno.readTextFile(`${dir}/token`);
    let usableAt: number | null = null;
    let firstChain: { ms: number; attempt: number } | null = null;
    for (let attempt = 1; performance.now() - spawned < GIVE_UP_MS; attempt++) {
      const health = await (await sidecar.fetch("/healthz")).json();
      if (usableAt === null && health.usable?.[ROLE] === "usable") {
        usableAt = Math.round(performance.now() - spawned);
      }
      if (firstChain === null && (await assumeChain(sts.endpoint, token, pair)).ok) {
        firstChain = { ms: Math.round(performance.now() - spawned), attempt };
      }
      // The sidecar's check backs off between attempts, so it may say usable later.
      if (firstChain !== null && usableAt !== null) break;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    if (firstChain === null) throw new Error(`no chained call succeeded within ${GIVE_UP_MS} ms`);
    return {
      first_chain_ms: firstChain.ms,
      healthz_usable_ms: usableAt,
      chain_attempts: firstChain.attempt,
    };
  } finally {
    for (const stop of stops.reverse()) await stop();
  }
}
