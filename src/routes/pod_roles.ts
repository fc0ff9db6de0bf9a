/** POST and DELETE /map_iam_roles_to_pod_sa: make the caller's roles assumable by their pod, or stop that. */

import type { Hono } from "hono";
import * as v from "valibot";
import { type AuthEnv, bearerAuth } from "../auth/bearer.ts";
import { PROFILES_PATTERN, renderProfiles } from "../core/aws_config.ts";
import {
  EMPTY_RECORD,
  entitledRoles,
  type GrantRecord,
  type Revocation,
  syncRevocations,
} from "../core/grants.ts";
import { pairsFor, proxyRolesOf, unmanagedRolesOf } from "../core/mapping.ts";
import { profilesFor, type RolePair } from "../core/role_chain.ts";
import { AppError, ERROR_CODES, type ErrorCode } from "../lib/errors.ts";
import { jsonBody } from "../http/http.ts";
import { provePod } from "../auth/ownership.ts";
import { recordRevoked, revoke } from "../grants/revocation.ts";
import type { AuditContext, RoleOutcome } from "../trust/trust_editor.ts";
import type { ServerDeps } from "./deps.ts";

/** The body of both methods; `run_id` must match the server's run-id pattern. */
export const podRolesBody = (runIdPattern: RegExp) =>
  v.object({
    run_id: v.optional(
      v.pipe(
        v.string("run_id must be a string"),
        v.maxLength(128, "run_id is too long"),
        v.regex(runIdPattern, `run_id must match ${runIdPattern.source}`),
      ),
    ),
    // Any label value the platform's mutation sets; the ones it sets today are KNOWN_WORKLOAD_TYPES.
    irsa_workload_type: v.optional(
      v.pipe(
        v.string("irsa_workload_type must be a string"),
        v.maxLength(64, "irsa_workload_type is longer than 64 characters"),
      ),
    ),
  });

/** The AWS config file POST answers: the profiles of the caller's roles, as the sidecar writes them. */
export const AwsConfigText = v.pipe(
  v.string(),
  v.regex(new RegExp(PROFILES_PATTERN)),
);

const AWS_CONFIG_DESCRIPTION =
  "The AWS config file (INI): for each role a `[profile <name>]` section with `source_profile` and `role_arn` (the asset role), and its `[profile src_<name>]` with `web_identity_token_file` and `role_arn` (the proxy role); a blank line between sections; empty when no role is mapped.";

// A role's outcome in an answer; `error` only with `failed`.
const roleOutcome = <S extends string>(statuses: readonly S[], fields: v.ObjectEntries = {}) =>
  v.union([
    v.strictObject({ ...fields, status: v.picklist(statuses) }),
    v.strictObject({
      ...fields,
      status: v.literal("failed"),
      error: v.strictObject({ code: v.picklist(ERROR_CODES), message: v.string() }),
    }),
  ]);

/** The JSON answer of POST /map_iam_roles_to_pod_sa (with `Accept: application/json`). */
export const MappedAnswer = v.strictObject({
  run_id: v.nullable(v.string()),
  service_account: v.pipe(
    v.string(),
    v.regex(/^[^:\s]+:[^:\s]+$/),
    v.description("<namespace>:<name>"),
  ),
  subject: v.pipe(v.string(), v.description("The subject put in the trust policies")),
  proof: v.picklist(["workload-token", "run-lookup"]),
  roles: v.array(roleOutcome(["added", "present", "unmanaged"], {
    iam_role_arn: v.string(),
    proxy_iam_role_arn: v.nullable(v.string()),
    profile: v.string(),
    source_profile: v.nullable(v.string()),
  })),
  config: v.pipe(AwsConfigText, v.description(AWS_CONFIG_DESCRIPTION)),
});

/** The answer of DELETE /map_iam_roles_to_pod_sa. */
export const UnmappedAnswer = v.strictObject({
  run_id: v.nullable(v.string()),
  subject: v.string(),
  roles: v.array(roleOutcome(["removed", "absent"], { proxy_iam_role_arn: v.string() })),
});

/** The workload types the platform's mutations set; others are accepted and logged as unknown. */
export const KNOWN_WORKLOAD_TYPES: readonly string[] = [
  "edge-workload",
  "cluster-master",
  "cluster-worker",
  "cluster-edge",
];

const WORKLOAD_HEADER = "x-irsa-workload-token";

