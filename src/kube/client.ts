/** A minimal Kubernetes API client over fetch: the ConfigMap, pod, Lease and access-review calls irsa makes, errors as AppError. */

import * as v from "valibot";
import { AppError, type ErrorCode } from "../lib/errors.ts";

/** A ConfigMap's string data, labels and annotations, and the resourceVersion it was read at. */
export interface ConfigMapSnapshot {
  readonly data: Readonly<Record<string, string>>;
  readonly resourceVersion: string;
  /** Kept so that a replace sends them back: a PUT without them would delete them. */
  readonly labels?: Readonly<Record<string, string>>;
  /** Kept likewise; Helm's ownership and `helm.sh/resource-policy: keep` live here. */
  readonly annotations?: Readonly<Record<string, string>>;
}

/** The fields of a pod irsa reads; everything else the API sends is dropped. */
export interface KubePod {
  readonly metadata: {
    readonly name: string;
    readonly namespace?: string;
    readonly labels?: Readonly<Record<string, string>>;
  };
  readonly spec?: { readonly serviceAccountName?: string };
  readonly status?: { readonly phase?: string };
}

/** A Lease's fields that irsa uses; times are RFC 3339 MicroTime strings. */
export interface Lease {
  readonly name: string;
  readonly resourceVersion?: string;
  readonly annotations?: Readonly<Record<string, string>>;
  readonly holderIdentity?: string;
  readonly leaseDurationSeconds?: number;
  readonly acquireTime?: string;
  readonly renewTime?: string;
}

