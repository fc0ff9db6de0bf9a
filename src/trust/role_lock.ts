/**
 * Per-role locks for trust-policy edits. IAM has no compare-and-swap, so two writers that read,
 * edit and write one role at once lose an edit: in one process a queue prevents it; across
 * replicas a `coordination.k8s.io/v1` Lease per role does. The lock also carries the version of the
 * policy its last holder saw, so a cached policy can be trusted without asking IAM.
 *
 * A replica whose batch finds the Lease held does not queue for it: it hands its edits to the
 * holder through the Lease (an annotation, appended at the Lease's resourceVersion), and the holder
 * applies them in the same IAM write as its own and records each one's result there. So a burst
 * spread over replicas still costs about one write per role, and IAM keeps one writer per role.
 */

import { AppError } from "../lib/errors.ts";
import type { KubeClient, Lease } from "../kube/client.ts";
import { createLeaseMutex, isTransient, type TakeOptions } from "../kube/lease_mutex.ts";
import type { Logger } from "../lib/log.ts";
import {
  annotationsAfter,
  HANDED_ANNOTATION,
  HANDED_MAX_CHARS,
  handedOf,
  leaseName,
  type Results,
  resultsOf,
  ROLE_ANNOTATION,
  VERSION_ANNOTATION,
  withoutId,
} from "./handoff.ts";

/** What a holder of the lock returns: its result, and the policy version to record for others. */
export interface LockedResult<T> {
  readonly value: T;
  readonly version?: string;
}

/** One edit of a role's subjects; plain data, so that a replica can hand it to another. */
export interface SubjectEdit {
  readonly add?: string;
  readonly remove?: string;
  /** Who asked, for the audit log of whichever replica writes. */
  readonly user: string;
  readonly run?: string;
  readonly requestId?: string;
}

/** What became of one edit; plain data, so that it can travel back through the Lease. */
export interface EditResult {
  readonly status: "added" | "present" | "removed" | "absent" | "failed";
  readonly error?: { readonly code: string; readonly message: string };
  readonly length?: number;
  readonly quota?: number;
  readonly subjects?: number;
}

/** The steps of one batch of edits, which {@link RoleLock.applyEdits} runs where they belong. */
export interface EditSteps {
  /** Under the lock, before the batch is taken: read the policy, so the read overlaps the window. */
  prepare(version: string | undefined): Promise<void>;
  /** This replica's batch, once its window has passed; called once. */
  take(): Promise<readonly SubjectEdit[]>;
  /** Edits queued since, taken at once: a batch handed over hands these over too as it waits. */
  more(): readonly SubjectEdit[];
  /**
   * Under the lock, after `prepare`: applies `edits`, one result each, and the new version. It may
   * be called again under the same hold, with edits other replicas handed over meanwhile.
   */
  apply(
    version: string | undefined,
    edits: readonly SubjectEdit[],
  ): Promise<LockedResult<EditResult[]>>;
}

/** A lock per role. */
export interface RoleLock {
  /**
   * Runs one batch of edits: holding the role's lock, together with any edits other replicas
   * handed over, or, while another replica holds it, by handing the batch to that replica.
   * Resolves with the results of this replica's batch, in order.
   */
  applyEdits(roleArn: string, steps: EditSteps): Promise<EditResult[]>;
  /** Runs `work` holding the role's lock; `work` gets the version the last holder recorded. */
  withLock<T>(
    roleArn: string,
    work: (version: string | undefined) => Promise<LockedResult<T>>,
  ): Promise<T>;
  /** The version the last holder recorded, read without taking the lock. */
  currentVersion(roleArn: string): Promise<string | undefined>;
}

/** One process alone edits the roles: a queue per role, versions kept in memory. */
export function createLocalRoleLock(): RoleLock {
  const tails = new Map<string, Promise<unknown>>();
  const versions = new Map<string, string>();
  const lock: RoleLock = {
    // One process: nothing is handed over, so `more` is never asked.
    applyEdits: (roleArn, steps) =>
      lock.withLock(roleArn, async (version) => {
        await steps.prepare(version);
        return await steps.apply(version, await steps.take());
      }),
    withLock(roleArn, work) {
      const run = (tails.get(roleArn) ?? Promise.resolve()).then(async () => {
        const { value, version } = await work(versions.get(roleArn));
        if (version !== undefined) versions.set(roleArn, version);
        return value;
      });
      const tail = run.catch(() => {});
      tails.set(roleArn, tail);
      // Forget a role once its queue drains, so the map does not grow with every role ever seen.
      tail.then(() => tails.get(roleArn) === tail && tails.delete(roleArn));
      return run;
    },
    currentVersion: (roleArn) => Promise.resolve(versions.get(roleArn)),
  };
  return lock;
}