/** Registers the pod-role routes. */
export function registerPodRoleRoutes(app: Hono<AuthEnv>, deps: ServerDeps): void {
  const auth = bearerAuth(deps.users);
  const PodRolesBody = podRolesBody(deps.ownership.runIdPattern);
  const headers = {
    "X-Irsa-Workload-Token":
      "The pod's projected service-account token: proof that the pod is the caller's.",
  };

  deps.api.add({
    method: "post",
    path: "/map_iam_roles_to_pod_sa",
    summary:
      "Adds the pod's service account to the trust policy of every proxy role the caller is entitled to. Answers the AWS config file (text/plain) or, with Accept: application/json, per-role outcomes.",
    access: "user",
    body: PodRolesBody,
    headers,
    responses: {
      200: {
        description:
          "Mapped, for at least one role: the AWS config file, or per-role outcomes in JSON",
        text: { type: "text/plain", description: AWS_CONFIG_DESCRIPTION, schema: AwsConfigText },
        json: MappedAnswer,
      },
    },
    errors: {
      400: "Bad body, or every role failed on a bad policy",
      403: "Pod not proven to be the caller's",
      409:
        "Every role failed: its trust policy is full (every member of its pool), or kept changing",
      502: "Every role failed at IAM, or the mapping store or Kubernetes answered badly",
      503: "IAM, the mapping store, Kubernetes or the token's verifier cannot be reached",
    },
  });
  app.post("/map_iam_roles_to_pod_sa", auth, async (c) => {
    deps.metrics.mappingRequests.inc();
    // Batches that close while this start is proven wait for it (a little).
    const arrived = deps.editor.arriving();
    try {
      const body = await jsonBody(c, PodRolesBody);
      const caller = c.get("caller");
      const type = body.irsa_workload_type;
      if (type !== undefined && !KNOWN_WORKLOAD_TYPES.includes(type)) {
        deps.logger.info("unknown workload type", { workload_type: type, run: body.run_id });
      }
      // The mappings are read while the pod is proven; a failed proof still answers first.
      const reading = readMappings(deps);
      reading.catch(() => {}); // awaited below, after the proof
      const pod = await provePod(caller, body.run_id, c.req.header(WORKLOAD_HEADER), deps);
      const snapshot = await reading;
      const pairs = pairsFor(snapshot.mappings, caller.organizations);
      const chains = profilesFor(pairs, { webIdentityTokenFile: deps.webIdentityTokenFile });
      const audit = { user: caller.username, run: pod.runId, requestId: c.get("requestId") };
      const unmanaged = new Set(unmanagedRolesOf(snapshot.mappings));
      const entitled = entitledRoles(snapshot.mappings, caller.organizations);
      // The grant is recorded before IAM is edited, so a crash in between leaves a record of a
      // role the subject may be on, never a subject on a role the record does not know. The
      // edits join their batches meanwhile; each batch writes IAM only once its records are stored.
      let before: GrantRecord = EMPTY_RECORD;
      const granted = deps.grants.set({
        subject: pod.subject,
        grant: (previous, roles) => {
          // What syncRevocations reads of the record: every role ever edited, and this grant.
          before = { roles, grants: previous ? { [pod.subject]: previous } : {} };
          return {
            user: caller.username,
            organizations: caller.organizations,
            roles: [...(previous?.roles ?? []), ...entitled],
            syncedAt: deps.now(),
            ...(type === undefined ? {} : { workloadType: type }),
          };
        },
      });
      granted.catch(() => {}); // awaited below, after the edits that it failed
      const mapping = chains.map((chain) =>
        mapPair(deps, chain.pair, pod.subject, audit, unmanaged, granted)
      );
      arrived(); // its edits are queued
      const mapped = await Promise.all(mapping);
      await granted;
      // A sync is a reconcile: off every role irsa manages that the organizations no longer map
      // to (a mapping changed, or the user left an organization).
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
      const config = renderProfiles(written.flatMap((p) => p.profiles));
      if (failed.length > 0) deps.metrics.failedMappingRequests.inc();
      if (!wantsJson(c.req.header("accept"))) return c.text(config);
      return c.json({
        run_id: pod.runId ?? null,
        service_account: `${pod.serviceAccount.namespace}:${pod.serviceAccount.name}`,
        subject: pod.subject,
        proof: pod.proof,
        roles: chains.map((p, i) =>
          roleJson(
            p.pair.assetRoleArn,
            mapped[i].pair.proxyRoleArn,
            p.name,
            p.sourceName,
            mapped[i].outcome,
          )
        ),
        config,
      });
    } catch (e) {
      deps.metrics.failedMappingRequests.inc();
      throw e;
    } finally {
      arrived();
    }
  });

  deps.api.add({
    method: "delete",
    path: "/map_iam_roles_to_pod_sa",
    summary:
      "Removes the pod's service account from the trust policy of every proxy role irsa has ever edited or the mappings name; the sidecar calls it when the pod stops.",
    access: "user",
    body: PodRolesBody,
    headers,
    responses: { 200: { description: "Per-role outcomes", json: UnmappedAnswer } },
    errors: {
      403: "Pod not proven to be the caller's",
      409: "The grant record kept changing",
      502: "The mapping store or Kubernetes answered badly",
    },
  });
  app.delete("/map_iam_roles_to_pod_sa", auth, async (c) => {
    const body = await jsonBody(c, PodRolesBody);
    const caller = c.get("caller");
    const pod = await provePod(caller, body.run_id, c.req.header(WORKLOAD_HEADER), deps);
    const snapshot = await readMappings(deps);
    // Every role irsa has ever edited and every managed role of the mappings, not only the
    // caller's: mappings may have changed, or been deleted, since the start.
    const unmanaged = new Set(unmanagedRolesOf(snapshot.mappings));
    const record = await deps.grants.read();
    const proxies = [...new Set([...record.roles, ...proxyRolesOf(snapshot.mappings)])].sort()
      .filter((role) => !unmanaged.has(role));
    const audit = { user: caller.username, run: pod.runId, requestId: c.get("requestId") };
    const outcomes = await Promise.all(
      proxies.map((arn) => deps.editor.edit(arn, { remove: pod.subject }, audit)),
    );
    const done: Revocation[] = [];
    outcomes.forEach((o, i) => {
      if (o.status === "removed") deps.metrics.revokedSubjects.inc({ reason: "stop" });
      if (o.status !== "failed") {
        done.push({ role: proxies[i], subject: pod.subject, reason: "stop" });
      }
    });
    await recordRevoked(deps.grants, done);
    return c.json({
      run_id: pod.runId ?? null,
      subject: pod.subject,
      roles: outcomes.map((o) => ({
        proxy_iam_role_arn: o.roleArn,
        status: o.status,
        ...(o.error ? { error: o.error } : {}),
      })),
    });
  });
}

