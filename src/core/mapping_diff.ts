/** A whole mappings document against the stored mappings: what applying it adds, changes and removes. */

import * as v from "valibot";
import {
  fromWire,
  type Mappings,
  MappingValueWire,
  OrganizationName,
  type RolePairWire,
  toWire,
} from "./mapping.ts";
import { poolOf, type RolePair } from "./role_chain.ts";

/** The `all_role_mappings` shape: organization to one pair or a list of pairs, as `GET /role_mappings` answers. */
export const MappingsDocument = v.pipe(
  v.record(OrganizationName, MappingValueWire, "all_role_mappings must be an object"),
  v.check(
    (doc) => Object.keys(doc).length <= 1000,
    "all_role_mappings holds more than 1000 organizations",
  ),
  v.metadata({ maxProperties: 1000 }),
);

/** What becomes of one organization. `kept`: in the store, not in the document, and no prune. */
export type MappingAction = "added" | "changed" | "unchanged" | "removed" | "kept";

/** One organization's line of the diff; pairs in the wire shape. */
export interface MappingChange {
  readonly domino_org: string;
  readonly action: MappingAction;
  readonly before?: RolePairWire[];
  readonly after?: RolePairWire[];
}

/** The diff and the mappings that result from it. */
export interface MappingPlan {
  /** Sorted by organization. */
  readonly changes: MappingChange[];
  /** The mappings once applied. */
  readonly after: Mappings;
  /** Organization to its new pairs, or null to remove it: the one store update. */
  readonly writes: ReadonlyMap<string, readonly RolePair[] | null>;
}

/** The document's value for an organization as pairs (one object or a list). */
export function documentPairs(value: v.InferOutput<typeof MappingValueWire>): RolePair[] {
  return (Array.isArray(value) ? value : [value]).map(fromWire);
}

// Pairs compared as stored, except for the item's own `domino_org`, which `GET /role_mappings`
// fills in: a document fetched with `mappings get` and applied again is unchanged.
function comparable(org: string, pairs: readonly RolePair[]): string {
  return JSON.stringify(pairs.map((p) => {
    const wire = { ...toWire(p) } as Record<string, unknown>;
    if (wire.domino_org === org) delete wire.domino_org;
    return Object.fromEntries(Object.entries(wire).sort(([a], [b]) => a.localeCompare(b)));
  }));
}

/**
 * Plans applying `document` over `current`: organizations in the document are set to its pairs;
 * organizations only in the store are removed with `prune`, else kept.
 */
export function planMappings(
  current: Mappings,
  document: Readonly<Record<string, readonly RolePair[]>>,
  options: { prune: boolean },
): MappingPlan {
  const orgs = [...new Set([...current.keys(), ...Object.keys(document)])].sort();
  const changes: MappingChange[] = [];
  const after = new Map<string, readonly RolePair[]>();
  const writes = new Map<string, readonly RolePair[] | null>();
  for (const org of orgs) {
    const before = current.get(org);
    const wanted = Object.hasOwn(document, org) ? document[org] : undefined;
    const wire = (pairs: readonly RolePair[]) => pairs.map((p) => toWire(p));
    if (wanted === undefined) {
      if (options.prune) {
        changes.push({ domino_org: org, action: "removed", before: wire(before!) });
        writes.set(org, null);
      } else {
        changes.push({ domino_org: org, action: "kept", before: wire(before!) });
        after.set(org, before!);
      }
      continue;
    }
    after.set(org, wanted);
    if (before === undefined) {
      changes.push({ domino_org: org, action: "added", after: wire(wanted) });
      writes.set(org, wanted);
    } else if (comparable(org, before) === comparable(org, wanted)) {
      changes.push({ domino_org: org, action: "unchanged", before: wire(before) });
    } else {
      changes.push({
        domino_org: org,
        action: "changed",
        before: wire(before),
        after: wire(wanted),
      });
      writes.set(org, wanted);
    }
  }
  return { changes, after, writes };
}

/** The problems of a document that the server's rules refuse, each naming the organization and role. */
export function mappingProblems(
  document: Readonly<Record<string, readonly RolePair[]>>,
  rules: {
    /** Why a proxy role is outside the set irsa may edit, or undefined when it may. */
    readonly editable?: (roleArn: string) => string | undefined;
    /** Most proxy roles in one pair's pool. */
    readonly maxPool: number;
  },
): string[] {
  const problems: string[] = [];
  for (const [org, pairs] of Object.entries(document).sort(([a], [b]) => a.localeCompare(b))) {
    if (pairs.length === 0) {
      problems.push(`Organization ${JSON.stringify(org)} maps to no pairs; leave it out instead`);
    }
    pairs.forEach((p, i) => {
      const pool = poolOf(p);
      if (pool.length > rules.maxPool) {
        problems.push(
          `Organization ${
            JSON.stringify(org)
          } pair ${i}: a pool of ${pool.length} proxy roles, over the most of ${rules.maxPool}`,
        );
      }
      if (p.updateTrustPolicy === false) return; // the admin edits these roles, not irsa
      for (const role of pool) {
        const why = rules.editable?.(role);
        if (why !== undefined) {
          problems.push(
            `Organization ${JSON.stringify(org)} pair ${i}: proxy role ${
              JSON.stringify(role)
            } is not one irsa may edit: ${why}`,
          );
        }
      }
    });
  }
  return problems;
}

/**
 * How many more subjects of `subjectLength` characters fit in a policy of `length` of `quota`:
 * each adds its quoted text and a comma to the `sub` list.
 */
export function subjectsThatFit(length: number, quota: number, subjectLength: number): number {
  return Math.max(0, Math.floor((quota - length) / (subjectLength + 3)));
}
