/**
 * A run that has ended (its last pod finished or gone, as the pod watch saw it): its subject leaves
 * every role at once, as the cleanup would take it off later. Every replica may see the same end;
 * the first takes the subject off and the record forgets the grant, so the others find nothing to
 * do (and an edit that removes an absent subject writes nothing).
 */

import { subjectFor } from "../core/subject.ts";
import { clearSubject } from "./clear_subject.ts";
import type { ServerDeps } from "./deps.ts";

/** Revokes an ended run's subject, when the grant record still holds a grant for it. */
export async function revokeEndedRun(deps: ServerDeps, runId: string): Promise<void> {
  // Runs have their own service account; per-user accounts outlive runs (the cleanup judges them).
  if (deps.ownership.userBasedServiceAccounts) return;
  const subject = subjectFor(deps.ownership.format, {
    namespace: deps.ownership.computeNamespace,
    name: `run-${runId}`,
  });
  const record = await deps.grants.read();
  if (record.grants[subject] === undefined) return;
  await clearSubject(deps, subject, "run_ended", { user: "irsa", run: runId }, record);
}
