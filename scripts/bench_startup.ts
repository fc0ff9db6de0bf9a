/**
 * `deno task bench:startup`: how fast the sidecar starts and how much memory it keeps, against the
 * floor of a Hono hello world. Times process start to first listening over interleaved runs
 * (median), for the sidecar as the image runs it and for a hello world that listens and exits,
 * started the same way; then reads the sidecar's VmHWM after its first successful sync against a
 * local stub of the platform's token endpoint, the irsa server (over HTTPS under a private CA, as
 * in a cluster) and STS. A benchmark, not a test.
 *
 * "As the image runs it": with DENORT_BIN set, both are compiled with `deno compile` (the image's
 * binary, `irsa sidecar`). Without it (deno compile cannot download denort offline) both run as
 * the binary runs them: a small entry that imports the one-file bundle (`deno bundle`), with
 * `deno run --no-config --no-code-cache`, the binary's permissions and no update check (the
 * binary is compiled with `--no-code-cache`, and denort has no update check). The sidecar from
 * source (`deno run main.ts sidecar`, what development and the tests run) is timed too.
 *
 * Flags: --runs 15 --out dist/bench-startup.json
 */

import { makeTestTls } from "../tests/fixtures/tls.ts";

const flag = (name: string, fallback: string) => {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Deno.args[i + 1] : fallback;
};
const RUNS = Number(flag("runs", "15"));
const OUT = flag("out", "dist/bench-startup.json");
const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);
/** The permissions `deno task compile` grants the binary. */
const PERMISSIONS = ["--allow-net", "--allow-read", "--allow-write", "--allow-env", "--allow-sys"];
const DENORT = Deno.env.get("DENORT_BIN");

const deno = async (args: string[], env: Record<string, string> = {}) => {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`deno ${args.join(" ")} failed:\n${new TextDecoder().decode(out.stderr)}`);
  }
};

/** Reads a file of /proc, which Deno lets only --allow-all read directly. */
const proc = async (path: string) =>
  new TextDecoder().decode((await new Deno.Command("cat", { args: [path] }).output()).stdout);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const dir = await Deno.makeTempDir({ prefix: "irsa-startup-" });
// The server's endpoint is HTTPS under a private CA, as in a cluster (DOMINO_IRSA_SSL_CERT); the
// token endpoint is plain HTTP on the pod's loopback.
const tls = await makeTestTls(dir);
/** A local stand-in for everything the sidecar calls: the token endpoint, the server and STS. */
const answer = async (req: Request) => {
  const path = new URL(req.url).pathname;
  await req.body?.cancel();
  if (path === "/access-token") return new Response("user-token\n");
  if (path === "/sts") {
    // Both role assumptions of a credential request get the same made-up credentials.
    const expiration = new Date(Date.now() + 3_600_000).toISOString();
    return new Response(
      `<Response><Credentials><AccessKeyId>ASIABENCH</AccessKeyId><SecretAccessKey>secret</SecretAccessKey><SessionToken>token</SessionToken><Expiration>${expiration}</Expiration></Credentials></Response>`,
      { headers: { "Content-Type": "text/xml" } },
    );
  }
  if (path === "/map_iam_roles_to_pod_sa" && req.method === "POST") {
    return Response.json({
      subject: "*:domino-compute:run-646d27b817c28b5ea4b5b0c1",
      roles: ["list", "read"].map((what) => ({
        iam_role_arn: `arn:aws:iam::222222222222:role/acme-${what}-bucket-role`,
        proxy_iam_role_arn: `arn:aws:iam::111111111111:role/acme-${what}-bucket-role`,
        profile: `acme-${what}-bucket-role`,
        status: "added",
      })),
    });
  }
  return new Response("", { status: path === "/map_iam_roles_to_pod_sa" ? 200 : 404 });
};
const stub = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, answer);
const broker = Deno.serve(
  { hostname: "127.0.0.1", port: 0, cert: tls.cert, key: tls.key, onListen: () => {} },
  answer,
);
const stubUrl = `http://127.0.0.1:${stub.addr.port}`;