/**
 * Adds a subject to the proxy role of a pair, or, when that role is full, to the next member of
 * its pool; a member whose cached policy already holds the subject is tried first.
 */
async function mapPair(
  deps: ServerDeps,
  pair: RolePair,
  subject: string,
  audit: AuditContext,
  unmanaged: ReadonlySet<string>,
  after: Promise<unknown>,
) {
  const pool = [pair.proxyRoleArn ?? pair.assetRoleArn, ...(pair.proxyPool ?? [])];
  if (pool.some((role) => unmanaged.has(role))) {
    // The admin keeps this role's trust policy: the profiles are written, the policy is not read.
    const role = pool[0];
    return {
      pair: { ...pair, proxyRoleArn: role },
      outcome: { roleArn: role, status: "unmanaged" } as RoleOutcome,
    };
  }
  const known = pool.find((role) => deps.editor.holds(role, subject));
  const order = known ? [known, ...pool.filter((r) => r !== known)] : pool;
  let outcome: RoleOutcome | undefined;
  for (const role of order) {
    outcome = await deps.editor.edit(role, { add: subject }, audit, { after });
    const full = outcome.status === "failed" && outcome.error?.code === "policy_quota_exceeded";
    if (!full) return { pair: { assetRoleArn: pair.assetRoleArn, proxyRoleArn: role }, outcome };
  }
  if (pool.length > 1) {
    deps.metrics.poolExhausted.inc();
    deps.logger.warn("every proxy role of a pool is full", {
      asset_role: pair.assetRoleArn,
      pool,
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
          `all ${pool.length} proxy roles of its pool are full (last: ${outcome!.error!.message})`,
      },
    };
  }
  return { pair: { assetRoleArn: pair.assetRoleArn, proxyRoleArn: order[0] }, outcome: outcome! };
}

/** Reads the mappings, counting the read as the current service's dashboards expect. */
export async function readMappings(deps: ServerDeps) {
  deps.metrics.mappingReads.inc();
  const snapshot = await deps.store.read();
  for (const p of snapshot.problems) {
    deps.logger.warn("skipping malformed mapping", {
      organization: p.organization,
      problem: p.message,
    });
  }
  return snapshot;
}

function wantsJson(accept: string | undefined): boolean {
  return accept !== undefined && /\bapplication\/json\b/i.test(accept);
}

function roleJson(
  asset: string,
  proxy: string | undefined,
  profile: string,
  source: string | undefined,
  o: RoleOutcome,
) {
  return {
    iam_role_arn: asset,
    proxy_iam_role_arn: proxy ?? null,
    profile,
    source_profile: source ?? null,
    status: o.status,
    ...(o.error ? { error: o.error } : {}),
  };
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
