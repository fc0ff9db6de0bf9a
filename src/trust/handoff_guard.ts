/**
 * What the role lock checks on a role's Lease before it acts on anything there: handed edits and
 * results whose seal holds (handoff_seal.ts), and handed adds that the grant record entitles; and
 * what it does with the rest: an audit line and a count each.
 */

import type { Lease } from "../kube/client.ts";
import type { Logger } from "../lib/log.ts";
import type { ServerMetrics } from "../observe/metrics.ts";
import { type Handed, handedOf, type Results, resultsOf } from "./handoff.ts";
import {
  type HandoffKey,
  idOf,
  openEdits,
  openResults,
  type Refused,
  sealEdits,
  sealResults,
} from "./handoff_seal.ts";

/** What the role lock seals, and checks on a role's Lease before it acts on anything there. */
export interface HandoffGuard {
  /** Edits to hand over on `roleArn`'s Lease, sealed. */
  seal(roleArn: string, edits: readonly Omit<Handed, "mac">[]): Promise<Handed[]>;
  /** Results to record on `roleArn`'s Lease, sealed. */
  sealResults(roleArn: string, results: Results): Promise<Results>;
  /**
   * The edits handed over on `l` whose seal holds, but for those in `skip`; the ids of those
   * refused join `skip`, so that they leave the Lease with those applied. `seen` keeps what was
   * logged already.
   */
  handed(roleArn: string, l: Lease, skip: Set<string>, seen: Set<string>): Promise<Handed[]>;
  /** The results recorded on `l` for `ids` whose seal holds. */
  believed(roleArn: string, ids: readonly string[], l: Lease, seen: Set<string>): Promise<Results>;
}

/** Options of {@link createHandoffGuard}. */
export interface HandoffGuardOptions {
  readonly key: HandoffKey;
  readonly logger: Logger;
  readonly metrics?: Pick<ServerMetrics, "handoffRefused">;
  readonly now: () => number;
  /**
   * The proxy roles the grant record entitles each of `subjects` to (absent: none). A replica
   * records a grant before it hands the subject's add over (src/grants/map_pod.ts), so a sealed
   * add whose subject the record does not entitle to the role was not made by a start: it is
   * refused. Absent: sealed adds are applied as they are (tests of the seal alone).
   */
  readonly entitlements?: (
    subjects: readonly string[],
  ) => Promise<ReadonlyMap<string, readonly string[]>>;
}

/**
 * The sealed edits whose adds `entitlements` allows on `roleArn`, and those it does not. When the
 * record cannot be read, the adds are neither applied nor refused: they stay on the Lease for the
 * next round or holder, and their replica takes the Lease itself when it tires of waiting.
 */
async function entitledOnly(
  roleArn: string,
  edits: readonly Handed[],
  entitlements: NonNullable<HandoffGuardOptions["entitlements"]>,
  logger: Logger,
): Promise<{ valid: Handed[]; refused: Refused[] }> {
  const adds = [...new Set(edits.flatMap((e) => e.add === undefined ? [] : [e.add]))];
  if (adds.length === 0) return { valid: [...edits], refused: [] };
  let roles: ReadonlyMap<string, readonly string[]>;
  try {
    roles = await entitlements(adds);
  } catch (error) {
    logger.warn("handed adds left on the Lease: the grant record could not be read", {
      role: roleArn,
      adds: adds.length,
      error: (error as Error).message,
    });
    return { valid: edits.filter((e) => e.add === undefined), refused: [] };
  }
  const valid: Handed[] = [];
  const refused: Refused[] = [];
  for (const e of edits) {
    if (e.add === undefined || roles.get(e.add)?.includes(roleArn)) valid.push(e);
    else refused.push({ id: e.id, reason: "not_entitled", add: e.add });
  }
  return { valid, refused };
}

/**
 * The guard on `key`: what it refuses is logged as an audit line (the role, the edit or result
 * refused and why; never a seal) and counted in `irsa_handoff_refused_total`, once per `seen`.
 */
export function createHandoffGuard(options: HandoffGuardOptions): HandoffGuard {
  const { key, logger, metrics, now, entitlements } = options;
  const refuse = (
    roleArn: string,
    what: "edit" | "result",
    refused: readonly Refused[],
    seen: Set<string>,
  ) => {
    for (const r of refused) {
      const once = `${what} ${r.reason} ${r.id}`;
      if (seen.has(once)) continue;
      seen.add(once);
      metrics?.handoffRefused.inc({ what, reason: r.reason });
      logger.warn(`handed ${what} refused`, { audit: true, role: roleArn, ...r });
    }
  };
  return {
    seal: (roleArn, edits) => sealEdits(key, roleArn, edits),
    sealResults: (roleArn, results) => sealResults(key, roleArn, results),
    async handed(roleArn, l, skip, seen) {
      const entries = handedOf(l).filter((e) => !skip.has(idOf(e)));
      // An edit whose result is on the Lease was applied: only a sealed result says so.
      const done = await openResults(key, roleArn, entries.map(idOf), resultsOf(l));
      const sealed = await openEdits(key, roleArn, entries, done.valid, now());
      const { valid, refused } = entitlements
        ? await entitledOnly(roleArn, sealed.valid, entitlements, logger)
        : { valid: sealed.valid, refused: [] };
      for (const r of [...sealed.refused, ...refused]) skip.add(r.id);
      refuse(roleArn, "edit", [...sealed.refused, ...refused], seen);
      return valid;
    },
    async believed(roleArn, ids, l, seen) {
      const { valid, refused } = await openResults(key, roleArn, ids, resultsOf(l));
      refuse(roleArn, "result", refused, seen);
      return valid;
    },
  };
}
