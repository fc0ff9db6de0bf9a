/** Proof that a pod belongs to the caller: its service-account token, or a run lookup in Kubernetes. */

import type { Caller, RunLookup, WorkloadVerifier } from "./auth/caller.ts";
import {
  runServiceAccountName,
  type ServiceAccount,
  subjectFor,
  type SubjectFormat,
} from "./core/subject.ts";
import { AppError } from "./errors.ts";

/** Settings of the proof. */
export interface OwnershipOptions {
  readonly computeNamespace: string;
  readonly runIdPattern: RegExp;
  readonly userBasedServiceAccounts: boolean;
  readonly format: SubjectFormat;
}

/** What was proven: the service account, its trust-policy subject and, when known, the run. */
export interface ProvenPod {
  readonly serviceAccount: ServiceAccount;
  readonly subject: string;
  readonly runId?: string;
  readonly proof: "workload-token" | "run-lookup";
}

/** The service account a run of this caller has, in the configured mode. */
function expectedServiceAccount(
  caller: Caller,
  runId: string | undefined,
  o: OwnershipOptions,
): string | undefined {
  if (o.userBasedServiceAccounts) return caller.username.toLowerCase();
  return runId === undefined ? undefined : runServiceAccountName(runId, o.runIdPattern);
}

/**
 * Proves that the caller's pod is the one to map. With a workload token, the subject comes from
 * the token itself and must agree with `run_id`; without one, the run's pod must carry the
 * caller as its starting user. Anything else is refused with 403: a `run_id` alone proves nothing.
 */
export async function provePod(
  caller: Caller,
  runId: string | undefined,
  workloadToken: string | undefined,
  deps: { workloads?: WorkloadVerifier; runs?: RunLookup; ownership: OwnershipOptions },
): Promise<ProvenPod> {
  const o = deps.ownership;
  if (runId !== undefined && !o.runIdPattern.test(runId)) {
    throw new AppError(
      "bad_request",
      `Invalid run_id ${JSON.stringify(runId)}: expected it to match ${o.runIdPattern.source}`,
    );
  }
  const expected = expectedServiceAccount(caller, runId, o);

  if (workloadToken !== undefined) {
    if (!deps.workloads) {
      throw new AppError("forbidden", "This server does not accept workload tokens");
    }
    const { serviceAccount } = await deps.workloads.verify(workloadToken);
    if (serviceAccount.namespace !== o.computeNamespace) {
      throw new AppError(
        "forbidden",
        `Workload token is for namespace ${JSON.stringify(serviceAccount.namespace)}, not ${
          JSON.stringify(o.computeNamespace)
        }`,
      );
    }
    if (o.userBasedServiceAccounts && serviceAccount.name !== expected) {
      throw new AppError(
        "forbidden",
        `Workload token is for service account ${
          JSON.stringify(serviceAccount.name)
        }, not the caller's`,
      );
    }
    if (!o.userBasedServiceAccounts) {
      const m = /^run-(.+)$/.exec(serviceAccount.name);
      if (!m || !o.runIdPattern.test(m[1])) {
        throw new AppError(
          "forbidden",
          `Workload token is for service account ${
            JSON.stringify(serviceAccount.name)
          }, which is not a run's`,
        );
      }
      if (expected !== undefined && serviceAccount.name !== expected) {
        throw new AppError(
          "forbidden",
          `Workload token is for ${JSON.stringify(serviceAccount.name)}, but run_id names ${
            JSON.stringify(expected)
          }`,
        );
      }
      runId = m[1];
    }
    return {
      serviceAccount,
      subject: subjectFor(o.format, serviceAccount),
      runId,
      proof: "workload-token",
    };
  }

  if (runId === undefined) {
    throw new AppError(
      "bad_request",
      'Missing "run_id": send it, or the pod\'s service-account token in X-Irsa-Workload-Token',
    );
  }
  if (!deps.runs) {
    throw new AppError(
      "forbidden",
      "Cannot prove the run is yours: send the pod's service-account token in X-Irsa-Workload-Token (this server has no Kubernetes API for run lookups)",
    );
  }
  const pods = await deps.runs.findRunPods(runId);
  if (pods.length === 0) {
    throw new AppError(
      "forbidden",
      `Run ${JSON.stringify(runId)} has no pod in ${JSON.stringify(o.computeNamespace)}`,
    );
  }
  const ours = pods.every((p) =>
    caller.userId !== undefined
      ? p.startingUserId === caller.userId
      : p.startingUsername === caller.username
  );
  if (!ours) {
    throw new AppError(
      "forbidden",
      `Run ${JSON.stringify(runId)} was not started by ${JSON.stringify(caller.username)}`,
    );
  }
  const serviceAccount = { namespace: o.computeNamespace, name: expected! };
  if (pods.some((p) => p.serviceAccountName !== undefined && p.serviceAccountName !== expected)) {
    throw new AppError(
      "forbidden",
      `Run ${JSON.stringify(runId)} does not run as service account ${JSON.stringify(expected)}`,
    );
  }
  return {
    serviceAccount,
    subject: subjectFor(o.format, serviceAccount),
    runId,
    proof: "run-lookup",
  };
}
