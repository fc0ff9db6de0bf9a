/** Proof that a pod belongs to the caller: its service-account token, or a run lookup in Kubernetes. */

import type { RunLookup, RunPod } from "../kube/run_lookup.ts";
import type { Caller, WorkloadVerifier } from "./caller.ts";
import {
  runServiceAccountName,
  type ServiceAccount,
  subjectFor,
  type SubjectFormat,
} from "../core/subject.ts";
import { judgeAccount, type UserServiceAccounts } from "../core/user_accounts.ts";
import { AppError } from "../lib/errors.ts";

/** Settings of the proof. */
export interface OwnershipOptions {
  readonly computeNamespace: string;
  readonly runIdPattern: RegExp;
  readonly userBasedServiceAccounts: boolean;
  /**
   * With per-user service accounts, the platform's user mappings: a pod's account is granted only
   * when it is the one they give the caller (see src/core/user_accounts.ts).
   */
  readonly userServiceAccounts: UserServiceAccounts;
  readonly format: SubjectFormat;
  /**
   * Without a run lookup, accept a pod's token alone as proof that the pod is the caller's (an
   * admin's opt-in: whoever holds a pod's token may then add that pod to their own roles).
   */
  readonly trustPodTokenAlone: boolean;
}

/** What was proven: the service account, its trust-policy subject and, when known, the run. */
export interface ProvenPod {
  readonly serviceAccount: ServiceAccount;
  readonly subject: string;
  readonly runId?: string;
  readonly proof: "workload-token" | "run-lookup";
}

// A pod that has ended proves nothing about a run that may be using its name now.
const LIVE_PHASES = new Set(["Pending", "Running"]);

// A service account every pod without its own gets: granting it would grant every such pod.
const SHARED_SERVICE_ACCOUNTS = new Set(["default"]);

/**
 * The run's live pods, checked to be the caller's: every one must carry the caller as its starting
 * user. Throws 403 when there is none or one is someone else's, with the same message for both.
 */
async function callersRunPods(
  caller: Caller,
  runId: string,
  runs: RunLookup,
  o: OwnershipOptions,
): Promise<readonly RunPod[]> {
  const pods = (await runs.findRunPods(runId)).filter((p) =>
    p.phase === undefined || LIVE_PHASES.has(p.phase)
  );
  const ours = pods.length > 0 && pods.every((p) => startedBy(caller, p));
  if (!ours) {
    // One answer for a run that does not exist and a run that is someone else's, so that no
    // caller learns which runs are live, or whose; the log tells them apart.
    throw new AppError(
      "forbidden",
      `Run ${JSON.stringify(runId)} has no live pod started by ${
        JSON.stringify(caller.username)
      } in ${JSON.stringify(o.computeNamespace)}`,
      { live_pods: pods.length },
    );
  }
  return pods;
}

/**
 * Refuses a per-user service account that live pods of another user run as: its subject would
 * carry this caller's roles to their pods, and this caller's syncs and stop would take theirs.
 */
async function checkOnlyCallersPods(
  caller: Caller,
  name: string,
  runs: RunLookup,
): Promise<void> {
  const others = (await runs.findPodsRunningAs(name)).filter((p) =>
    (p.phase === undefined || LIVE_PHASES.has(p.phase)) && !startedBy(caller, p)
  );
  if (others.length > 0) {
    throw new AppError(
      "forbidden",
      `Service account ${
        JSON.stringify(name)
      } is not yours alone: live pods of another user run as it, so irsa grants no roles to it`,
      { other_pods: others.length },
    );
  }
}

/** Whether the platform labelled `pod` as started by `caller` (by id when the caller has one). */
function startedBy(caller: Caller, pod: RunPod): boolean {
  return caller.userId !== undefined
    ? pod.startingUserId === caller.userId
    : pod.startingUsername === caller.username;
}

/** Refuses a per-user service account that is not one: empty, or shared by unmapped pods. */
function checkPerUserName(name: string, where: string): void {
  if (SHARED_SERVICE_ACCOUNTS.has(name)) {
    throw new AppError(
      "forbidden",
      `${where} runs as service account ${
        JSON.stringify(name)
      }, which every pod without its own shares; irsa grants roles to per-user service accounts only`,
    );
  }
}

/**
 * Refuses a per-user service account that is not the caller's: not the one the platform's mutation
 * gives the caller (the user mappings' entry, else the account named as the caller), or one the
 * mappings give to other users too. Whether another user has live pods on it right now does not
 * matter: the subject would outlive them, and the caller's syncs and stop would edit theirs.
 */
function checkCallersAccount(caller: Caller, name: string, o: OwnershipOptions): void {
  const verdict = judgeAccount(caller.username, name, o.userServiceAccounts);
  if (verdict.ok) return;
  const account = JSON.stringify(name);
  const user = JSON.stringify(caller.username);
  const fix =
    "If it is theirs, an admin maps the user to it in the chart's userbasedserviceaccounts.user_mappings (the server's --user-service-accounts / IRSA_USER_SERVICE_ACCOUNTS), which the platform's mutation reads too";
  if (verdict.rule === "shared") {
    throw new AppError(
      "forbidden",
      `Service account ${account} is not ${user}'s alone: the user mappings give it to ${verdict.otherUsers} other user(s) too, so irsa grants no roles to it. An admin gives each user an account of their own in userbasedserviceaccounts.user_mappings (--user-service-accounts)`,
      { other_users: verdict.otherUsers },
    );
  }
  throw new AppError(
    "forbidden",
    `Service account ${account} is not ${user}'s: the platform runs ${user}'s pods as ${
      JSON.stringify(verdict.expected)
    } (the user mappings' entry for the user, else the account named as the user), so irsa grants no roles to ${account}. ${fix}`,
    { expected: verdict.expected },
  );
}

