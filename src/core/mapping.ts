/** Organization-to-role mappings: the ConfigMap's value format, validated. */

import * as v from "valibot";
import { isRoleArn } from "./arn.ts";
import type { RolePair } from "./role_chain.ts";

const roleArn = (field: string) =>
  v.pipe(
    v.string(`${field} must be a string`),
    v.check(isRoleArn, (issue) =>
      `${field} ${JSON.stringify(issue.input)} is not a valid IAM role ARN`),
  );

/** One role pair as the ConfigMap and the API spell it. */
export const RolePairWire = v.object({
  iam_role_arn: roleArn("iam_role_arn"),
  proxy_iam_role_arn: roleArn("proxy_iam_role_arn"),
  // A pool: more proxy roles to the same asset role. Optional, so the current format still reads
  // and the current service, which ignores unknown keys, still reads ours.
  proxy_iam_role_arns: v.optional(
    v.pipe(
      v.array(roleArn("proxy_iam_role_arns[]"), "proxy_iam_role_arns must be a list"),
      v.maxLength(50, "proxy_iam_role_arns holds too many roles"),
    ),
  ),
});

/** A ConfigMap value: one pair, or a list of pairs (multi-role mapping). */
export const MappingValueWire = v.union(
  [RolePairWire, v.array(RolePairWire)],
  "expected a role pair or a list of role pairs",
);

/** The wire shape of one role pair. */
export type RolePairWire = v.InferOutput<typeof RolePairWire>;

/** Platform organization names as the ConfigMap can hold them (ConfigMap keys). */
export const OrganizationName = v.pipe(
  v.string("domino_org must be a string"),
  v.regex(
    /^[-._a-zA-Z0-9]{1,253}$/,
    'domino_org must be 1 to 253 characters of letters, digits, "-", "_" and "."',
  ),
  // The API server's IsConfigMapKey also refuses these (they name directories when mounted).
  v.check(
    (name) => name !== "." && !name.startsWith(".."),
    'domino_org must not be "." or start with ".."',
  ),
);

/** Organization name to role pairs, as every store holds them. */
export type Mappings = ReadonlyMap<string, readonly RolePair[]>;

/** A stored entry that could not be read, reported and skipped. */
export interface MappingProblem {
  readonly organization: string;
  readonly message: string;
}

/** Converts a pair between the wire shape and ours. */
export function fromWire(p: RolePairWire): RolePair {
  const pool = [...new Set(p.proxy_iam_role_arns ?? [])].filter((arn) =>
    arn !== p.proxy_iam_role_arn
  );
  return {
    assetRoleArn: p.iam_role_arn,
    proxyRoleArn: p.proxy_iam_role_arn,
    ...(pool.length ? { proxyPool: pool } : {}),
  };
}

/** Converts a pair from ours to the wire shape; a pair without a proxy cannot be stored. */
export function toWire(p: RolePair): RolePairWire {
  return {
    iam_role_arn: p.assetRoleArn,
    proxy_iam_role_arn: p.proxyRoleArn ?? p.assetRoleArn,
    ...(p.proxyPool?.length
      ? { proxy_iam_role_arns: [p.proxyRoleArn ?? p.assetRoleArn, ...p.proxyPool] }
      : {}),
  };
}

/** Every proxy role of the mappings, pool members included, sorted. */
export function proxyRolesOf(mappings: Mappings): string[] {
  const all = [...mappings.values()].flat().flatMap((
    p,
  ) => [p.proxyRoleArn ?? p.assetRoleArn, ...(p.proxyPool ?? [])]);
  return [...new Set(all)].sort();
}

/** The value stored for an organization: one object for one pair, as the current service writes it. */
export function encodeValue(pairs: readonly RolePair[]): string {
  return JSON.stringify(pairs.length === 1 ? toWire(pairs[0]) : pairs.map(toWire));
}

/**
 * Reads the string data of a ConfigMap (or the file store) into mappings. A malformed entry is
 * reported in `problems` and skipped; it never stops the others.
 */
export function decodeMappings(
  data: Readonly<Record<string, string>>,
): { mappings: Map<string, RolePair[]>; problems: MappingProblem[] } {
  const mappings = new Map<string, RolePair[]>();
  const problems: MappingProblem[] = [];
  for (const [organization, text] of Object.entries(data)) {
    if (!v.is(OrganizationName, organization)) {
      problems.push({
        organization,
        message: `Invalid organization name ${JSON.stringify(organization)}`,
      });
      continue;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      problems.push({ organization, message: `Value is not JSON: ${(e as Error).message}` });
      continue;
    }
    const result = v.safeParse(MappingValueWire, json);
    if (!result.success) {
      problems.push({ organization, message: v.summarize(result.issues).replaceAll("\n", "; ") });
      continue;
    }
    const list = Array.isArray(result.output) ? result.output : [result.output];
    mappings.set(organization, list.map(fromWire));
  }
  return { mappings, problems };
}

/** The pairs a member of `organizations` is entitled to, in organization order, each pair once. */
export function pairsFor(mappings: Mappings, organizations: readonly string[]): RolePair[] {
  const seen = new Set<string>();
  const out: RolePair[] = [];
  for (const org of [...new Set(organizations)].sort()) {
    for (const pair of mappings.get(org) ?? []) {
      const key = `${pair.assetRoleArn} ${pair.proxyRoleArn} ${pair.proxyPool ?? ""}`;
      if (!seen.has(key)) {
        seen.add(key);
        out.push(pair);
      }
    }
  }
  return out;
}
