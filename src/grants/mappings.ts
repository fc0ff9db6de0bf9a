/**
 * The mappings as use cases: reading them (counted as the current service's dashboards expect),
 * and changing them, which takes away at once what they no longer entitle (the cleanup retries
 * revocations that fail).
 */

import { mappingRevocations } from "../core/grants.ts";
import {
  answerPair,
  type Mappings,
  type RolePairWire,
  updatesTrustPolicy,
} from "../core/mapping.ts";
import type { RolePair } from "../core/role_chain.ts";
import { toWire } from "../core/mapping.ts";
import { AppError } from "../lib/errors.ts";
import type { ServerDeps } from "./deps.ts";
import { revoke } from "./revocation.ts";

/** Reads the mappings, counting the read and logging each malformed entry. */
export async function readMappings(deps: ServerDeps) {
  deps.metrics.mappingReads.inc();
  const snapshot = await deps.store.read();
  for (const p of snapshot.problems) {
    deps.logger.warn("skipping malformed mapping", {
      organization: p.organization,
      problem: p.message,
    });
  }
  return snapshot;
}

/** The current service's view: organization to the list of its pairs, each as it was stored. */
export function byOrganization(mappings: Mappings) {
  return Object.fromEntries(
    [...mappings].sort(([a], [b]) => a.localeCompare(b))
      .map(([org, pairs]) => [org, pairs.map((p) => answerPair(org, p))]),
  );
}

/**
 * Refuses, with 400 naming the field and the rule, a pair that would have irsa edit a proxy role
 * outside the editable set. A pair that says `update_iam_role_trust_policy: false` is not
 * checked: irsa never reads or writes its proxy role (the admin keeps it, possibly in another
 * account, as the current service allowed), and a role named by such a pair is unmanaged for
 * every pair. The asset role is never edited, so it is never checked.
 */
export function checkEditable(
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

/** Who changes the mappings, for the audit lines and the revocations. */
export interface Changer {
  readonly user: string;
  readonly requestId: string;
}

/** Replaces an organization's pairs; answers them as stored and how many subjects it revoked. */
export async function putMapping(
  deps: ServerDeps,
  by: Changer,
  organization: string,
  pairs: RolePair[],
) {
  await deps.store.put(organization, pairs);
  deps.logger.info("mapping updated", {
    audit: true,
    user: by.user,
    organization,
    pairs: pairs.length,
  });
  return {
    status: "updated" as const,
    domino_org: organization,
    role_data: pairs.map(toWire),
    revoked_subjects: await revokeUnentitled(deps, by),
  };
}

/** Removes an organization's mapping; "absent" (still a success, as 1.8's clients expect) when it had none. */
export async function deleteMapping(deps: ServerDeps, by: Changer, organization: string) {
  if (!(await deps.store.remove(organization))) {
    return {
      status: "absent" as const,
      domino_org: organization,
      message: `Organization ${JSON.stringify(organization)} had no mapping; nothing was deleted`,
    };
  }
  deps.logger.info("mapping deleted", { audit: true, user: by.user, organization });
  return {
    status: "deleted" as const,
    domino_org: organization,
    revoked_subjects: await revokeUnentitled(deps, by),
  };
}

// A mapping change takes away at once what it no longer entitles; the cleanup retries failures.
async function revokeUnentitled(deps: ServerDeps, by: Changer): Promise<number> {
  const [record, { mappings }] = await Promise.all([deps.grants.read(), readMappings(deps)]);
  return (await revoke(deps, mappingRevocations(record, mappings), by)).length;
}
