// Test fake: a Kubernetes API server for ConfigMaps, pods and Leases, answering like the real one.
//
// What it models, as kube-apiserver does it: one global resourceVersion counter bumped by every
// write that changes an object (an update that changes nothing keeps its version, as etcd3's
// GuaranteedUpdate does); optimistic concurrency on PUT (a stale `metadata.resourceVersion` is a
// 409 Conflict); POST of an existing name is a 409 AlreadyExists; ConfigMaps allow an update
// without a resourceVersion but no create-on-update, Leases the opposite (their registry
// strategies); DELETE with `preconditions`; label selectors on lists; `Status` bodies for every
// failure; bearer-token authentication (401). Every namespace exists. Not modelled: watches,
// field selectors, patches, generateName, finalizers, managedFields.

/** One request the fake answered; the token is never kept. */
export interface FakeKubeRequest {
  readonly method: string;
  readonly path: string;
  /** The raw query string without `?`, e.g. `labelSelector=app%3Dx`. */
  readonly query: string;
  readonly status: number;
}

/** A pod to add; the fake fills `metadata.namespace`, `uid`, `resourceVersion` and the rest. */
export interface FakePodInput {
  metadata: { name: string; labels?: Record<string, string>; [key: string]: unknown };
  spec?: { serviceAccountName?: string; [key: string]: unknown };
  status?: { phase?: string; [key: string]: unknown };
}

/** Which requests {@link FakeKubernetes.failNext} applies to; all when omitted. */
export interface FailMatch {
  method?: string;
  /** A path prefix, or a pattern tested against the path. */
  path?: string | RegExp;
}

/** A running fake API server. */
export interface FakeKubernetes {
  /** `http(s)://127.0.0.1:<port>`, the `apiUrl` of a client. */
  readonly url: string;
  /** The bearer token it accepts. */
  readonly token: string;
  /** Every request so far, in order of arrival. */
  readonly requests: readonly FakeKubeRequest[];
  /** Replaces the accepted token, as a rotation would. */
  setToken(token: string): void;
  /** Adds (or replaces) a pod in a namespace. */
  addPod(namespace: string, pod: FakePodInput): void;
  /** Creates or replaces a ConfigMap's data without validation; returns its new resourceVersion. */
  setConfigMap(namespace: string, name: string, data: Record<string, string>): string;
  /** A copy of a ConfigMap's data and resourceVersion, or undefined. */
  configMap(
    namespace: string,
    name: string,
  ): { data: Record<string, string>; resourceVersion: string } | undefined;
  /** A copy of a Lease as the API would return it, or undefined. */
  lease(namespace: string, name: string): Record<string, unknown> | undefined;
  /** The next `n` requests (matching `match`) fail with `status` and its real `Status` body. */
  failNext(n: number, status: number, match?: FailMatch): void;
  /** Forgets the request log. */
  clearRequests(): void;
  /** Stops the server and waits for it. Safe to call twice. */
  close(): Promise<void>;
}

/** Options of {@link startFakeKubernetes}. */
export interface FakeKubernetesOptions {
  /** Serve HTTPS with this PEM pair (see `makeTestTls`). */
  tls?: { cert: string; key: string };
  /** The accepted bearer token; default `fake-kubernetes-token`. */
  token?: string;
  /** Clock for `creationTimestamp`; defaults to `Date.now`. */
  now?: () => number;
}

type Json = Record<string, unknown>;

interface ResourceDef {
  readonly plural: string;
  readonly group: string;
  readonly kind: string;
  /** `configmaps`, `leases.coordination.k8s.io`: how messages name the resource. */
  readonly qualified: string;
  readonly allowCreateOnUpdate: boolean;
  readonly allowUnconditionalUpdate: boolean;
  /** Field errors, as `[field, message]`; a decode error is thrown as a 400 instead. */
  validate(obj: Json): [string, string][];
}

const CONFIG_KEY = /^[-._a-zA-Z0-9]+$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const MAX_CONFIGMAP_BYTES = 1024 * 1024;

