/**
 * The grant record: every proxy role irsa has ever edited, and which subject it granted on which
 * role for which user and organizations. Pure: what a sync, a stop or a mapping change must take
 * away is computed here; the shell applies it to IAM and stores the record.
 */

import * as v from "valibot";
import { type Mappings, pairsFor, unmanagedRolesOf } from "./mapping.ts";
import { poolOf } from "./role_chain.ts";

/** What irsa granted one subject (one pod), as of its last sync. */
export interface Grant {
  readonly user: string;
  /** The user's organizations at the last sync: what entitles the subject now. */
  readonly organizations: readonly string[];
  /** Every proxy role the subject may hold: written before IAM is edited, so never too few. */
  readonly roles: readonly string[];
  /** Epoch milliseconds of the last sync. */
  readonly syncedAt: number;
  /** The pod's `irsa_workload_type` at the last sync, when it sent one (for `irsa admin trust`). */
  readonly workloadType?: string;
}

/** Every role ever edited, and the grants of the subjects irsa has not yet taken back. */
export interface GrantRecord {
  readonly roles: readonly string[];
  readonly grants: Readonly<Record<string, Grant>>;
}

/** Why a subject leaves a role; the label of `irsa_revoked_subjects_total`. */
export type RevocationReason =
  /** The pod's sync: the role is no longer among those its user's organizations map to. */
  | "sync"
  /** The pod stopped (its sidecar's DELETE). */
  | "stop"
  /** A mapping was changed or deleted: no current mapping entitles the subject to the role. */
  | "mapping"
  /** The cleanup loop: the run has ended. */
  | "run_ended"
  /** An admin deleted the per-user ServiceAccount whose subject it was. */
  | "service_account_deleted";

/** One subject to take off one role. */
export interface Revocation {
  readonly role: string;
  readonly subject: string;
  readonly reason: RevocationReason;
}

/** The record before anything was granted. */
export const EMPTY_RECORD: GrantRecord = { roles: [], grants: {} };

const sorted = (xs: Iterable<string>) => [...new Set(xs)].sort();

/**
 * The proxy roles that organizations entitle a subject to: every member of every pool their
 * mappings select (being in any one member is allowed), without the roles the admin manages.
 */
export function entitledRoles(mappings: Mappings, organizations: readonly string[]): Set<string> {
  const unmanaged = new Set(unmanagedRolesOf(mappings));
  return new Set(
    pairsFor(mappings, organizations)
      .flatMap(poolOf)
      .filter((r) => !unmanaged.has(r)),
  );
}

/** A subject's grant as a sync sets it, from what the record holds when it is applied. */
export interface GrantSet {
  readonly subject: string;
  /** The grant, given the subject's previous one and every role ever edited. */
  readonly grant: (previous: Grant | undefined, roles: readonly string[]) => Grant;
}

/**
 * The record with these grants set in order (their roles joined to the roles ever edited): the
 * same as setting them one after another, in time linear in the record, for a burst of syncs
 * written together.
 */
export function withGrants(record: GrantRecord, sets: readonly GrantSet[]): GrantRecord {
  const grants = new Map(Object.entries(record.grants));
  let roles = record.roles;
  for (const { subject, grant } of sets) {
    const g = grant(grants.get(subject), roles);
    const entry = { ...g, organizations: sorted(g.organizations), roles: sorted(g.roles) };
    grants.set(subject, entry);
    if (!entry.roles.every((r) => roles.includes(r))) roles = sorted([...roles, ...entry.roles]);
  }
  // Object.fromEntries, not assignment: every subject stays plain data. Unsorted: encodeRecord
  // puts the subjects in order.
  return { roles, grants: Object.fromEntries(grants) };
}

/** The record with a subject's grant set (its roles joined to the roles ever edited). */
export function withGrant(record: GrantRecord, subject: string, grant: Grant): GrantRecord {
  return withGrants(record, [{ subject, grant: () => grant }]);
}