try {
  await Deno.writeTextFile(`${dir}/token`, "sa-token\n");
  await Deno.writeTextFile(
    `${dir}/labels`,
    'dominodatalab.com/irsa-workload-type="edge-workload"\n',
  );
  await Deno.writeTextFile(
    `${dir}/floor.ts`,
    `import { Hono } from "hono";
const app = new Hono();
app.get("/", (c) => c.text("Hello Hono!"));
Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {
  console.error("listening");
  Deno.exit(0);
} }, app.fetch);
`,
  );
  // What main.ts does in the binary: import the bundle through a computed URL and run it.
  await Deno.writeTextFile(
    `${dir}/launch.js`,
    `const { run } = await import(new URL("./sidecar.js", import.meta.url).href);
Deno.exit(await run(Deno.args, (name) => Deno.env.get(name)));
`,
  );
  // Bundled as `deno task compile` bundles the sidecar for the binary.
  console.error("bundling the sidecar and the hello world...");
  await deno([
    "bundle",
    "--platform",
    "deno",
    "-o",
    `${dir}/sidecar.js`,
    "src/sidecar/main.ts",
  ]);
  await deno([
    "bundle",
    "--config",
    "deno.json",
    "--platform",
    "deno",
    "-o",
    `${dir}/floor.js`,
    `${dir}/floor.ts`,
  ]);

  let sidecarCmd: string[];
  let floorCmd: string[];
  let form: string;
  if (DENORT) {
    console.error("compiling the binary and the hello world (DENORT_BIN is set)...");
    await deno(
      [
        "compile",
        "--config",
        "deno.json",
        "--no-code-cache",
        ...PERMISSIONS,
        "-o",
        `${dir}/floor`,
        `${dir}/floor.ts`,
      ],
      { DENORT_BIN: DENORT },
    );
    const task: string = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks.compile;
    for (const step of task.split("&&")) {
      const args = step.trim().split(/\s+/).slice(1).map((a) =>
        a === "dist/irsa" ? `${dir}/irsa` : a
      );
      await deno(args, { DENORT_BIN: DENORT });
    }
    sidecarCmd = [`${dir}/irsa`, "sidecar"];
    floorCmd = [`${dir}/floor`];
    form = "deno compile";
  } else {
    const run = [
      Deno.execPath(),
      "run",
      "--no-config",
      "--cached-only",
      "--no-code-cache",
      ...PERMISSIONS,
    ];
    sidecarCmd = [...run, `${dir}/launch.js`];
    floorCmd = [...run, `${dir}/floor.js`];
    form = "deno run --no-config --no-code-cache of the bundles";
  }
  const sourceCmd = [Deno.execPath(), "run", ...PERMISSIONS, `${ROOT}main.ts`, "sidecar"];

  const sidecarEnv = {
    // denort has no update check; the deno CLI's cost the sidecar 1.4 to 2.2 MiB (VmHWM).
    DENO_NO_UPDATE_CHECK: "1",
    HOME: dir,
    DENO_DIR: Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`,
    NO_COLOR: "1",
    IRSA_SIDECAR_PORT: "0",
    DOMINO_API_PROXY: stubUrl,
    DOMINO_IRSA_ENDPOINT: `https://localhost:${broker.addr.port}/map_iam_roles_to_pod_sa`,
    DOMINO_IRSA_SSL_CERT: tls.caCertPath,
    AWS_CONFIG_FILE: `${dir}/aws/config`,
    AWS_WEB_IDENTITY_TOKEN_FILE: `${dir}/token`,
    POD_INFO_PATH: `${dir}/labels`,
    DOMINO_RUN_ID: "646d27b817c28b5ea4b5b0c1",
    // STS over HTTPS too, as in AWS: the sidecar's one client trusts the CA and the public roots.
    AWS_ENDPOINT_URL_STS: `https://localhost:${broker.addr.port}/sts`,
  };

  /** Starts a command; resolves with the child once a line containing "listening" appears. */
  const start = async (cmd: string[]) => {
    const t0 = performance.now();
    const child = new Deno.Command(cmd[0], {
      args: cmd.slice(1),
      env: sidecarEnv,
      clearEnv: true,
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("listening")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`${cmd.join(" ")} exited before listening:\n${text}`);
      text += value;
    }
    const ms = performance.now() - t0;
    const url = /"url":"([^"]+)"/.exec(text)?.[1];
    // Keep reading so the child never blocks on a full pipe.
    const drained = (async () => {
      while (!(await reader.read()).done) { /* discard */ }
    })();
    return { child, ms, url, drained };
  };
  const timeOnce = async (cmd: string[]) => {
    const { child, ms, drained } = await start(cmd);
    try {
      child.kill("SIGKILL");
    } catch { /* the floor has exited already */ }
    await child.status;
    await drained;
    return ms;
  };

  // One warm-up each fills Deno's module caches, as a long-lived node has. No V8 code cache: a pod
  // starts its sidecar once, in a fresh emptyDir, so the binary does without one.
  for (const cmd of [floorCmd, sidecarCmd, sourceCmd]) await timeOnce(cmd);
  const times = { floor: [] as number[], sidecar: [] as number[], source: [] as number[] };
  console.error(`timing ${RUNS} interleaved runs of each (${form})...`);
  for (let i = 0; i < RUNS; i++) {
    // Rotate the order, so no form always runs right after another.
    const order = (["floor", "sidecar", "source"] as const).map((_, k, a) => a[(k + i) % a.length]);
    for (const which of order) {
      const cmd = which === "floor" ? floorCmd : which === "sidecar" ? sidecarCmd : sourceCmd;
      times[which].push(await timeOnce(cmd));
    }
  }

  console.error("reading the sidecar's memory after its first successful sync...");
  const { child, url, drained } = await start(sidecarCmd);
  let rss = { hwm: 0, now: 0, anon: 0, file: 0 };
  const credential = { first: 0, cached: 0, requests: 200, hwm: 0 };
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const res = await fetch(`${url}/healthz`);
      const body = await res.json();
      const checked = Object.values(body.usable ?? {}).every((u) => u === "usable");
      if (res.status === 200 && body.profiles?.length === 2 && checked) break;
      if (Date.now() > deadline) {
        throw new Error(`the sidecar did not sync: ${JSON.stringify(body)}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const status = await proc(`/proc/${child.pid}/status`);
    const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]);
    // RssFile: pages of the executable (deno, or the compiled binary's denort), shared by every
    // process that runs it; RssAnon: the sidecar's own memory.
    rss = {
      hwm: kib("VmHWM") / 1024,
      now: kib("VmRSS") / 1024,
      anon: kib("RssAnon") / 1024,
      file: kib("RssFile") / 1024,
    };
    // Then the credential endpoint: the first request runs the chain (both STS calls, the
    // signer's import), the next ones are answered from memory.
    const token = await Deno.readTextFile(`${dir}/aws/irsa-credentials-token`);
    const ask = async () => {
      const t0 = performance.now();
      const res = await fetch(`${url}/credentials/acme-list-bucket-role`, {
        headers: { Authorization: token },
      });
      if (res.status !== 200) throw new Error(`credential request: ${await res.text()}`);
      await res.body?.cancel();
      return performance.now() - t0;
    };
    credential.first = await ask();
    const cached: number[] = [];
    for (let i = 0; i < credential.requests; i++) cached.push(await ask());
    credential.cached = median(cached);
    const after = await proc(`/proc/${child.pid}/status`);
    credential.hwm = Number(/VmHWM:\s+(\d+) kB/.exec(after)![1]) / 1024;
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await drained;
  }

  const floor = median(times.floor);
  const sidecar = median(times.sidecar);
  const source = median(times.source);
  const load = (await proc("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  const result = {
    form,
    runs: RUNS,
    cores: navigator.hardwareConcurrency,
    load_average: load,
    median_ms: { floor, sidecar, sidecar_from_source: source },
    all_ms: times,
    rss_after_sync_mib: {
      vm_hwm: rss.hwm,
      vm_rss: rss.now,
      rss_anon: rss.anon,
      rss_file: rss.file,
    },
    ratio: sidecar / floor,
    credential_request_ms: {
      first: credential.first,
      cached_median: credential.cached,
      cached_requests: credential.requests,
    },
    vm_hwm_after_credentials_mib: credential.hwm,
  };
  const outPath = OUT.startsWith("/") ? OUT : `${ROOT}${OUT}`;
  await Deno.mkdir(outPath.slice(0, outPath.lastIndexOf("/")), { recursive: true });
  await Deno.writeTextFile(outPath, JSON.stringify(result, null, 2) + "\n");
  const f = (x: number) => x.toFixed(1);
  console.log(
    `\nstart to listening, medians of ${RUNS} interleaved runs (${form}; ${navigator.hardwareConcurrency} cores, load ${load}):`,
  );
  console.log(`  Hono hello world (floor):        ${f(floor)} ms`);
  console.log(`  sidecar as the image runs it:    ${f(sidecar)} ms`);
  console.log(`  sidecar from source (main.ts):   ${f(source)} ms`);
  console.log(
    `  sidecar after its first sync:    VmHWM ${f(rss.hwm)} MiB, VmRSS ${f(rss.now)} MiB (RssAnon ${
      f(rss.anon)
    } MiB, RssFile ${f(rss.file)} MiB of the executable)`,
  );
  console.log(
    `  credential request (HTTP, client to sidecar): cached ${
      credential.cached.toFixed(2)
    } ms (median of ${credential.requests}), first ${
      f(credential.first)
    } ms (both STS calls to the stub); VmHWM after ${f(credential.hwm)} MiB`,
  );
  console.log(`written ${OUT}`);
  console.log(
    `sidecar/floor: ${(sidecar / floor).toFixed(2)} (sidecar ${f(sidecar)} ms, floor ${
      f(floor)
    } ms, RSS after sync ${f(rss.hwm)} MiB)`,
  );
} finally {
  await stub.shutdown();
  await broker.shutdown();
  await Deno.remove(dir, { recursive: true });
}