const CONFIGMAPS: ResourceDef = {
  plural: "configmaps",
  group: "",
  kind: "ConfigMap",
  qualified: "configmaps",
  allowCreateOnUpdate: false,
  allowUnconditionalUpdate: true,
  validate(obj) {
    const errors: [string, string][] = [];
    let size = 0;
    for (const field of ["data", "binaryData"]) {
      const map = obj[field];
      if (map === undefined || map === null) continue;
      if (!isObject(map) || Object.values(map).some((x) => typeof x !== "string")) {
        throw new DecodeError(
          `json: cannot unmarshal into Go struct field ConfigMap.${field} of type map[string]string`,
        );
      }
      for (const [key, value] of Object.entries(map)) {
        size += key.length + new TextEncoder().encode(value as string).length;
        if (!CONFIG_KEY.test(key) || key.length > 253) {
          errors.push([
            `${field}[${key}]`,
            `Invalid value: ${JSON.stringify(key)}: a valid config key must consist of ` +
            `alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or ` +
            `'key-name', regex used for validation is '[-._a-zA-Z0-9]+')`,
          ]);
        }
      }
    }
    if (size > MAX_CONFIGMAP_BYTES) {
      errors.push(["[]", `Too long: must have at most ${MAX_CONFIGMAP_BYTES} bytes`]);
    }
    return errors;
  },
};

const LEASES: ResourceDef = {
  plural: "leases",
  group: "coordination.k8s.io",
  kind: "Lease",
  qualified: "leases.coordination.k8s.io",
  allowCreateOnUpdate: true,
  allowUnconditionalUpdate: false,
  validate(obj) {
    const errors: [string, string][] = [];
    const spec = obj.spec;
    if (spec === undefined || spec === null) return errors;
    if (!isObject(spec)) {
      throw new DecodeError(
        "json: cannot unmarshal into Go struct field Lease.spec of type v1.LeaseSpec",
      );
    }
    const duration = spec.leaseDurationSeconds;
    if (duration !== undefined && duration !== null) {
      if (!Number.isInteger(duration)) {
        throw new DecodeError(
          "json: cannot unmarshal into Go struct field LeaseSpec.spec.leaseDurationSeconds of type int32",
        );
      }
      if ((duration as number) <= 0) {
        errors.push([
          "spec.leaseDurationSeconds",
          `Invalid value: ${duration}: must be greater than 0`,
        ]);
      }
    }
    const transitions = spec.leaseTransitions;
    if (transitions !== undefined && transitions !== null) {
      if (!Number.isInteger(transitions)) {
        throw new DecodeError(
          "json: cannot unmarshal into Go struct field LeaseSpec.spec.leaseTransitions of type int32",
        );
      }
      if ((transitions as number) < 0) {
        errors.push([
          "spec.leaseTransitions",
          `Invalid value: ${transitions}: must be greater than or equal to 0`,
        ]);
      }
    }
    return errors;
  },
};

const PODS = { plural: "pods", group: "", kind: "Pod", qualified: "pods" } as const;

class DecodeError extends Error {}

// `/api/v1/namespaces/<ns>/<plural>[/<name>]` and the same under `/apis/<group>/v1`.
const ROUTE =
  /^\/(?:api\/v1|apis\/coordination\.k8s\.io\/v1)\/namespaces\/([^/]+)\/([^/]+)(?:\/([^/]+))?\/?$/;

