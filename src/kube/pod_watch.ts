/**
 * Which runs have ended, as the Kubernetes API tells it: the run pods of the compute namespace,
 * listed, then watched from the list's resourceVersion (with bookmarks), listed again on 410 Gone
 * and after any failure (with backoff). A run ends when its last live pod is deleted or has
 * finished; a run whose pods vanished while the watch was down ends at the next list.
 */

import { backoffDelay, type RetryClock } from "../lib/backoff.ts";
import type { Logger } from "../lib/log.ts";
import type { KubeClient, KubePod } from "./client.ts";
import { EXECUTION_ID_LABEL } from "./run_lookup.ts";

/** Options of {@link watchRunEnds}. */
export interface RunWatchOptions {
  readonly kube: Pick<KubeClient, "listPodsAt" | "watchPods">;
  readonly namespace: string;
  /** Called once per run that ends while watched; its failures are logged, never retried here. */
  onRunEnded(runId: string): Promise<void>;
  readonly logger: Logger;
  readonly clock?: RetryClock;
  /** Counted: lists (the first and every relist) and failures that backed off. */
  readonly onList?: () => void;
}

/** A running watch; `stop()` ends it and waits for it. */
export interface RunWatch {
  stop(): Promise<void>;
}

// A pod that has finished no longer holds its run open.
const live = (pod: KubePod) => !["Succeeded", "Failed"].includes(pod.status?.phase ?? "");

/** Tracks each run's live pods; tells which runs just lost their last one. Pure. */
export class RunPods {
  readonly #runs = new Map<string, Set<string>>();

  /** Applies one pod's state; answers its run id when that pod was the run's last live one. */
  update(pod: KubePod, deleted: boolean): string | undefined {
    const run = pod.metadata.labels?.[EXECUTION_ID_LABEL];
    if (run === undefined) return undefined;
    const pods = this.#runs.get(run) ?? new Set<string>();
    const before = pods.size;
    if (!deleted && live(pod)) pods.add(pod.metadata.name);
    else pods.delete(pod.metadata.name);
    if (pods.size === 0) this.#runs.delete(run);
    else this.#runs.set(run, pods);
    return before > 0 && pods.size === 0 ? run : undefined;
  }

  /** Replaces the state with a fresh list; answers the runs that were live and are no more. */
  reset(pods: readonly KubePod[]): string[] {
    const was = [...this.#runs.keys()];
    this.#runs.clear();
    for (const pod of pods) this.update(pod, false);
    return was.filter((run) => !this.#runs.has(run));
  }
}

/** Starts watching; runs that end are handed to `onRunEnded`. */
export function watchRunEnds(o: RunWatchOptions): RunWatch {
  const abort = new AbortController();
  // A pause that stop() cuts short, so that stopping never waits out a backoff.
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        abort.signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      abort.signal.addEventListener("abort", done);
    });
  const sleep = o.clock ? (ms: number) => o.clock!.sleep(ms) : pause;
  const random = o.clock?.random ?? Math.random;
  const runs = new RunPods();
  const ended = (run: string) => {
    o.onRunEnded(run).catch((error) => o.logger.warn("cannot revoke an ended run", { run, error }));
  };

  async function loop() {
    for (let failures = 0; !abort.signal.aborted;) {
      try {
        const { pods, resourceVersion } = await o.kube.listPodsAt(o.namespace, EXECUTION_ID_LABEL);
        o.onList?.();
        runs.reset(pods).forEach(ended);
        failures = 0;
        let rv = resourceVersion;
        let gone = false;
        while (!gone && !abort.signal.aborted) {
          // Each watch ends after a few minutes; the next goes on from the last version seen.
          for await (
            const e of o.kube.watchPods(o.namespace, EXECUTION_ID_LABEL, rv, abort.signal)
          ) {
            if (e.type === "ERROR") {
              if (e.code !== 410) throw new Error(`pod watch error ${e.code}: ${e.message}`);
              gone = true; // the version is too old: list again
              break;
            }
            rv = e.resourceVersion ?? rv;
            if (e.type === "BOOKMARK") continue;
            const run = runs.update(e.pod, e.type === "DELETED");
            if (run !== undefined) ended(run);
          }
        }
      } catch (error) {
        if (abort.signal.aborted) return;
        const wait = backoffDelay(failures++, { baseMs: 500, capMs: 30_000 }, random);
        o.logger.warn("pod watch failed; listing again", { error, retry_ms: Math.round(wait) });
        await sleep(wait);
      }
    }
  }

  const running = loop();
  return {
    async stop() {
      abort.abort();
      await running;
    },
  };
}
