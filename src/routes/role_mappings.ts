/** Organization-to-role mappings: the caller's own, and the admin endpoints that manage them all. */

import type { Hono } from "hono";
import * as v from "valibot";
import { type AuthEnv, bearerAuth } from "../auth/bearer.ts";
import {
  fromWire,
  type Mappings,
  OrganizationName,
  RolePairWire,
  toWire,
} from "../core/mapping.ts";
import type { RolePair } from "../core/role_chain.ts";
import { AppError } from "../errors.ts";
import { jsonBody } from "../http.ts";
import type { ServerDeps } from "./deps.ts";
import { readMappings } from "./pod_roles.ts";

/** Body of POST /update_role_mapping. */
export const UpdateRoleMappingBody = v.object({
  domino_org: OrganizationName,
  iam_role_arn: RolePairWire.entries.iam_role_arn,
  proxy_iam_role_arn: RolePairWire.entries.proxy_iam_role_arn,
});

/** Body of POST /update_multirole_mapping. */
export const UpdateMultiRoleMappingBody = v.object({
  domino_org: OrganizationName,
  role_data: v.pipe(
    v.array(RolePairWire, "role_data must be a list"),
    v.minLength(1, "role_data must hold at least one pair"),
    v.maxLength(100, "role_data holds too many pairs"),
  ),
});

/** Body of DELETE /delete_role_mapping. */
export const DeleteRoleMappingBody = v.object({ domino_org: OrganizationName });

// The wire shape of the current service: one object for one pair, a list for several.
function wire(mappings: Mappings, only?: (org: string) => boolean) {
  return Object.fromEntries(
    [...mappings].filter(([org]) => !only || only(org)).sort(([a], [b]) => a.localeCompare(b))
      .map(([org, pairs]) => [org, pairs.length === 1 ? toWire(pairs[0]) : pairs.map(toWire)]),
  );
}

/** Registers the mapping routes. */
export function registerRoleMappingRoutes(app: Hono<AuthEnv>, deps: ServerDeps): void {
  const user = bearerAuth(deps.users);
  const admin = bearerAuth(deps.users, { admin: true });
  const putMapping = async (user: string, organization: string, pairs: RolePair[]) => {
    await deps.store.put(organization, pairs);
    deps.logger.info("mapping updated", { audit: true, user, organization, pairs: pairs.length });
    return { status: "updated", domino_org: organization, role_data: pairs.map(toWire) };
  };

  deps.api.add({
    method: "get",
    path: "/my_role_mappings",
    summary: "The caller's organizations that have role pairs, with those pairs.",
    access: "user",
    responses: { 200: "Mappings by organization", 401: "Bad token" },
  });
  app.get("/my_role_mappings", user, async (c) => {
    const orgs = new Set(c.get("caller").organizations);
    return c.json(wire((await readMappings(deps)).mappings, (org) => orgs.has(org)));
  });

  deps.api.add({
    method: "get",
    path: "/role_mappings",
    summary: "Every organization's role pairs.",
    access: "admin",
    responses: { 200: "Mappings by organization", 401: "Bad token", 403: "Not an admin" },
  });
  app.get("/role_mappings", admin, async (c) => c.json(wire((await readMappings(deps)).mappings)));

  deps.api.add({
    method: "post",
    path: "/update_role_mapping",
    summary: "Maps an organization to one role pair, replacing its mapping.",
    access: "admin",
    body: UpdateRoleMappingBody,
    responses: { 200: "Updated", 400: "Bad body", 401: "Bad token", 403: "Not an admin" },
  });
  app.post("/update_role_mapping", admin, async (c) => {
    const body = await jsonBody(c, UpdateRoleMappingBody);
    return c.json(await putMapping(c.get("caller").username, body.domino_org, [fromWire(body)]));
  });

  deps.api.add({
    method: "post",
    path: "/update_multirole_mapping",
    summary: "Maps an organization to several role pairs, replacing its mapping.",
    access: "admin",
    body: UpdateMultiRoleMappingBody,
    responses: { 200: "Updated", 400: "Bad body", 401: "Bad token", 403: "Not an admin" },
  });
  app.post("/update_multirole_mapping", admin, async (c) => {
    const body = await jsonBody(c, UpdateMultiRoleMappingBody);
    return c.json(
      await putMapping(c.get("caller").username, body.domino_org, body.role_data.map(fromWire)),
    );
  });

  deps.api.add({
    method: "delete",
    path: "/delete_role_mapping",
    summary: "Removes an organization's mapping.",
    access: "admin",
    body: DeleteRoleMappingBody,
    responses: {
      200: "Deleted",
      400: "Bad body",
      401: "Bad token",
      403: "Not an admin",
      404: "No such organization",
    },
  });
  app.delete("/delete_role_mapping", admin, async (c) => {
    const body = await jsonBody(c, DeleteRoleMappingBody);
    if (!(await deps.store.remove(body.domino_org))) {
      throw new AppError(
        "not_found",
        `Organization ${JSON.stringify(body.domino_org)} has no mapping`,
      );
    }
    deps.logger.info("mapping deleted", {
      audit: true,
      user: c.get("caller").username,
      organization: body.domino_org,
    });
    return c.json({ status: "deleted", domino_org: body.domino_org });
  });
}
