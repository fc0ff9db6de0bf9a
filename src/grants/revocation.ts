/** Takes subjects off proxy roles as the grant record says they must go, metered and audited. */

import { type Revocation, withoutRevoked } from "../core/grants.ts";
import type { Logger } from "../lib/log.ts";
import type { ServerMetrics } from "../observe/metrics.ts";
import type { GrantStore } from "../store/grant_store.ts";
import type { AuditContext, TrustEditor } from "../trust/trust_editor.ts";

/** What revoking needs. */
export interface RevocationDeps {
  readonly editor: TrustEditor;
  readonly grants: GrantStore;
  readonly metrics: ServerMetrics;
  readonly logger: Logger;
}

/**
 * Removes each subject from its role (edits of one role share a write), then narrows the record
 * to what is left: a revocation whose edit failed stays recorded, so the cleanup tries again.
 * Returns the revocations that took effect (the subject removed, or already absent).
 */
export async function revoke(
  deps: RevocationDeps,
  revocations: readonly Revocation[],
  audit: AuditContext,
): Promise<Revocation[]> {
  if (revocations.length === 0) return [];
  const outcomes = await Promise.all(
    revocations.map((r) => deps.editor.edit(r.role, { remove: r.subject }, audit)),
  );
  const done = revocations.filter((_, i) =>
    outcomes[i].status === "removed" || outcomes[i].status === "absent"
  );
  revocations.forEach((r, i) => {
    if (outcomes[i].status !== "removed") return;
    deps.metrics.revokedSubjects.inc({ reason: r.reason });
    deps.logger.info("subject revoked", {
      audit: true,
      user: audit.user,
      run: audit.run,
      role: r.role,
      subject: r.subject,
      reason: r.reason,
    });
  });
  for (const [i, o] of outcomes.entries()) {
    if (o.status === "failed") {
      deps.logger.warn("revocation failed; the cleanup retries it", {
        role: revocations[i].role,
        subject: revocations[i].subject,
        reason: revocations[i].reason,
        error: o.error,
      });
    }
  }
  await recordRevoked(deps.grants, done);
  return done;
}

/** Narrows the record by revocations that took effect. */
export async function recordRevoked(grants: GrantStore, done: readonly Revocation[]) {
  if (done.length === 0) return;
  const subjects = [...new Set(done.map((r) => r.subject))];
  await grants.updateFor(subjects, (record) => withoutRevoked(record, done));
}