/** Starts the fake on 127.0.0.1 on a free port. Call `close()` when done. */
export function startFakeKubernetes(opts: FakeKubernetesOptions = {}): Promise<FakeKubernetes> {
  const now = opts.now ?? Date.now;
  let token = opts.token ?? "fake-kubernetes-token";
  let revision = 0;
  const requests: FakeKubeRequest[] = [];
  const failures: { remaining: number; status: number; match?: FailMatch }[] = [];
  // resource plural -> "<namespace>/<name>" -> stored object (always with kind and apiVersion).
  const objects = new Map<string, Map<string, Json>>(
    ["configmaps", "leases", "pods"].map((p) => [p, new Map()]),
  );
  const key = (namespace: string, name: string) => `${namespace}/${name}`;
  const nextVersion = () => String(++revision);
  const timestamp = () => new Date(now()).toISOString().replace(/\.\d+Z$/, "Z");

  const newMetadata = (namespace: string, name: string, from: Json) => ({
    ...pick(from, ["labels", "annotations"]),
    name,
    namespace,
    uid: crypto.randomUUID(),
    resourceVersion: nextVersion(),
    creationTimestamp: timestamp(),
  });

  const apiVersionOf = (def: { group: string }) => def.group ? `${def.group}/v1` : "v1";

  function handle(request: Request, url: URL): Response | Promise<Response> {
    const auth = request.headers.get("authorization");
    if (auth !== `Bearer ${token}`) {
      return status(401, "Unauthorized", "Unauthorized");
    }
    const failure = failures.find((f) =>
      f.remaining > 0 && matches(f.match, request.method, url.pathname)
    );
    if (failure) {
      failure.remaining--;
      return injected(failure.status, request.method, url.pathname);
    }

    const route = ROUTE.exec(url.pathname);
    const apiGroupOk = (plural: string) =>
      url.pathname.startsWith(plural === "leases" ? "/apis/coordination.k8s.io/v1/" : "/api/v1/");
    if (!route || !objects.has(decodeURIComponent(route[2])) || !apiGroupOk(route[2])) {
      return status(404, "NotFound", "the server could not find the requested resource");
    }
    const namespace = decodeURIComponent(route[1]);
    const plural = decodeURIComponent(route[2]);
    const name = route[3] === undefined ? undefined : decodeURIComponent(route[3]);

    if (plural === "pods") {
      if (request.method !== "GET") return methodNotAllowed();
      if (name !== undefined) return getOne(PODS, namespace, name);
      return list(PODS, namespace, url.searchParams.get("labelSelector") ?? "");
    }
    const def = plural === "leases" ? LEASES : CONFIGMAPS;
    if (name === undefined) {
      if (request.method === "GET") {
        return list(def, namespace, url.searchParams.get("labelSelector") ?? "");
      }
      if (request.method === "POST") {
        return withBody(request, (body) => create(def, namespace, body));
      }
      return methodNotAllowed();
    }
    switch (request.method) {
      case "GET":
        return getOne(def, namespace, name);
      case "PUT":
        return withBody(request, (body) => update(def, namespace, name, body));
      case "DELETE":
        return withBody(request, (body) => remove(def, namespace, name, body), true);
      default:
        return methodNotAllowed();
    }
  }

  function getOne(
    def: { plural: string; qualified: string; group: string },
    namespace: string,
    name: string,
  ) {
    const obj = objects.get(def.plural)!.get(key(namespace, name));
    if (!obj) return notFound(def, name);
    return json(obj, 200);
  }

  function list(
    def: { plural: string; kind: string; group: string },
    namespace: string,
    selector: string,
  ) {
    let requirements: Requirement[];
    try {
      requirements = parseSelector(selector);
    } catch (error) {
      return status(400, "BadRequest", `unable to parse requirement: ${(error as Error).message}`);
    }
    const items = [...objects.get(def.plural)!.values()]
      .filter((obj) => (obj.metadata as Json).namespace === namespace)
      .filter((obj) => selects(requirements, ((obj.metadata as Json).labels ?? {}) as Json))
      .map(({ kind: _kind, apiVersion: _apiVersion, ...rest }) => rest);
    return json({
      kind: `${def.kind}List`,
      apiVersion: apiVersionOf(def),
      metadata: { resourceVersion: String(revision) },
      items,
    }, 200);
  }

  // Checks shared by create and update: kind, namespace, and the resource's own validation.
  function checkBody(
    def: ResourceDef,
    namespace: string,
    name: string,
    body: Json,
  ): Response | undefined {
    if (body.kind !== undefined && body.kind !== def.kind) {
      return status(
        400,
        "BadRequest",
        `${body.kind} in version "v1" cannot be handled as a ${def.kind}: the kind does not match`,
      );
    }
    const metadata = (body.metadata ?? {}) as Json;
    if (metadata.namespace !== undefined && metadata.namespace !== namespace) {
      return status(
        400,
        "BadRequest",
        "the namespace of the provided object does not match the namespace sent on the request",
      );
    }
    const errors: [string, string][] = [];
    if (!name) {
      errors.push(["metadata.name", "Required value: name or generateName is required"]);
    } else if (!DNS_SUBDOMAIN.test(name) || name.length > 253) {
      errors.push([
        "metadata.name",
        `Invalid value: ${JSON.stringify(name)}: a lowercase RFC 1123 subdomain must consist of ` +
        `lower case alphanumeric characters, '-' or '.', and must start and end with an ` +
        `alphanumeric character`,
      ]);
    }
    errors.push(...def.validate(body));
    return errors.length ? invalid(def, name, errors) : undefined;
  }

  function create(def: ResourceDef, namespace: string, body: Json): Response {
    const metadata = (body.metadata ?? {}) as Json;
    const name = typeof metadata.name === "string" ? metadata.name : "";
    const problem = checkBody(def, namespace, name, body);
    if (problem) return problem;
    const store = objects.get(def.plural)!;
    if (store.has(key(namespace, name))) {
      return status(
        409,
        "AlreadyExists",
        `${def.qualified} ${JSON.stringify(name)} already exists`,
        {
          name,
          ...groupOf(def),
          kind: def.plural,
        },
      );
    }
    const obj = {
      kind: def.kind,
      apiVersion: apiVersionOf(def),
      metadata: newMetadata(namespace, name, metadata),
      ...content(body),
    };
    store.set(key(namespace, name), obj);
    return json(obj, 201);
  }

  function update(def: ResourceDef, namespace: string, name: string, body: Json): Response {
    const metadata = (body.metadata ?? {}) as Json;
    if (metadata.name !== undefined && metadata.name !== name) {
      return status(
        400,
        "BadRequest",
        `the name of the object (${metadata.name}) does not match the name on the URL (${name})`,
      );
    }
    const store = objects.get(def.plural)!;
    const existing = store.get(key(namespace, name));
    if (!existing) {
      if (!def.allowCreateOnUpdate) return notFound(def, name);
      // Create-on-update ignores the resourceVersion sent, as the registry's store does.
      return create(def, namespace, { ...body, metadata: { ...metadata, name } });
    }
    const problem = checkBody(def, namespace, name, body);
    if (problem) return problem;
    const existingMeta = existing.metadata as Json;
    const sent = metadata.resourceVersion;
    if (sent === undefined || sent === "") {
      if (!def.allowUnconditionalUpdate) {
        return invalid(def, name, [[
          "metadata.resourceVersion",
          "Invalid value: 0x0: must be specified for an update",
        ]]);
      }
    } else if (sent !== existingMeta.resourceVersion) {
      return conflict(def, name);
    }
    const next = {
      kind: def.kind,
      apiVersion: apiVersionOf(def),
      metadata: {
        ...pick(metadata, ["labels", "annotations"]),
        ...pick(existingMeta, ["name", "namespace", "uid", "creationTimestamp"]),
        resourceVersion: existingMeta.resourceVersion,
      },
      ...content(body),
    };
    // etcd3's GuaranteedUpdate writes nothing, and keeps the version, when nothing changed.
    if (canonical(next) === canonical(existing)) return json(existing, 200);
    (next.metadata as Json).resourceVersion = nextVersion();
    store.set(key(namespace, name), next);
    return json(next, 200);
  }

  function remove(def: ResourceDef, namespace: string, name: string, body: Json): Response {
    const store = objects.get(def.plural)!;
    const existing = store.get(key(namespace, name));
    if (!existing) return notFound(def, name);
    const meta = existing.metadata as Json;
    const pre = isObject(body.preconditions) ? body.preconditions : {};
    if (pre.uid !== undefined && pre.uid !== null && pre.uid !== meta.uid) {
      return status(
        409,
        "Conflict",
        `Operation cannot be fulfilled on ${def.qualified} ${JSON.stringify(name)}: ` +
          `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${meta.uid}`,
        { name, ...groupOf(def), kind: def.plural },
      );
    }
    if (
      pre.resourceVersion !== undefined && pre.resourceVersion !== null &&
      pre.resourceVersion !== meta.resourceVersion
    ) {
      return status(
        409,
        "Conflict",
        `Operation cannot be fulfilled on ${def.qualified} ${JSON.stringify(name)}: ` +
          `the ResourceVersion in the precondition (${pre.resourceVersion}) does not match the ` +
          `ResourceVersion in record (${meta.resourceVersion}). The object might have been modified`,
        { name, ...groupOf(def), kind: def.plural },
      );
    }
    store.delete(key(namespace, name));
    nextVersion();
    return json({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Success",
      details: { name, ...groupOf(def), kind: def.plural, uid: meta.uid },
    }, 200);
  }

  async function withBody(
    request: Request,
    then: (body: Json) => Response,
    optional = false,
  ): Promise<Response> {
    const text = await request.text();
    if (optional && text.trim() === "") return then({});
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (error) {
      return status(
        400,
        "BadRequest",
        `couldn't get version/kind; json parse error: ${(error as Error).message}`,
      );
    }
    if (!isObject(body) || (body.metadata !== undefined && !isObject(body.metadata))) {
      return status(400, "BadRequest", "json: cannot unmarshal into Go value of type struct");
    }
    try {
      return then(body);
    } catch (error) {
      if (error instanceof DecodeError) return status(400, "BadRequest", error.message);
      throw error;
    }
  }

  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: () => {}, // the default prints a line into test output
    ...(opts.tls ?? {}),
  }, async (request) => {
    const url = new URL(request.url);
    const response = await handle(request, url);
    // Unread bodies of refused requests are drained so the connection stays usable.
    if (!request.bodyUsed && request.body) await request.body.cancel();
    requests.push({
      method: request.method,
      path: url.pathname,
      query: url.search.replace(/^\?/, ""),
      status: response.status,
    });
    return response;
  });

  let closed: Promise<void> | undefined;
  const fake: FakeKubernetes = {
    url: `${opts.tls ? "https" : "http"}://127.0.0.1:${server.addr.port}`,
    get token() {
      return token;
    },
    requests,
    setToken(next) {
      token = next;
    },
    addPod(namespace, pod) {
      const name = pod.metadata.name;
      objects.get("pods")!.set(key(namespace, name), {
        kind: "Pod",
        apiVersion: "v1",
        ...structuredClone(pod),
        metadata: {
          ...structuredClone(pod.metadata),
          ...newMetadata(namespace, name, pod.metadata),
        },
      });
    },
    setConfigMap(namespace, name, data) {
      const store = objects.get("configmaps")!;
      const existing = store.get(key(namespace, name));
      const metadata = existing
        ? { ...(existing.metadata as Json), resourceVersion: nextVersion() }
        : newMetadata(namespace, name, {});
      store.set(key(namespace, name), {
        kind: "ConfigMap",
        apiVersion: "v1",
        metadata,
        data: { ...data },
      });
      return metadata.resourceVersion as string;
    },
    configMap(namespace, name) {
      const obj = objects.get("configmaps")!.get(key(namespace, name));
      if (!obj) return undefined;
      return {
        data: structuredClone((obj.data ?? {}) as Record<string, string>),
        resourceVersion: (obj.metadata as Json).resourceVersion as string,
      };
    },
    lease(namespace, name) {
      const obj = objects.get("leases")!.get(key(namespace, name));
      return obj && structuredClone(obj);
    },
    failNext(n, statusCode, match) {
      failures.push({ remaining: n, status: statusCode, match });
    },
    clearRequests() {
      requests.length = 0;
    },
    close() {
      closed ??= server.shutdown().then(() => server.finished);
      return closed;
    },
  };
  return Promise.resolve(fake);
}

