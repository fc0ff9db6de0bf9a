/**
 * The admin views behind `irsa admin`: a role's trust policy with who holds each subject, why a
 * user's pod can or cannot assume a profile, and applying a whole mappings document (dry run too).
 */

import type { Hono } from "hono";
import * as v from "valibot";
import { type AuthEnv, bearerAuth } from "../auth/bearer.ts";
import { explain, type PolicyRead, webIdentityStatements } from "../core/explain.ts";
import { type GrantRecord, mappingRevocations, type Revocation } from "../core/grants.ts";
import {
  type Mappings,
  OrganizationName,
  pairsFor,
  proxyRolesOf,
  RolePairWire,
  unmanagedRolesOf,
} from "../core/mapping.ts";
import {
  documentPairs,
  mappingProblems,
  MappingsDocument,
  planMappings,
  subjectsThatFit,
} from "../core/mapping_diff.ts";
import { isRoleArn, ROLE_ARN_MAX_LENGTH, ROLE_ARN_PATTERN } from "../core/arn.ts";
import type { RolePair } from "../core/role_chain.ts";
import {
  isManagedSubject,
  operatorFor,
  parseSubject,
  runServiceAccountName,
  subjectFor,
} from "../core/subject.ts";
import { editTrustPolicy } from "../core/trust_policy.ts";
import { AppError } from "../lib/errors.ts";
import { jsonBody } from "../http/http.ts";
import { revoke } from "../grants/revocation.ts";
import type { PolicyReader, ServerDeps } from "./deps.ts";
import { readMappings } from "./pod_roles.ts";

const RoleArnField = v.pipe(
  v.string("proxy_iam_role_arn must be a string"),
  v.check(
    isRoleArn,
    (i) => `proxy_iam_role_arn ${JSON.stringify(i.input)} is not a valid IAM role ARN`,
  ),
  v.metadata({ pattern: ROLE_ARN_PATTERN, maxLength: ROLE_ARN_MAX_LENGTH }),
);

/** Body of POST /trust. */
export const TrustBody = v.object({ proxy_iam_role_arn: RoleArnField });

/** Body of POST /explain. */
export const ExplainBody = v.object({
  user: v.pipe(v.string("user must be a string"), v.minLength(1), v.maxLength(256)),
  run_id: v.optional(v.pipe(v.string("run_id must be a string"), v.maxLength(128))),
  profile: v.optional(v.pipe(v.string("profile must be a string"), v.maxLength(128))),
});

/** Body of POST /apply_role_mappings. */
export const ApplyBody = v.object({
  all_role_mappings: MappingsDocument,
  dry_run: v.optional(v.boolean("dry_run must be true or false"), false),
  prune: v.optional(v.boolean("prune must be true or false"), false),
});

const count = (description: string) =>
  v.pipe(v.number(), v.integer(), v.minValue(0), v.description(description));
// A regex rather than v.isoTimestamp(): the document keeps to keywords every validator knows.
const timestamp = v.pipe(v.string(), v.regex(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/));

/** The answer of POST /trust. */
export const TrustAnswer = v.strictObject({
  proxy_iam_role_arn: v.string(),
  mapped: v.pipe(v.boolean(), v.description("Some mapping names the role")),
  managed: v.pipe(
    v.boolean(),
    v.description("irsa edits the role (no pair says update_iam_role_trust_policy: false)"),
  ),
  provider: v.pipe(v.string(), v.description("The OIDC provider ARN irsa writes for the role")),
  audience: v.string(),
  characters: count("The policy's length now"),
  quota: count("The trust-policy length quota"),
  subjects: v.array(v.strictObject({
    subject: v.string(),
    statement: count("Index of the statement that holds it"),
    operator: v.picklist(["StringLike", "StringEquals"]),
    managed: v.pipe(
      v.boolean(),
      v.description("Of irsa's form, in the statement irsa edits, on a role irsa edits"),
    ),
    user: v.optional(v.pipe(v.string(), v.description("Who it was granted to (grant record)"))),
    run_id: v.optional(v.string()),
    workload_type: v.optional(v.string()),
    synced_at: v.optional(timestamp),
  })),
});

const STEP_IDS = [
  "organizations",
  "mappings",
  "proxy_role",
  "update_trust_policy",
  "subject_in_policy",
  "provider_audience",
  "propagation",
] as const;

