/**
 * Applying a whole mappings document in one store update: every pair checked first, organizations
 * the document lacks removed with `prune`, what the mappings no longer entitle revoked at once, and
 * a dry run that changes nothing and answers the same diff with each proxy role's capacity after.
 */

import type * as v from "valibot";
import type { ApplyAnswer, ApplyBody } from "../api/admin.ts";
import { mappingRevocations, type Revocation } from "../core/grants.ts";
import { type Mappings, proxyRolesOf, unmanagedRolesOf } from "../core/mapping.ts";
import {
  documentPairs,
  mappingProblems,
  planMappings,
  subjectsThatFit,
} from "../core/mapping_diff.ts";
import type { RolePair } from "../core/role_chain.ts";
import { editTrustPolicy } from "../core/trust_policy.ts";
import { AppError } from "../lib/errors.ts";
import { sampleRunSubject } from "./capacity.ts";
import type { PolicyReader, ServerDeps } from "./deps.ts";
import { policyOf, policyReader } from "./inspect.ts";
import type { Changer } from "./mappings.ts";
import { readMappings } from "./mappings.ts";
import { revoke } from "./revocation.ts";

/** Most proxy roles in one pair's pool, as the pair's schema allows. */
const MAX_POOL = 51;

/** Applies (or, with `dry_run`, plans) a mappings document; answers the diff, the revocations and the capacity after. */
export async function applyMappings(
  deps: ServerDeps,
  by: Changer,
  body: v.InferOutput<typeof ApplyBody>,
): Promise<v.InferOutput<typeof ApplyAnswer>> {
  const reader = policyReader(deps);
  const document: Record<string, RolePair[]> = Object.fromEntries(
    Object.entries(body.all_role_mappings).map(([org, value]) => [org, documentPairs(value)]),
  );
  const problems = mappingProblems(document, { editable: deps.editable, maxPool: MAX_POOL });
  if (problems.length > 0) {
    throw new AppError(
      "bad_request",
      `The mappings document cannot be applied: ${problems.join("; ")}`,
      { problems },
    );
  }
  const [{ mappings }, record] = await Promise.all([readMappings(deps), deps.grants.read()]);
  const plan = planMappings(mappings, document, { prune: body.prune });
  let revocations = mappingRevocations(record, plan.after);
  let revoked = 0;
  let after: Mappings = plan.after;
  if (!body.dry_run) {
    if (plan.writes.size > 0) {
      await deps.store.putAll(plan.writes);
      deps.logger.info("mappings applied", {
        audit: true,
        user: by.user,
        organizations: plan.changes.filter((x) => plan.writes.has(x.domino_org)).map((x) => ({
          organization: x.domino_org,
          action: x.action,
        })),
        prune: body.prune,
      });
    }
    // As every mapping change: what the mappings no longer entitle is taken away at once.
    const [stored, now] = await Promise.all([readMappings(deps), deps.grants.read()]);
    after = stored.mappings;
    revocations = mappingRevocations(now, after);
    revoked = (await revoke(deps, revocations, by)).length;
  }
  return {
    dry_run: body.dry_run,
    prune: body.prune,
    changes: plan.changes,
    revocations: revocations.map((r) => ({
      proxy_iam_role_arn: r.role,
      subject: r.subject,
      user: record.grants[r.subject]?.user,
    })),
    revoked_subjects: revoked,
    capacity: await capacityAfter(
      reader,
      after,
      body.dry_run ? revocations : [],
      sampleRunSubject(deps.ownership).length,
      deps.ownership.format,
    ),
  };
}

/** Each proxy role of `mappings` with its subjects now and once `removed` is applied. */
async function capacityAfter(
  reader: PolicyReader,
  mappings: Mappings,
  removed: readonly Revocation[],
  subjectLength: number,
  format: ServerDeps["ownership"]["format"],
) {
  const unmanaged = unmanagedRolesOf(mappings);
  const managed = proxyRolesOf(mappings);
  const rows = await Promise.all(managed.map(async (role) => {
    const read = await policyOf(reader, role);
    if ("error" in read) {
      return { proxy_iam_role_arn: role, managed: true as const, error: read.error };
    }
    try {
      const edit = editTrustPolicy(read.document, {
        remove: removed.filter((r) => r.role === role).map((r) => r.subject),
      }, {
        providerArn: reader.providerArnFor(role),
        audience: reader.audience,
        format,
        quota: reader.quota,
      }, role);
      return {
        proxy_iam_role_arn: role,
        managed: true as const,
        subjects: edit.before.length,
        subjects_after: edit.subjects.length,
        characters: read.document.length,
        characters_after: edit.length,
        quota: reader.quota,
        fits_after: subjectsThatFit(edit.length, reader.quota, subjectLength),
      };
    } catch (e) {
      return { proxy_iam_role_arn: role, managed: true as const, error: (e as Error).message };
    }
  }));
  return [
    ...rows,
    ...unmanaged.map((r) => ({ proxy_iam_role_arn: r, managed: false as const })),
  ].sort((a, b) => a.proxy_iam_role_arn.localeCompare(b.proxy_iam_role_arn));
}
