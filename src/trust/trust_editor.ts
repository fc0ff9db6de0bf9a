/**
 * The trust editor: a queue per role, its window, each batch applied under the role's lock.
 *
 * Every edit of one role goes through one queue. A batch opens with its first request, takes the
 * role's lock and reads the policy (or trusts the cache) while it collects for `windowMs`, then
 * applies everything it collected (as src/core/batch_plan.ts plans it) in one
 * UpdateAssumeRolePolicy; requests that arrive during the write go together in the next batch.
 * Each role's policy is cached (policy_cache.ts); a subject already present costs no IAM call as
 * long as the role's lock says no one has written since. Its interface is trust_editor_api.ts.
 */

import { parseRoleArn } from "../core/arn.ts";
import { planBatch } from "../core/batch_plan.ts";
import { parseSubject } from "../core/subject.ts";
import {
  editTrustPolicy,
  oidcProviderArn,
  subjectsOf,
  type TrustPolicyEdit,
  type TrustPolicyOptions,
} from "../core/trust_policy.ts";
import { AppError } from "../lib/errors.ts";
import { createPolicyCache } from "./policy_cache.ts";
import type { EditResult, SubjectEdit } from "./handoff.ts";
import { createLocalRoleLock, type LockedResult } from "./role_lock.ts";

export type {
  AuditContext,
  EditOptions,
  OutcomeError,
  RoleOutcome,
  RoleStatus,
  TrustEditor,
  TrustEditorDeps,
} from "./trust_editor_api.ts";
import type {
  AuditContext,
  OutcomeError,
  RoleOutcome,
  TrustEditor,
  TrustEditorDeps,
} from "./trust_editor_api.ts";

interface Pending {
  readonly add?: string;
  readonly remove?: string;
  readonly audit: AuditContext;
  /** When it was queued, on the editor's clock: its batch writes no sooner than `at + windowMs`. */
  readonly at: number;
  /** Settled once `after` has: undefined while waiting, then whether it failed and why. */
  ready?: { readonly error?: unknown };
  readonly after?: Promise<unknown>;
  readonly resolve: (o: RoleOutcome) => void;
}

/** One request a write serves, as its audit line names it. */
type AuditRequest =
  | { action: "add" | "remove"; user: string; run?: string; request_id?: string }
  | { action: "cleanup"; user: string };

/** A role's policy under its lock, and whether it is surely IAM's as of now. */
interface Base {
  readonly document: string;
  readonly current: boolean;
}

/** How often a batch past its window looks whether the starts it waits for have joined. */
const ARRIVAL_POLL_MS = 3;

