/**
 * Taking one subject off the proxy roles that may hold it, each under its role's lock through the
 * editor; the grant record then forgets what was taken off. "Everywhere" is every role irsa has
 * ever edited and every managed role the mappings name (mappings may have changed, or been
 * deleted, since it was granted). A stop visits only the roles the subject's grant names (written
 * before any of them was edited, so never too few) and those this replica's cache shows holding
 * it: a handful, where everywhere is a thousand roles on a large platform; a subject the record
 * has no grant for (one the current service granted) is taken off everywhere.
 */

import type { RevocationReason } from "../core/grants.ts";
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
  /** Every role, even when the subject's grant names fewer. */
  options: { readonly everywhere?: boolean } = {},
): Promise<RoleOutcome[]> {
  const snapshot = await readMappings(deps);
  const unmanaged = new Set(unmanagedRolesOf(snapshot.mappings));
  const record = await deps.grants.readFor([subject]);
  const all = [...new Set([...record.roles, ...proxyRolesOf(snapshot.mappings)])];
  const grant = record.grants[subject];
  const roles = (grant === undefined || options.everywhere ? all : [
    ...new Set([
      ...grant.roles,
      ...all.filter((role) => deps.editor.holds(role, subject)),
    ]),
  ]).sort().filter((role) => !unmanaged.has(role));
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
