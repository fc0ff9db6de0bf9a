/** The wire contract of the admin views behind `irsa admin`: /trust, /explain, /apply_role_mappings and /audit. */

import * as v from "valibot";
import { isRoleArn, ROLE_ARN_MAX_LENGTH, ROLE_ARN_PATTERN } from "../core/arn.ts";
import { OrganizationName, RolePairWire } from "../core/mapping.ts";
import { MappingsDocument } from "../core/mapping_diff.ts";

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

/** The answer of POST /trust, as clients read it. */
export type TrustAnswer = v.InferOutput<typeof TrustAnswer>;

/** One line of the server's audit log as `GET /audit` answers it. */
export interface AuditEntry {
  readonly time: string;
  readonly msg: string;
  readonly user?: string;
  readonly [key: string]: unknown;
}

/** The answer of POST /explain, as clients read it. */
export type ExplainAnswer = v.InferOutput<typeof ExplainAnswer>;

/** A row of the capacity in POST /apply_role_mappings as clients read it: every kind of row in one. */
export interface CapacityAfterRow {
  readonly proxy_iam_role_arn: string;
  readonly managed: boolean;
  readonly subjects?: number;
  readonly subjects_after?: number;
  readonly characters?: number;
  readonly characters_after?: number;
  readonly quota?: number;
  readonly fits_after?: number;
  readonly error?: string;
}

/** The answer of POST /apply_role_mappings, as clients read it. */
export type ApplyAnswer = Omit<v.InferOutput<typeof ApplyAnswer>, "capacity"> & {
  readonly capacity: readonly CapacityAfterRow[];
};

// Every answer the schema allows reads as an ApplyAnswer: the two cannot drift apart.
export const asApplyAnswer = (a: v.InferOutput<typeof ApplyAnswer>): ApplyAnswer => a;
