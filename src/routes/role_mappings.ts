/** Organization-to-role mappings: the caller's own, and the admin endpoints that manage them all. */

import {
  DeletedMappingAnswer,
  DeleteRoleMappingBody,
  MyRoleMappingsAnswer,
  RoleMappingsAnswer,
  UpdatedMappingAnswer,
  UpdateMultiRoleMappingBody,
  UpdateRoleMappingBody,
} from "../api/role_mappings.ts";
import type { AuthEnv } from "../auth/bearer.ts";
import { fromWire } from "../core/mapping.ts";
import type { ServerDeps } from "../grants/deps.ts";
import {
  byOrganization,
  checkEditable,
  deleteMapping,
  putMapping,
  readMappings,
} from "../grants/mappings.ts";
import { type Route, route } from "../http/route.ts";

const UPDATE_ERRORS = {
  400: "Bad body, or a proxy role irsa may not edit",
  409: "The store kept changing",
  502: "The store answered badly",
};

/** The mapping routes. */
export function roleMappingRoutes(deps: ServerDeps): Route<AuthEnv>[] {
  return [
    route({
      method: "get",
      path: "/my_role_mappings",
      summary:
        'The pairs of the caller\'s organizations, as {"my_role_mappings": [<pair>, ...]}, each pair as stored.',
      access: "user",
      responses: { 200: { description: "The caller's pairs", json: MyRoleMappingsAnswer } },
      errors: { 502: "The mapping store answered badly" },
      async handle(c) {
        const orgs = new Set(c.get("caller").organizations);
        const mine = Object.entries(byOrganization((await readMappings(deps)).mappings))
          .filter(([org]) => orgs.has(org)).flatMap(([, pairs]) => pairs);
        return c.json({ my_role_mappings: mine });
      },
    }),
    route({
      method: "get",
      path: "/role_mappings",
      summary:
        'Every organization\'s pairs, as {"all_role_mappings": {"<org>": [<pair>, ...]}}, each pair as stored.',
      access: "admin",
      responses: { 200: { description: "Mappings by organization", json: RoleMappingsAnswer } },
      errors: { 502: "The mapping store answered badly" },
      async handle(c) {
        return c.json({ all_role_mappings: byOrganization((await readMappings(deps)).mappings) });
      },
    }),
    route({
      method: "post",
      path: "/update_role_mapping",
      summary: "Maps an organization to one role pair, replacing its mapping.",
      access: "admin",
      body: UpdateRoleMappingBody,
      responses: { 200: { description: "Updated", json: UpdatedMappingAnswer } },
      errors: UPDATE_ERRORS,
      async handle(c, body) {
        checkEditable(deps.editable, body, "");
        const by = { user: c.get("caller").username, requestId: c.get("requestId") };
        return c.json(await putMapping(deps, by, body.domino_org, [fromWire(body)]));
      },
    }),
    route({
      method: "post",
      path: "/update_multirole_mapping",
      summary: "Maps an organization to several role pairs, replacing its mapping.",
      access: "admin",
      body: UpdateMultiRoleMappingBody,
      responses: { 200: { description: "Updated", json: UpdatedMappingAnswer } },
      errors: UPDATE_ERRORS,
      async handle(c, body) {
        body.role_data.forEach((pair, i) => checkEditable(deps.editable, pair, `role_data[${i}].`));
        const by = { user: c.get("caller").username, requestId: c.get("requestId") };
        return c.json(
          await putMapping(deps, by, body.domino_org, body.role_data.map(fromWire)),
        );
      },
    }),
    route({
      method: "delete",
      path: "/delete_role_mapping",
      summary:
        'Removes an organization\'s mapping; "status" is "deleted", or "absent" when it had none (still 200, as today\'s clients expect).',
      access: "admin",
      body: DeleteRoleMappingBody,
      responses: {
        200: { description: "Deleted, or nothing was there", json: DeletedMappingAnswer },
      },
      errors: { 409: "The store kept changing", 502: "The store answered badly" },
      async handle(c, body) {
        const by = { user: c.get("caller").username, requestId: c.get("requestId") };
        return c.json(await deleteMapping(deps, by, body.domino_org));
      },
    }),
  ];
}
