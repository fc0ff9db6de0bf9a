/**
 * A run that has ended (its last pod finished or gone, as the pod watch saw it): its subject leaves
 * every role at once, as the cleanup would take it off later. Every replica may see the same end;
 * the first takes the subject off and the record forgets the grant's roles, so the others find
 * nothing to do (and an edit that removes an absent subject writes nothing).
 *
 * A run that ended while no replica watched (all of them restarting, say) is found at the next
 * list: a recorded grant whose run has no live pod in it ended, provided the grant is older than
 * the list by a margin (with a Kubernetes API, every grant was proven by a live pod of its run
 * carrying the run label, so a pod missing from a later list has gone).
 */

import { isManagedSubject, parseSubject, subjectFor } from "../core/subject.ts";
import { unmanagedRolesOf } from "../core/mapping.ts";
import { readMappings } from "./mappings.ts";
import { revoke } from "./revocation.ts";
import type { ServerDeps } from "./deps.ts";

/** How long a replica that did not see the subject on a role waits for one that did to revoke it. */
export const DEFER_MS = 2_000;

/** How much older than a list a grant must be to be judged by it: the replicas' clocks differ. */
export const UNLISTED_MARGIN_MS = 30_000;

/**
 * Revokes an ended run's subject, when the grant record still holds a grant for it; answers
 * whether it did (false: another replica, the cleanup or a stop got there first).
 */
export async function revokeEndedRun(
  deps: ServerDeps,
  runId: string,
  options: { deferMs?: number; sleep?: (ms: number) => Promise<void> } = {},
): Promise<boolean> {
  // Runs have their own service account; per-user accounts outlive runs (the cleanup judges them).
  if (deps.ownership.userBasedServiceAccounts) return false;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const subject = subjectFor(deps.ownership.format, {
    namespace: deps.ownership.computeNamespace,
    name: `run-${runId}`,
  });
  let grant = (await deps.grants.readFor([subject])).grants[subject];
  if (grant === undefined) return false;
  // Every replica sees the end. One whose policy cache saw the subject on a role (it granted it,
  // or edited that role since) acts at once; the others wait `deferMs` and act only if the grant
  // is still recorded then, so the end costs one replica's writes, not every replica's.
  if (options.deferMs && !grant.roles.some((role) => deps.editor.holds(role, subject))) {
    await sleep(options.deferMs);
    grant = (await deps.grants.readFor([subject])).grants[subject];
    if (grant === undefined) return false;
  }
  // The grant's roles, not every role ever edited: the record names every role the subject may
  // hold before IAM is edited, so they are never too few, and they are the pool members it was
  // put on or tried on (a few), where all the pools of a large platform are a thousand roles (two
  // Lease writes each).
  const { mappings } = await readMappings(deps);
  const unmanaged = new Set(unmanagedRolesOf(mappings));
  // A role whose edit failed (its Lease held past the wait, IAM throttling) stays recorded; it is
  // tried again here a few times, each on the grant as recorded now, before the cleanup's turn.
  for (let attempt = 0;; attempt++) {
    const roles = grant.roles.filter((role) => !unmanaged.has(role));
    const done = await revoke(
      deps,
      roles.map((role) => ({ role, subject, reason: "run_ended" as const })),
      { user: "irsa", run: runId },
    );
    if (done.length === roles.length || attempt >= RETRIES) return true;
    await sleep(1000 * 2 ** attempt);
    const now = (await deps.grants.readFor([subject])).grants[subject];
    if (now === undefined) return true;
    grant = now;
  }
}

/** How often a run's end is tried again when some of its roles failed. */
const RETRIES = 3;

/**
 * The recorded runs that a list of the run pods, begun at `listedAt`, shows ended: granted more
 * than {@link UNLISTED_MARGIN_MS} before it, with no live pod in it.
 */
export async function unlistedRuns(
  deps: ServerDeps,
  live: ReadonlySet<string>,
  listedAt: number,
): Promise<string[]> {
  if (deps.ownership.userBasedServiceAccounts || deps.runs === undefined) return [];
  const { format, computeNamespace } = deps.ownership;
  const record = await deps.grants.read();
  return Object.entries(record.grants).flatMap(([subject, grant]) => {
    if (!isManagedSubject(format, subject)) return [];
    const sa = parseSubject(format, subject);
    const run = /^run-(.+)$/.exec(sa.name)?.[1];
    if (sa.namespace !== computeNamespace || run === undefined || live.has(run)) return [];
    return grant.syncedAt < listedAt - UNLISTED_MARGIN_MS ? [run] : [];
  });
}