/** Creates the editor. */
export function createTrustEditor(deps: TrustEditorDeps): TrustEditor {
  const lock = deps.lock ?? createLocalRoleLock();
  const now = deps.now ?? (() => Date.now());
  const windowMs = deps.windowMs ?? 0;
  const maxWindowMs = Math.max(windowMs, deps.maxWindowMs ?? 4 * windowMs);
  let arrivals = 0;
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const queues = new Map<string, Pending[]>();
  const running = new Set<string>();

  const optionsFor = (roleArn: string): TrustPolicyOptions => {
    const role = parseRoleArn(roleArn);
    return {
      providerArn: oidcProviderArn(role.account, deps.oidcProvider, role.partition),
      audience: deps.audience,
      format: deps.format,
      quota: deps.quota,
    };
  };

  const policies = createPolicyCache({
    roles: deps.roles,
    optionsFor,
    maxAgeMs: deps.cacheMaxAgeMs ?? 5 * 60_000,
    now,
  });

  /** Writes a policy, then its audit line: who asked, what changed, the size after. */
  const write = async (roleArn: string, edit: TrustPolicyEdit, requests: AuditRequest[]) => {
    const version = await policies.write(roleArn, edit.document);
    deps.logger.info("trust policy changed", {
      audit: true,
      role: roleArn,
      requests,
      // The cleanup only removes: its line names no added subjects.
      ...(requests.some((r) => r.action !== "cleanup") ? { added: edit.added } : {}),
      removed: edit.removed,
      subjects_before: edit.before,
      subjects_after: edit.subjects,
      policy_length: edit.length,
      policy_quota: edit.quota,
    });
    return version;
  };

  const failure = (e: unknown) =>
    e instanceof AppError
      ? { code: e.code, message: e.message }
      : { code: "internal", message: "Unexpected error" };

  const settle = (roleArn: string, p: Pending, o: RoleOutcome) => {
    deps.metrics.trustPolicyEdits.inc({ action: p.add ? "add" : "remove", outcome: o.status });
    if (o.status === "failed") {
      // A full policy is routine in a pool (the next member takes the subject): the start warns
      // when none could (src/grants/map_pod.ts).
      const level = o.error?.code === "policy_quota_exceeded" ? "info" : "warn";
      deps.logger[level]("trust policy edit failed", {
        role: roleArn,
        user: p.audit.user,
        run: p.audit.run,
        code: o.error?.code,
        reason: o.error?.message,
      });
    }
    p.resolve(o);
  };

  /** The edits whose `after` succeeded; those whose `after` failed are settled with its error. */
  const readyOnes = (roleArn: string, ps: readonly Pending[]): Pending[] =>
    ps.filter((p) => {
      if (p.ready?.error === undefined) return true;
      settle(roleArn, p, { roleArn, status: "failed", error: failure(p.ready.error) });
      return false;
    });

  /**
   * Takes the role's queue as one batch once the window of its first request has passed, and
   * waits for what its edits must follow (the read and the window overlap that wait).
   */
  const takeBatch = async (roleArn: string): Promise<Pending[]> => {
    const first = queues.get(roleArn)?.[0];
    const wait = first ? first.at + windowMs - now() : 0;
    if (wait > 0) await sleep(wait);
    // Starts still being proven will join, unless the longest window runs out first.
    while (first && arrivals > 0) {
      const left = first.at + maxWindowMs - now();
      if (left <= 0) break;
      await sleep(Math.min(left, ARRIVAL_POLL_MS));
    }
    const batch = queues.get(roleArn) ?? [];
    queues.delete(roleArn);
    await Promise.allSettled(batch.map((p) => p.after));
    return readyOnes(roleArn, batch);
  };

  /**
   * A role's policy under its lock, and whether it is IAM's as of now: read from IAM, or cached
   * under a version that only this server can have recorded. A cached one that a Lease's version
   * vouches for may be stale (see {@link RoleLock.versionsVouch}).
   */
  const underLock = async (roleArn: string, version: string | undefined): Promise<Base> => {
    const hit = policies.fresh(roleArn);
    const cached = hit !== undefined && version !== undefined && hit.version === version;
    const document = await policies.current(roleArn, version);
    return { document, current: !cached || lock.versionsVouch };
  };

  /**
   * Applies edits to a policy read under the lock: one write at most, one result per edit. A
   * policy that may be stale serves only answers that change nothing (adds found present); for
   * anything else IAM's is read first, so that no write brings back a subject another replica
   * removed and no removal is skipped for a subject another replica added.
   */
  async function apply(
    roleArn: string,
    before: Base,
    edits: readonly SubjectEdit[],
  ): Promise<LockedResult<EditResult[]> & { current: boolean }> {
    const plan = (document: string) =>
      planBatch(document, edits, optionsFor(roleArn), parseRoleArn(roleArn).name);
    let { edit, results } = plan(before.document);
    const stale = !before.current && results.some((r) => r.status !== "present");
    if (stale) ({ edit, results } = plan(await policies.current(roleArn, undefined)));
    const requests = edits.map((e): AuditRequest => ({
      action: e.add ? "add" : "remove",
      user: e.user,
      run: e.run,
      request_id: e.requestId,
    }));
    const newVersion = edit.changed
      ? await write(roleArn, edit, requests)
      : policies.peek(roleArn)?.version;
    for (const r of results) if (r.status === "failed") deps.metrics.poolFull.inc();
    return { value: results, version: newVersion, current: before.current || stale };
  }

  /**
   * The role's policy as IAM holds it now, without its lock (see `refusal`). A role this replica
   * has not read yet is read only when `uncached` says so: a batch's own lock reads it anyway.
   */
  async function policyNow(roleArn: string, uncached: boolean): Promise<string | undefined> {
    if (!uncached && policies.peek(roleArn) === undefined) return undefined;
    try {
      const version = await lock.currentVersion(roleArn);
      const hit = policies.fresh(roleArn);
      return hit !== undefined && version !== undefined && hit.version === version
        ? hit.document
        : await policies.current(roleArn, undefined);
    } catch {
      return undefined;
    }
  }

  /** The quota error of adding `subject` to `document`, counted, or undefined when it fits. */
  function quotaRefusal(roleArn: string, document: string, subject: string) {
    const options = optionsFor(roleArn);
    const [result] = planBatch(document, [{ add: subject }], options, parseRoleArn(roleArn).name)
      .results;
    if (result.status !== "failed" || result.error?.code !== "policy_quota_exceeded") return;
    deps.metrics.poolFull.inc();
    return result.error;
  }

  /** The managed subjects of a role: the cache when the lock says no one wrote since, else IAM's. */
  async function subjectsNow(roleArn: string): Promise<string[]> {
    const hit = policies.fresh(roleArn);
    if (hit && (await lock.currentVersion(roleArn)) === hit.version) return [...hit.subjects];
    return subjectsOf(await policies.current(roleArn, undefined), optionsFor(roleArn));
  }

  async function refusal(roleArn: string, subject: string): Promise<OutcomeError | undefined> {
    const document = await policyNow(roleArn, true);
    return document === undefined ? undefined : quotaRefusal(roleArn, document, subject);
  }

  /**
   * Refuses, without the role's lock, the queued adds that cannot fit (see `refusal`) when only
   * adds are queued; answers whether nothing is left to do. A start in a pool then moves on to the
   * next member without taking this one's Lease (two writes) only to be refused: the case of a
   * member that other replicas filled since this one last saw it.
   */
  async function refuseFull(roleArn: string): Promise<boolean> {
    const queued = queues.get(roleArn) ?? [];
    if (queued.length === 0 || queued.some((p) => p.add === undefined)) return false;
    const document = await policyNow(roleArn, false);
    if (document === undefined) return false;
    const refused = new Set<Pending>();
    for (const p of queues.get(roleArn) ?? []) {
      const error = p.add === undefined ? undefined : quotaRefusal(roleArn, document, p.add);
      if (error === undefined) continue; // it may fit: the lock decides
      refused.add(p);
      settle(roleArn, p, { roleArn, status: "failed", error });
    }
    const left = (queues.get(roleArn) ?? []).filter((p) => !refused.has(p));
    if (left.length > 0) queues.set(roleArn, left);
    else queues.delete(roleArn);
    return left.length === 0;
  }

  async function runBatch(roleArn: string): Promise<void> {
    if (await refuseFull(roleArn)) return;
    let batch: Pending[] | undefined;
    let before: Base | undefined;
    // Whether the cached policy is IAM's as of this hold of the lock: read or written under it.
    let current = false;
    const asEdit = (p: Pending): SubjectEdit => ({
      add: p.add,
      remove: p.remove,
      user: p.audit.user,
      run: p.audit.run,
      requestId: p.audit.requestId,
    });
    const take = async () => {
      batch ??= await takeBatch(roleArn);
      deps.metrics.batchSize.observe({}, batch.length);
      return batch.map(asEdit);
    };
    // Requests queued while this batch waits on another replica join it, in order, once what
    // they follow is done; the others wait for the next batch.
    const more = () => {
      const queued = queues.get(roleArn) ?? [];
      const extra = readyOnes(roleArn, queued.filter((p) => p.ready !== undefined));
      const later = queued.filter((p) => p.ready === undefined);
      if (later.length > 0) queues.set(roleArn, later);
      else queues.delete(roleArn);
      batch = [...(batch ?? []), ...extra];
      return extra.map(asEdit);
    };
    const outcomes = await lock.applyEdits(roleArn, {
      prepare: async (version) => {
        before = await underLock(roleArn, version);
        current = before.current;
      },
      take,
      more,
      apply: async (version, edits) => {
        // The policy read for this batch serves its first write; a later round under the same
        // hold (edits handed over meanwhile) starts from the policy that write left, cached.
        const base = before ?? await underLock(roleArn, version);
        before = undefined;
        const result = await apply(roleArn, { ...base, current: current || base.current }, edits);
        current = result.current;
        return result;
      },
    }).catch((e): EditResult[] => {
      // The lock or the read failed: the batch fails, taken now if it was not yet.
      if (batch === undefined) {
        batch = queues.get(roleArn) ?? [];
        queues.delete(roleArn);
      }
      return batch.map(() => ({ status: "failed", error: failure(e) }));
    });
    (batch ?? []).forEach((p, i) => settle(roleArn, p, { roleArn, ...outcomes[i] }));
  }

  async function drain(roleArn: string): Promise<void> {
    running.add(roleArn);
    try {
      while ((queues.get(roleArn)?.length ?? 0) > 0) await runBatch(roleArn);
    } finally {
      running.delete(roleArn);
    }
  }

  return {
    async edit(roleArn, { add, remove }, audit, options = {}) {
      try {
        parseRoleArn(roleArn);
        // Validate before queueing, so a bad subject fails alone and not its whole batch.
        if (add !== undefined) parseSubject(deps.format, add);
        if (remove !== undefined) parseSubject(deps.format, remove);
        const hit = policies.fresh(roleArn);
        if (add !== undefined && hit?.subjects.has(add)) {
          // Present in the cache: trust it only if no one wrote the role since we read it.
          if ((await lock.currentVersion(roleArn)) === hit.version) {
            deps.metrics.trustPolicyEdits.inc({ action: "add", outcome: "present" });
            deps.metrics.cacheHits.inc();
            const size = policies.peek(roleArn)!.size;
            return {
              roleArn,
              status: "present",
              length: size.length,
              quota: size.quota,
              subjects: size.subjects,
            };
          }
        }
      } catch (e) {
        deps.metrics.trustPolicyEdits.inc({ action: add ? "add" : "remove", outcome: "failed" });
        return { roleArn, status: "failed", error: failure(e) };
      }
      const { promise, resolve } = Promise.withResolvers<RoleOutcome>();
      const pending: Pending = { add, remove, audit, at: now(), after: options.after, resolve };
      if (options.after === undefined) pending.ready = {};
      else options.after.then(() => pending.ready = {}, (error) => pending.ready = { error });
      const queue = queues.get(roleArn) ?? [];
      queue.push(pending);
      queues.set(roleArn, queue);
      if (!running.has(roleArn)) drain(roleArn);
      return promise;
    },

    async prune(roleArn, select, audit) {
      // Most roles have nothing to remove on most passes: look first without the role's Lease (a
      // take and a release are two writes) and take it only when something may go. The look is
      // repeated under the lock, from IAM's policy; a subject it misses waits for the next pass.
      if ((await select(await subjectsNow(roleArn))).length === 0) return [];
      return await lock.withLock(roleArn, async () => {
        const options = optionsFor(roleArn);
        // Never write from a policy that may be stale: it may lack what others added since.
        const before = await policies.current(roleArn, undefined);
        const gone = await select(subjectsOf(before, options));
        if (gone.length === 0) return { value: [], version: policies.peek(roleArn)?.version };
        const edit = editTrustPolicy(before, { remove: gone }, options, parseRoleArn(roleArn).name);
        const newVersion = edit.changed
          ? await write(roleArn, edit, [{ action: "cleanup", user: audit.user }])
          : policies.peek(roleArn)?.version;
        return { value: [...edit.removed], version: newVersion };
      });
    },

    subjects: subjectsNow,

    arriving() {
      arrivals++;
      let done = false;
      return () => {
        if (done) return;
        done = true;
        arrivals--;
      };
    },

    capacity: () => policies.capacity(),
    holds: (roleArn, subject) => policies.peek(roleArn)?.subjects.has(subject) ?? false,
    refusal,
  };
}
