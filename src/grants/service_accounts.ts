/**
 * Per-user ServiceAccounts, for admins. Deleting one takes its subject off every trust policy
 * first (under the roles' locks, through the grant record), so that a later account of the same
 * name inherits nothing; when a role cannot be edited, the account stays and the admin is told.
 */

import { subjectFor } from "../core/subject.ts";
import { AppError } from "../lib/errors.ts";
import type { ServiceAccountAdmin } from "../kube/service_accounts.ts";
import { clearSubject } from "./clear_subject.ts";
import type { ServerDeps } from "./deps.ts";
import type { Changer } from "./mappings.ts";

function accounts(deps: ServerDeps): ServiceAccountAdmin {
  if (!deps.serviceAccounts) {
    throw new AppError(
      "unavailable",
      "Cannot manage service accounts: this server has no Kubernetes API (set --kubernetes-api / IRSA_KUBERNETES_API, or run it in the cluster)",
    );
  }
  return deps.serviceAccounts;
}

/** Creates an irsa-labelled ServiceAccount in the compute namespace. */
export function createServiceAccount(deps: ServerDeps, name: string) {
  return accounts(deps).create(name);
}

/** Takes the account's subject off every role, then deletes the account. */
export async function deleteServiceAccount(deps: ServerDeps, by: Changer, name: string) {
  const admin = accounts(deps);
  const subject = subjectFor(deps.ownership.format, {
    namespace: deps.ownership.computeNamespace,
    name,
  });
  const outcomes = await clearSubject(deps, subject, "service_account_deleted", by, {
    everywhere: true,
  });
  const failed = outcomes.find((o) => o.status === "failed");
  if (failed) {
    throw new AppError(
      "upstream_error",
      `Cannot delete service account ${JSON.stringify(name)}: its subject ${
        JSON.stringify(subject)
      } could not be taken off ${failed.roleArn} (${failed.error?.message}); the account was kept, try again`,
      { role: failed.roleArn },
    );
  }
  return await admin.remove(name);
}
