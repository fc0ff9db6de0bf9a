/** The Kubernetes objects irsa reads and writes, as they travel: schemas of answers, bodies of requests, their paths. */

import * as v from "valibot";

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

const StringMap = v.custom<Record<string, string>>(
  (input) =>
    typeof input === "object" && input !== null && !Array.isArray(input) &&
    Object.values(input).every((value) => typeof value === "string"),
  "expected an object of strings",
);

export const ConfigMapWire = v.object({
  metadata: v.object({
    resourceVersion: v.string(),
    labels: v.optional(v.nullable(StringMap)),
    annotations: v.optional(v.nullable(StringMap)),
  }),
  data: v.optional(v.nullable(StringMap)),
});

export const PodWire = v.object({
  metadata: v.object({
    name: v.string(),
    namespace: v.optional(v.string()),
    labels: v.optional(v.nullable(StringMap)),
  }),
  spec: v.optional(v.object({ serviceAccountName: v.optional(v.string()) })),
  status: v.optional(v.object({ phase: v.optional(v.string()) })),
});

export const ServiceAccountWire = v.object({
  metadata: v.object({
    name: v.string(),
    uid: v.string(),
    labels: v.optional(v.nullable(StringMap)),
  }),
});

export const PodListWire = v.object({
  metadata: v.optional(v.object({ resourceVersion: v.optional(v.string()) })),
  items: v.nullable(v.array(PodWire)),
});

/** One line of a pod watch: an event and its object (a pod, a bookmark's metadata, or a Status). */
export const PodEventWire = v.object({
  type: v.picklist(["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]),
  object: v.looseObject({
    metadata: v.optional(v.looseObject({ resourceVersion: v.optional(v.string()) })),
    code: v.optional(v.number()),
    message: v.optional(v.string()),
  }),
});

export const LeaseWire = v.object({
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

export const AccessReviewWire = v.object({
  status: v.optional(v.object({ allowed: v.optional(v.boolean()) })),
});

/** Where each resource irsa uses lives in the API. */
const API_GROUPS = {
  configmaps: "/api/v1",
  pods: "/api/v1",
  serviceaccounts: "/api/v1",
  leases: "/apis/coordination.k8s.io/v1",
} as const;

/** A namespaced resource irsa reads or writes. */
export type Resource = keyof typeof API_GROUPS;

/** The path of a namespaced resource's collection, or of one object in it. */
export function resourcePath(resource: Resource, namespace: string, name?: string): string {
  return `${API_GROUPS[resource]}/namespaces/${encodeURIComponent(namespace)}/${resource}` +
    (name === undefined ? "" : `/${encodeURIComponent(name)}`);
}

/** The body that creates or replaces a Lease. */
export function leaseBody(namespace: string, l: Lease) {
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

/** A pod of a list, its labels as plain data. */
export function toPod(p: v.InferOutput<typeof PodWire>): KubePod {
  const { labels, ...metadata } = p.metadata;
  return {
    metadata: labels
      ? { ...metadata, labels: Object.fromEntries(Object.entries(labels)) }
      : metadata,
    ...(p.spec ? { spec: p.spec } : {}),
    ...(p.status ? { status: p.status } : {}),
  };
}

/** A ConfigMap as read; `Object.fromEntries` keeps a key such as "__proto__" as plain data. */
export function toSnapshot(cm: v.InferOutput<typeof ConfigMapWire>): ConfigMapSnapshot {
  const { labels, annotations } = cm.metadata;
  return {
    data: Object.fromEntries(Object.entries(cm.data ?? {})),
    resourceVersion: cm.metadata.resourceVersion,
    ...(labels ? { labels: Object.fromEntries(Object.entries(labels)) } : {}),
    ...(annotations ? { annotations: Object.fromEntries(Object.entries(annotations)) } : {}),
  };
}

/** The body that creates or replaces a ConfigMap, its labels and annotations kept as read. */
export function configMapBody(
  namespace: string,
  name: string,
  data: Readonly<Record<string, string>>,
  resourceVersion?: string,
  kept: Pick<ConfigMapSnapshot, "labels" | "annotations"> = {},
) {
  return {
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
  };
}

/** A ServiceAccount as read. */
export function toServiceAccount(w: v.InferOutput<typeof ServiceAccountWire>): KubeServiceAccount {
  return {
    name: w.metadata.name,
    uid: w.metadata.uid,
    labels: Object.fromEntries(Object.entries(w.metadata.labels ?? {})),
  };
}

/** A Lease as read. */
export function toLease(w: v.InferOutput<typeof LeaseWire>): Lease {
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