/** The answer of POST /explain. */
export const ExplainAnswer = v.strictObject({
  user: v.string(),
  run: v.optional(v.string()),
  subject: v.optional(v.string()),
  profile: v.optional(v.string()),
  organizations: v.optional(v.array(v.string())),
  organizations_source: v.pipe(v.string(), v.description("Where the organizations came from")),
  steps: v.array(v.strictObject({
    id: v.picklist(STEP_IDS),
    status: v.picklist(["passed", "failed", "skipped"]),
    profile: v.optional(v.string()),
    detail: v.string(),
    advice: v.optional(v.string()),
  })),
  ok: v.boolean(),
  failed_step: v.optional(v.picklist(STEP_IDS)),
  advice: v.optional(v.string()),
});

/** The answer of POST /apply_role_mappings. */
export const ApplyAnswer = v.strictObject({
  dry_run: v.boolean(),
  prune: v.boolean(),
  changes: v.array(v.strictObject({
    domino_org: OrganizationName,
    action: v.picklist(["added", "changed", "unchanged", "removed", "kept"]),
    before: v.optional(v.array(RolePairWire)),
    after: v.optional(v.array(RolePairWire)),
  })),
  revocations: v.array(v.strictObject({
    proxy_iam_role_arn: v.string(),
    subject: v.string(),
    user: v.optional(v.string()),
  })),
  revoked_subjects: count("Subjects taken off (0 in a dry run)"),
  capacity: v.array(v.union([
    v.strictObject({
      proxy_iam_role_arn: v.string(),
      managed: v.literal(true),
      subjects: count("Subjects now"),
      subjects_after: count("Subjects once the revocations are applied"),
      characters: count("The policy's length now"),
      characters_after: count("Its length after"),
      quota: count("The quota"),
      fits_after: count("Run subjects that fit after"),
    }),
    v.strictObject({ proxy_iam_role_arn: v.string(), managed: v.literal(true), error: v.string() }),
    v.strictObject({ proxy_iam_role_arn: v.string(), managed: v.literal(false) }),
  ])),
});

/** The answer of GET /audit. */
export const AuditAnswer = v.strictObject({
  entries: v.array(v.looseObject({ time: timestamp, msg: v.string() })),
});

/** Most proxy roles in one pair's pool, as the pair's schema allows. */
const MAX_POOL = 51;

/** One subject of a trust policy as `POST /trust` answers it. */
export interface TrustSubject {
  readonly subject: string;
  readonly statement: number;
  readonly operator: "StringLike" | "StringEquals";
  /** Of irsa's form, in the statement irsa edits, on a role irsa edits. */
  readonly managed: boolean;
  readonly user?: string;
  readonly run_id?: string;
  readonly workload_type?: string;
  readonly synced_at?: string;
}

const policyOf = async (reader: PolicyReader, role: string): Promise<PolicyRead> => {
  try {
    return { document: await reader.read(role) };
  } catch (e) {
    return { error: (e as Error).message };
  }
};

function needReader(deps: ServerDeps): PolicyReader {
  if (!deps.policies) throw new AppError("unavailable", "This server cannot read trust policies");
  return deps.policies;
}

