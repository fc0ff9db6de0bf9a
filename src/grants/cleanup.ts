/**
 * The cleanup loop: visits every proxy role irsa has ever edited (the grant record) and every
 * managed role of the mappings, and removes the subjects of runs that have ended, so trust
 * policies do not fill up, and the subjects that no current mapping entitles to the role. It
 * removes only subjects of the managed form in the compute namespace, never a live one it first
 * saw less than a grace period ago (a pod that is starting), under the same role lock as the edits.
 */

import {
  entitledTo,
  type GrantRecord,
  type Revocation,
  withoutRevoked,
  withRoles,
} from "../core/grants.ts";
import { proxyRolesOf, unmanagedRolesOf } from "../core/mapping.ts";
import { isManagedSubject, parseSubject, type SubjectFormat } from "../core/subject.ts";
import type { KubeClient } from "../kube/client.ts";
import type { Turn } from "../kube/lease_turn.ts";
import type { Logger } from "../lib/log.ts";
import type { ServerMetrics } from "../observe/metrics.ts";
import type { GrantStore } from "../store/grant_store.ts";
import type { MappingStore } from "../store/mapping_store.ts";
import type { TrustEditor } from "../trust/trust_editor.ts";

/** The Lease, in the field namespace, of the replicas' turn to run the cleanup's passes. */
export const CLEANUP_LEASE = "irsa-cleanup";

/** Which service accounts still have a live pod; undefined means "use the sync leases". */
export type LiveServiceAccounts = () => Promise<ReadonlySet<string> | undefined>;

/** The pods of the compute namespace that carry a run label and have not finished. */
export function kubernetesLiveness(
  kube: Pick<KubeClient, "listPods">,
  namespace: string,
): LiveServiceAccounts {
  return async () => {
    // Finished pods are left out by the API server (thousands of them are not sent each pass).
    const pods = await kube.listPods(
      namespace,
      "dominodatalab.com/execution-id",
      "status.phase!=Succeeded,status.phase!=Failed",
    );
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
  readonly grants: GrantStore;
  /** Kubernetes liveness, or none: then a subject lives while its sidecar syncs within `syncLeaseMs`. */
  readonly liveness?: LiveServiceAccounts;
  readonly format: SubjectFormat;
  readonly computeNamespace: string;
  readonly graceMs: number;
  readonly syncLeaseMs: number;
  readonly logger: Logger;
  readonly metrics: ServerMetrics;
  readonly now?: () => number;
  /**
   * Replicas take turns: a timed pass runs only on the replica that has the turn (each pass
   * visits every role, so one replica's pass serves all). None: every timed pass runs.
   */
  readonly turn?: Turn;
}

/** The cleanup loop. */
export interface Cleanup {
  /** Records that a pod's sidecar synced (or started): its subject is live and young. */
  touch(subject: string): void;
  /** One pass over every role ever edited or mapped; returns the subjects removed. */
  reconcile(): Promise<string[]>;
  /** Runs `reconcile` every `intervalMs`, when this replica has the turn, until `stop()`. */
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
  // Set by stop(): a pass in flight ends after the role it is on (a pass over a thousand roles,
  // each under its Lease, takes minutes), keeping what it removed; the next pass, here or on
  // another replica, visits the rest.
  let stopping = false;

  const serviceAccountOf = (subject: string) => {
    if (!isManagedSubject(o.format, subject)) return undefined;
    const sa = parseSubject(o.format, subject);
    return sa.namespace === o.computeNamespace ? sa.name : undefined;
  };

  async function reconcile(): Promise<string[]> {
    const live = o.liveness ? await o.liveness() : undefined;
    const [{ mappings }, record] = await Promise.all([o.store.read(), o.grants.read()]);
    const unmanaged = new Set(unmanagedRolesOf(mappings));
    const roles = [...new Set([...record.roles, ...proxyRolesOf(mappings)])].sort()
      .filter((role) => !unmanaged.has(role));
    // A run has ended when no live pod runs as its service account (Kubernetes), or when its
    // sidecar has not synced within the lease (the record keeps the last sync across restarts).
    const ended = (s: string, sa: string, at: number) => {
      if (!firstSeen.has(s)) firstSeen.set(s, at);
      if (at - firstSeen.get(s)! < o.graceMs) return false;
      if (live) return !live.has(sa);
      const synced = Math.max(lastSync.get(s) ?? 0, record.grants[s]?.syncedAt ?? 0);
      return at - (synced || firstSeen.get(s)!) > o.syncLeaseMs;
    };
    const removed: string[] = [];
    const revoked: Revocation[] = [];
    const endedRuns = new Set<string>();
    for (const role of roles) {
      if (stopping) break;
      try {
        const reasons = new Map<string, Revocation["reason"]>();
        const gone = await o.editor.prune(role, async (subjects) => {
          const at = now();
          const unentitled = (r: GrantRecord, s: string) => !entitledTo(r, mappings, s, role);
          // A pod that synced since the pass began (it joined an organization, say) is judged by
          // its new grant: the record is read again, under the role's lock, before it is removed.
          const fresh = subjects.some((s) => unentitled(record, s))
            ? await o.grants.read()
            : record;
          return subjects.filter((s) => {
            const sa = serviceAccountOf(s);
            if (sa === undefined) return false; // Not ours to remove.
            if (ended(s, sa, at)) {
              reasons.set(s, "run_ended");
              endedRuns.add(s);
              return true;
            }
            if (unentitled(fresh, s)) {
              reasons.set(s, "mapping");
              return true;
            }
            return false;
          });
        }, { user: "irsa-cleanup" });
        for (const s of gone) {
          const reason = reasons.get(s) ?? "run_ended";
          revoked.push({ role, subject: s, reason });
          o.metrics.revokedSubjects.inc({ reason });
          if (reason === "run_ended") o.metrics.cleanupRemoved.inc();
        }
        if (gone.length) {
          o.logger.info("removed subjects", {
            audit: true,
            user: "irsa-cleanup",
            role,
            subjects: gone,
            reasons: gone.map((s) => reasons.get(s)),
          });
        }
        removed.push(...gone);
      } catch (e) {
        o.logger.warn("cleanup of a role failed", { role, error: e });
      }
    }
    // Ended runs leave the record whole; so do recorded runs that hold no role any more.
    const at = now();
    for (const [s, grant] of Object.entries(record.grants)) {
      const sa = serviceAccountOf(s);
      if (
        sa !== undefined && !endedRuns.has(s) && at - grant.syncedAt > o.graceMs && ended(s, sa, at)
      ) {
        endedRuns.add(s);
      }
    }
    if (revoked.length > 0 || endedRuns.size > 0) {
      await o.grants.update((r) =>
        [...endedRuns].reduce((next, s) => withRoles(next, s, []), withoutRevoked(r, revoked))
      ).catch((e) => o.logger.warn("cannot update the grant record", { error: e }));
    }
    for (const s of endedRuns) {
      firstSeen.delete(s);
      lastSync.delete(s);
    }
    o.metrics.cleanupLastPass.set({}, Math.floor(Date.now() / 1000));
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
      const timed = async () => {
        if (stopping || (o.turn && !(await o.turn.take()))) return;
        await reconcile();
      };
      timer = setInterval(() => {
        pass = pass.then(timed).catch((e) => o.logger.warn("cleanup pass failed", { error: e }));
      }, intervalMs);
    },
    async stop() {
      stopping = true;
      clearInterval(timer);
      await pass;
      await o.turn?.release().catch((e) =>
        o.logger.warn("cannot give the cleanup's turn up", { error: e })
      );
    },
  };
}
