/** Batch planning: what a batch of adds and removes does to a trust policy, request by request. */

import { AppError } from "../lib/errors.ts";
import { editTrustPolicy, type TrustPolicyEdit, type TrustPolicyOptions } from "./trust_policy.ts";

/** One request of a batch: add or remove one subject. */
export interface BatchEdit {
  readonly add?: string;
  readonly remove?: string;
}

/** What became of one request. */
export type EditStatus = "added" | "present" | "removed" | "absent" | "failed";

/** What became of one request, and the policy's size after the batch. */
export interface BatchResult {
  readonly status: EditStatus;
  /** Why an add failed: the policy had no room for it. */
  readonly error?: { readonly code: string; readonly message: string };
  readonly length: number;
  readonly quota: number;
  readonly subjects: number;
}

/** A batch planned: the policy's edit (to write if it `changed`), one result per request. */
export interface BatchPlan {
  readonly edit: TrustPolicyEdit;
  readonly results: BatchResult[];
}

/**
 * Plans `edits` on `policy`. The last request about a subject wins: a remove that follows an add
 * leaves the subject out, and the add answers "absent". When the adds do not all fit the quota,
 * the earliest that fit are admitted and the others fail with the quota error. Throws what
 * {@link editTrustPolicy} throws for any other reason (a subject or a policy it must not edit).
 */
export function planBatch(
  policy: string,
  edits: readonly BatchEdit[],
  options: TrustPolicyOptions,
  role = "(unnamed)",
): BatchPlan {
  const want = new Map<string, boolean>();
  for (const e of edits) {
    if (e.add !== undefined) want.set(e.add, true);
    if (e.remove !== undefined) want.set(e.remove, false);
  }
  const adds = [...want].filter(([, keep]) => keep).map(([s]) => s);
  const removes = [...want].filter(([, keep]) => !keep).map(([s]) => s);
  let accepted = adds;
  let edit;
  let quotaError: AppError | undefined;
  for (;;) {
    try {
      edit = editTrustPolicy(policy, { add: accepted, remove: removes }, options, role);
      break;
    } catch (e) {
      if (
        !(e instanceof AppError) || e.code !== "policy_quota_exceeded" || accepted.length === 0
      ) throw e;
      // Admit the earliest requests that fit; the rest learn why they did not.
      quotaError ??= e;
      accepted = accepted.slice(0, Math.min(accepted.length - 1, e.details.fits as number));
    }
  }
  const size = { length: edit.length, quota: edit.quota, subjects: edit.subjects.length };
  // Sets, not the lists: a burst asks about hundreds of subjects.
  const added = new Set(edit.added);
  const held = new Set(edit.before);
  const removed = new Set(edit.removed);
  const results = edits.map((e): BatchResult => {
    if (e.add !== undefined) {
      if (!want.get(e.add)) return { status: "absent", ...size };
      if (added.has(e.add)) return { status: "added", ...size };
      if (held.has(e.add)) return { status: "present", ...size };
      const error = { code: quotaError!.code, message: quotaError!.message };
      return { status: "failed", error, ...size };
    }
    if (want.get(e.remove!)) return { status: "present", ...size };
    return { status: removed.has(e.remove!) ? "removed" : "absent", ...size };
  });
  return { edit, results };
}