/** Registers /trust, /explain and /apply_role_mappings. */
export function registerAdminRoutes(app: Hono<AuthEnv>, deps: ServerDeps): void {
  const admin = bearerAuth(deps.users, { admin: true });
  const { format, computeNamespace } = deps.ownership;
  const sampleSubject = subjectFor(format, {
    namespace: computeNamespace,
    name: `run-${"0".repeat(24)}`,
  });

  deps.api.add({
    method: "get",
    path: "/audit",
    summary:
      "The last audit lines of the replica that answers (at most 200, oldest first, since it started): mapping and trust-policy changes and revocations.",
    access: "admin",
    responses: { 200: { description: "The audit lines", json: AuditAnswer } },
  });
  app.get("/audit", admin, (c) => {
    if (!deps.audit) throw new AppError("unavailable", "This server keeps no audit trail");
    return c.json({ entries: deps.audit.entries() } satisfies v.InferOutput<typeof AuditAnswer>);
  });

  deps.api.add({
    method: "post",
    path: "/trust",
    summary:
      "A proxy role's trust policy: every subject with the user, run, workload type and last sync the grant record knows of, and whether irsa manages it.",
    access: "admin",
    body: TrustBody,
    responses: { 200: { description: "The role's subjects", json: TrustAnswer } },
    errors: { 404: "No such role", 502: "IAM failed or refused" },
  });
  app.post("/trust", admin, async (c) => {
    const reader = needReader(deps);
    const { proxy_iam_role_arn: role } = await jsonBody(c, TrustBody);
    const [{ mappings }, record] = await Promise.all([readMappings(deps), deps.grants.read()]);
    const document = await reader.read(role).catch((e) => {
      // The role asked about is the resource here: its absence is a 404, not IAM failing.
      if (e instanceof AppError && e.code === "iam_role_not_found") {
        throw new AppError("not_found", e.message, e.details);
      }
      throw e;
    });
    const provider = reader.providerArnFor(role);
    const roleManaged = !unmanagedRolesOf(mappings).includes(role);
    const subjects: TrustSubject[] = webIdentityStatements(document).flatMap((s) =>
      s.subjects.map((p) => {
        const operator = p.like ? "StringLike" : "StringEquals";
        const managed = roleManaged && s.federated.includes(provider) &&
          operator === operatorFor(format) && isManagedSubject(format, p.value);
        const grant = record.grants[p.value];
        const run = runOf(format, p.value);
        return {
          subject: p.value,
          statement: s.index,
          operator,
          managed,
          ...(grant ? { user: grant.user } : {}),
          ...(run ? { run_id: run } : {}),
          ...(grant?.workloadType ? { workload_type: grant.workloadType } : {}),
          ...(grant ? { synced_at: new Date(grant.syncedAt).toISOString() } : {}),
        } satisfies TrustSubject;
      })
    ).filter((s) => s.subject !== "");
    return c.json(
      {
        proxy_iam_role_arn: role,
        mapped: proxyRolesOf(mappings).includes(role) || !roleManaged,
        managed: roleManaged,
        provider,
        audience: reader.audience,
        characters: document.length,
        quota: reader.quota,
        subjects,
      } satisfies v.InferOutput<typeof TrustAnswer>,
    );
  });

  deps.api.add({
    method: "post",
    path: "/explain",
    summary:
      "Why a user's pod can or cannot assume a profile, step by step; the user's organizations are those of their last sync in the grant record.",
    access: "admin",
    body: ExplainBody,
    responses: { 200: { description: "The steps", json: ExplainAnswer } },
  });
  app.post("/explain", admin, async (c) => {
    const reader = needReader(deps);
    const body = await jsonBody(c, ExplainBody);
    const subject = body.run_id === undefined ? undefined : subjectFor(format, {
      namespace: computeNamespace,
      name: runServiceAccountName(body.run_id, deps.ownership.runIdPattern),
    });
    const [{ mappings }, record] = await Promise.all([readMappings(deps), deps.grants.read()]);
    const orgs = new Set(
      Object.values(record.grants).filter((g) => g.user === body.user).flatMap((g) =>
        g.organizations
      ),
    );
    const roles = [
      ...new Set(
        pairsFor(mappings, [...orgs]).flatMap((p) => [
          p.proxyRoleArn ?? p.assetRoleArn,
          ...(p.proxyPool ?? []),
        ]),
      ),
    ];
    const policies = new Map(
      await Promise.all(roles.map(async (r) => [r, await policyOf(reader, r)] as const)),
    );
    return c.json(
      explain({
        user: body.user,
        run: body.run_id,
        subject,
        profile: body.profile,
        grants: record.grants,
        mappings,
        policies,
        providerArnFor: reader.providerArnFor,
        audience: reader.audience,
        format,
        quota: reader.quota,
        sampleSubject,
        editable: deps.editable,
      }) satisfies v.InferOutput<typeof ExplainAnswer>,
    );
  });

  deps.api.add({
    method: "post",
    path: "/apply_role_mappings",
    summary:
      'Applies a whole mappings document ({"all_role_mappings": ...}, as GET /role_mappings answers) in one store update: every pair is checked first; "prune" removes organizations the document lacks and revokes what they entitled; "dry_run" changes nothing and answers the same diff with each proxy role\'s capacity after the change.',
    access: "admin",
    body: ApplyBody,
    responses: {
      200: { description: "The diff, the revocations and the capacity after", json: ApplyAnswer },
    },
    errors: {
      400: "Bad body, or a pair the server's rules refuse",
      409: "The store kept changing",
      502: "The store answered badly",
    },
  });
  app.post("/apply_role_mappings", admin, async (c) => {
    const reader = needReader(deps);
    const body = await jsonBody(c, ApplyBody);
    const document: Record<string, RolePair[]> = Object.fromEntries(
      Object.entries(body.all_role_mappings).map(([org, value]) => [org, documentPairs(value)]),
    );
    const problems = mappingProblems(document, { editable: deps.editable, maxPool: MAX_POOL });
    if (problems.length > 0) {
      throw new AppError(
        "bad_request",
        `The mappings document cannot be applied: ${problems.join("; ")}`,
        { problems },
      );
    }
    const [{ mappings }, record] = await Promise.all([readMappings(deps), deps.grants.read()]);
    const plan = planMappings(mappings, document, { prune: body.prune });
    const user = c.get("caller").username;
    let revocations = mappingRevocations(record, plan.after);
    let revoked = 0;
    let after: Mappings = plan.after;
    if (!body.dry_run) {
      if (plan.writes.size > 0) {
        await deps.store.putAll(plan.writes);
        deps.logger.info("mappings applied", {
          audit: true,
          user,
          organizations: plan.changes.filter((x) => plan.writes.has(x.domino_org)).map((x) => ({
            organization: x.domino_org,
            action: x.action,
          })),
          prune: body.prune,
        });
      }
      // As every mapping change: what the mappings no longer entitle is taken away at once.
      const [stored, now] = await Promise.all([readMappings(deps), deps.grants.read()]);
      after = stored.mappings;
      revocations = mappingRevocations(now, after);
      revoked = (await revoke(deps, revocations, { user, requestId: c.get("requestId") })).length;
    }
    return c.json(
      {
        dry_run: body.dry_run,
        prune: body.prune,
        changes: plan.changes,
        revocations: revocations.map((r) => ({
          proxy_iam_role_arn: r.role,
          subject: r.subject,
          user: record.grants[r.subject]?.user,
        })),
        revoked_subjects: revoked,
        capacity: await capacityAfter(
          reader,
          after,
          body.dry_run ? revocations : [],
          record,
          sampleSubject.length,
          deps,
        ),
      } satisfies v.InferOutput<typeof ApplyAnswer>,
    );
  });
}

