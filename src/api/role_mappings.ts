/** The wire contract of the mapping routes: the bodies admins send and the answers in 1.8's shapes. */

import * as v from "valibot";
import { OrganizationName, RolePairWire } from "../core/mapping.ts";

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

/** The answer of GET /role_mappings, as clients read it. */
export type RoleMappingsAnswer = v.InferOutput<typeof RoleMappingsAnswer>;
