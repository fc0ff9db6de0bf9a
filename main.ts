/** irsa's entry point: the only place that reads Deno.args and Deno.env; picks the mode, loads the configuration, handles signals and exit codes. */

import {
  ConfigError,
  helpText,
  type Mode,
  serverConfig,
  serverSettings,
  sidecarSettings,
} from "./src/config.ts";
import { createLogger } from "./src/log.ts";

const MODES: readonly Mode[] = ["server", "sidecar"];
const TABLES = { server: serverSettings, sidecar: sidecarSettings };

/** Exit codes: 0 done, 1 failed while running, 2 bad usage or configuration. */
async function main(args: string[]): Promise<number> {
  const env = (name: string) => Deno.env.get(name);
  const first = args[0];
  const modeFromArgs = MODES.includes(first as Mode) ? (first as Mode) : undefined;
  const rest = modeFromArgs ? args.slice(1) : args;
  if (rest.includes("--help") || rest.includes("-h")) {
    console.log(helpText(modeFromArgs, TABLES));
    return 0;
  }
  const mode = modeFromArgs ??
    (first === undefined || first.startsWith("-") ? env("IRSA_MODE") : first);
  if (mode === undefined || mode === "") {
    console.error(
      'irsa: no mode given: run "irsa server" or "irsa sidecar" (or set IRSA_MODE); see "irsa --help"',
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
  if (mode === "sidecar") {
    console.error("irsa: the sidecar mode is not part of this build yet");
    return 1;
  }
  let config;
  try {
    config = serverConfig(settingsArgs, env);
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
  const logger = createLogger({ level: config.logLevel });
  const { startServer } = await import("./src/server.ts");
  let server;
  try {
    server = await startServer(config, logger, { readTextFile: (path) => Deno.readTextFile(path) });
  } catch (e) {
    logger.error("irsa server failed to start", { error: e });
    return 1;
  }
  const stop = () => {
    logger.info("stopping");
    server.stop();
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  await server.finished;
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
