/** Finds a run's pods by their execution-id label, with one label-selector query. */

import type { RunLookup, RunPod } from "../auth/caller.ts";
import { AppError } from "../errors.ts";
import type { KubeClient, KubePod } from "./client.ts";

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

/** A {@link RunLookup} that lists the pods labelled with the run id in the compute namespace. */
export function createRunLookup(
  kube: Pick<KubeClient, "listPods">,
  options: RunLookupOptions = {},
): RunLookup {
  const namespace = options.namespace ?? "domino-compute";
  return {
    async findRunPods(runId: string): Promise<readonly RunPod[]> {
      if (!RUN_ID.test(runId)) {
        throw new AppError(
          "bad_request",
          `Invalid run id ${JSON.stringify(runId)}: expected lowercase letters, digits and "-"`,
        );
      }
      const pods = await kube.listPods(namespace, `${EXECUTION_ID_LABEL}=${runId}`);
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
