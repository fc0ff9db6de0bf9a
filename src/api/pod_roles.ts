/** The wire contract of POST and DELETE /map_iam_roles_to_pod_sa: the body, the answers, the header. */

import * as v from "valibot";
import { PROFILES_PATTERN } from "../core/aws_config.ts";
import { ERROR_CODES } from "../lib/errors.ts";

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

/** What the AWS config file answer holds, for the API description. */
export const AWS_CONFIG_DESCRIPTION =
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

/** The header that carries the pod's projected service-account token. */
export const WORKLOAD_HEADER = "X-Irsa-Workload-Token";
