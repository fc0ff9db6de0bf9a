/** The server's pod watch: runs' ends revoked at once, metered; the cleanup loop is the safety net. */

import type { ServerDeps } from "../grants/deps.ts";
import { DEFER_MS, revokeEndedRun, unlistedRuns } from "../grants/run_end.ts";
import type { KubeClient } from "../kube/client.ts";
import { type RunWatch, watchRunEnds } from "../kube/pod_watch.ts";

/** Watches the run pods of `namespace`; every run that ends is revoked and its latency observed. */
export function startRunWatch(deps: ServerDeps, kube: KubeClient, namespace: string): RunWatch {
  const { metrics, logger } = deps;
  const ended = async (run: string) => {
    const seen = performance.now();
    if (await revokeEndedRun(deps, run, { deferMs: DEFER_MS })) {
      metrics.revocationLatency.observe({}, (performance.now() - seen) / 1000);
    }
  };
  return watchRunEnds({
    kube,
    namespace,
    onRunEnded: ended,
    onList: () => metrics.podWatchLists.inc(),
    onRelist: (reason) => metrics.podWatchRelists.inc({ reason }),
    onConnected: (up) => metrics.podWatchConnected.set({}, up ? 1 : 0),
    onHeard: () => metrics.podWatchLag.mark(),
    // Runs that ended while no replica watched: revoked at the list, not at the next cleanup.
    onListed: (live, at) =>
      void unlistedRuns(deps, live, at)
        .then((runs) => Promise.all(runs.map(ended)))
        .catch((error) => logger.warn("cannot revoke the runs a list shows ended", { error })),
    logger,
  });
}
