/** Organization-to-role mappings: the caller's own, and the admin endpoints that manage them all. */

import type { Hono } from "hono";
import * as v from "valibot";
import { type AuthEnv, bearerAuth } from "../auth/bearer.ts";
import {
  answerPair,
  fromWire,
  type Mappings,
  OrganizationName,
  RolePairWire,
  toWire,
  updatesTrustPolicy,
} from "../core/mapping.ts";
import type { RolePair } from "../core/role_chain.ts";
import { AppError } from "../lib/errors.ts";
import { jsonBody } from "../http/http.ts";
import { mappingRevocations } from "../core/grants.ts";
import { revoke } from "../grants/revocation.ts";
import type { ServerDeps } from "./deps.ts";
import { readMappings } from "./pod_roles.ts";

/** Body of POST /update_role_mapping: one pair and its organization, stored as given. */
export const UpdateRoleMappingBody = v.looseObject({
  ...RolePairWire.entries,
  domino_org: OrganizationName,
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

/** A pair in an answer: as stored (every key the admin sent kept), with its organization. */
export const PairAnswer = v.looseObject({ ...RolePairWire.entries, domino_org: OrganizationName });

/** The answer of GET /my_role_mappings. */
export const MyRoleMappingsAnswer = v.strictObject({ my_role_mappings: v.array(PairAnswer) });

/** The answer of GET /role_mappings. */
export const RoleMappingsAnswer = v.strictObject({
  all_role_mappings: v.record(OrganizationName, v.array(PairAnswer)),
});

const revokedSubjects = v.pipe(
  v.number(),
  v.integer(),
  v.minValue(0),
  v.description("Subjects taken off proxy roles the mappings no longer entitle"),
);

/** The answer of both update routes: the pairs as stored. */
export const UpdatedMappingAnswer = v.strictObject({
  status: v.literal("updated"),
  domino_org: OrganizationName,
  role_data: v.array(RolePairWire),
  revoked_subjects: revokedSubjects,
});

/** The answer of DELETE /delete_role_mapping. */
export const DeletedMappingAnswer = v.union([
  v.strictObject({
    status: v.literal("deleted"),
    domino_org: OrganizationName,
    revoked_subjects: revokedSubjects,
  }),
  v.strictObject({
    status: v.literal("absent"),
    domino_org: OrganizationName,
    message: v.string(),
  }),
]);

/**
 * Refuses, with 400 naming the field and the rule, a pair that would have irsa edit a proxy role
 * outside the editable set. A pair that says `update_iam_role_trust_policy: false` is not
 * checked: irsa never reads or writes its proxy role (the admin keeps it, possibly in another
 * account, as the current service allowed), and a role named by such a pair is unmanaged for
 * every pair. The asset role is never edited, so it is never checked.
 */
function checkEditable(
  editable: ServerDeps["editable"],
  pair: RolePairWire,
  field: string,
): void {
  if (editable === undefined || !updatesTrustPolicy(pair.update_iam_role_trust_policy)) return;
  const named: [string, string][] = [
    [`${field}proxy_iam_role_arn`, pair.proxy_iam_role_arn],
    ...(pair.proxy_iam_role_arns ?? []).map((arn, i): [string, string] => [
      `${field}proxy_iam_role_arns[${i}]`,
      arn,
    ]),
  ];
  for (const [name, arn] of named) {
    const reason = editable(arn);
    if (reason !== undefined) {
      throw new AppError("role_not_editable", `Invalid field "${name}": ${reason}`, {
        field: name,
        role: arn,
      });
    }
  }
}

// The current service's answer: organization to the list of its pairs, each as it was stored.
function byOrganization(mappings: Mappings) {
  return Object.fromEntries(
    [...mappings].sort(([a], [b]) => a.localeCompare(b))
      .map(([org, pairs]) => [org, pairs.map((p) => answerPair(org, p))]),
  );
}

/** Registers the mapping routes. */
export function registerRoleMappingRoutes(app: Hono<AuthEnv>, deps: ServerDeps): void {
  const user = bearerAuth(deps.users);
  const admin = bearerAuth(deps.users, { admin: true });
  // A mapping change takes away at once what it no longer entitles; the cleanup retries failures.
  const revokeUnentitled = async (user: string, requestId: string) => {
    const [record, { mappings }] = await Promise.all([deps.grants.read(), readMappings(deps)]);
    return (await revoke(deps, mappingRevocations(record, mappings), { user, requestId })).length;
  };
  const putMapping = async (
    user: string,
    requestId: string,
    organization: string,
    pairs: RolePair[],
  ) => {
    await deps.store.put(organization, pairs);
    deps.logger.info("mapping updated", { audit: true, user, organization, pairs: pairs.length });
    return {
      status: "updated",
      domino_org: organization,
      role_data: pairs.map(toWire),
      revoked_subjects: await revokeUnentitled(user, requestId),
    };
  };

  deps.api.add({
    method: "get",
    path: "/my_role_mappings",
    summary:
      'The pairs of the caller\'s organizations, as {"my_role_mappings": [<pair>, ...]}, each pair as stored.',
    access: "user",
    responses: { 200: { description: "The caller's pairs", json: MyRoleMappingsAnswer } },
    errors: { 502: "The mapping store answered badly" },
  });
  app.get("/my_role_mappings", user, async (c) => {
    const orgs = new Set(c.get("caller").organizations);
    const mine = Object.entries(byOrganization((await readMappings(deps)).mappings))
      .filter(([org]) => orgs.has(org)).flatMap(([, pairs]) => pairs);
    return c.json({ my_role_mappings: mine });
  });

  deps.api.add({
    method: "get",
    path: "/role_mappings",
    summary:
      'Every organization\'s pairs, as {"all_role_mappings": {"<org>": [<pair>, ...]}}, each pair as stored.',
    access: "admin",
    responses: { 200: { description: "Mappings by organization", json: RoleMappingsAnswer } },
    errors: { 502: "The mapping store answered badly" },
  });
  app.get(
    "/role_mappings",
    admin,
    async (c) => c.json({ all_role_mappings: byOrganization((await readMappings(deps)).mappings) }),
  );

  deps.api.add({
    method: "post",
    path: "/update_role_mapping",
    summary: "Maps an organization to one role pair, replacing its mapping.",
    access: "admin",
    body: UpdateRoleMappingBody,
    responses: { 200: { description: "Updated", json: UpdatedMappingAnswer } },
    errors: {
      400: "Bad body, or a proxy role irsa may not edit",
      409: "The store kept changing",
      502: "The store answered badly",
    },
  });
  app.post("/update_role_mapping", admin, async (c) => {
    const body = await jsonBody(c, UpdateRoleMappingBody);
    checkEditable(deps.editable, body, "");
    return c.json(
      await putMapping(c.get("caller").username, c.get("requestId"), body.domino_org, [
        fromWire(body),
      ]),
    );
  });

  deps.api.add({
    method: "post",
    path: "/update_multirole_mapping",
    summary: "Maps an organization to several role pairs, replacing its mapping.",
    access: "admin",
    body: UpdateMultiRoleMappingBody,
    responses: { 200: { description: "Updated", json: UpdatedMappingAnswer } },
    errors: {
      400: "Bad body, or a proxy role irsa may not edit",
      409: "The store kept changing",
      502: "The store answered badly",
    },
  });
  app.post("/update_multirole_mapping", admin, async (c) => {
    const body = await jsonBody(c, UpdateMultiRoleMappingBody);
    body.role_data.forEach((pair, i) => checkEditable(deps.editable, pair, `role_data[${i}].`));
    return c.json(
      await putMapping(
        c.get("caller").username,
        c.get("requestId"),
        body.domino_org,
        body.role_data.map(fromWire),
      ),
    );
  });

  deps.api.add({
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
  });
  app.delete("/delete_role_mapping", admin, async (c) => {
    const body = await jsonBody(c, DeleteRoleMappingBody);
    if (!(await deps.store.remove(body.domino_org))) {
      return c.json({
        status: "absent",
        domino_org: body.domino_org,
        message: `Organization ${
          JSON.stringify(body.domino_org)
        } had no mapping; nothing was deleted`,
      });
    }
    const user = c.get("caller").username;
    deps.logger.info("mapping deleted", { audit: true, user, organization: body.domino_org });
    return c.json({
      status: "deleted",
      domino_org: body.domino_org,
      revoked_subjects: await revokeUnentitled(user, c.get("requestId")),
    });
  });
}
