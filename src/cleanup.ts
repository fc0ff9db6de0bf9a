/**
 * The cleanup loop: removes from the proxy roles the subjects of runs that have ended, so trust
 * policies do not fill up. It removes only subjects of the managed form in the compute namespace,
 * never one it first saw less than a grace period ago (a pod that is starting), under the same
 * role lock as the edits.
 */

import { proxyRolesOf } from "./core/mapping.ts";
import { isManagedSubject, parseSubject, type SubjectFormat } from "./core/subject.ts";
import type { KubeClient } from "./kube/client.ts";
import type { Logger } from "./log.ts";
import type { ServerMetrics } from "./metrics.ts";
import type { MappingStore } from "./store/mapping_store.ts";
import type { TrustEditor } from "./trust_editor.ts";

/** Which service accounts still have a live pod; undefined means "use the sync leases". */
export type LiveServiceAccounts = () => Promise<ReadonlySet<string> | undefined>;

/** The pods of the compute namespace that carry a run label and have not finished. */
export function kubernetesLiveness(
  kube: Pick<KubeClient, "listPods">,
  namespace: string,
): LiveServiceAccounts {
  return async () => {
    const pods = await kube.listPods(namespace, "dominodatalab.com/execution-id");
    return new Set(
      pods.filter((p) => !["Succeeded", "Failed"].includes(p.status?.phase ?? ""))
        .map((p) => p.spec?.serviceAccountName)
        .filter((sa): sa is string => sa !== undefined),
    );
  };
}

/** Options of {@link createCleanup}. */
export interface CleanupOptions {
  readonly editor: TrustEditor;
  readonly store: MappingStore;
  /** Kubernetes liveness, or none: then a subject lives while its sidecar syncs within `syncLeaseMs`. */
  readonly liveness?: LiveServiceAccounts;
  readonly format: SubjectFormat;
  readonly computeNamespace: string;
  readonly graceMs: number;
  readonly syncLeaseMs: number;
  readonly logger: Logger;
  readonly metrics: ServerMetrics;
  readonly now?: () => number;
}

/** The cleanup loop. */
export interface Cleanup {
  /** Records that a pod's sidecar synced (or started): its subject is live and young. */
  touch(subject: string): void;
  /** One pass over every proxy role of the mappings; returns the subjects removed. */
  reconcile(): Promise<string[]>;
  /** Runs `reconcile` every `intervalMs` until `stop()`. */
  start(intervalMs: number): void;
  stop(): Promise<void>;
}

/** Creates the cleanup loop. */
export function createCleanup(o: CleanupOptions): Cleanup {
  const now = o.now ?? (() => Date.now());
  const firstSeen = new Map<string, number>();
  const lastSync = new Map<string, number>();
  let timer: ReturnType<typeof setInterval> | undefined;
  let pass: Promise<unknown> = Promise.resolve();

  const serviceAccountOf = (subject: string) => {
    if (!isManagedSubject(o.format, subject)) return undefined;
    const sa = parseSubject(o.format, subject);
    return sa.namespace === o.computeNamespace ? sa.name : undefined;
  };

  async function reconcile(): Promise<string[]> {
    const live = o.liveness ? await o.liveness() : undefined;
    const { mappings } = await o.store.read();
    const roles = proxyRolesOf(mappings);
    const removed: string[] = [];
    for (const role of roles) {
      try {
        const gone = await o.editor.prune(role, (subjects) => {
          const at = now();
          return Promise.resolve(subjects.filter((s) => {
            const sa = serviceAccountOf(s);
            if (sa === undefined) return false; // Not ours to remove.
            if (!firstSeen.has(s)) firstSeen.set(s, at);
            if (at - firstSeen.get(s)! < o.graceMs) return false;
            return live
              ? !live.has(sa)
              : at - (lastSync.get(s) ?? firstSeen.get(s)!) > o.syncLeaseMs;
          }));
        }, { user: "irsa-cleanup" });
        for (const s of gone) {
          firstSeen.delete(s);
          lastSync.delete(s);
        }
        if (gone.length) {
          o.metrics.cleanupRemoved.inc({}, gone.length);
          o.logger.info("removed subjects of ended runs", { role, subjects: gone });
        }
        removed.push(...gone);
      } catch (e) {
        o.logger.warn("cleanup of a role failed", { role, error: e });
      }
    }
    return removed;
  }

  return {
    touch(subject) {
      const at = now();
      if (!firstSeen.has(subject)) firstSeen.set(subject, at);
      lastSync.set(subject, at);
    },
    reconcile,
    start(intervalMs) {
      timer = setInterval(() => {
        pass = pass.then(reconcile).catch((e) =>
          o.logger.warn("cleanup pass failed", { error: e })
        );
      }, intervalMs);
    },
    async stop() {
      clearInterval(timer);
      await pass;
    },
  };
}