// The fields of an object that are its content, not its identity or type.
function content(body: Json): Json {
  const { kind: _kind, apiVersion: _apiVersion, metadata: _metadata, status: _status, ...rest } =
    body;
  return structuredClone(rest);
}

function pick(from: Json, keys: string[]): Json {
  return Object.fromEntries(
    keys.filter((k) => from[k] !== undefined && from[k] !== null).map((k) => [k, from[k]]),
  );
}

function isObject(x: unknown): x is Json {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function groupOf(def: { group: string }): Json {
  return def.group ? { group: def.group } : {};
}

function canonical(x: unknown): string {
  return JSON.stringify(
    x,
    (_k, value) =>
      isObject(value)
        ? Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
        : value,
  );
}

function matches(match: FailMatch | undefined, method: string, path: string): boolean {
  if (!match) return true;
  if (match.method !== undefined && match.method.toUpperCase() !== method) return false;
  if (typeof match.path === "string") return path.startsWith(match.path);
  if (match.path instanceof RegExp) return match.path.test(path);
  return true;
}

function json(body: unknown, code: number, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status: code,
    headers: { "Content-Type": "application/json", ...headers },
  });
}

function status(
  code: number,
  reason: string,
  message: string,
  details?: Json,
  headers?: Record<string, string>,
) {
  return json(
    {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message,
      reason,
      ...(details ? { details } : {}),
      code,
    },
    code,
    headers,
  );
}

