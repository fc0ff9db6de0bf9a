/** Organization-to-role mappings: the ConfigMap's value format, validated. */

import * as v from "valibot";
import { isRoleArn, ROLE_ARN_MAX_LENGTH, ROLE_ARN_PATTERN } from "./arn.ts";
import { poolOf, type RolePair } from "./role_chain.ts";

const roleArn = (field: string) =>
  v.pipe(
    v.string(`${field} must be a string`),
    v.check(isRoleArn, (issue) =>
      `${field} ${JSON.stringify(issue.input)} is not a valid IAM role ARN`),
    v.metadata({ pattern: ROLE_ARN_PATTERN, maxLength: ROLE_ARN_MAX_LENGTH }),
  );

/**
 * Organization names that are refused in every path (updates, applied documents, the stores):
 * the properties every JavaScript object has, which a parser drops or a lookup answers with the
 * prototype's own. One rule, so that a document read back is a document applied back.
 */
export const RESERVED_ORGANIZATION_NAMES: readonly string[] = [
  ...Object.getOwnPropertyNames(Object.prototype),
  "prototype",
].sort();

/** Platform organization names as the ConfigMap can hold them (ConfigMap keys). */
export const OrganizationName = v.pipe(
  v.string("domino_org must be a string"),
  v.regex(
    /^[-._a-zA-Z0-9]{1,253}$/,
    'domino_org must be 1 to 253 characters of letters, digits, "-", "_" and "."',
  ),
  // Kubernetes refuses these as ConfigMap keys, so the next write of the whole ConfigMap would fail.
  v.check(
    (s) => s !== "." && !s.startsWith(".."),
    'domino_org must not be "." or start with ".."',
  ),
  // Names that objects already have: a parser or a lookup would drop them or find the prototype's.
  v.check(
    (s) => !RESERVED_ORGANIZATION_NAMES.includes(s),
    (i) =>
      `domino_org ${JSON.stringify(i.input)} is reserved: it names a property every object has`,
  ),
  v.metadata({
    not: {
      anyOf: [{ pattern: "^(?:\\.|\\.\\..*)$" }, { enum: RESERVED_ORGANIZATION_NAMES }],
    },
  }),
);

/**
 * The current service's `update_iam_role_trust_policy`: `false` (or the string `"false"`) means the
 * admin manages the proxy role's trust policy and irsa never reads or writes it. Kept as given.
 */
export const TrustPolicyFlag = v.union(
  // Case spelled out rather than with the `i` flag, which a JSON-schema pattern cannot carry.
  [v.boolean(), v.pipe(v.string(), v.regex(/^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])$/))],
  'update_iam_role_trust_policy must be true, false, "true" or "false"',
);

/** The most proxy roles one pair's pool may name. */
export const POOL_MAX = 50;

/**
 * One role pair as the ConfigMap and the API spell it. Loose: every other key the admin sent
 * (`domino_org` of the item, notes) is kept, so the pair is echoed and stored as it was given.
 */
export const RolePairWire = v.looseObject({
  domino_org: v.optional(OrganizationName),
  iam_role_arn: roleArn("iam_role_arn"),
  proxy_iam_role_arn: roleArn("proxy_iam_role_arn"),
  // A pool: more proxy roles to the same asset role. Optional, so the current format still reads
  // and the current service, which ignores unknown keys, still reads ours.
  proxy_iam_role_arns: v.optional(
    v.pipe(
      v.array(roleArn("proxy_iam_role_arns[]"), "proxy_iam_role_arns must be a list"),
      v.maxLength(
        POOL_MAX,
        (issue) =>
          `proxy_iam_role_arns holds ${issue.received} roles; a pool holds at most ${POOL_MAX}`,
      ),
    ),
  ),
  update_iam_role_trust_policy: v.optional(TrustPolicyFlag),
});

/** A ConfigMap value: one pair, or a list of pairs (multi-role mapping). */
export const MappingValueWire = v.union(
  [RolePairWire, v.array(RolePairWire)],
  "expected a role pair or a list of role pairs",
);

/** The wire shape of one role pair, with whatever else the admin put in it. */
export type RolePairWire = v.InferOutput<typeof RolePairWire>;

/** Organization name to role pairs, as every store holds them. */
export type Mappings = ReadonlyMap<string, readonly RolePair[]>;

/** A stored entry that could not be read, reported and skipped. */
export interface MappingProblem {
  readonly organization: string;
  readonly message: string;
}

/** True unless the flag says the admin manages the trust policy (`false` or `"false"`). */
export function updatesTrustPolicy(flag: RolePairWire["update_iam_role_trust_policy"]): boolean {
  return !(flag === false || (typeof flag === "string" && flag.toLowerCase() === "false"));
}

/** Converts a pair from the wire shape to ours; the wire object is kept as the pair's `source`. */
export function fromWire(p: RolePairWire): RolePair {
  const pool = [...new Set(p.proxy_iam_role_arns ?? [])].filter((arn) =>
    arn !== p.proxy_iam_role_arn
  );
  return {
    assetRoleArn: p.iam_role_arn,
    proxyRoleArn: p.proxy_iam_role_arn,
    ...(pool.length ? { proxyPool: pool } : {}),
    ...(updatesTrustPolicy(p.update_iam_role_trust_policy) ? {} : { updateTrustPolicy: false }),
    source: p,
  };
}

/**
 * A pair in the wire shape: the object it was made from when it has one (every key kept), else
 * one built from its fields. A pair without a proxy cannot be stored.
 */
export function toWire(p: RolePair): RolePairWire {
  if (p.source) return p.source as RolePairWire;
  return {
    iam_role_arn: p.assetRoleArn,
    proxy_iam_role_arn: p.proxyRoleArn ?? p.assetRoleArn,
    ...(p.proxyPool?.length
      ? { proxy_iam_role_arns: [p.proxyRoleArn ?? p.assetRoleArn, ...p.proxyPool] }
      : {}),
    ...(p.updateTrustPolicy === false ? { update_iam_role_trust_policy: false } : {}),
  };
}

/**
 * A pair as the current service answers it in `all_role_mappings` and `my_role_mappings`: as
 * stored, with `domino_org` filled in from the organization when the stored object lacks it (values
 * written before 1.8 do), since clients read `m["domino_org"]`.
 */
export function answerPair(organization: string, p: RolePair): RolePairWire {
  const wire = toWire(p);
  return wire.domino_org === undefined ? { domino_org: organization, ...wire } : wire;
}

// Every proxy role a pair may edit: its first proxy, then its pool.

/**
 * The proxy roles whose trust policy the admin manages: named by a pair that says
 * `update_iam_role_trust_policy: false`. One such pair is enough: irsa never touches the role.
 */
export function unmanagedRolesOf(mappings: Mappings): string[] {
  const all = [...mappings.values()].flat().filter((p) => p.updateTrustPolicy === false)
    .flatMap(poolOf);
  return [...new Set(all)].sort();
}

/** Every proxy role of the mappings that irsa edits, pool members included, sorted. */
export function proxyRolesOf(mappings: Mappings): string[] {
  const unmanaged = new Set(unmanagedRolesOf(mappings));
  const all = [...mappings.values()].flat().flatMap(poolOf).filter((r) => !unmanaged.has(r));
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
      const key = `${pair.assetRoleArn} ${pair.proxyRoleArn} ${
        pair.proxyPool ?? ""
      } ${pair.updateTrustPolicy}`;
      if (!seen.has(key)) {
        seen.add(key);
        out.push(pair);
      }
    }
  }
  return out;
}
