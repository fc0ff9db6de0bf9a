/**
 * `irsa sidecar`'s entry: loaded by main.ts through a computed URL, so that its module graph holds
 * only the sidecar (Hono, valibot, the sync), never the server's. `deno task compile` bundles it
 * into one file, `dist/sidecar.js`, which the binary loads: the form that starts fastest.
 */

import { sidecarConfig } from "./settings.ts";
import { createLogger } from "../lib/log.ts";
import { startSidecar } from "./run.ts";
import { jsonLinesOnly, untilSignal } from "../lib/signals.ts";

/** Runs the sidecar until a signal; throws ConfigError for main.ts to report. */
export async function run(args: string[], env: (name: string) => string | undefined) {
  const config = sidecarConfig(args, env);
  const logger = createLogger({ level: config.logLevel });
  // From here on every line on standard error is JSON, the runtime's own included.
  jsonLinesOnly(logger);
  try {
    return await untilSignal(logger, await startSidecar(config, logger));
  } catch (e) {
    logger.error("irsa sidecar failed to start", { error: e });
    return 1;
  }
}