/** A ServiceAccount's identity and labels. */
export interface KubeServiceAccount {
  readonly name: string;
  readonly uid: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** The Kubernetes calls irsa makes; stores and lookups take the subset they use. */
export interface KubeClient {
  /** A ConfigMap, or undefined when it does not exist. */
  getConfigMap(namespace: string, name: string): Promise<ConfigMapSnapshot | undefined>;
  /** Creates a ConfigMap; throws {@link KubeConflictError} (reason `AlreadyExists`) if it exists. */
  createConfigMap(
    namespace: string,
    name: string,
    data: Readonly<Record<string, string>>,
  ): Promise<ConfigMapSnapshot>;
  /**
   * Replaces a ConfigMap's data if it is still at `resourceVersion`; throws
   * {@link KubeConflictError} (reason `Conflict`) when another writer got there first. A PUT
   * replaces the whole object: pass the labels and annotations read (Helm's ownership and keep
   * policy live there), or they are dropped.
   */
  replaceConfigMap(
    namespace: string,
    name: string,
    data: Readonly<Record<string, string>>,
    resourceVersion: string,
    metadata?: Pick<ConfigMapSnapshot, "labels" | "annotations">,
  ): Promise<ConfigMapSnapshot>;
  /** The pods matching a label selector (a selected list, never a full listing). */
  listPods(namespace: string, labelSelector: string): Promise<KubePod[]>;
  /** A `coordination.k8s.io/v1` Lease, or undefined when it does not exist. */
  getLease(namespace: string, name: string): Promise<Lease | undefined>;
  /** Creates a Lease; throws {@link KubeConflictError} (`AlreadyExists`) if another writer made it first. */
  createLease(namespace: string, lease: Lease): Promise<Lease>;
  /** Replaces a Lease at its `resourceVersion`; throws {@link KubeConflictError} (`Conflict`) when stale. */
  replaceLease(namespace: string, lease: Lease): Promise<Lease>;
  /** A ServiceAccount, or undefined when it does not exist. */
  getServiceAccount(namespace: string, name: string): Promise<KubeServiceAccount | undefined>;
  /** Creates a ServiceAccount with labels; throws {@link KubeConflictError} (`AlreadyExists`) if it exists. */
  createServiceAccount(
    namespace: string,
    name: string,
    labels: Readonly<Record<string, string>>,
  ): Promise<KubeServiceAccount>;
  /**
   * Deletes the ServiceAccount with this uid (a precondition: one re-created meanwhile under the
   * same name is left alone, with {@link KubeConflictError}); false when it was already gone.
   */
  deleteServiceAccount(namespace: string, name: string, uid: string): Promise<boolean>;
  /** Whether this client's credentials allow an action, by a `SelfSubjectAccessReview`. */
  canI(action: KubeAction): Promise<boolean>;
  /** Releases the TLS client, if one was made. */
  close(): void;
}

/** An action in RBAC's terms: `update` `configmaps` (group "") named `x` in namespace `ns`. */
export interface KubeAction {
  readonly verb: string;
  /** The API group; "" for the core group. */
  readonly group: string;
  readonly resource: string;
  readonly namespace: string;
  readonly name?: string;
}

/** Options of {@link createKubeClient}. */
export interface KubeClientOptions {
  /** `https://host:port`, without a trailing path. */
  readonly apiUrl: string;
  /** The bearer token, read again for every request: kubelet rotates the projected token file. */
  readonly token?: () => Promise<string> | string;
  /** PEM of the CA that signed the API server's certificate (the pod's `ca.crt`). */
  readonly caCert?: string;
  /** Deadline of one request, from connecting to the end of the body; default 5000 ms. */
  readonly timeoutMs?: number;
}

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

/** Where a pod finds its API server and credentials. */
export interface InClusterKubeConfig {
  readonly apiUrl: string;
  readonly tokenFile: string;
  readonly caFile: string;
  /** Reads the token file again on every call, as {@link KubeClientOptions.token} wants. */
  readonly token: () => Promise<string>;
}

const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
const DEFAULT_TIMEOUT_MS = 5_000;

/**
 * The in-cluster configuration, as client-go's `rest.InClusterConfig` finds it: the API server
 * from `KUBERNETES_SERVICE_HOST`/`_PORT`, the service account's token and CA from their mount.
 * Throws `unavailable` when not running in a pod.
 */
export function inClusterKubeConfig(
  env: (name: string) => string | undefined,
  readFile: (path: string) => Promise<string>,
): InClusterKubeConfig {
  const host = env("KUBERNETES_SERVICE_HOST");
  const port = env("KUBERNETES_SERVICE_PORT");
  if (!host || !port) {
    throw new AppError(
      "unavailable",
      "Cannot find the Kubernetes API: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set (is this running in a pod?)",
    );
  }
  // An IPv6 service address needs brackets in a URL.
  const hostPart = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  const tokenFile = `${SERVICE_ACCOUNT_DIR}/token`;
  return {
    apiUrl: `https://${hostPart}:${port}`,
    tokenFile,
    caFile: `${SERVICE_ACCOUNT_DIR}/ca.crt`,
    token: () => readFile(tokenFile),
  };
}

const StringMap = v.custom<Record<string, string>>(
  (input) =>
    typeof input === "object" && input !== null && !Array.isArray(input) &&
    Object.values(input).every((value) => typeof value === "string"),
  "expected an object of strings",
);

const ConfigMapWire = v.object({
  metadata: v.object({
    resourceVersion: v.string(),
    labels: v.optional(v.nullable(StringMap)),
    annotations: v.optional(v.nullable(StringMap)),
  }),
  data: v.optional(v.nullable(StringMap)),
});

const PodWire = v.object({
  metadata: v.object({
    name: v.string(),
    namespace: v.optional(v.string()),
    labels: v.optional(v.nullable(StringMap)),
  }),
  spec: v.optional(v.object({ serviceAccountName: v.optional(v.string()) })),
  status: v.optional(v.object({ phase: v.optional(v.string()) })),
});

const ServiceAccountWire = v.object({
  metadata: v.object({
    name: v.string(),
    uid: v.string(),
    labels: v.optional(v.nullable(StringMap)),
  }),
});

const PodListWire = v.object({ items: v.nullable(v.array(PodWire)) });

const LeaseWire = v.object({
  metadata: v.object({
    name: v.string(),
    resourceVersion: v.string(),
    annotations: v.optional(v.nullable(StringMap)),
  }),
  spec: v.optional(v.nullable(v.object({
    holderIdentity: v.optional(v.nullable(v.string())),
    leaseDurationSeconds: v.optional(v.nullable(v.number())),
    acquireTime: v.optional(v.nullable(v.string())),
    renewTime: v.optional(v.nullable(v.string())),
  }))),
});

const AccessReviewWire = v.object({
  status: v.optional(v.object({ allowed: v.optional(v.boolean()) })),
});

// What a request is about, for error messages in RBAC's terms: `get configmaps "x" in "ns"`.
interface Target {
  readonly verb: "get" | "create" | "update" | "list" | "delete";
  readonly resource: string;
  readonly namespace: string;
  readonly name?: string;
}

/** Creates a client for one API server. Call `close()` when done if a `caCert` was given. */
export function createKubeClient(options: KubeClientOptions): KubeClient {
  const apiUrl = options.apiUrl.replace(/\/+$/, "");
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const httpClient = options.caCert === undefined
    ? undefined
    : Deno.createHttpClient({ caCerts: [options.caCert] });

  async function call(
    target: Target,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; json: unknown }> {
    const headers = new Headers({ Accept: "application/json", "User-Agent": "irsa" });
    if (body !== undefined) headers.set("Content-Type", "application/json");
    if (options.token) {
      let token: string;
      try {
        token = (await options.token()).trim();
      } catch (error) {
        throw new AppError(
          "unavailable",
          "Cannot read the service account token for the Kubernetes API",
          { error },
        );
      }
      headers.set("Authorization", `Bearer ${token}`);
    }

    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    let response: Response;
    let text: string;
    try {
      response = await fetch(apiUrl + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: controller.signal,
        ...(httpClient ? { client: httpClient } : {}),
      });
      text = await response.text();
    } catch (error) {
      const why = controller.signal.aborted
        ? `no answer within ${timeoutMs} ms`
        : (error as Error).message;
      throw new AppError(
        "unavailable",
        `Cannot reach the Kubernetes API to ${describe(target)}: ${why}`,
        { apiUrl },
      );
    } finally {
      clearTimeout(timer);
    }

    let json: unknown;
    try {
      json = text === "" ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (response.ok) {
      if (json === undefined) {
        throw new AppError(
          "upstream_error",
          `Kubernetes API sent a body that is not JSON to ${describe(target)}`,
          { status: response.status },
        );
      }
      return { status: response.status, json };
    }
    throw statusError(target, response.status, json);
  }

  function parse<S extends v.GenericSchema>(schema: S, json: unknown, target: Target) {
    const result = v.safeParse(schema, json);
    if (!result.success) {
      throw new AppError(
        "upstream_error",
        `Kubernetes API sent an unexpected answer to ${describe(target)}: ${
          v.summarize(result.issues).replaceAll("\n", "; ")
        }`,
      );
    }
    return result.output as v.InferOutput<S>;
  }

  const snapshot = (json: unknown, target: Target): ConfigMapSnapshot => {
    const cm = parse(ConfigMapWire, json, target);
    // Object.fromEntries keeps a key such as "__proto__" as plain data.
    const { labels, annotations } = cm.metadata;
    return {
      data: Object.fromEntries(Object.entries(cm.data ?? {})),
      resourceVersion: cm.metadata.resourceVersion,
      ...(labels ? { labels: Object.fromEntries(Object.entries(labels)) } : {}),
      ...(annotations ? { annotations: Object.fromEntries(Object.entries(annotations)) } : {}),
    };
  };

  const configMapPath = (namespace: string, name?: string) =>
    `/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps` +
    (name === undefined ? "" : `/${encodeURIComponent(name)}`);

  const configMapBody = (
    namespace: string,
    name: string,
    data: Readonly<Record<string, string>>,
    resourceVersion?: string,
    kept: Pick<ConfigMapSnapshot, "labels" | "annotations"> = {},
  ) => ({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name,
      namespace,
      ...(resourceVersion === undefined ? {} : { resourceVersion }),
      ...(kept.labels ? { labels: kept.labels } : {}),
      ...(kept.annotations ? { annotations: kept.annotations } : {}),
    },
    data,
  });

