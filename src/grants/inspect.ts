/**
 * The admin's read-only views: a role's trust policy with who holds each subject, and why a user's
 * pod can or cannot assume a profile. Never a write.
 */

import type * as v from "valibot";
import type { ExplainAnswer, ExplainBody, TrustAnswer, TrustSubject } from "../api/admin.ts";
import { explain, type PolicyRead, webIdentityStatements } from "../core/explain.ts";
import { pairsFor, proxyRolesOf, unmanagedRolesOf } from "../core/mapping.ts";
import { poolOf } from "../core/role_chain.ts";
import {
  isManagedSubject,
  operatorFor,
  parseSubject,
  runServiceAccountName,
  subjectFor,
} from "../core/subject.ts";
import { AppError } from "../lib/errors.ts";
import { sampleRunSubject } from "./capacity.ts";
import type { PolicyReader, ServerDeps } from "./deps.ts";
import { readMappings } from "./mappings.ts";

/** The reader of trust policies; 503 on a server that has none. */
export function policyReader(deps: ServerDeps): PolicyReader {
  if (!deps.policies) throw new AppError("unavailable", "This server cannot read trust policies");
  return deps.policies;
}

/** A role's policy as read, or why it could not be read. */
export async function policyOf(reader: PolicyReader, role: string): Promise<PolicyRead> {
  try {
    return { document: await reader.read(role) };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

/** A proxy role's trust policy: every subject with what the grant record knows of it. */
export async function trustOf(
  deps: ServerDeps,
  role: string,
): Promise<v.InferOutput<typeof TrustAnswer>> {
  const reader = policyReader(deps);
  const { format } = deps.ownership;
  const [{ mappings }, record] = await Promise.all([readMappings(deps), deps.grants.read()]);
  const document = await reader.read(role).catch((e) => {
    // The role asked about is the resource here: its absence is a 404, not IAM failing.
    if (e instanceof AppError && e.code === "iam_role_not_found") {
      throw new AppError("not_found", e.message, e.details);
    }
    throw e;
  });
  const provider = reader.providerArnFor(role);
  const roleManaged = !unmanagedRolesOf(mappings).includes(role);
  const subjects: TrustSubject[] = webIdentityStatements(document).flatMap((s) =>
    s.subjects.map((p) => {
      const operator = p.like ? "StringLike" : "StringEquals";
      const managed = roleManaged && s.federated.includes(provider) &&
        operator === operatorFor(format) && isManagedSubject(format, p.value);
      const grant = record.grants[p.value];
      const run = runOf(format, p.value);
      return {
        subject: p.value,
        statement: s.index,
        operator,
        managed,
        ...(grant ? { user: grant.user } : {}),
        ...(run ? { run_id: run } : {}),
        ...(grant?.workloadType ? { workload_type: grant.workloadType } : {}),
        ...(grant ? { synced_at: new Date(grant.syncedAt).toISOString() } : {}),
      } satisfies TrustSubject;
    })
  ).filter((s) => s.subject !== "");
  return {
    proxy_iam_role_arn: role,
    mapped: proxyRolesOf(mappings).includes(role) || !roleManaged,
    managed: roleManaged,
    provider,
    audience: reader.audience,
    characters: document.length,
    quota: reader.quota,
    subjects,
  };
}

/** Why a user's pod can or cannot assume a profile; their organizations are those of their last sync. */
export async function explainAccess(
  deps: ServerDeps,
  body: v.InferOutput<typeof ExplainBody>,
): Promise<v.InferOutput<typeof ExplainAnswer>> {
  const reader = policyReader(deps);
  const { format, computeNamespace } = deps.ownership;
  const subject = body.run_id === undefined ? undefined : subjectFor(format, {
    namespace: computeNamespace,
    name: runServiceAccountName(body.run_id, deps.ownership.runIdPattern),
  });
  const [{ mappings }, record] = await Promise.all([readMappings(deps), deps.grants.read()]);
  const orgs = new Set(
    Object.values(record.grants).filter((g) => g.user === body.user).flatMap((g) =>
      g.organizations
    ),
  );
  const roles = [...new Set(pairsFor(mappings, [...orgs]).flatMap(poolOf))];
  const policies = new Map(
    await Promise.all(roles.map(async (r) => [r, await policyOf(reader, r)] as const)),
  );
  return explain({
    user: body.user,
    run: body.run_id,
    subject,
    profile: body.profile,
    grants: record.grants,
    mappings,
    policies,
    providerArnFor: reader.providerArnFor,
    audience: reader.audience,
    format,
    quota: reader.quota,
    sampleSubject: sampleRunSubject(deps.ownership),
    editable: deps.editable,
  });
}

// The run id of a run's subject (`…:run-<id>`), when it is one.
function runOf(format: ServerDeps["ownership"]["format"], subject: string): string | undefined {
  try {
    const m = /^run-(.+)$/.exec(parseSubject(format, subject).name);
    return m?.[1];
  } catch {
    return undefined;
  }
}
