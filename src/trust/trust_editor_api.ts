/**
 * The trust editor's interface: what a request asks of a role, what becomes of it, and what the
 * editor needs. Its implementation, the queues and batches, is trust_editor.ts.
 */

import type { RolePolicyStore } from "../aws/iam.ts";
import type { SubjectFormat } from "../core/subject.ts";
import type { Logger } from "../lib/log.ts";
import type { ServerMetrics } from "../observe/metrics.ts";
import type { RoleCapacity } from "./policy_cache.ts";
import type { RoleLock } from "./role_lock.ts";

/**
 * What became of one role in a request; "unmanaged": the pair says the admin manages the role's
 * trust policy (`update_iam_role_trust_policy: false`), so irsa neither read nor wrote it.
 */
export type RoleStatus = "added" | "present" | "removed" | "absent" | "failed" | "unmanaged";

/** Why an edit failed: an error code of src/lib/errors.ts and its message. */
export interface OutcomeError {
  readonly code: string;
  readonly message: string;
}

/** The outcome of editing one role. */
export interface RoleOutcome {
  readonly roleArn: string;
  readonly status: RoleStatus;
  readonly error?: OutcomeError;
  /** Trust-policy length after the edit, its quota, and the subjects it holds. */
  readonly length?: number;
  readonly quota?: number;
  readonly subjects?: number;
}

/** Who asked, for the audit log line. */
export interface AuditContext {
  readonly user: string;
  readonly run?: string;
  readonly requestId?: string;
}

/** Dependencies of {@link createTrustEditor}. */
export interface TrustEditorDeps {
  readonly roles: RolePolicyStore;
  /** The cluster's OIDC provider, host form. */
  readonly oidcProvider: string;
  readonly audience: string;
  readonly format: SubjectFormat;
  readonly quota: number;
  readonly logger: Logger;
  readonly metrics: ServerMetrics;
  /** Defaults to an in-process lock: right for one replica only. */
  readonly lock?: RoleLock;
  /** A cached policy older than this is read again (out-of-band edits); default 5 minutes. */
  readonly cacheMaxAgeMs?: number;
  /**
   * How long a batch collects after its first request before it writes (the read overlaps it), so
   * that the first request of a burst is not written alone; default 0 (no wait).
   */
  readonly windowMs?: number;
  /**
   * How long past its window a batch may wait for requests that have arrived and will edit soon
   * (see {@link TrustEditor.arriving}); default four windows.
   */
  readonly maxWindowMs?: number;
  readonly now?: () => number;
  /** Waits on the editor's clock; defaults to a timer. */
  readonly sleep?: (ms: number) => Promise<void>;
}

/** Applies subject edits to proxy roles. */
export interface TrustEditor {
  /**
   * Adds or removes one subject on a role; never throws, the failure is in the outcome. With
   * `after`, the edit joins its batch at once but is written only once `after` resolves (the
   * grant record is stored), and fails with its error if it rejects.
   */
  edit(
    roleArn: string,
    edit: { add?: string; remove?: string },
    audit: AuditContext,
    options?: EditOptions,
  ): Promise<RoleOutcome>;
  /** Removes subjects in one batch (the cleanup loop); `keep` is asked again under the lock. */
  prune(
    roleArn: string,
    select: (subjects: readonly string[]) => Promise<string[]>,
    audit: AuditContext,
  ): Promise<string[]>;
  /** The managed subjects of a role, from the cache when it is fresh. */
  subjects(roleArn: string): Promise<string[]>;
  /** The last known size of every role the editor has seen. */
  capacity(): RoleCapacity[];
  /** Whether the cached policy of a role holds a subject (no IAM call; false when not cached). */
  holds(roleArn: string, subject: string): boolean;
  /**
   * Why adding `subject` cannot fit the role's policy as IAM holds it now, judged without the
   * role's lock, or undefined when it may (the lock decides). The cached policy is believed when
   * the lock's version is the one it was cached under; otherwise (a role this replica has not read
   * yet included) IAM's is read and cached: one GetRole rather than a Lease taken and released,
   * and a grant written, to find a member full that other replicas filled. A
   * refusal is never a grant: at worst (a Lease's version written back by someone who may update
   * Leases) a start skips a member that had room. A failed read decides nothing.
   */
  refusal(roleArn: string, subject: string): Promise<OutcomeError | undefined>;
  /**
   * Announces a request that will edit soon (a start being authenticated and proven): a batch whose
   * window ends meanwhile waits for it, up to the longest window, so that a burst whose arrivals
   * spread past the window still costs one write. Call the returned function once the request's
   * edits are queued, or it fails; calling it again does nothing.
   */
  arriving(): () => void;
}

/** Options of {@link TrustEditor.edit}. */
export interface EditOptions {
  /** What must be done before IAM is written for this edit. */
  readonly after?: Promise<unknown>;
}