/** The record with a subject's grant narrowed to `roles`, or gone when none are left. */
export function withRoles(record: GrantRecord, subject: string, roles: Iterable<string>) {
  const grant = record.grants[subject];
  if (grant === undefined) return record;
  const kept = sorted(roles);
  if (kept.length === 0) {
    return {
      roles: record.roles,
      grants: Object.fromEntries(Object.entries(record.grants).filter(([s]) => s !== subject)),
    };
  }
  return withGrant(record, subject, { ...grant, roles: kept });
}

/** The record with these revocations applied to the grants (the roles ever edited stay). */
export function withoutRevoked(record: GrantRecord, revoked: readonly Revocation[]): GrantRecord {
  let next = record;
  for (const r of revoked) {
    const grant = next.grants[r.subject];
    if (grant) next = withRoles(next, r.subject, grant.roles.filter((role) => role !== r.role));
  }
  return next;
}

/**
 * What a sync of `subject` takes away: every role the record says it may hold, or that already
 * holds it (`holding`, roles granted before the record existed), that it is not on now (`kept`).
 */
export function syncRevocations(
  record: GrantRecord,
  subject: string,
  kept: ReadonlySet<string>,
  holding: (role: string) => boolean,
): Revocation[] {
  const candidates = sorted([
    ...(record.grants[subject]?.roles ?? []),
    ...record.roles.filter(holding),
  ]);
  return candidates.filter((role) => !kept.has(role)).map((role) => ({
    role,
    subject,
    reason: "sync",
  }));
}

/**
 * What the mappings no longer entitle: for every recorded grant, the roles that the user's
 * organizations (as of the last sync) do not map to any more. Roles the admin manages are left.
 */
export function mappingRevocations(record: GrantRecord, mappings: Mappings): Revocation[] {
  const unmanaged = new Set(unmanagedRolesOf(mappings));
  return Object.entries(record.grants).flatMap(([subject, grant]) => {
    const entitled = entitledRoles(mappings, grant.organizations);
    return grant.roles.filter((role) => !entitled.has(role) && !unmanaged.has(role))
      .map((role) => ({ role, subject, reason: "mapping" as const }));
  });
}

/** Whether a subject may stay on a role: unknown subjects are judged by liveness alone. */
export function entitledTo(
  record: GrantRecord,
  mappings: Mappings,
  subject: string,
  role: string,
): boolean {
  const grant = record.grants[subject];
  return grant === undefined || entitledRoles(mappings, grant.organizations).has(role);
}

const GrantWire = v.object({
  user: v.string(),
  organizations: v.array(v.string()),
  roles: v.array(v.string()),
  syncedAt: v.number(),
  workloadType: v.optional(v.string()),
});

const RecordWire = v.object({
  roles: v.array(v.string()),
  grants: v.record(v.string(), GrantWire),
});

/** The record as stored: JSON. */
export function encodeRecord(record: GrantRecord): string {
  const subjects = Object.keys(record.grants).sort();
  return JSON.stringify({
    roles: record.roles,
    grants: Object.fromEntries(subjects.map((s) => [s, record.grants[s]])),
  });
}

/** Reads a stored record; throws an Error naming the problem when it is not one. */
export function decodeRecord(text: string): GrantRecord {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`The grant record is not JSON: ${(e as Error).message}`);
  }
  const result = v.safeParse(RecordWire, json);
  if (!result.success) {
    throw new Error(`The grant record is malformed: ${v.summarize(result.issues)}`);
  }
  // Object.fromEntries keeps a subject such as "__proto__" as plain data.
  return {
    roles: result.output.roles,
    grants: Object.fromEntries(Object.entries(result.output.grants)),
  };
}

/** The latest grant of `user`, preferring the run's own subject when it is theirs. */
export function grantOf(
  grants: Readonly<Record<string, Grant>>,
  user: string,
  subject?: string,
): { subject: string; grant: Grant } | undefined {
  if (subject !== undefined && grants[subject]?.user === user) {
    return { subject, grant: grants[subject] };
  }
  let best: { subject: string; grant: Grant } | undefined;
  for (const [s, g] of Object.entries(grants)) {
    if (g.user === user && (best === undefined || g.syncedAt > best.grant.syncedAt)) {
      best = { subject: s, grant: g };
    }
  }
  return best;
}
