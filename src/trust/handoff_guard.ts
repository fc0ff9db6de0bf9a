/**
 * What the role lock checks on a role's Lease before it acts on anything there: handed edits and
 * results whose seal holds (handoff_seal.ts), adds the grant record entitles; and what it does with
 * the rest: an audit line and a count each.
 */

import { coalesce } from "../lib/coalesce.ts";
import type { Lease } from "../kube/client.ts";
import type { Logger } from "../lib/log.ts";
import type { ServerMetrics } from "../observe/metrics.ts";
import type { GrantStore } from "../store/grant_store.ts";
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
   * Whether the grant record entitles `subject` to `roleArn`, asked of each handed add whose seal
   * holds: a replica stores the grant before it hands the add over. Unchecked when omitted.
   */
  readonly entitles?: (subject: string, roleArn: string) => Promise<boolean>;
}

/**
 * The guard on `key`: what it refuses is logged as an audit line (the role, the edit or result
 * refused and why; never a seal) and counted in `irsa_handoff_refused_total`, once per `seen`.
 */
export function createHandoffGuard(options: HandoffGuardOptions): HandoffGuard {
  const { key, logger, metrics, now, entitles } = options;
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
      const opened = await openEdits(key, roleArn, entries, done.valid, now());
      const { valid, refused } = entitles
        ? await onlyEntitled(opened.valid, roleArn, entitles, logger)
        : { valid: opened.valid, refused: [] };
      refused.unshift(...opened.refused);
      refuse(roleArn, "edit", refused, seen);
      refused.forEach((r) => skip.add(r.id));
      return valid;
    },
    async believed(roleArn, ids, l, seen) {
      const { valid, refused } = await openResults(key, roleArn, ids, resultsOf(l));
      refuse(roleArn, "result", refused, seen);
      return valid;
    },
  };
}

/**
 * {@link HandoffGuardOptions.entitles} from the grant record: a subject is entitled to the roles
 * its grant lists. Checks asked together share one read of the record, made after they were asked,
 * so a grant stored before its add was handed over is always seen.
 */
export function entitledByRecord(
  grants: Pick<GrantStore, "read">,
): (subject: string, roleArn: string) => Promise<boolean> {
  const check = coalesce(async (asks: readonly (readonly [string, string])[]) => {
    const record = await grants.read();
    return asks.map(([subject, role]) => record.grants[subject]?.roles.includes(role) ?? false);
  });
  return (subject, roleArn) => check([subject, roleArn]);
}

/** The adds among `edits` whose subject the grant record entitles to the role, and the others. */
async function onlyEntitled(
  edits: readonly Handed[],
  roleArn: string,
  entitles: (subject: string, roleArn: string) => Promise<boolean>,
  logger: Logger,
): Promise<{ valid: Handed[]; refused: Refused[] }> {
  const allowed = await Promise.all(edits.map(async (e) => {
    if (e.add === undefined) return true;
    try {
      return await entitles(e.add, roleArn);
    } catch (error) {
      // Unknown, not refused: it stays on the Lease, and its replica applies it once the Lease is
      // released, as it does when a holder dies; the holder's own edits are not failed for it.
      logger.warn("cannot check a handed add against the grant record", { role: roleArn, error });
      return undefined;
    }
  }));
  return {
    valid: edits.filter((_, i) => allowed[i] === true),
    refused: edits.filter((_, i) => allowed[i] === false)
      .map((e) => ({ id: e.id, reason: "not_entitled" as const, add: e.add })),
  };
}
