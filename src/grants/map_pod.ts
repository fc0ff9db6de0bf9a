/**
 * Mapping a pod: the product's central sequence. Write-ahead order: the grant is recorded before
 * IAM is edited, so a crash in between leaves a record of a role the subject may be on, never a
 * subject on a role the record does not know; the edits join their batches meanwhile, and each
 * batch writes IAM only once its records are stored. Of a pool, the grant names the members the
 * subject was put on or tried on, never the untried ones: the member about to be tried is recorded
 * before its edit (a full first member costs one more record write), so a grant is a few roles
 * whatever the pool's size, and the end of a run edits those few. A sync is also a reconcile: the
 * subject leaves every managed role its organizations no longer map to.
 */

import { KNOWN_WORKLOAD_TYPES } from "../api/pod_roles.ts";
import { type ProvenPod, provePod } from "../auth/ownership.ts";
import type { Caller } from "../auth/caller.ts";
import { renderProfiles } from "../core/aws_config.ts";
import { EMPTY_RECORD, entitledRoles, type GrantRecord, syncRevocations } from "../core/grants.ts";
import { pairsFor, unmanagedRolesOf } from "../core/mapping.ts";
import { type PairProfiles, poolOf, profilesFor, type RolePair } from "../core/role_chain.ts";
import { AppError, type ErrorCode } from "../lib/errors.ts";
import type { AuditContext, RoleOutcome } from "../trust/trust_editor.ts";
import type { ServerDeps } from "./deps.ts";
import { readMappings } from "./mappings.ts";
import { revoke } from "./revocation.ts";

/** A start as the route parsed it. */
export interface MapRequest {
  readonly caller: Caller;
  readonly runId?: string;
  readonly workloadType?: string;
  /** The pod's projected token, when the sidecar sent it as proof. */
  readonly workloadToken?: string;
  readonly requestId: string;
}

/** One of the caller's pairs: its profiles, the proxy role it went to, and how the edit went. */
export interface MappedRole {
  readonly chain: PairProfiles;
  readonly proxyRoleArn: string | undefined;
  readonly outcome: RoleOutcome;
}

/** A mapped pod: the proof, each role's outcome, and the AWS config file of the usable ones. */
export interface MappedPod {
  readonly pod: ProvenPod;
  readonly roles: readonly MappedRole[];
  readonly config: string;
  /** Some role failed, but not every one. */
  readonly partial: boolean;
}

/**
 * Adds the pod's subject to the proxy role of each pair the caller's organizations map to, and
 * takes it off those they no longer do. Throws when every role failed, with the most telling cause.
 */
export async function mapPod(deps: ServerDeps, request: MapRequest): Promise<MappedPod> {
  // Batches that close while this start is proven wait for it (a little).
  const arrived = deps.editor.arriving();
  try {
    const { caller, workloadType: type } = request;
    if (type !== undefined && !KNOWN_WORKLOAD_TYPES.includes(type)) {
      deps.logger.info("unknown workload type", { workload_type: type, run: request.runId });
    }
    // The mappings are read while the pod is proven; a failed proof still answers first.
    const reading = readMappings(deps);
    reading.catch(() => {}); // awaited below, after the proof
    const pod = await provePod(caller, request.runId, request.workloadToken, deps);
    const snapshot = await reading;
    const pairs = pairsFor(snapshot.mappings, caller.organizations);
    const chains = profilesFor(pairs, { webIdentityTokenFile: deps.webIdentityTokenFile });
    const audit = { user: caller.username, run: pod.runId, requestId: request.requestId };
    const unmanaged = new Set(unmanagedRolesOf(snapshot.mappings));
    const entitled = entitledRoles(snapshot.mappings, caller.organizations);
    // Each pair's members in the order they will be tried; the first of each is recorded now.
    const orders = await Promise.all(
      chains.map((chain) => tryOrder(deps, chain.pair, pod.subject, unmanaged)),
    );
    const first = orders.flatMap((o) => o.managed ? o.roles.slice(0, 1) : []);
    const base = {
      user: caller.username,
      organizations: caller.organizations,
      syncedAt: deps.now(),
      ...(type === undefined ? {} : { workloadType: type }),
    };
    let before: GrantRecord = EMPTY_RECORD;
    const granted = deps.grants.set({
      subject: pod.subject,
      grant: (previous, roles) => {
        // What syncRevocations reads of the record: every role ever edited, and this grant.
        before = { roles, grants: previous ? { [pod.subject]: previous } : {} };
        return { ...base, roles: [...(previous?.roles ?? []), ...first] };
      },
    });
    granted.catch(() => {}); // awaited below, after the edits that it failed
    // A later member of a pool joins the grant before its edit (the grant as it is then: another
    // sync of the same subject may have added to it meanwhile).
    const recording = (role: string) =>
      deps.grants.set({
        subject: pod.subject,
        grant: (previous) => ({ ...(previous ?? base), roles: [...(previous?.roles ?? []), role] }),
      });
    const mapping = chains.map((chain, i) =>
      mapPair(deps, chain.pair, orders[i], pod.subject, audit, granted, recording)
    );
    arrived(); // its edits are queued
    const mapped = await Promise.all(mapping);
    await granted;
    const stale = syncRevocations(
      before,
      pod.subject,
      entitled,
      (role) => deps.editor.holds(role, pod.subject),
    ).filter((r) => !unmanaged.has(r.role));
    await revoke(deps, stale, audit);
    const failed = mapped.filter((m) => m.outcome.status === "failed").map((m) => m.outcome);
    if (failed.length > 0 && failed.length === mapped.length) {
      // Nothing usable: an error, so that today's sidecar does not write an empty file over a good one.
      throw failureOf(failed);
    }
    // The profiles name the proxy role each pair really went to (a pool member when the first was
    // full); the same asset roles as `chains`, so the same profile names.
    const written = profilesFor(mapped.map((m) => m.pair), {
      webIdentityTokenFile: deps.webIdentityTokenFile,
    })
      .filter((_, i) => mapped[i].outcome.status !== "failed");
    deps.activity?.touch(pod.subject);
    return {
      pod,
      roles: chains.map((chain, i) => ({
        chain,
        proxyRoleArn: mapped[i].pair.proxyRoleArn,
        outcome: mapped[i].outcome,
      })),
      config: renderProfiles(written.flatMap((p) => p.profiles)),
      partial: failed.length > 0,
    };
  } finally {
    arrived();
  }
}

