/** How full each proxy role's trust policy is, for admins planning pools. */

import type * as v from "valibot";
import type { CapacityAnswer } from "../api/capacity.ts";
import { proxyRolesOf, unmanagedRolesOf } from "../core/mapping.ts";
import { subjectsThatFit } from "../core/mapping_diff.ts";
import { subjectFor } from "../core/subject.ts";
import type { ServerDeps } from "./deps.ts";
import { readMappings } from "./mappings.ts";

/** A run's subject as this server writes it, of the length run subjects have here: what "fits" counts in. */
export function sampleRunSubject(ownership: ServerDeps["ownership"]): string {
  return subjectFor(ownership.format, {
    namespace: ownership.computeNamespace,
    name: `run-${"0".repeat(24)}`,
  });
}

/** One row per proxy role of the mappings, sorted by ARN; unmanaged roles are never read. */
export async function roleCapacity(
  deps: ServerDeps,
): Promise<v.InferOutput<typeof CapacityAnswer>> {
  const subjectLength = sampleRunSubject(deps.ownership).length;
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
  return {
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
  };
}
