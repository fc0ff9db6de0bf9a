/**
 * Per-role locks for trust-policy edits: the RoleLock contract, the local lock, the Lease lock.
 *
 * IAM has no compare-and-swap, so two writers that read, edit and write one role at once lose an
 * edit: in one process a queue prevents it; across replicas a `coordination.k8s.io/v1` Lease per
 * role does (src/kube/lease_mutex.ts). The lock also carries the version of the policy its last
 * holder saw, so a cached policy can be trusted without asking IAM.
 *
 * A replica whose batch finds the Lease held does not queue for it: it hands its edits to the
 * holder through the Lease (an annotation, appended at the Lease's resourceVersion), and the holder
 * applies them in the same IAM write as its own and records each one's result there
 * (src/trust/handoff.ts). So a burst spread over replicas still costs about one write per role,
 * and IAM keeps one writer per role. Anyone who may update Leases can write there too, so each
 * handed edit and each result is sealed with a key only the replicas hold (handoff_seal.ts): what
 * fails its seal is neither applied nor believed, but logged and counted. Without the key, nothing
 * is handed over or taken from a Lease: a replica that finds it held waits for it.
 */

import { AppError } from "../lib/errors.ts";
import type { Lease } from "../kube/client.ts";
import type { ServerMetrics } from "../observe/metrics.ts";
import {
  createLeaseMutex,
  isTransient,
  type LeaseMutexOptions,
  type Taken,
  type TakeOptions,
} from "../kube/lease_mutex.ts";
import {
  allRecorded,
  annotationsAfter,
  type EditResult,
  leaseName,
  recordedFor,
  type Results,
  ROLE_ANNOTATION,
  type SubjectEdit,
  VERSION_ANNOTATION,
  withHanded,
  withoutId,
} from "./handoff.ts";
import { createHandoffGuard, type HandoffGuardOptions } from "./handoff_guard.ts";
import type { HandoffKey } from "./handoff_seal.ts";

