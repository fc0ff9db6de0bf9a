/** GET /capacity: how full each proxy role's trust policy is, for admins planning pools. */

import type { Hono } from "hono";
import * as v from "valibot";
import { type AuthEnv, bearerAuth } from "../auth/bearer.ts";
import { proxyRolesOf, unmanagedRolesOf } from "../core/mapping.ts";
import { subjectsThatFit } from "../core/mapping_diff.ts";
import { subjectFor } from "../core/subject.ts";
import type { ServerDeps } from "./deps.ts";
import { readMappings } from "./pod_roles.ts";

const ROLE = { proxy_iam_role_arn: v.string() };

/** The answer of GET /capacity: one entry per proxy role, sorted by ARN. */
export const CapacityAnswer = v.strictObject({
  roles: v.array(v.union([
    v.strictObject({
      ...ROLE,
      managed: v.literal(true),
      subjects: v.pipe(v.number(), v.integer(), v.minValue(0)),
      characters: v.pipe(v.number(), v.integer(), v.minValue(0)),
      quota: v.pipe(v.number(), v.integer(), v.minValue(0)),
      // Negative when a policy irsa did not write is already over the quota.
      free_characters: v.pipe(v.number(), v.integer()),
      fits: v.pipe(
        v.number(),
        v.integer(),
        v.minValue(0),
        v.description("How many more run subjects fit, at the length run subjects have here"),
      ),
    }),
    v.strictObject({
      ...ROLE,
      managed: v.literal(true),
      error: v.pipe(v.string(), v.description("Why the role could not be read")),
    }),
    v.strictObject({ ...ROLE, managed: v.literal(false) }),
  ])),
});

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
    responses: { 200: { description: "Capacity by role", json: CapacityAnswer } },
    errors: { 502: "The mapping store cannot be read" },
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
      managed: false as const,
    }));
    return c.json(
      {
        roles: [
          ...roles.map((r) => {
            const k = known.get(r);
            return k
              ? {
                proxy_iam_role_arn: r,
                managed: true as const,
                subjects: k.subjects,
                characters: k.length,
                quota: k.quota,
                free_characters: k.quota - k.length,
                fits: subjectsThatFit(k.length, k.quota, subjectLength),
              }
              : {
                proxy_iam_role_arn: r,
                managed: true as const,
                error: errors[r] ?? "Not read yet",
              };
          }),
          ...unmanaged,
        ].sort((a, b) => a.proxy_iam_role_arn.localeCompare(b.proxy_iam_role_arn)),
      } satisfies v.InferOutput<typeof CapacityAnswer>,
    );
  });
}