function notFound(def: { qualified: string; plural: string; group: string }, name: string) {
  return status(404, "NotFound", `${def.qualified} ${JSON.stringify(name)} not found`, {
    name,
    ...groupOf(def),
    kind: def.plural,
  });
}

function conflict(def: { qualified: string; plural: string; group: string }, name: string) {
  return status(
    409,
    "Conflict",
    `Operation cannot be fulfilled on ${def.qualified} ${JSON.stringify(name)}: the object has ` +
      `been modified; please apply your changes to the latest version and try again`,
    { name, ...groupOf(def), kind: def.plural },
  );
}

function invalid(def: ResourceDef, name: string, errors: [string, string][]) {
  const kind = def.group ? `${def.kind}.${def.group}` : def.kind;
  const list = errors.map(([field, message]) => `${field}: ${message}`);
  return status(
    422,
    "Invalid",
    `${kind} ${JSON.stringify(name)} is invalid: ` +
      (list.length === 1 ? list[0] : `[${list.join(", ")}]`),
    {
      name,
      ...groupOf(def),
      kind: def.kind,
      causes: errors.map(([field, message]) => ({
        reason: message.startsWith("Required") ? "FieldValueRequired" : "FieldValueInvalid",
        message,
        field,
      })),
    },
  );
}

function methodNotAllowed() {
  return status(
    405,
    "MethodNotAllowed",
    "the server does not allow this method on the requested resource",
    {},
  );
}

