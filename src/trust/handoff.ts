/**
 * The hand-off over a role's Lease: edits handed to its holder, their results, their bounds.
 *
 * A replica whose batch finds the Lease held appends its edits to one annotation; the holder
 * applies them and records each one's result in another, which the replica reads. All of it is
 * pure: the role lock (role_lock.ts) reads and writes the Lease.
 */

import type { BatchEdit, EditStatus } from "../core/batch_plan.ts";
import type { Lease } from "../kube/client.ts";
import type { Annotations } from "../kube/lease_mutex.ts";

/** One edit of a role's subjects; plain data, so that a replica can hand it to another. */
export interface SubjectEdit extends BatchEdit {
  /** Who asked, for the audit log of whichever replica writes. */
  readonly user: string;
  readonly run?: string;
  readonly requestId?: string;
}

/** What became of one edit; plain data, so that it can travel back through the Lease. */
export interface EditResult {
  readonly status: EditStatus;
  readonly error?: { readonly code: string; readonly message: string };
  readonly length?: number;
  readonly quota?: number;
  readonly subjects?: number;
}

/** The annotation on a role's Lease that records the policy version its last holder saw. */
export const VERSION_ANNOTATION = "irsa.dominodatalab.com/policy-version";
/** The annotation that names the role a Lease guards, for people reading `kubectl get lease`. */
export const ROLE_ANNOTATION = "irsa.dominodatalab.com/role-arn";
/** The annotation holding edits handed to the holder: a JSON list of `{id, ...SubjectEdit}`. */
export const HANDED_ANNOTATION = "irsa.dominodatalab.com/handed-edits";
/** The annotation holding the results of handed edits: JSON `{id: {r: EditResult, t: ms}}`. */
export const RESULTS_ANNOTATION = "irsa.dominodatalab.com/handed-results";

/** How long results stay on the Lease for the replica that handed the edits to read them. */
const RESULTS_KEEP_MS = 60_000;
// Kubernetes allows 256 KiB of annotations per object: handed edits (120 KB) and results (the
// newest 800 within 100 KB) stay under it.
const RESULTS_MAX = 800;
const RESULTS_MAX_CHARS = 100_000;
const HANDED_MAX_CHARS = 120_000; // room for a burst of a few hundred starts from one replica

/**
 * An edit handed over: the id its replica knows it by, when it was handed (that replica's clock)
 * and its seal (src/trust/handoff_seal.ts).
 */
export type Handed = SubjectEdit & {
  readonly id: string;
  readonly at: number;
  readonly mac?: string;
};
/** Results of handed edits by id, with when they were recorded and their seal. */
export type Results = Record<
  string,
  { readonly r: EditResult; readonly t: number; readonly mac?: string }
>;

/**
 * The edits handed to the holder of `l`, as written: anyone who may update the Lease may have
 * written them, so they are applied only once their seal is checked.
 */
export const handedOf = (l: Lease): Handed[] => {
  const handed = parseJson(l.annotations?.[HANDED_ANNOTATION]);
  return Array.isArray(handed) ? handed : [];
};
/** The results recorded on `l`, as written: believed only once their seal is checked. */
export const resultsOf = (l: Lease): Results => {
  const results = parseJson(l.annotations?.[RESULTS_ANNOTATION]);
  return typeof results === "object" && results !== null && !Array.isArray(results)
    ? results as Results
    : {};
};

function parseJson(text: string | undefined): unknown {
  if (text === undefined || text === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * The annotations that hand `entries` to the holder of `l`, after those handed before; undefined
 * when they do not fit (the replica then waits for the Lease instead).
 */
export function withHanded(l: Lease, entries: readonly Handed[]): Annotations | undefined {
  const handed = JSON.stringify([...handedOf(l), ...entries]);
  if (handed.length > HANDED_MAX_CHARS) return undefined;
  return { ...l.annotations, [HANDED_ANNOTATION]: handed };
}

/**
 * The results recorded for a batch of `count` edits whose first ones were handed over as `ids`:
 * one per edit, undefined where none is.
 */
export function recordedFor(
  count: number,
  ids: readonly string[],
  results: Results,
): (EditResult | undefined)[] {
  return Array.from(
    { length: count },
    (_, k) => k < ids.length && ids[k] in results ? results[ids[k]].r : undefined,
  );
}

/** Whether every edit of a batch has its result. */
export const allRecorded = (
  results: readonly (EditResult | undefined)[],
): results is EditResult[] => results.every((r) => r !== undefined);

/** A handed edit as its holder applies it. */
export const withoutId = ({ id: _, at: _at, mac: _mac, ...edit }: Handed): SubjectEdit => edit;

/** The annotations after a write: handed edits it applied gone, their results kept a while. */
export function annotationsAfter(
  l: Lease,
  taken: ReadonlySet<string>,
  fresh: Results,
  version: string | undefined,
  at: number,
): Annotations {
  const { [HANDED_ANNOTATION]: _h, [RESULTS_ANNOTATION]: _r, ...rest } = l.annotations ?? {};
  // What is not an edit at all (written by hand, or garbled) goes too.
  const handed = handedOf(l).filter((e) => typeof e?.id === "string" && !taken.has(e.id));
  const kept = Object.entries({ ...resultsOf(l), ...fresh })
    // A time far ahead (no replica's clock is a minute off) would keep a result for ever.
    .filter(([, v]) => v.t > at - RESULTS_KEEP_MS && v.t <= at + RESULTS_KEEP_MS)
    .slice(-RESULTS_MAX);
  // The newest results that fit: failures carry long messages.
  let size = 0;
  let from = kept.length;
  while (from > 0 && size + JSON.stringify(kept[from - 1]).length <= RESULTS_MAX_CHARS) {
    size += JSON.stringify(kept[--from]).length;
  }
  const results = kept.slice(from);
  return {
    ...rest,
    ...(version ? { [VERSION_ANNOTATION]: version } : {}),
    ...(handed.length > 0 ? { [HANDED_ANNOTATION]: JSON.stringify(handed) } : {}),
    ...(results.length > 0
      ? { [RESULTS_ANNOTATION]: JSON.stringify(Object.fromEntries(results)) }
      : {}),
  };
}

/** The Lease of a role: a readable prefix of its name and a hash of the ARN, a valid object name. */
export function leaseName(roleArn: string): string {
  const name = roleArn.slice(roleArn.lastIndexOf("/") + 1).toLowerCase().replace(/[^a-z0-9-]/g, "-")
    .slice(0, 40)
    .replace(/^-+|-+$/g, "");
  let h = 0x811c9dc5;
  for (let i = 0; i < roleArn.length; i++) {
    h = Math.imul(h ^ roleArn.charCodeAt(i), 0x01000193) >>> 0;
  }
  return `irsa-role-${name ? `${name}-` : ""}${h.toString(16).padStart(8, "0")}`;
}
