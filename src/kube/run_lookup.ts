/** Finds a run's pods by their execution-id label, with one label-selector query. */

import { DNS_1123_LABEL } from "../core/kube_names.ts";
import { coalesce } from "../lib/coalesce.ts";
import { AppError } from "../lib/errors.ts";
import type { KubeClient, KubePod } from "./client.ts";

/** The labels of a run's pod that prove whose run it is. */
export interface RunPod {
  readonly name: string;
  readonly serviceAccountName?: string;
  readonly startingUserId?: string;
  readonly startingUsername?: string;
  readonly phase?: string;
}

/** Looks up pods in the compute namespace: a run's, or every run pod that runs as a service account. */
export interface RunLookup {
  /** The pods labelled with the run id (`dominodatalab.com/execution-id`). */
  findRunPods(runId: string): Promise<readonly RunPod[]>;
  /** The run pods (any run) whose `spec.serviceAccountName` is `name`. */
  findPodsRunningAs(name: string): Promise<readonly RunPod[]>;
}

/** Options of {@link createRunLookup}. */
export interface RunLookupOptions {
  /** Where run pods live; default `domino-compute`. */
  readonly namespace?: string;
}

/** The label that carries a pod's run id. */
export const EXECUTION_ID_LABEL = "dominodatalab.com/execution-id";
const STARTING_USER_ID_LABEL = "dominodatalab.com/starting-user-id";
const STARTING_USERNAME_LABEL = "dominodatalab.com/starting-user-username";

// A run id goes into a label selector: anything but a plain label value could add or change
// requirements (`x,foo!=bar`), so only lowercase letters, digits and inner dashes pass.
const RUN_ID = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Run ids in one list call at most: the selector stays a few KiB. */
const RUNS_PER_LIST = 100;

/**
 * A {@link RunLookup} that lists the pods labelled with the run id in the compute namespace.
 * Lookups that arrive while a list is in flight go together into the next one, as
 * `execution-id in (a,b,...)`, so a burst of starts costs a few lists, not one each; every list
 * is sent after each lookup it answers was asked, so no answer is older than its question.
 */
export function createRunLookup(
  kube: Pick<KubeClient, "listPods">,
  options: RunLookupOptions = {},
): RunLookup {
  const namespace = options.namespace ?? "domino-compute";

  const list = async (runIds: readonly string[]) => {
    const selector = runIds.length === 1
      ? `${EXECUTION_ID_LABEL}=${runIds[0]}`
      : `${EXECUTION_ID_LABEL} in (${runIds.join(",")})`;
    const byRun = new Map<string, RunPod[]>(runIds.map((id) => [id, []]));
    for (const pod of await kube.listPods(namespace, selector)) {
      byRun.get(pod.metadata.labels?.[EXECUTION_ID_LABEL] ?? "")?.push(toRunPod(pod));
    }
    return byRun;
  };
  const lookup = coalesce(async (runIds: readonly string[]) => {
    const unique = [...new Set(runIds)];
    const lists = await Promise.all(
      Array.from(
        { length: Math.ceil(unique.length / RUNS_PER_LIST) },
        (_, i) => list(unique.slice(i * RUNS_PER_LIST, (i + 1) * RUNS_PER_LIST)),
      ),
    );
    const byRun = new Map(lists.flatMap((m) => [...m]));
    return runIds.map((id) => byRun.get(id)!);
  });

  return {
    findRunPods(runId: string): Promise<readonly RunPod[]> {
      if (!RUN_ID.test(runId)) {
        return Promise.reject(
          new AppError(
            "bad_request",
            `Invalid run id ${JSON.stringify(runId)}: expected lowercase letters, digits and "-"`,
          ),
        );
      }
      return lookup(runId);
    },
    async findPodsRunningAs(name: string): Promise<readonly RunPod[]> {
      if (!DNS_1123_LABEL.test(name)) {
        throw new AppError(
          "bad_request",
          `Invalid service account name ${JSON.stringify(name)}: expected a DNS-1123 label`,
        );
      }
      const pods = await kube.listPods(
        namespace,
        EXECUTION_ID_LABEL,
        `spec.serviceAccountName=${name}`,
      );
      return pods.map(toRunPod);
    },
  };
}

function toRunPod(pod: KubePod): RunPod {
  const labels = pod.metadata.labels ?? {};
  const label = (key: string) => Object.hasOwn(labels, key) ? labels[key] : undefined;
  const fields: Record<string, string | undefined> = {
    serviceAccountName: pod.spec?.serviceAccountName,
    startingUserId: label(STARTING_USER_ID_LABEL),
    startingUsername: label(STARTING_USERNAME_LABEL),
    phase: pod.status?.phase,
  };
  // Absent fields are left out rather than set to undefined.
  return {
    name: pod.metadata.name,
    ...Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)),
  };
}
