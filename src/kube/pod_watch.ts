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
  /** A list asked after the first: `gone` after a 410, `error` after a failure that backed off. */
  readonly onRelist?: (reason: "gone" | "error") => void;
  /** True once listed and watching; false when the watch fails (or stops) until the next list. */
  readonly onConnected?: (connected: boolean) => void;
  /** The API server answered: a list, an event or a bookmark. */
  readonly onHeard?: () => void;
  /** After each list: the runs with a live pod in it, and when the list was asked for. */
  readonly onListed?: (live: ReadonlySet<string>, listedAt: number) => void;
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

  /** The runs with a live pod. */
  live(): ReadonlySet<string> {
    return new Set(this.#runs.keys());
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
    let relist: "gone" | "error" | undefined;
    for (let failures = 0; !abort.signal.aborted;) {
      try {
        const listedAt = o.clock ? o.clock.now() : Date.now();
        if (relist) o.onRelist?.(relist);
        const { pods, resourceVersion } = await o.kube.listPodsAt(o.namespace, EXECUTION_ID_LABEL);
        o.onList?.();
        o.onHeard?.();
        o.onConnected?.(true);
        // Runs that lost their last pod while nothing watched (a 410, a failure) end here.
        runs.reset(pods).forEach(ended);
        o.onListed?.(runs.live(), listedAt);
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
              relist = "gone";
              break;
            }
            o.onHeard?.();
            rv = e.resourceVersion ?? rv;
            if (e.type === "BOOKMARK") continue;
            const run = runs.update(e.pod, e.type === "DELETED");
            if (run !== undefined) ended(run);
          }
        }
      } catch (error) {
        o.onConnected?.(false);
        if (abort.signal.aborted) return;
        relist = "error";
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
      o.onConnected?.(false);
    },
  };
}