  return {
    async getConfigMap(namespace, name) {
      const target: Target = { verb: "get", resource: "configmaps", namespace, name };
      try {
        const { json } = await call(target, "GET", configMapPath(namespace, name));
        return snapshot(json, target);
      } catch (error) {
        if (error instanceof KubeApiError && error.status === 404) return undefined;
        throw error;
      }
    },

    async createConfigMap(namespace, name, data) {
      const target: Target = { verb: "create", resource: "configmaps", namespace, name };
      const { json } = await call(
        target,
        "POST",
        configMapPath(namespace),
        configMapBody(namespace, name, data),
      );
      return snapshot(json, target);
    },

    async replaceConfigMap(namespace, name, data, resourceVersion, metadata) {
      const target: Target = { verb: "update", resource: "configmaps", namespace, name };
      const { json } = await call(
        target,
        "PUT",
        configMapPath(namespace, name),
        configMapBody(namespace, name, data, resourceVersion, metadata),
      );
      return snapshot(json, target);
    },

    async listPods(namespace, labelSelector) {
      const target: Target = { verb: "list", resource: "pods", namespace };
      const query = new URLSearchParams({ labelSelector });
      const { json } = await call(
        target,
        "GET",
        `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods?${query}`,
      );
      return (parse(PodListWire, json, target).items ?? []).map(toPod);
    },

    async getLease(namespace, name) {
      const target: Target = { verb: "get", resource: "leases", namespace, name };
      try {
        const { json } = await call(target, "GET", leasePath(namespace, name));
        return lease(json, target);
      } catch (error) {
        if (error instanceof KubeApiError && error.status === 404) return undefined;
        throw error;
      }
    },

    async createLease(namespace, l) {
      const target: Target = { verb: "create", resource: "leases", namespace, name: l.name };
      const { json } = await call(target, "POST", leasePath(namespace), leaseBody(namespace, l));
      return lease(json, target);
    },

    async replaceLease(namespace, l) {
      const target: Target = { verb: "update", resource: "leases", namespace, name: l.name };
      const { json } = await call(
        target,
        "PUT",
        leasePath(namespace, l.name),
        leaseBody(namespace, l),
      );
      return lease(json, target);
    },

    async getServiceAccount(namespace, name) {
      const target: Target = { verb: "get", resource: "serviceaccounts", namespace, name };
      try {
        const { json } = await call(target, "GET", serviceAccountPath(namespace, name));
        return serviceAccount(json, target);
      } catch (error) {
        if (error instanceof KubeApiError && error.status === 404) return undefined;
        throw error;
      }
    },

    async createServiceAccount(namespace, name, labels) {
      const target: Target = { verb: "create", resource: "serviceaccounts", namespace, name };
      const { json } = await call(target, "POST", serviceAccountPath(namespace), {
        apiVersion: "v1",
        kind: "ServiceAccount",
        metadata: { name, namespace, labels },
      });
      return serviceAccount(json, target);
    },

    async deleteServiceAccount(namespace, name, uid) {
      const target: Target = { verb: "delete", resource: "serviceaccounts", namespace, name };
      try {
        await call(target, "DELETE", serviceAccountPath(namespace, name), {
          apiVersion: "v1",
          kind: "DeleteOptions",
          preconditions: { uid },
        });
        return true;
      } catch (error) {
        if (error instanceof KubeApiError && error.status === 404) return false;
        throw error;
      }
    },

    async canI(action) {
      const target: Target = {
        verb: "create",
        resource: "selfsubjectaccessreviews",
        namespace: action.namespace,
      };
      const { json } = await call(
        target,
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        {
          apiVersion: "authorization.k8s.io/v1",
          kind: "SelfSubjectAccessReview",
          spec: { resourceAttributes: { ...action } },
        },
      );
      return parse(AccessReviewWire, json, target).status?.allowed === true;
    },

    close() {
      httpClient?.close();
    },
  };

