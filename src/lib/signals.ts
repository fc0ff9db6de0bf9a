/** The process side of a started mode, shared by the two mode entries: JSON lines only, signals. */

import { captureConsole, type Logger } from "./log.ts";

/**
 * Makes every line of the process JSON: console output of the runtime and libraries through the
 * logger, and an uncaught error as one last JSON line (instead of Deno's plain-text report)
 * before exiting 1, as it would have.
 */
export function jsonLinesOnly(logger: Logger): void {
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
