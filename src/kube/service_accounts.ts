/** Per-user ServiceAccounts in the compute namespace: created and deleted for admins, only irsa's own. */

import { DNS_1123_LABEL, DNS_1123_LABEL_RULE } from "../core/kube_names.ts";
import { AppError } from "../lib/errors.ts";
import type { KubeClient } from "./client.ts";
import { KubeConflictError } from "./client.ts";

/** The label irsa puts on every ServiceAccount it creates; it deletes no other. */
export const CREATED_BY_LABEL = "app.kubernetes.io/managed-by";
const CREATED_BY_VALUE = "irsa";

/** Creates and deletes the ServiceAccounts of platforms with per-user service accounts. */
export interface ServiceAccountAdmin {
  /** "created", or "exists" when irsa had made it before; refuses one irsa did not make. */
  create(name: string): Promise<"created" | "exists">;
  /** "deleted", or "absent" when there was none; refuses one irsa did not make. */
  remove(name: string): Promise<"deleted" | "absent">;
}

/** Throws `bad_request` unless `name` is a DNS-1123 label; checked before any call. */
export function checkServiceAccountName(name: string): void {
  if (!DNS_1123_LABEL.test(name)) {
    throw new AppError(
      "bad_request",
      `Invalid service_account_name ${
        JSON.stringify(name)
      }: expected a DNS-1123 label (${DNS_1123_LABEL_RULE})`,
    );
  }
}

/** The admin of ServiceAccounts in `namespace`, over the Kubernetes API. */
export function createServiceAccountAdmin(
  kube: Pick<KubeClient, "getServiceAccount" | "createServiceAccount" | "deleteServiceAccount">,
  namespace: string,
): ServiceAccountAdmin {
  const notOurs = (name: string, action: string) =>
    new AppError(
      "conflict",
      `Cannot ${action} ServiceAccount ${JSON.stringify(name)} in ${
        JSON.stringify(namespace)
      }: it exists and was not created by irsa (no label ${CREATED_BY_LABEL}=${CREATED_BY_VALUE})`,
    );
  const ours = (labels: Readonly<Record<string, string>>) =>
    labels[CREATED_BY_LABEL] === CREATED_BY_VALUE;

  return {
    async create(name) {
      checkServiceAccountName(name);
      try {
        await kube.createServiceAccount(namespace, name, { [CREATED_BY_LABEL]: CREATED_BY_VALUE });
        return "created";
      } catch (error) {
        if (!(error instanceof KubeConflictError)) throw error;
        const existing = await kube.getServiceAccount(namespace, name);
        if (existing && ours(existing.labels)) return "exists";
        throw notOurs(name, "create");
      }
    },
    async remove(name) {
      checkServiceAccountName(name);
      const existing = await kube.getServiceAccount(namespace, name);
      if (existing === undefined) return "absent";
      if (!ours(existing.labels)) throw notOurs(name, "delete");
      // The uid precondition: a same-named ServiceAccount made since the read is not deleted.
      return await kube.deleteServiceAccount(namespace, name, existing.uid) ? "deleted" : "absent";
    },
  };
}
