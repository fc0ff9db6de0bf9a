/** A minimal Kubernetes API client over fetch: the ConfigMap, pod, Lease and access-review calls irsa makes, errors as AppError. */

import * as v from "valibot";
import { AppError } from "../lib/errors.ts";
import { describe, KubeApiError, statusError, type Target } from "./errors.ts";
import { jsonLines } from "./json_lines.ts";
import {
  AccessReviewWire,
  configMapBody,
  ConfigMapWire,
  leaseBody,
  LeaseWire,
  PodEventWire,
  PodListWire,
  PodWire,
  type Resource,
  resourcePath,
  ServiceAccountWire,
  toLease,
  toPod,
  toServiceAccount,
  toSnapshot,
} from "./wire.ts";

export { KubeApiError, KubeConflictError } from "./errors.ts";
export type { ConfigMapSnapshot, KubePod, KubeServiceAccount, Lease } from "./wire.ts";
import type { ConfigMapSnapshot, KubePod, KubeServiceAccount, Lease } from "./wire.ts";

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
  listPods(namespace: string, labelSelector: string, fieldSelector?: string): Promise<KubePod[]>;
  /** The pods of a label selector and the resourceVersion the list was read at, to watch from. */
  listPodsAt(
    namespace: string,
    labelSelector: string,
  ): Promise<{ pods: KubePod[]; resourceVersion: string }>;
  /**
   * The changes to those pods after `resourceVersion`, with bookmarks, until the server ends the
   * watch (a few minutes) or `signal` aborts; an `ERROR` with code 410 means: list again.
   */
  watchPods(
    namespace: string,
    labelSelector: string,
    resourceVersion: string,
    signal: AbortSignal,
  ): AsyncIterable<PodEvent>;
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

/** A pod watch's event: a pod added, changed or deleted, a bookmark, or the server's error. */
export type PodEvent =
  | {
    readonly type: "ADDED" | "MODIFIED" | "DELETED";
    readonly pod: KubePod;
    readonly resourceVersion?: string;
  }
  | { readonly type: "BOOKMARK"; readonly resourceVersion?: string }
  | { readonly type: "ERROR"; readonly code?: number; readonly message?: string };

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

