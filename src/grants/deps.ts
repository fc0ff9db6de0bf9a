/** What the use cases and the routes are given: every dependency, passed in by the composition root or by a test. */

import type { UserVerifier, WorkloadVerifier } from "../auth/caller.ts";
import type { RunLookup } from "../kube/run_lookup.ts";
import type { AuditEntry } from "../observe/audit_trail.ts";
import type { ApiDescription } from "../http/openapi.ts";
import type { Logger } from "../lib/log.ts";
import type { ServerMetrics } from "../observe/metrics.ts";
import type { ServiceAccountAdmin } from "../kube/service_accounts.ts";
import type { OwnershipOptions } from "../auth/ownership.ts";
import type { GrantStore } from "../store/grant_store.ts";
import type { MappingStore } from "../store/mapping_store.ts";
import type { TrustEditor } from "../trust/trust_editor.ts";

/** Trust policies as IAM has them, and the rules irsa writes them by: for the admin views. */
export interface PolicyReader {
  /** The role's trust policy as JSON text (an IAM GetRole; never a write). */
  read(roleArn: string): Promise<string>;
  /** The cluster's OIDC provider ARN in the role's account. */
  providerArnFor(roleArn: string): string;
  readonly audience: string;
  readonly quota: number;
}

/** Dependencies of the server app. */
export interface ServerDeps {
  readonly users: UserVerifier;
  readonly workloads?: WorkloadVerifier;
  readonly runs?: RunLookup;
  /** Per-user ServiceAccounts in the compute namespace; absent without a Kubernetes API. */
  readonly serviceAccounts?: ServiceAccountAdmin;
  readonly store: MappingStore;
  /** The durable record of every role irsa edited and what it granted there, for revocation. */
  readonly grants: GrantStore;
  /** Epoch milliseconds. */
  readonly now: () => number;
  readonly editor: TrustEditor;
  /**
   * Why a proxy role is not editable by irsa, or undefined when it is (`src/core/editable.ts`).
   * Mapping writes check every proxy role with it; the editor is already guarded by it. Absent:
   * no check (in-process tests that do not need one).
   */
  readonly editable?: (roleArn: string) => string | undefined;
  /** The last audit lines of this process, for `GET /audit`; absent: it answers 503. */
  readonly audit?: { entries(): AuditEntry[] };
  /** Reads trust policies for `/trust`, `/explain` and `/apply_role_mappings`; absent: they answer 503. */
  readonly policies?: PolicyReader;
  readonly ownership: OwnershipOptions;
  /** The web-identity token path written into config files (`AWS_WEB_IDENTITY_TOKEN_FILE` in pods). */
  readonly webIdentityTokenFile: string;
  readonly logger: Logger;
  readonly metrics: ServerMetrics;
  readonly api: ApiDescription;
  /** Told of every pod that maps its roles, so the cleanup loop knows its run is alive. */
  readonly activity?: { touch(subject: string): void };
}