/** How often a replica that handed its edits looks at the Lease for their results. */
const HANDOFF_POLL_MS = 15;
/**
 * Writes a holder makes at most under one hold: its batch, then edits handed over while it wrote
 * (their replica would otherwise wait for the Lease and read the policy again).
 */
const MAX_ROUNDS = 3;

/** Options of {@link createLeaseRoleLock}. */
export interface LeaseLockOptions {
  readonly kube: Pick<KubeClient, "getLease" | "createLease" | "replaceLease">;
  readonly namespace: string;
  /** This replica, unique: a crashed holder's Lease expires rather than being mistaken for ours. */
  readonly identity: string;
  /** A holder that stops renewing loses the Lease after this long. */
  readonly leaseDurationSeconds?: number;
  /** How long to wait for a Lease another replica holds. */
  readonly acquireTimeoutMs?: number;
  readonly logger: Logger;
  readonly now?: () => number;
  /** Waits on the clock of `now`; it must end early once `signal` aborts. */
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** Replicas coordinate through one Lease per role, taken and renewed through `resourceVersion`. */
export function createLeaseRoleLock(options: LeaseLockOptions): RoleLock {
  const local = createLocalRoleLock();
  const acquireTimeout = options.acquireTimeoutMs ?? 30_000;
  const now = options.now ?? (() => Date.now());
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const mutex = createLeaseMutex({ ...options, kind: "role" });
  let handedCount = 0;

  const stayedHeld = (roleArn: string, name: string) =>
    new AppError(
      "unavailable",
      `Cannot lock role ${JSON.stringify(roleArn)}: Lease ${
        JSON.stringify(name)
      } stayed held by another replica`,
    );

  /**
   * One attempt at the Lease: ours now, with the version its last holder recorded, or undefined
   * while another replica holds it. The version comes off the Lease while we hold it, so that if
   * we write and then cannot release, the next holder finds none and reads IAM: a version left on
   * it would match a cache from before our write, and that holder would write our edit away.
   */
  async function tryAcquire(
    name: string,
    roleArn: string,
  ): Promise<{ lease: Lease; version?: string } | undefined> {
    const taken = await mutex.tryAcquire(name, takeOptions(roleArn));
    return taken && { lease: taken.lease, version: taken.before[VERSION_ANNOTATION] };
  }

  /**
   * Appends `edits` to the Lease another replica holds: their ids, undefined if no one holds it
   * now, or "full" when the annotation has no room left (then the batch waits for the Lease).
   */
  async function handOver(
    name: string,
    roleArn: string,
    edits: readonly SubjectEdit[],
    deadline: number,
  ): Promise<string[] | "full" | undefined> {
    for (;;) {
      try {
        const l = await mutex.get(name);
        if (!l || !mutex.heldByOther(l)) return undefined;
        const entries = edits.map((e) => ({ id: `${options.identity}/${++handedCount}`, ...e }));
        const handed = JSON.stringify([...handedOf(l), ...entries]);
        if (handed.length > HANDED_MAX_CHARS) return "full";
        await mutex.annotate(l, { ...l.annotations, [HANDED_ANNOTATION]: handed });
        options.logger.debug("edits handed to the role's Lease holder", {
          lease: name,
          holder: l.holderIdentity,
          edits: entries.length,
        });
        return entries.map((e) => e.id);
      } catch (e) {
        if (!isTransient(e) || now() > deadline) throw e;
      }
      if (now() > deadline) throw stayedHeld(roleArn, name);
    }
  }

  return {
    applyEdits(roleArn, steps) {
      // This batch's results, answered once the Lease is released, or as soon as its own write
      // is done when rounds for edits handed over meanwhile follow under the same hold.
      const answer = Promise.withResolvers<EditResult[]>();
      local.withLock(roleArn, async () => {
        const name = leaseName(roleArn);
        const deadline = now() + acquireTimeout;
        // This replica's edits, in order, and the ids of those handed over (a prefix of them).
        let mine: SubjectEdit[] | undefined;
        let ids: string[] | undefined;
        let full = false;
        for (let attempt = 0;; attempt++) {
          if (ids && mine) {
            // Handed over: finished once the holder has recorded every result.
            const l = await mutex.get(name).catch((e) => {
              if (isTransient(e)) return "retry" as const;
              throw e;
            });
            const results = l && l !== "retry" ? resultsOf(l) : {};
            if (ids.length === mine.length && ids.every((id) => id in results)) {
              return { value: ids.map((id) => results[id].r) };
            }
            if (l === "retry" || (l !== undefined && mutex.heldByOther(l))) {
              // Edits that arrived meanwhile go to the holder too, rather than wait for a turn.
              const extra = steps.more();
              if (extra.length > 0) {
                mine.push(...extra);
                if (!full && ids.length === mine.length - extra.length) {
                  const handed = await handOver(name, roleArn, extra, deadline);
                  if (handed === "full") full = true;
                  else if (handed) ids.push(...handed);
                }
              }
              if (now() > deadline) throw stayedHeld(roleArn, name);
              await sleep(HANDOFF_POLL_MS * (0.5 + Math.random()));
              continue;
            }
            // Released (or expired) without them all: take the Lease and apply them here.
          }
          const taken = await tryAcquire(name, roleArn);
          if (taken) {
            const before = taken.version;
            const value = await mutex.hold(taken.lease, async (refresh) => {
              await steps.prepare(before);
              const own = mine ?? await steps.take();
              // The edits other replicas handed over until now go in this write too.
              const latest = await refresh();
              const recorded = resultsOf(latest);
              // Own edits a previous holder already applied keep its result (applying them again
              // would answer "present" for a subject this very request added); the rest go here.
              const known = own.map((_, k) =>
                ids && k < ids.length && ids[k] in recorded ? recorded[ids[k]].r : undefined
              );
              if (known.every((r) => r !== undefined)) {
                return { value: known, finish: (l: Lease) => ({ ...l.annotations }) };
              }
              const pending = own.filter((_, k) => known[k] === undefined);
              const handed = handedOf(latest).filter((e) => !ids?.includes(e.id));
              options.logger.debug("role's Lease taken", {
                lease: name,
                own: pending.length,
                handed: handed.length,
              });
              const result = await steps.apply(before, [...pending, ...handed.map(withoutId)]);
              let version = result.version ?? before;
              let at = now();
              const taken = new Set([...handed.map((e) => e.id), ...(ids ?? [])]);
              const fresh: Results = {};
              handed.forEach((e, i) => (
                fresh[e.id] = { r: result.value[pending.length + i], t: at }
              ));
              let next = 0;
              const value = known.map((r) => r ?? result.value[next++]);
              try {
                for (let round = 1; round < MAX_ROUNDS; round++) {
                  const later = handedOf(await refresh()).filter((e) => !taken.has(e.id));
                  if (later.length === 0) break;
                  answer.resolve(value); // done: this batch does not wait for another round
                  const more = await steps.apply(version, later.map(withoutId));
                  version = more.version ?? version;
                  at = now();
                  later.forEach((e, i) => {
                    fresh[e.id] = { r: more.value[i], t: at };
                    taken.add(e.id);
                  });
                }
              } catch (e) {
                // The write may or may not have reached IAM: record no version, so the next
                // holder reads the policy; the edits stay handed over, for their replica.
                version = undefined;
                options.logger.warn("cannot apply edits handed over during a write", {
                  lease: name,
                  error: e,
                });
              }
              return {
                value,
                finish: (l: Lease) => annotationsAfter(l, taken, fresh, version, at),
              };
            });
            return { value };
          }
          // Held by another replica: collect this batch (its window), then hand it over.
          if (mine === undefined) {
            mine = [...await steps.take()];
            continue;
          }
          if (ids === undefined && !full) {
            const handed = await handOver(name, roleArn, mine, deadline);
            if (handed === "full") full = true;
            else ids = handed;
            continue;
          }
          // No room to hand over: wait for the Lease, as a lone writer would.
          if (now() > deadline) throw stayedHeld(roleArn, name);
          await mutex.backOff(attempt);
        }
      }).then(answer.resolve, answer.reject);
      return answer.promise;
    },
    withLock(roleArn, work) {
      // One holder per process at a time; the Lease orders the processes.
      return local.withLock(roleArn, async () => {
        const name = leaseName(roleArn);
        const taken = await mutex.acquire(name, now() + acquireTimeout, takeOptions(roleArn));
        if (!taken) throw stayedHeld(roleArn, name);
        const before = taken.before[VERSION_ANNOTATION];
        const value = await mutex.hold(taken.lease, async () => {
          const result = await work(before);
          const version = result.version ?? before;
          return {
            value: result.value,
            finish: (l: Lease) => ({
              ...l.annotations,
              ...(version ? { [VERSION_ANNOTATION]: version } : {}),
            }),
          };
        });
        return { value };
      });
    },
    async currentVersion(roleArn) {
      return (await mutex.get(leaseName(roleArn)))?.annotations
        ?.[VERSION_ANNOTATION];
    },
  };
}

/** How a role's Lease is taken: made naming its role, or taken over without the version. */
function takeOptions(roleArn: string): TakeOptions {
  return {
    create: { [ROLE_ANNOTATION]: roleArn },
    keep: ({ [VERSION_ANNOTATION]: _, ...rest }) => rest,
  };
}
