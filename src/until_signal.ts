/** Runs a started mode until SIGTERM or SIGINT; shared by the two mode entries. */

import type { Logger } from "./log.ts";

/** Runs until SIGTERM or SIGINT, then stops `running` and resolves 0 once it has finished. */
export async function untilSignal(
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
