/** irsa's entry point: the only place that reads Deno.args and Deno.env; picks the mode, loads the configuration, handles signals and exit codes. */

import {
  ConfigError,
  helpText,
  type Mode,
  serverConfig,
  serverSettings,
  sidecarConfig,
  sidecarSettings,
} from "./src/config.ts";
import { captureConsole, createLogger, type Logger } from "./src/log.ts";

const MODES: readonly Mode[] = ["server", "sidecar"];
const TABLES = { server: serverSettings, sidecar: sidecarSettings };

/** Exit codes: 0 done, 1 failed while running, 2 bad usage or configuration. */
async function main(args: string[]): Promise<number> {
  const env = (name: string) => Deno.env.get(name);
  const first = args[0];
  if (first === "admin") {
    // A client, not a service: its own command line (src/admin/args.ts) and entry.
    const entry = await import("./src/main_admin.ts");
    return await entry.run(args.slice(1), env);
  }
  const modeFromArgs = MODES.includes(first as Mode) ? (first as Mode) : undefined;
  const rest = modeFromArgs ? args.slice(1) : args;
  if (rest.includes("--help") || rest.includes("-h")) {
    console.log(helpText(modeFromArgs, TABLES));
    if (!modeFromArgs) {
      console.log('\nirsa admin <command>: the admin command line (see "irsa admin --help").');
    }
    return 0;
  }
  const mode = modeFromArgs ??
    (first === undefined || first.startsWith("-") ? env("IRSA_MODE") : first);
  if (mode === undefined || mode === "") {
    console.error(
      'irsa: no mode given: run "irsa server", "irsa sidecar" or "irsa admin" (or set IRSA_MODE); see "irsa --help"',
    );
    return 2;
  }
  if (!MODES.includes(mode as Mode)) {
    console.error(
      `irsa: unknown mode ${
        JSON.stringify(mode)
      }: expected "server" or "sidecar"; see "irsa --help"`,
    );
    return 2;
  }
  const settingsArgs = modeFromArgs || first === undefined || first.startsWith("-")
    ? rest
    : args.slice(1);
  try {
    return mode === "server"
      ? await runServer(settingsArgs, env)
      : await runSidecar(settingsArgs, env);
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(
        `irsa ${mode}: invalid configuration:\n${
          e.problems.map((p) => `  ${p.setting}: ${p.message}`).join("\n")
        }`,
      );
      return 2;
    }
    throw e;
  }
}

type Env = (name: string) => string | undefined;

/**
 * Makes every line of the process JSON: console output of the runtime and libraries through the
 * logger, and an uncaught error as one last JSON line (instead of Deno's plain-text report)
 * before exiting 1, as it would have.
 */
function jsonLinesOnly(logger: Logger): void {
  captureConsole(logger);
  const crash = (error: unknown) => {
    logger.error("uncaught error; exiting", { error });
    Deno.exit(1);
  };
  globalThis.addEventListener("error", (e) => {
    e.preventDefault();
    crash(e.error);
  });
  globalThis.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    crash(e.reason);
  });
}

/** Runs until SIGTERM or SIGINT, then stops `stop` and exits 0. */
async function untilSignal(
  logger: Logger,
  running: { stop(): Promise<void>; finished: Promise<void> },
): Promise<number> {
  const stop = () => {
    logger.info("stopping");
    running.stop().catch((e) => logger.error("stop failed", { error: e }));
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  await running.finished;
  return 0;
}

async function runServer(args: string[], env: Env): Promise<number> {
  const config = serverConfig(args, env);
  const logger = createLogger({ level: config.logLevel });
  // From here on every line on standard error is JSON, the runtime's own included.
  jsonLinesOnly(logger);
  // Imported here so that the sidecar never loads the AWS SDK.
  const { startServer } = await import("./src/server.ts");
  try {
    return await untilSignal(
      logger,
      await startServer(config, logger, { readTextFile: (path) => Deno.readTextFile(path) }),
    );
  } catch (e) {
    logger.error("irsa server failed to start", { error: e });
    return 1;
  }
}

async function runSidecar(args: string[], env: Env): Promise<number> {
  const config = sidecarConfig(args, env);
  const logger = createLogger({ level: config.logLevel });
  jsonLinesOnly(logger);
  const { startSidecar } = await import("./src/sidecar/run.ts");
  try {
    return await untilSignal(logger, await startSidecar(config, logger));
  } catch (e) {
    logger.error("irsa sidecar failed to start", { error: e });
    return 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