// The run id of a run's subject (`…:run-<id>`), when it is one.
function runOf(format: ServerDeps["ownership"]["format"], subject: string): string | undefined {
  try {
    const m = /^run-(.+)$/.exec(parseSubject(format, subject).name);
    return m?.[1];
  } catch {
    return undefined;
  }
}

/** Each proxy role of `mappings` with its subjects now and once `removed` is applied. */
async function capacityAfter(
  reader: PolicyReader,
  mappings: Mappings,
  removed: readonly Revocation[],
  _record: GrantRecord,
  subjectLength: number,
  deps: ServerDeps,
) {
  const unmanaged = unmanagedRolesOf(mappings);
  const managed = proxyRolesOf(mappings);
  const rows = await Promise.all(managed.map(async (role) => {
    const read = await policyOf(reader, role);
    if ("error" in read) {
      return { proxy_iam_role_arn: role, managed: true as const, error: read.error };
    }
    try {
      const edit = editTrustPolicy(read.document, {
        remove: removed.filter((r) => r.role === role).map((r) => r.subject),
      }, {
        providerArn: reader.providerArnFor(role),
        audience: reader.audience,
        format: deps.ownership.format,
        quota: reader.quota,
      }, role);
      return {
        proxy_iam_role_arn: role,
        managed: true as const,
        subjects: edit.before.length,
        subjects_after: edit.subjects.length,
        characters: read.document.length,
        characters_after: edit.length,
        quota: reader.quota,
        fits_after: subjectsThatFit(edit.length, reader.quota, subjectLength),
      };
    } catch (e) {
      return { proxy_iam_role_arn: role, managed: true as const, error: (e as Error).message };
    }
  }));
  return [
    ...rows,
    ...unmanaged.map((r) => ({ proxy_iam_role_arn: r, managed: false as const })),
  ].sort((a, b) => a.proxy_iam_role_arn.localeCompare(b.proxy_iam_role_arn));
}