/** What a holder of the lock returns: its result, and the policy version to record for others. */
export interface LockedResult<T> {
  readonly value: T;
  readonly version?: string;
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
  /**
   * Whether the versions this lock hands over can only have been recorded by this server's own
   * reads and writes (the in-process lock keeps them in memory). A Lease's cannot: anyone who may
   * update Leases can write back a version seen there before (a seal would not stop a replay), so
   * a cached policy such a version vouches for may serve answers that change nothing, never the
   * base of a write or of a removal.
   */
  readonly versionsVouch: boolean;
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
    versionsVouch: true,
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

/** Options of {@link createLeaseRoleLock}: those of its Lease mutex, and how long to wait. */
export interface LeaseLockOptions extends Omit<LeaseMutexOptions, "kind"> {
  /** How long to wait for a Lease another replica holds. */
  readonly acquireTimeoutMs?: number;
  /** The key the hand-off is sealed with; without it, a replica waits for a Lease held. */
  readonly handoffKey?: HandoffKey;
  /** Counts what the seal refused. */
  readonly metrics?: Pick<ServerMetrics, "handoffRefused">;
  /** What the grant record entitles subjects to: handed adds are applied only within it. */
  readonly entitlements?: HandoffGuardOptions["entitlements"];
}

/** This replica's batch once taken: its edits in order, and the ids of those handed over. */
interface Batch {
  readonly edits: readonly SubjectEdit[];
  /** A prefix of `edits`, handed to the holder; undefined until the batch is handed over. */
  readonly ids?: readonly string[];
  /** The Lease had no room for it: it waits for the Lease, as a lone writer would. */
  readonly full?: boolean;
}

/** A batch handed over, whole or in part. */
type HandedBatch = Batch & { readonly ids: readonly string[] };

/** Where a batch stands in {@link RoleLock.applyEdits} on a Lease; each step says the next. */
type Step =
  /** Try the Lease once: ours → hold; held → collect, hand over, or wait. */
  | { readonly kind: "acquire"; readonly batch?: Batch }
  /** Held by another replica: take this replica's batch (its window), then try again. */
  | { readonly kind: "collect" }
  /** Append the batch to the holder's Lease: → await; no room → acquire, then wait. */
  | { readonly kind: "handOver"; readonly batch: Batch }
  /** Handed over: poll for the holder's results, handing it newcomers too; released → acquire. */
  | { readonly kind: "await"; readonly batch: HandedBatch }
  /** Back off, then look again: → await when handed over, else → acquire. */
  | { readonly kind: "wait"; readonly batch: Batch }
  /** The Lease is ours: apply the batch with the edits other replicas handed over. */
  | { readonly kind: "hold"; readonly taken: Taken; readonly batch?: Batch }
  /** Finished: the results of this replica's batch, in order. */
  | { readonly kind: "done"; readonly results: readonly EditResult[] };

/** One call of {@link RoleLock.applyEdits}. */
interface Run {
  readonly roleArn: string;
  readonly name: string;
  readonly deadline: number;
  readonly steps: EditSteps;
  /** Answers the batch before the hold ends, when rounds for other replicas follow. */
  readonly answer: (results: EditResult[]) => void;
  /** What this call has refused already, so that each is logged once however often it looks. */
  readonly refused: Set<string>;
}

/** Replicas coordinate through one Lease per role, taken and renewed through `resourceVersion`. */
export function createLeaseRoleLock(options: LeaseLockOptions): RoleLock {
  const local = createLocalRoleLock();
  const acquireTimeout = options.acquireTimeoutMs ?? 30_000;
  const now = options.now ?? (() => Date.now());
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const mutex = createLeaseMutex({ ...options, kind: "role" });
  const { logger, handoffKey: key, metrics, entitlements } = options;
  const guard = key && createHandoffGuard({ key, logger, metrics, now, entitlements });
  let handedCount = 0;

  const stayedHeld = (run: Pick<Run, "roleArn" | "name">) =>
    new AppError(
      "unavailable",
      `Cannot lock role ${JSON.stringify(run.roleArn)}: Lease ${
        JSON.stringify(run.name)
      } stayed held by another replica`,
    );

  async function next(run: Run, step: Step, attempt: number): Promise<Step> {
    switch (step.kind) {
      case "acquire": {
        const taken = await mutex.tryAcquire(run.name, takeOptions(run.roleArn));
        const { batch } = step;
        if (taken) return { kind: "hold", taken, batch };
        if (!batch) return { kind: "collect" };
        if (!batch.ids && !batch.full) return { kind: "handOver", batch };
        return { kind: "wait", batch };
      }
      case "collect":
        return { kind: "acquire", batch: { edits: await run.steps.take() } };
      case "handOver": {
        const ids = await handOver(run, step.batch.edits);
        if (ids === "full") return { kind: "acquire", batch: { ...step.batch, full: true } };
        if (ids) return { kind: "await", batch: { ...step.batch, ids } };
        return { kind: "acquire", batch: step.batch };
      }
      case "await":
        return await awaitResults(run, step.batch);
      case "wait": {
        if (now() > run.deadline) throw stayedHeld(run);
        await mutex.backOff(attempt);
        const { batch } = step;
        if (batch.ids) return { kind: "await", batch: { ...batch, ids: batch.ids } };
        return { kind: "acquire", batch };
      }
      case "hold":
        return { kind: "done", results: await holdAndApply(run, step.taken, step.batch) };
      case "done":
        return step;
    }
  }

  /**
   * Appends `edits` to the Lease another replica holds: their ids, undefined if no one holds it
   * now, or "full" when the annotation has no room left (then the batch waits for the Lease).
   */
  async function handOver(
    run: Run,
    edits: readonly SubjectEdit[],
  ): Promise<string[] | "full" | undefined> {
    if (!guard) return "full";
    // Sealed once, before the Lease is read: sealing between the read and the write at its
    // resourceVersion would widen the window in which another replica's hand-over conflicts.
    const entries = await guard.seal(
      run.roleArn,
      edits.map((e) => ({ id: `${options.identity}/${++handedCount}`, at: now(), ...e })),
    );
    for (;;) {
      try {
        const l = await mutex.get(run.name);
        if (!l || !mutex.heldByOther(l)) return undefined;
        const annotations = withHanded(l, entries);
        if (!annotations) return "full";
        await mutex.annotate(l, annotations);
        logger.debug("edits handed to the role's Lease holder", {
          lease: run.name,
          holder: l.holderIdentity,
          edits: entries.length,
        });
        return entries.map((e) => e.id);
      } catch (e) {
        if (!isTransient(e) || now() > run.deadline) throw e;
      }
      if (now() > run.deadline) throw stayedHeld(run);
    }
  }

  /** One look at the Lease for the results of a batch handed over. */
  async function awaitResults(run: Run, batch: HandedBatch): Promise<Step> {
    const l = await mutex.get(run.name).catch((e) => {
      if (isTransient(e)) return "retry" as const;
      throw e;
    });
    const results = l && l !== "retry" ? await believed(run, batch.ids, l) : {};
    const recorded = recordedFor(batch.edits.length, batch.ids, results);
    if (allRecorded(recorded)) return { kind: "done", results: recorded };
    // Released (or expired) without them all: take the Lease and apply them here.
    if (l !== "retry" && (l === undefined || !mutex.heldByOther(l))) {
      return { kind: "acquire", batch };
    }
    // Edits that arrived meanwhile go to the holder too, rather than wait for a turn.
    let { edits, ids, full } = batch;
    const extra = run.steps.more();
    if (extra.length > 0) {
      const handedAll = ids.length === edits.length;
      edits = [...edits, ...extra];
      if (!full && handedAll) {
        const handed = await handOver(run, extra);
        if (handed === "full") full = true;
        else if (handed) ids = [...ids, ...handed];
      }
    }
    if (now() > run.deadline) throw stayedHeld(run);
    await sleep(HANDOFF_POLL_MS * (0.5 + Math.random()));
    return { kind: "await", batch: { edits, ids, full } };
  }

  /** The edits other replicas handed over on `l` whose seal holds; those refused join `skip`. */
  const handedTo = async (run: Run, l: Lease, skip: Set<string>) =>
    guard ? await guard.handed(run.roleArn, l, skip, run.refused) : [];
  /** The results recorded on `l` for `ids` whose seal holds. */
  const believed = async (run: Run, ids: readonly string[], l: Lease) =>
    guard && ids.length > 0 ? await guard.believed(run.roleArn, ids, l, run.refused) : {};

  /**
   * Under the Lease: this replica's batch (taken now if it was not yet) and the edits handed over,
   * in one write, then edits handed over during it in up to {@link MAX_ROUNDS} - 1 more; the
   * results of handed edits are recorded on the Lease as it is released.
   */
  async function holdAndApply(run: Run, taken: Taken, batch?: Batch): Promise<EditResult[]> {
    const before = taken.before[VERSION_ANNOTATION];
    return await mutex.hold(taken.lease, async (refresh) => {
      await run.steps.prepare(before);
      const own = batch?.edits ?? await run.steps.take();
      const ids = batch?.ids ?? [];
      // The edits other replicas handed over until now go in this write too.
      const latest = await refresh();
      // Own edits a previous holder already applied keep its result (applying them again would
      // answer "present" for a subject this very request added); the rest go here.
      const known = recordedFor(own.length, ids, await believed(run, ids, latest));
      if (allRecorded(known)) {
        return { value: known, finish: (l: Lease) => ({ ...l.annotations }) };
      }
      const pending = own.filter((_, k) => known[k] === undefined);
      const applied = new Set(ids);
      const handed = await handedTo(run, latest, applied);
      logger.debug("role's Lease taken", {
        lease: run.name,
        own: pending.length,
        handed: handed.length,
      });
      const result = await run.steps.apply(before, [...pending, ...handed.map(withoutId)]);
      let version: string | undefined = result.version ?? before;
      let at = now();
      handed.forEach((e) => applied.add(e.id));
      const fresh: Results = {};
      handed.forEach((e, i) => (fresh[e.id] = { r: result.value[pending.length + i], t: at }));
      let k = 0;
      const value = known.map((r) => r ?? result.value[k++]);
      try {
        for (let round = 1; round < MAX_ROUNDS; round++) {
          const later = await handedTo(run, await refresh(), applied);
          if (later.length === 0) break;
          run.answer(value); // done: this batch does not wait for another round
          const more = await run.steps.apply(version, later.map(withoutId));
          version = more.version ?? version;
          at = now();
          later.forEach((e, i) => {
            fresh[e.id] = { r: more.value[i], t: at };
            applied.add(e.id);
          });
        }
      } catch (e) {
        // The write may or may not have reached IAM: record no version, so the next holder
        // reads the policy; the edits stay handed over, for their replica.
        version = undefined;
        logger.warn("cannot apply edits handed over during a write", {
          lease: run.name,
          error: e,
        });
      }
      const sealed = guard ? await guard.sealResults(run.roleArn, fresh) : {};
      return {
        value,
        finish: (l: Lease) => annotationsAfter(l, applied, sealed, version, at),
      };
    });
  }

  return {
    applyEdits(roleArn, steps) {
      // This batch's results, answered once the Lease is released, or as soon as its own write
      // is done when rounds for edits handed over meanwhile follow under the same hold.
      const answer = Promise.withResolvers<EditResult[]>();
      local.withLock(roleArn, async () => {
        const run: Run = {
          roleArn,
          name: leaseName(roleArn),
          deadline: now() + acquireTimeout,
          steps,
          answer: answer.resolve,
          refused: new Set(),
        };
        let step: Step = { kind: "acquire" };
        for (let attempt = 0; step.kind !== "done"; attempt++) {
          step = await next(run, step, attempt);
        }
        return { value: [...step.results] };
      }).then(answer.resolve, answer.reject);
      return answer.promise;
    },
    withLock(roleArn, work) {
      // One holder per process at a time; the Lease orders the processes.
      return local.withLock(roleArn, async () => {
        const name = leaseName(roleArn);
        const taken = await mutex.acquire(name, now() + acquireTimeout, takeOptions(roleArn));
        if (!taken) throw stayedHeld({ roleArn, name });
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
      return (await mutex.get(leaseName(roleArn)))?.annotations?.[VERSION_ANNOTATION];
    },
    versionsVouch: false,
  };
}

/**
 * How a role's Lease is taken: made naming its role, or taken over without the version its last
 * holder recorded. So if we write and then cannot release, the next holder finds no version and
 * reads IAM: a version left on it would match a cache from before our write, and that holder
 * would write our edit away.
 */
function takeOptions(roleArn: string): TakeOptions {
  return {
    create: { [ROLE_ANNOTATION]: roleArn },
    keep: ({ [VERSION_ANNOTATION]: _, ...rest }) => rest,
  };
}
