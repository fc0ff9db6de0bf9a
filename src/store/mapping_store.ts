/** The mappings store interface, shared by the file and ConfigMap stores. */

import type { MappingProblem, Mappings } from "../core/mapping.ts";
import type { RolePair } from "../core/role_chain.ts";

/** A snapshot of every mapping, with the entries that could not be read. */
export interface MappingSnapshot {
  readonly mappings: Mappings;
  readonly problems: readonly MappingProblem[];
}

/** Organization-to-role mappings, kept by the file or the ConfigMap store. */
export interface MappingStore {
  /** Every mapping; malformed entries are reported in `problems` and skipped. */
  read(): Promise<MappingSnapshot>;
  /** Sets an organization's pairs, replacing what it had; never loses another writer's change. */
  put(organization: string, pairs: readonly RolePair[]): Promise<void>;
  /** Removes an organization; returns false when it had no mapping. */
  remove(organization: string): Promise<boolean>;
}
