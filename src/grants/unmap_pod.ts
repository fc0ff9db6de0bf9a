/**
 * Unmapping a pod, when its sidecar stops: once the pod is proven the caller's, its subject leaves
 * every role that may hold it (see clear_subject.ts).
 */

import { type ProvenPod, provePod } from "../auth/ownership.ts";
import type { Caller } from "../auth/caller.ts";
import type { RoleOutcome } from "../trust/trust_editor.ts";
import { clearSubject } from "./clear_subject.ts";
import type { ServerDeps } from "./deps.ts";

/** A stop as the route parsed it. */
export interface UnmapRequest {
  readonly caller: Caller;
  readonly runId?: string;
  readonly workloadToken?: string;
  readonly requestId: string;
}

/** Takes the pod's subject off every role; answers each role's outcome. */
export async function unmapPod(
  deps: ServerDeps,
  request: UnmapRequest,
): Promise<{ pod: ProvenPod; outcomes: RoleOutcome[] }> {
  const { caller } = request;
  const pod = await provePod(caller, request.runId, request.workloadToken, deps);
  const audit = { user: caller.username, run: pod.runId, requestId: request.requestId };
  return { pod, outcomes: await clearSubject(deps, pod.subject, "stop", audit) };
}
