/** Starts `irsa server` and `irsa sidecar` as subprocesses, the way users start them, and talks to them. */

import { Conformance } from "./openapi_conformance.ts";

const MAIN = decodeURIComponent(new URL("../main.ts", import.meta.url).pathname);
/** The permissions `deno task compile` grants the binary; the subprocess gets the same. */
export const RUN_PERMISSIONS = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-sys",
];

/** A running server process. */
export interface ServerProcess {
  readonly url: string;
  /** The process id (the bench reads its memory from /proc). */
  readonly pid: number;
  /** Every log line so far (JSON lines on standard error). */
  readonly logs: string[];
  /**
   * fetch against the server, trusting its CA. A server's answers are each checked against its own
   * `/openapi.json` (fetched once, at start): an answer the document does not describe throws.
   */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  /** Sends the signal (SIGTERM by default), then waits; returns the exit code. Idempotent. */
  stop(signal?: Deno.Signal): Promise<number>;
}

/** The environment a subprocess gets: nothing of ours leaks in but what Deno needs to find its cache. */
export function baseEnv(): Record<string, string> {
  const keep = ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME"];
  const env: Record<string, string> = { NO_COLOR: "1", RUST_BACKTRACE: "0" };
  for (const k of keep) {
    const v = Deno.env.get(k);
    if (v !== undefined) env[k] = v;
  }
  return env;
}

/** Runs `deno run main.ts <args>` to completion; for tests of usage and configuration errors. */
export async function runMain(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...RUN_PERMISSIONS, MAIN, ...args],
    env: { ...baseEnv(), ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** How a started process is talked to. */
export interface ProcessOptions {
  /** Check a server's answers against its `/openapi.json` (default); the benchmark times without. */
  readonly checkAnswers?: boolean;
}

/** Starts the server with these flags and environment; resolves once it listens. */
export function startServerProcess(
  args: string[],
  env: Record<string, string>,
  caCert?: string,
  options: ProcessOptions = {},
): Promise<ServerProcess> {
  return startIrsaProcess("server", args, env, caCert, options);
}

/** Starts `irsa <mode>` on a free loopback port; resolves once it listens. */
export async function startIrsaProcess(
  mode: "server" | "sidecar",
  args: string[],
  env: Record<string, string>,
  caCert?: string,
  options: ProcessOptions = {},
): Promise<ServerProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...RUN_PERMISSIONS,
      MAIN,
      mode,
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      ...args,
    ],
    env: { ...baseEnv(), ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const logs: string[] = [];
  const { promise: ready, resolve: listening, reject: failed } = Promise.withResolvers<string>();
  const reader = (async () => {
    let buffer = "";
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      const lines = buffer.split("\n");
      buffer = lines.pop()!;
      for (const line of lines) {
        logs.push(line);
        if (line.includes(`"irsa ${mode} listening"`)) listening(JSON.parse(line).url);
      }
    }
    if (buffer) logs.push(buffer);
    failed(new Error(`irsa ${mode} exited before listening:\n${logs.join("\n")}`));
  })();
  const timer = setTimeout(
    () => failed(new Error(`irsa ${mode} did not listen in 30 s:\n${logs.join("\n")}`)),
    30_000,
  );
  let url: string;
  try {
    url = await ready;
  } catch (e) {
    clearTimeout(timer);
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await child.status;
    await reader;
    throw e;
  } finally {
    clearTimeout(timer);
  }
  const client = caCert ? Deno.createHttpClient({ caCerts: [caCert] }) : undefined;
  let stopped: Promise<number> | undefined;
  const get = (path: string, init: RequestInit = {}) =>
    fetch(`${url}${path}`, { ...init, ...(client ? { client } : {}) });
  // Fetched now, not at the first answer, so that timed tests do not wait for it.
  let conformance: Conformance | undefined;
  try {
    if (mode === "server" && options.checkAnswers !== false) {
      conformance = new Conformance(await (await get("/openapi.json")).json());
    }
  } catch (e) {
    child.kill("SIGKILL");
    await child.status;
    await reader;
    client?.close();
    throw e;
  }
  return {
    url,
    pid: child.pid,
    logs,
    async fetch(path, init = {}) {
      const res = await get(path, init);
      await conformance?.checkResponse(init.method ?? "GET", path, res, init.body);
      return res;
    },
    // Idempotent: a test that stops a process early may still dispose of it at the end.
    stop(signal: Deno.Signal = "SIGTERM") {
      return stopped ??= (async () => {
        try {
          child.kill(signal);
        } catch { /* already gone */ }
        const status = await child.status;
        await reader;
        client?.close();
        return status.code;
      })();
    },
  };
}