/** The members of a pair's pool in the order a start tries them, or the role the admin keeps. */
type TryOrder =
  | {
    readonly managed: true;
    /** The members to try, from the first that may take the subject. */
    readonly roles: readonly string[];
    /** Why the last member skipped before them could not take it. */
    readonly refused?: RoleOutcome;
  }
  | { readonly managed: false; readonly role: string };

/**
 * A pair's pool in the order a start tries it: a member whose cached policy already holds the
 * subject first; members this replica last saw too full for one more subject last, not first (a
 * pool filled in order would otherwise cost a locked attempt on every full member before each
 * start; only the order changes: a member freed meanwhile is still tried, and a full one refuses).
 * Members that cannot take the subject as IAM holds them now (other replicas filled them) are
 * skipped before anything is recorded or locked.
 */
async function tryOrder(
  deps: ServerDeps,
  pair: RolePair,
  subject: string,
  unmanaged: ReadonlySet<string>,
): Promise<TryOrder> {
  const pool = poolOf(pair);
  // The admin keeps this role's trust policy: the profiles are written, the policy is not read.
  if (pool.some((role) => unmanaged.has(role))) return { managed: false, role: pool[0] };
  const known = pool.find((role) => deps.editor.holds(role, subject));
  const last = new Map(deps.editor.capacity().map((c) => [c.roleArn, c]));
  const looksFull = (role: string) => {
    const c = last.get(role);
    return c !== undefined && c.length + subject.length + 3 > c.quota;
  };
  const rest = pool.filter((r) => r !== known);
  const roles = [
    ...(known ? [known] : []),
    ...rest.filter((r) => !looksFull(r)),
    ...rest.filter(looksFull),
  ];
  let refused: RoleOutcome | undefined;
  let k = 0;
  for (; k < roles.length; k++) {
    const error = await deps.editor.refusal(roles[k], subject);
    if (error === undefined) break;
    refused = { roleArn: roles[k], status: "failed", error };
  }
  return {
    managed: true,
    roles: roles.slice(k),
    ...(refused ? { refused } : {}),
  };
}

/**
 * Adds a subject to the proxy role of a pair, or, when that role is full, to the next member of
 * its pool, in `order`. The first member's edit waits for `granted`; each later one is recorded
 * (`recording`) before its edit, which waits for that, unless it cannot take the subject now.
 */
async function mapPair(
  deps: ServerDeps,
  pair: RolePair,
  order: TryOrder,
  subject: string,
  audit: AuditContext,
  granted: Promise<unknown>,
  recording: (role: string) => Promise<unknown>,
): Promise<{ pair: RolePair; outcome: RoleOutcome }> {
  if (!order.managed) {
    return {
      pair: { ...pair, proxyRoleArn: order.role },
      outcome: { roleArn: order.role, status: "unmanaged" } as RoleOutcome,
    };
  }
  const pool = order.roles;
  let outcome = order.refused;
  for (const [i, role] of pool.entries()) {
    if (i > 0) {
      const error = await deps.editor.refusal(role, subject);
      if (error !== undefined) {
        outcome = { roleArn: role, status: "failed", error };
        continue;
      }
    }
    const after = i === 0 ? granted : recording(role);
    after.catch(() => {}); // the edit settles with its error
    outcome = await deps.editor.edit(role, { add: subject }, audit, { after });
    const full = outcome.status === "failed" && outcome.error?.code === "policy_quota_exceeded";
    if (!full) return { pair: { assetRoleArn: pair.assetRoleArn, proxyRoleArn: role }, outcome };
  }
  const members = poolOf(pair);
  if (members.length === 1) {
    deps.logger.warn("the proxy role is full", {
      asset_role: pair.assetRoleArn,
      role: members[0],
      run: audit.run,
    });
  } else {
    deps.metrics.poolExhausted.inc();
    deps.logger.warn("every proxy role of a pool is full", {
      asset_role: pair.assetRoleArn,
      pool: members,
      run: audit.run,
    });
    outcome = {
      ...outcome!,
      error: {
        code: "policy_quota_exceeded",
        message:
          `Cannot add subject ${JSON.stringify(subject)} for asset role ${
            JSON.stringify(pair.assetRoleArn)
          }: ` +
          `all ${members.length} proxy roles of its pool are full (last: ${
            outcome!.error!.message
          })`,
      },
    };
  }
  return { pair: { assetRoleArn: pair.assetRoleArn, proxyRoleArn: members[0] }, outcome: outcome! };
}

// When every role failed, answer with the most telling failure: quota and denial before the rest.
function failureOf(failed: RoleOutcome[]): AppError {
  const order: ErrorCode[] = [
    "policy_quota_exceeded",
    "iam_access_denied",
    "iam_role_not_found",
    "invalid_policy",
  ];
  const pick = failed.find((f) => order.includes(f.error!.code as ErrorCode)) ?? failed[0];
  const code = pick.error!.code as ErrorCode;
  const message = failed.length === 1
    ? pick.error!.message
    : `${pick.error!.message} (and ${failed.length - 1} more roles failed)`;
  return new AppError(code, message);
}
