/**
 * The Kubernetes permissions the server needs for what it is configured to do, and the start-up
 * check that it has them: a Role missing a rule fails the start with the rule's name, instead of
 * the first workspace start failing with a 403 hours later.
 */

import { AppError } from "../lib/errors.ts";
import type { KubeAction, KubeClient } from "./client.ts";
import type { Logger } from "../lib/log.ts";

/** What the server does with Kubernetes, from its configuration. */
export interface KubeUse {
  readonly fieldNamespace: string;
  readonly computeNamespace: string;
  /** The mappings ConfigMap's name, when the mappings live in a ConfigMap. */
  readonly mappingConfigMap?: string;
  /** The previous version's single grant record, in the field namespace (merged into the shards). */
  readonly grantConfigMap: string;
  /** The grant record's shards, in the field namespace. */
  readonly grantShards?: readonly string[];
  /** Per-user service accounts: `/service_account` creates and deletes them in the compute namespace. */
  readonly serviceAccounts: boolean;
}

/**
 * Every action the server takes: the mappings ConfigMap, the grant record's shards and the
 * previous version's single record read and replaced by name (created only when missing, which
 * the chart prevents, so create is not required), the per-role Leases, the pod listing of the run lookup and the cleanup, and, with
 * per-user service accounts, the ServiceAccounts of `/service_account`. The chart's Role grants
 * exactly these.
 */
export function requiredPermissions(use: KubeUse): KubeAction[] {
  const field = use.fieldNamespace;
  const byName = (name: string) =>
    (["get", "update"] as const).map((verb) => ({
      verb,
      group: "",
      resource: "configmaps",
      namespace: field,
      name,
    }));
  const configMap = [
    ...(use.mappingConfigMap === undefined ? [] : byName(use.mappingConfigMap)),
    ...byName(use.grantConfigMap),
    ...(use.grantShards ?? []).flatMap(byName),
  ];
  const serviceAccounts = !use.serviceAccounts ? [] : (["get", "create", "delete"] as const).map(
    (verb) => ({ verb, group: "", resource: "serviceaccounts", namespace: use.computeNamespace }),
  );
  const leases = (["get", "create", "update"] as const).map((verb) => ({
    verb,
    group: "coordination.k8s.io",
    resource: "leases",
    namespace: field,
  }));
  // Run lookups list pods; the pod watch lists and watches them.
  const pods = ["list", "watch"].map((verb) => ({
    verb,
    group: "",
    resource: "pods",
    namespace: use.computeNamespace,
  }));
  return [...configMap, ...leases, ...pods, ...serviceAccounts];
}

/** `update configmaps "x" in "ns"`, `create leases.coordination.k8s.io in "ns"`: RBAC's terms. */
export function describeAction(a: KubeAction): string {
  const resource = a.group === "" ? a.resource : `${a.resource}.${a.group}`;
  const name = a.name === undefined ? "" : ` ${JSON.stringify(a.name)}`;
  return `${a.verb} ${resource}${name} in ${JSON.stringify(a.namespace)}`;
}

/**
 * Asks the API server (SelfSubjectAccessReview) about each action; throws `forbidden` naming every
 * missing one. When the review itself cannot be made (API unreachable), only warns: the requests
 * that need the API fail on their own, and the server stays up to answer what it can.
 */
export async function checkPermissions(
  kube: Pick<KubeClient, "canI">,
  actions: readonly KubeAction[],
  logger: Logger,
): Promise<void> {
  let answers: boolean[];
  try {
    answers = await Promise.all(actions.map((a) => kube.canI(a)));
  } catch (error) {
    logger.warn("cannot check the Kubernetes permissions at start", { error });
    return;
  }
  const missing = actions.filter((_, i) => !answers[i]);
  if (missing.length === 0) return;
  throw new AppError(
    "forbidden",
    `Cannot start: the Kubernetes service account may not ${
      missing.map(describeAction).join(", ")
    }; grant ${missing.length === 1 ? "it" : "them"} in its Role (the chart's rbac.yaml does)`,
    { missing: missing.map(describeAction) },
  );
}