/** Creates a client for one API server. Call `close()` when done if a `caCert` was given. */
export function createKubeClient(options: KubeClientOptions): KubeClient {
  const apiUrl = options.apiUrl.replace(/\/+$/, "");
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const httpClient = options.caCert === undefined
    ? undefined
    : Deno.createHttpClient({ caCerts: [options.caCert] });

  async function requestHeaders(): Promise<Headers> {
    const headers = new Headers({ Accept: "application/json", "User-Agent": "irsa" });
    if (!options.token) return headers;
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
    return headers;
  }

  async function call(
    target: Target,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; json: unknown }> {
    const headers = await requestHeaders();
    if (body !== undefined) headers.set("Content-Type", "application/json");

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

  // A read that answers undefined when the object is not there.
  async function orAbsent<T>(read: Promise<T>): Promise<T | undefined> {
    try {
      return await read;
    } catch (error) {
      if (error instanceof KubeApiError && error.status === 404) return undefined;
      throw error;
    }
  }

  // One object of a resource: read, converted, undefined when it is not there.
  const get = <T>(
    target: Target & { resource: Resource; name: string },
    convert: (json: unknown) => T,
  ) =>
    orAbsent(
      call(target, "GET", resourcePath(target.resource, target.namespace, target.name))
        .then(({ json }) => convert(json)),
    );
  const snapshot = (target: Target) => (json: unknown) =>
    toSnapshot(parse(ConfigMapWire, json, target));
  const lease = (target: Target) => (json: unknown) => toLease(parse(LeaseWire, json, target));
  const account = (target: Target) => (json: unknown) =>
    toServiceAccount(parse(ServiceAccountWire, json, target));

  return {
    getConfigMap(namespace, name) {
      const target = { verb: "get", resource: "configmaps", namespace, name } as const;
      return get(target, snapshot(target));
    },

    async createConfigMap(namespace, name, data) {
      const target: Target = { verb: "create", resource: "configmaps", namespace, name };
      const path = resourcePath("configmaps", namespace);
      const { json } = await call(target, "POST", path, configMapBody(namespace, name, data));
      return snapshot(target)(json);
    },

    async replaceConfigMap(namespace, name, data, resourceVersion, metadata) {
      const target: Target = { verb: "update", resource: "configmaps", namespace, name };
      const body = configMapBody(namespace, name, data, resourceVersion, metadata);
      const { json } = await call(target, "PUT", resourcePath("configmaps", namespace, name), body);
      return snapshot(target)(json);
    },

    async listPods(namespace, labelSelector, fieldSelector) {
      const target: Target = { verb: "list", resource: "pods", namespace };
      const query = new URLSearchParams({
        labelSelector,
        ...(fieldSelector === undefined ? {} : { fieldSelector }),
      });
      const { json } = await call(target, "GET", `${resourcePath("pods", namespace)}?${query}`);
      return (parse(PodListWire, json, target).items ?? []).map(toPod);
    },

    async listPodsAt(namespace, labelSelector) {
      const target: Target = { verb: "list", resource: "pods", namespace };
      const query = new URLSearchParams({ labelSelector });
      const { json } = await call(target, "GET", `${resourcePath("pods", namespace)}?${query}`);
      const list = parse(PodListWire, json, target);
      return {
        pods: (list.items ?? []).map(toPod),
        resourceVersion: list.metadata?.resourceVersion ?? "",
      };
    },

    async *watchPods(namespace, labelSelector, resourceVersion, signal) {
      const target: Target = { verb: "watch", resource: "pods", namespace };
      const query = new URLSearchParams({
        labelSelector,
        watch: "1",
        resourceVersion,
        allowWatchBookmarks: "true",
        // The server ends each watch after this long; the caller watches again from where it was.
        timeoutSeconds: "300",
      });
      const response = await fetch(`${apiUrl}${resourcePath("pods", namespace)}?${query}`, {
        headers: await requestHeaders(),
        signal,
        ...(httpClient ? { client: httpClient } : {}),
      }).catch((error) => {
        throw new AppError(
          "unavailable",
          `Cannot reach the Kubernetes API to ${describe(target)}: ${(error as Error).message}`,
          { apiUrl },
        );
      });
      if (!response.ok || response.body === null) {
        const body = await response.json().catch(() => undefined);
        throw statusError(target, response.status, body);
      }
      for await (const line of jsonLines(response.body, signal)) {
        const e = parse(PodEventWire, line, target);
        const rv = e.object.metadata?.resourceVersion;
        if (e.type === "ERROR") {
          yield { type: "ERROR", code: e.object.code, message: e.object.message };
        } else if (e.type === "BOOKMARK") yield { type: "BOOKMARK", resourceVersion: rv };
        else {yield {
            type: e.type,
            pod: toPod(parse(PodWire, e.object, target)),
            resourceVersion: rv,
          };}
      }
    },

    getLease(namespace, name) {
      const target = { verb: "get", resource: "leases", namespace, name } as const;
      return get(target, lease(target));
    },

    async createLease(namespace, l) {
      const target: Target = { verb: "create", resource: "leases", namespace, name: l.name };
      const path = resourcePath("leases", namespace);
      const { json } = await call(target, "POST", path, leaseBody(namespace, l));
      return lease(target)(json);
    },

    async replaceLease(namespace, l) {
      const target: Target = { verb: "update", resource: "leases", namespace, name: l.name };
      const path = resourcePath("leases", namespace, l.name);
      const { json } = await call(target, "PUT", path, leaseBody(namespace, l));
      return lease(target)(json);
    },

    getServiceAccount(namespace, name) {
      const target = { verb: "get", resource: "serviceaccounts", namespace, name } as const;
      return get(target, account(target));
    },

    async createServiceAccount(namespace, name, labels) {
      const target: Target = { verb: "create", resource: "serviceaccounts", namespace, name };
      const { json } = await call(target, "POST", resourcePath("serviceaccounts", namespace), {
        apiVersion: "v1",
        kind: "ServiceAccount",
        metadata: { name, namespace, labels },
      });
      return account(target)(json);
    },

    async deleteServiceAccount(namespace, name, uid) {
      const target: Target = { verb: "delete", resource: "serviceaccounts", namespace, name };
      const deleted = await orAbsent(
        call(target, "DELETE", resourcePath("serviceaccounts", namespace, name), {
          apiVersion: "v1",
          kind: "DeleteOptions",
          preconditions: { uid },
        }),
      );
      return deleted !== undefined;
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
}