// The answer to an injected failure: the body the real server sends with that status.
function injected(code: number, method: string, path: string): Response {
  const route = ROUTE.exec(path);
  const plural = route ? decodeURIComponent(route[2]) : "";
  const name = route?.[3] === undefined ? "" : decodeURIComponent(route[3]);
  const def = plural === "leases" ? LEASES : plural === "pods" ? PODS : CONFIGMAPS;
  const verb =
    ({ GET: name ? "get" : "list", POST: "create", PUT: "update", DELETE: "delete" } as Record<
      string,
      string
    >)[method] ?? method.toLowerCase();
  switch (code) {
    case 401:
      return status(401, "Unauthorized", "Unauthorized");
    case 403:
      return status(
        403,
        "Forbidden",
        `${def.qualified}${name ? ` ${JSON.stringify(name)}` : ""} is forbidden: User ` +
          `"system:serviceaccount:domino-field:irsa" cannot ${verb} resource "${def.plural}" in ` +
          `API group "${def.group}" in the namespace "${
            route ? decodeURIComponent(route[1]) : ""
          }"`,
        { ...(name ? { name } : {}), ...groupOf(def), kind: def.plural },
      );
    case 404:
      return notFound(def, name);
    case 409:
      return conflict(def, name);
    case 429:
      return status(429, "TooManyRequests", "Too many requests, please try again later.", {
        retryAfterSeconds: 1,
      }, { "Retry-After": "1" });
    case 500:
      return status(500, "InternalError", "Internal error occurred: injected by the fake", {
        causes: [{ message: "injected by the fake" }],
      });
    case 503:
      return status(
        503,
        "ServiceUnavailable",
        "the server is currently unable to handle the request",
      );
    case 504:
      return status(
        504,
        "Timeout",
        "the server was unable to return a response in the time allotted",
      );
    default:
      return status(code, "Unknown", `injected HTTP ${code}`);
  }
}

