/** GET /capacity: how full each proxy role's trust policy is, for admins planning pools. */

import { CapacityAnswer } from "../api/capacity.ts";
import type { AuthEnv } from "../auth/bearer.ts";
import { roleCapacity } from "../grants/capacity.ts";
import type { ServerDeps } from "../grants/deps.ts";
import { type Route, route } from "../http/route.ts";

/** /capacity. */
export function capacityRoutes(deps: ServerDeps): Route<AuthEnv>[] {
  return [route({
    method: "get",
    path: "/capacity",
    summary:
      'Per proxy role of the mappings: subjects held, characters used and the quota; roles whose pair says update_iam_role_trust_policy: false are listed as "managed": false and never read.',
    access: "admin",
    responses: { 200: { description: "Capacity by role", json: CapacityAnswer } },
    errors: { 502: "The mapping store cannot be read" },
    handle: async (c) => c.json(await roleCapacity(deps)),
  })];
}
