/** POST and DELETE /map_iam_roles_to_pod_sa: make the caller's roles assumable by their pod, or stop that. */

import type { Context, Next } from "hono";
import {
  AWS_CONFIG_DESCRIPTION,
  AwsConfigText,
  MappedAnswer,
  podRolesBody,
  UnmappedAnswer,
  WORKLOAD_HEADER,
} from "../api/pod_roles.ts";
import type { AuthEnv } from "../auth/bearer.ts";
import type { ServerDeps } from "../grants/deps.ts";
import { mapPod } from "../grants/map_pod.ts";
import { unmapPod } from "../grants/unmap_pod.ts";
import { type Route, route } from "../http/route.ts";
import type { RoleOutcome } from "../trust/trust_editor.ts";

const headers = {
  [WORKLOAD_HEADER]:
    "The pod's projected service-account token: proof that the pod is the caller's.",
};

/** The pod-role routes. */
export function podRoleRoutes(deps: ServerDeps): Route<AuthEnv>[] {
  const body = podRolesBody(deps.ownership.runIdPattern);
  return [
    route({
      method: "post",
      path: "/map_iam_roles_to_pod_sa",
      summary:
        "Adds the pod's service account to the trust policy of every proxy role the caller is entitled to. Answers the AWS config file (text/plain) or, with Accept: application/json, per-role outcomes.",
      access: "user",
      body,
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
      use: [countMappingRequests(deps)],
      async handle(c, body) {
        const mapped = await mapPod(deps, {
          caller: c.get("caller"),
          runId: body.run_id,
          workloadType: body.irsa_workload_type,
          workloadToken: c.req.header(WORKLOAD_HEADER),
          requestId: c.get("requestId"),
        });
        if (mapped.partial) deps.metrics.failedMappingRequests.inc();
        if (!wantsJson(c.req.header("accept"))) return c.text(mapped.config);
        const { pod } = mapped;
        return c.json(
          {
            run_id: pod.runId ?? null,
            service_account: `${pod.serviceAccount.namespace}:${pod.serviceAccount.name}`,
            subject: pod.subject,
            proof: pod.proof,
            roles: mapped.roles.map((r) => ({
              iam_role_arn: r.chain.pair.assetRoleArn,
              proxy_iam_role_arn: r.proxyRoleArn ?? null,
              profile: r.chain.name,
              source_profile: r.chain.sourceName ?? null,
              ...outcomeJson(r.outcome),
            })),
            config: mapped.config,
          },
        );
      },
    }),
    route({
      method: "delete",
      path: "/map_iam_roles_to_pod_sa",
      summary:
        "Removes the pod's service account from the trust policy of every proxy role its grant names (for a subject irsa has no grant for, every proxy role irsa has ever edited or the mappings name); the sidecar calls it when the pod stops.",
      access: "user",
      body,
      headers,
      responses: { 200: { description: "Per-role outcomes", json: UnmappedAnswer } },
      errors: {
        403: "Pod not proven to be the caller's",
        409: "The grant record kept changing",
        502: "The mapping store or Kubernetes answered badly",
      },
      async handle(c, body) {
        const { pod, outcomes } = await unmapPod(deps, {
          caller: c.get("caller"),
          runId: body.run_id,
          workloadToken: c.req.header(WORKLOAD_HEADER),
          requestId: c.get("requestId"),
        });
        return c.json(
          {
            run_id: pod.runId ?? null,
            subject: pod.subject,
            roles: outcomes.map((o) => ({ proxy_iam_role_arn: o.roleArn, ...outcomeJson(o) })),
          },
        );
      },
    }),
  ];
}

/**
 * Counts every start as the current service's dashboards do, a failed one twice: its body, its
 * proof and its edits are all inside the count (the error funnel has answered when `next` returns).
 */
function countMappingRequests(deps: ServerDeps) {
  return async function countMappingRequest(c: Context<AuthEnv>, next: Next) {
    deps.metrics.mappingRequests.inc();
    await next();
    if (c.error) deps.metrics.failedMappingRequests.inc();
  };
}

function wantsJson(accept: string | undefined): boolean {
  return accept !== undefined && /\bapplication\/json\b/i.test(accept);
}

// A role's outcome in an answer; `error` only with `failed`.
function outcomeJson(o: RoleOutcome) {
  return { status: o.status, ...(o.error ? { error: o.error } : {}) };
}
