/** The Kubernetes API's failures as AppErrors, described in RBAC's terms: `get configmaps "x" in "ns"`. */

import { AppError, type ErrorCode } from "../lib/errors.ts";

/** A non-2xx answer of the Kubernetes API, with its HTTP status and `Status.reason`. */
export class KubeApiError extends AppError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly status: number,
    readonly reason: string | undefined,
    details: Readonly<Record<string, unknown>> = {},
  ) {
    super(code, message, { ...details, status, reason });
  }
}

/** A 409 from the API: `Conflict` (stale resourceVersion) or `AlreadyExists`; read again and retry. */
export class KubeConflictError extends KubeApiError {}

// What a request is about, for error messages in RBAC's terms: `get configmaps "x" in "ns"`.
export interface Target {
  readonly verb: "get" | "create" | "update" | "list" | "watch" | "delete";
  readonly resource: string;
  readonly namespace: string;
  readonly name?: string;
}

export function describe(t: Target): string {
  const name = t.name === undefined ? "" : ` ${JSON.stringify(t.name)}`;
  return `${t.verb} ${t.resource}${name} in ${JSON.stringify(t.namespace)}`;
}

// A failed call's `Status` body carries the reason; its message stays in the details (the log),
// since it can name the server's own service account.
export function statusError(target: Target, status: number, body: unknown): KubeApiError {
  const s = typeof body === "object" && body !== null ? body as Record<string, unknown> : {};
  const reason = typeof s.reason === "string" ? s.reason : undefined;
  const details = {
    resource: target.resource,
    namespace: target.namespace,
    ...(target.name === undefined ? {} : { name: target.name }),
    ...(typeof s.message === "string" ? { kubeMessage: s.message } : {}),
  };
  const what = describe(target);
  const kind = reason ? ` (${reason})` : "";
  if (status === 409) {
    const why = reason === "AlreadyExists" ? "it already exists" : "it was changed meanwhile";
    return new KubeConflictError("conflict", `Cannot ${what}: ${why}`, status, reason, details);
  }
  if (status === 401) {
    return new KubeApiError(
      "upstream_error",
      `Kubernetes API rejected the service account token to ${what}`,
      status,
      reason,
      details,
    );
  }
  if (status === 403) {
    return new KubeApiError(
      "upstream_error",
      `Kubernetes API denied ${what}`,
      status,
      reason,
      details,
    );
  }
  if (status === 404) {
    return new KubeApiError("not_found", `Cannot ${what}: not found`, status, reason, details);
  }
  if (status === 400 || status === 422) {
    // Most likely the data itself, e.g. a ConfigMap over its 1 MiB limit.
    const message = typeof s.message === "string" ? `: ${s.message}` : "";
    return new KubeApiError(
      "bad_request",
      `Kubernetes API refused to ${what}${message}`,
      status,
      reason,
      details,
    );
  }
  if (status === 429) {
    return new KubeApiError(
      "unavailable",
      `Kubernetes API is throttling; cannot ${what} now`,
      status,
      reason,
      details,
    );
  }
  return new KubeApiError(
    "upstream_error",
    `Kubernetes API failed to ${what}: HTTP ${status}${kind}`,
    status,
    reason,
    details,
  );
}
