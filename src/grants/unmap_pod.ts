/**
 * Unmapping a pod, when its sidecar stops: the subject leaves every proxy role irsa has ever edited
 * and every managed role the mappings name, not only the caller's (mappings may have changed, or
 * been deleted, since the start); the grant record then forgets what was taken off.
 */

import { type ProvenPod, provePod } from "../auth/ownership.ts";
import type { Caller } from "../auth/caller.ts";
import type { Revocation } from "../core/grants.ts";
import { proxyRolesOf, unmanagedRolesOf } from "../core/mapping.ts";
import type { RoleOutcome } from "../trust/trust_editor.ts";
import type { ServerDeps } from "./deps.ts";
import { readMappings } from "./mappings.ts";
import { recordRevoked } from "./revocation.ts";

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
  const snapshot = await readMappings(deps);
  const unmanaged = new Set(unmanagedRolesOf(snapshot.mappings));
  const record = await deps.grants.read();
  const proxies = [...new Set([...record.roles, ...proxyRolesOf(snapshot.mappings)])].sort()
    .filter((role) => !unmanaged.has(role));
  const audit = { user: caller.username, run: pod.runId, requestId: request.requestId };
  const outcomes = await Promise.all(
    proxies.map((arn) => deps.editor.edit(arn, { remove: pod.subject }, audit)),
  );
  const done: Revocation[] = [];
  outcomes.forEach((o, i) => {
    if (o.status === "removed") deps.metrics.revokedSubjects.inc({ reason: "stop" });
    if (o.status !== "failed") {
      done.push({ role: proxies[i], subject: pod.subject, reason: "stop" });
    }
  });
  await recordRevoked(deps.grants, done);
  return { pod, outcomes };
}
