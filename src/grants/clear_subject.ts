/**
 * Taking one subject off every proxy role irsa has ever edited and every managed role the
 * mappings name (mappings may have changed, or been deleted, since it was granted), each under
 * its role's lock through the editor; the grant record then forgets what was taken off.
 */

import type { GrantRecord, RevocationReason } from "../core/grants.ts";
import { proxyRolesOf, unmanagedRolesOf } from "../core/mapping.ts";
import type { AuditContext, RoleOutcome } from "../trust/trust_editor.ts";
import type { ServerDeps } from "./deps.ts";
import { readMappings } from "./mappings.ts";
import { recordRevoked } from "./revocation.ts";

/** Removes `subject` from every role that may hold it; answers each role's outcome. */
export async function clearSubject(
  deps: ServerDeps,
  subject: string,
  reason: RevocationReason,
  audit: AuditContext,
  /** The grant record when the caller has just read it. */
  read?: GrantRecord,
): Promise<RoleOutcome[]> {
  const snapshot = await readMappings(deps);
  const unmanaged = new Set(unmanagedRolesOf(snapshot.mappings));
  const record = read ?? await deps.grants.readFor([subject]);
  const roles = [...new Set([...record.roles, ...proxyRolesOf(snapshot.mappings)])].sort()
    .filter((role) => !unmanaged.has(role));
  const outcomes = await Promise.all(
    roles.map((role) => deps.editor.edit(role, { remove: subject }, audit)),
  );
  outcomes.forEach((o) => {
    if (o.status === "removed") deps.metrics.revokedSubjects.inc({ reason });
  });
  await recordRevoked(
    deps.grants,
    roles.filter((_, i) => outcomes[i].status !== "failed").map((role) => ({
      role,
      subject,
      reason,
    })),
  );
  return outcomes;
}