  function serviceAccount(json: unknown, target: Target): KubeServiceAccount {
    const w = parse(ServiceAccountWire, json, target);
    return {
      name: w.metadata.name,
      uid: w.metadata.uid,
      labels: Object.fromEntries(Object.entries(w.metadata.labels ?? {})),
    };
  }

  function lease(json: unknown, target: Target): Lease {
    const w = parse(LeaseWire, json, target);
    const spec = w.spec ?? {};
    return {
      name: w.metadata.name,
      resourceVersion: w.metadata.resourceVersion,
      annotations: Object.fromEntries(Object.entries(w.metadata.annotations ?? {})),
      ...(spec.holderIdentity ? { holderIdentity: spec.holderIdentity } : {}),
      ...(spec.leaseDurationSeconds ? { leaseDurationSeconds: spec.leaseDurationSeconds } : {}),
      ...(spec.acquireTime ? { acquireTime: spec.acquireTime } : {}),
      ...(spec.renewTime ? { renewTime: spec.renewTime } : {}),
    };
  }
}

function serviceAccountPath(namespace: string, name?: string): string {
  return `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts` +
    (name === undefined ? "" : `/${encodeURIComponent(name)}`);
}

function leasePath(namespace: string, name?: string): string {
  return `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases` +
    (name === undefined ? "" : `/${encodeURIComponent(name)}`);
}

function leaseBody(namespace: string, l: Lease) {
  return {
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: {
      name: l.name,
      namespace,
      ...(l.resourceVersion === undefined ? {} : { resourceVersion: l.resourceVersion }),
      ...(l.annotations ? { annotations: l.annotations } : {}),
    },
    spec: {
      holderIdentity: l.holderIdentity ?? null,
      leaseDurationSeconds: l.leaseDurationSeconds ?? null,
      acquireTime: l.acquireTime ?? null,
      renewTime: l.renewTime ?? null,
    },
  };
}

function toPod(p: v.InferOutput<typeof PodWire>): KubePod {
  const { labels, ...metadata } = p.metadata;
  return {
    metadata: labels
      ? { ...metadata, labels: Object.fromEntries(Object.entries(labels)) }
      : metadata,
    ...(p.spec ? { spec: p.spec } : {}),
    ...(p.status ? { status: p.status } : {}),
  };
}

function describe(t: Target): string {
  const name = t.name === undefined ? "" : ` ${JSON.stringify(t.name)}`;
  return `${t.verb} ${t.resource}${name} in ${JSON.stringify(t.namespace)}`;
}

// A failed call's `Status` body carries the reason; its message stays in the details (the log),
// since it can name the server's own service account.
function statusError(target: Target, status: number, body: unknown): KubeApiError {
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
