/**
 * `irsa server`'s entry: loaded by main.ts through a computed URL, so that the sidecar's module
 * graph never holds the server's (the AWS SDK, jose, the routes).
 */

import { serverConfig } from "./config.ts";
import { createLogger } from "../lib/log.ts";
import { startServer } from "./server.ts";
import { jsonLinesOnly, untilSignal } from "../lib/signals.ts";

/** Runs the server until a signal; throws ConfigError for main.ts to report. */
export async function run(args: string[], env: (name: string) => string | undefined) {
  const config = serverConfig(args, env);
  const logger = createLogger({ level: config.logLevel });
  // From here on every line on standard error is JSON, the runtime's own included.
  jsonLinesOnly(logger);
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
