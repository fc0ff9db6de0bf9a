/** GET /capacity: how full each proxy role's trust policy is, for admins planning pools. */

import type { Hono } from "hono";
import { type AuthEnv, bearerAuth } from "../auth/bearer.ts";
import { proxyRolesOf, unmanagedRolesOf } from "../core/mapping.ts";
import { subjectsThatFit } from "../core/mapping_diff.ts";
import { subjectFor } from "../core/subject.ts";
import type { ServerDeps } from "./deps.ts";
import { readMappings } from "./pod_roles.ts";

/** Registers /capacity. */
export function registerCapacityRoutes(app: Hono<AuthEnv>, deps: ServerDeps): void {
  // "fits": how many more run subjects (of the length they have here) the policy holds.
  const subjectLength = subjectFor(deps.ownership.format, {
    namespace: deps.ownership.computeNamespace,
    name: `run-${"0".repeat(24)}`,
  }).length;
  deps.api.add({
    method: "get",
    path: "/capacity",
    summary:
      'Per proxy role of the mappings: subjects held, characters used and the quota; roles whose pair says update_iam_role_trust_policy: false are listed as "managed": false and never read.',
    access: "admin",
    responses: { 200: "Capacity by role", 401: "Bad token", 403: "Not an admin" },
  });
  app.get("/capacity", bearerAuth(deps.users, { admin: true }), async (c) => {
    const { mappings } = await readMappings(deps);
    const roles = proxyRolesOf(mappings);
    const errors: Record<string, string> = {};
    // Reading fills the editor's view of each role (from its cache when fresh).
    await Promise.all(
      roles.map((r) => deps.editor.subjects(r).catch((e) => (errors[r] = (e as Error).message))),
    );
    const known = new Map(deps.editor.capacity().map((r) => [r.roleArn, r]));
    const unmanaged = unmanagedRolesOf(mappings).map((r) => ({
      proxy_iam_role_arn: r,
      managed: false,
    }));
    return c.json({
      roles: [
        ...roles.map((r) => {
          const k = known.get(r);
          return k
            ? {
              proxy_iam_role_arn: r,
              managed: true,
              subjects: k.subjects,
              characters: k.length,
              quota: k.quota,
              free_characters: k.quota - k.length,
              fits: subjectsThatFit(k.length, k.quota, subjectLength),
            }
            : { proxy_iam_role_arn: r, managed: true, error: errors[r] ?? "Not read yet" };
        }),
        ...unmanaged,
      ].sort((a, b) => a.proxy_iam_role_arn.localeCompare(b.proxy_iam_role_arn)),
    });
  });
}
