/**
 * The admin views behind `irsa admin`: the audit lines, a role's trust policy with who holds each
 * subject, why a user's pod can or cannot assume a profile, and applying a whole mappings document.
 */

import type { Context, Next } from "hono";
import {
  ApplyAnswer,
  ApplyBody,
  AuditAnswer,
  ExplainAnswer,
  ExplainBody,
  TrustAnswer,
  TrustBody,
} from "../api/admin.ts";
import type { AuthEnv } from "../auth/bearer.ts";
import { applyMappings } from "../grants/apply_mappings.ts";
import type { ServerDeps } from "../grants/deps.ts";
import { explainAccess, policyReader, trustOf } from "../grants/inspect.ts";
import { type Route, route } from "../http/route.ts";
import { AppError } from "../lib/errors.ts";

/** /audit, /trust, /explain and /apply_role_mappings. */
export function adminRoutes(deps: ServerDeps): Route<AuthEnv>[] {
  // A server that cannot read trust policies answers 503 before it reads the body.
  const needsPolicies = async function needsPolicies(_c: Context<AuthEnv>, next: Next) {
    policyReader(deps);
    await next();
  };
  return [
    route({
      method: "get",
      path: "/audit",
      summary:
        "The last audit lines of the replica that answers (at most 200, oldest first, since it started): mapping and trust-policy changes and revocations.",
      access: "admin",
      responses: { 200: { description: "The audit lines", json: AuditAnswer } },
      handle(c) {
        if (!deps.audit) throw new AppError("unavailable", "This server keeps no audit trail");
        return c.json({ entries: deps.audit.entries() });
      },
    }),
    route({
      method: "post",
      path: "/trust",
      summary:
        "A proxy role's trust policy: every subject with the user, run, workload type and last sync the grant record knows of, and whether irsa manages it.",
      access: "admin",
      body: TrustBody,
      responses: { 200: { description: "The role's subjects", json: TrustAnswer } },
      errors: { 404: "No such role", 502: "IAM failed or refused" },
      use: [needsPolicies],
      handle: async (c, body) => c.json(await trustOf(deps, body.proxy_iam_role_arn)),
    }),
    route({
      method: "post",
      path: "/explain",
      summary:
        "Why a user's pod can or cannot assume a profile, step by step; the user's organizations are those of their last sync in the grant record.",
      access: "admin",
      body: ExplainBody,
      responses: { 200: { description: "The steps", json: ExplainAnswer } },
      use: [needsPolicies],
      handle: async (c, body) => c.json(await explainAccess(deps, body)),
    }),
    route({
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
      use: [needsPolicies],
      async handle(c, body) {
        const by = { user: c.get("caller").username, requestId: c.get("requestId") };
        return c.json(await applyMappings(deps, by, body));
      },
    }),
  ];
}