/**
 * Proves that the caller's pod is the one to map, and finds its subject in the pod itself: the
 * `sub` of its verified service-account token, or the `spec.serviceAccountName` of the run's pods
 * (never derived from the user name: with per-user service accounts the platform's mutation may
 * choose any name; that name must then be the one the user mappings give the caller, and no live
 * pod of another user may run as it). A token proves which pod calls, not whose it is: with a run lookup, the run's
 * live pods must carry the caller as starting user and one of them must be the token's pod (and,
 * with run service accounts, the token's `run-<id>` must agree with `run_id`); without one, the
 * token alone is accepted only when the admin opted in (`trustPodTokenAlone`). Without a token,
 * the run's live pods must carry the caller as starting user. Anything else is 403: a `run_id`
 * alone proves nothing.
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
  const runAccount = runId === undefined ? undefined : runServiceAccountName(runId, o.runIdPattern);

  if (workloadToken !== undefined) {
    if (!deps.workloads) {
      throw new AppError("forbidden", "This server does not accept workload tokens");
    }
    const { serviceAccount, podName } = await deps.workloads.verify(workloadToken);
    if (serviceAccount.namespace !== o.computeNamespace) {
      throw new AppError(
        "forbidden",
        `Workload token is for namespace ${JSON.stringify(serviceAccount.namespace)}, not ${
          JSON.stringify(o.computeNamespace)
        }`,
      );
    }
    if (o.userBasedServiceAccounts) checkPerUserName(serviceAccount.name, "The token's pod");
    else {
      const m = /^run-(.+)$/.exec(serviceAccount.name);
      if (!m || !o.runIdPattern.test(m[1])) {
        throw new AppError(
          "forbidden",
          `Workload token is for service account ${
            JSON.stringify(serviceAccount.name)
          }, which is not a run's`,
        );
      }
      if (runAccount !== undefined && serviceAccount.name !== runAccount) {
        throw new AppError(
          "forbidden",
          `Workload token is for ${JSON.stringify(serviceAccount.name)}, but run_id names ${
            JSON.stringify(runAccount)
          }`,
        );
      }
      runId = m[1];
    }
    // The token proves which pod calls; the run's pods prove it is the caller's.
    if (deps.runs) {
      if (runId === undefined) {
        throw new AppError(
          "bad_request",
          'Missing "run_id": with per-user service accounts it names the run whose pod sent the token',
        );
      }
      const pods = await callersRunPods(caller, runId, deps.runs, o);
      const match = pods.some((p) =>
        p.serviceAccountName === serviceAccount.name &&
        (podName === undefined || p.name === podName)
      );
      if (!match) {
        throw new AppError(
          "forbidden",
          `Workload token is for service account ${JSON.stringify(serviceAccount.name)}${
            podName === undefined ? "" : ` (pod ${JSON.stringify(podName)})`
          }, which no live pod of run ${JSON.stringify(runId)} runs as`,
        );
      }
      if (o.userBasedServiceAccounts) {
        checkCallersAccount(caller, serviceAccount.name, o);
        await checkOnlyCallersPods(caller, serviceAccount.name, deps.runs);
      }
    } else if (!o.trustPodTokenAlone) {
      throw new AppError(
        "forbidden",
        "Cannot prove the pod is yours: this server has no Kubernetes API to check the run's starting user, and does not accept a pod token alone (--trust-pod-token-alone)",
      );
    } else if (o.userBasedServiceAccounts) {
      // The token alone: its account must still be the one the platform gives the caller.
      checkCallersAccount(caller, serviceAccount.name, o);
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
  const pods = await callersRunPods(caller, runId, deps.runs, o);
  const names = [...new Set(pods.map((p) => p.serviceAccountName))];
  if (names.length !== 1 || names[0] === undefined) {
    throw new AppError(
      "forbidden",
      `Run ${JSON.stringify(runId)} has no single service account: its live pods run as ${
        names.map((n) => JSON.stringify(n ?? "(none)")).join(", ")
      }`,
    );
  }
  const name = names[0];
  if (o.userBasedServiceAccounts) {
    checkPerUserName(name, `Run ${JSON.stringify(runId)}`);
    checkCallersAccount(caller, name, o);
    await checkOnlyCallersPods(caller, name, deps.runs);
  } else if (name !== runAccount) {
    throw new AppError(
      "forbidden",
      `Run ${JSON.stringify(runId)} does not run as service account ${JSON.stringify(runAccount)}`,
    );
  }
  const serviceAccount = { namespace: o.computeNamespace, name };
  return {
    serviceAccount,
    subject: subjectFor(o.format, serviceAccount),
    runId,
    proof: "run-lookup",
  };
}