interface Requirement {
  readonly key: string;
  readonly op: "=" | "!=" | "in" | "notin" | "exists" | "!";
  readonly values: readonly string[];
}

// A label selector, as labels.Parse reads one: requirements split by commas outside parentheses.
function parseSelector(selector: string): Requirement[] {
  const parts: string[] = [];
  let depth = 0;
  let current = "";
  for (const ch of selector) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      parts.push(current);
      current = "";
    } else {
      current += ch;
    }
  }
  parts.push(current);
  if (parts.length === 1 && parts[0].trim() === "") return [];
  return parts.map(parseRequirement);
}

function parseRequirement(text: string): Requirement {
  let m = /^\s*!\s*([^\s=!(),]+)\s*$/.exec(text);
  if (m) return { key: checkKey(m[1]), op: "!", values: [] };
  m = /^\s*([^\s=!(),]+)\s*(==|=|!=)\s*([^\s=!(),]*)\s*$/.exec(text);
  if (m) {
    return {
      key: checkKey(m[1]),
      op: m[2] === "!=" ? "!=" : "=",
      values: [checkValue(m[1], m[3])],
    };
  }
  m = /^\s*([^\s=!(),]+)\s+(in|notin)\s*\(([^()]*)\)\s*$/.exec(text);
  if (m) {
    const values = m[3].split(",").map((x) => checkValue(m![1], x.trim()));
    return { key: checkKey(m[1]), op: m[2] as "in" | "notin", values };
  }
  m = /^\s*([^\s=!(),]+)\s*$/.exec(text);
  if (m) return { key: checkKey(m[1]), op: "exists", values: [] };
  throw new Error(`found '${text.trim()}', expected: identifier or operator`);
}

function checkKey(key: string): string {
  const slash = key.indexOf("/");
  const prefix = slash < 0 ? undefined : key.slice(0, slash);
  const name = slash < 0 ? key : key.slice(slash + 1);
  const ok = (prefix === undefined || (DNS_SUBDOMAIN.test(prefix) && prefix.length <= 253)) &&
    LABEL_NAME.test(name) && name.length <= 63;
  if (!ok) {
    throw new Error(
      `key: Invalid value: ${JSON.stringify(key)}: name part must consist of alphanumeric ` +
        `characters, '-', '_' or '.', and must start and end with an alphanumeric character`,
    );
  }
  return key;
}

function checkValue(key: string, value: string): string {
  if (!LABEL_VALUE.test(value) || value.length > 63) {
    throw new Error(
      `values[0][${key}]: Invalid value: ${JSON.stringify(value)}: a valid label must be an ` +
        `empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and ` +
        `end with an alphanumeric character`,
    );
  }
  return value;
}

function selects(requirements: readonly Requirement[], labels: Json): boolean {
  return requirements.every(({ key, op, values }) => {
    const has = Object.hasOwn(labels, key);
    const value = has ? String(labels[key]) : undefined;
    switch (op) {
      case "=":
        return has && value === values[0];
      case "!=":
        return !has || value !== values[0];
      case "in":
        return has && values.includes(value!);
      case "notin":
        return !has || !values.includes(value!);
      case "exists":
        return has;
      case "!":
        return !has;
    }
  });
}
