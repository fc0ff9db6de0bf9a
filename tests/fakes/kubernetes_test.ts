// The Kubernetes fake's own contract: the answers the real API server gives for the calls irsa makes.

import assert from "node:assert/strict";
import { type FakeKubernetes, startFakeKubernetes } from "./kubernetes.ts";

const NS = "domino-field";
const CM = `/api/v1/namespaces/${NS}/configmaps`;
const LEASES = `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases`;

async function withFake(fn: (fake: FakeKubernetes, call: Call) => Promise<void>): Promise<void> {
  const fake = await startFakeKubernetes();
  const call: Call = async (method, path, body, token = fake.token) => {
    const response = await fetch(fake.url + path, {
      method,
      headers: {
        ...(token ? { Authorization: `Bearer ${token}` } : {}),
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.status, body: await response.json() };
  };
  try {
    await fn(fake, call);
  } finally {
    await fake.close();
  }
}

type Call = (
  method: string,
  path: string,
  body?: unknown,
  token?: string,
) => Promise<{ status: number; body: Body }>;

// Bodies are read field by field in asserts, where a failing read is itself a failed test.
// deno-lint-ignore no-explicit-any
type Body = Record<string, any>;

const configMap = (name: string, data: Record<string, string>, resourceVersion?: string) => ({
  apiVersion: "v1",
  kind: "ConfigMap",
  metadata: { name, ...(resourceVersion ? { resourceVersion } : {}) },
  data,
});

Deno.test("fake kubernetes: requests without the token get a 401 Status, and the log never holds a token", async () => {
  await withFake(async (fake, call) => {
    const none = await call("GET", `${CM}/x`, undefined, "");
    assert.equal(none.status, 401);
    assert.deepEqual(none.body, {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: "Unauthorized",
      reason: "Unauthorized",
      code: 401,
    });
    assert.equal((await call("GET", `${CM}/x`, undefined, "wrong")).status, 401);
    assert.equal((await call("GET", `${CM}/x`)).status, 404);

    fake.setToken("rotated");
    assert.equal((await call("GET", `${CM}/x`, undefined, "fake-kubernetes-token")).status, 401);
    assert.equal((await call("GET", `${CM}/x`, undefined, "rotated")).status, 404);

    assert.deepEqual(fake.requests.map((r) => r.status), [401, 401, 404, 401, 404]);
    const log = JSON.stringify(fake.requests);
    assert.ok(!log.includes("fake-kubernetes-token") && !log.includes("rotated"));
  });
});

Deno.test("fake kubernetes: a missing ConfigMap is a 404 NotFound Status", async () => {
  await withFake(async (_fake, call) => {
    const got = await call("GET", `${CM}/domino-org-iamrole-mapping`);
    assert.equal(got.status, 404);
    assert.deepEqual(got.body, {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: 'configmaps "domino-org-iamrole-mapping" not found',
      reason: "NotFound",
      details: { name: "domino-org-iamrole-mapping", kind: "configmaps" },
      code: 404,
    });
    const unknown = await call("GET", `/api/v1/namespaces/${NS}/secrets/x`);
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.message, "the server could not find the requested resource");
  });
});

Deno.test("fake kubernetes: ConfigMap create, AlreadyExists, update and stale-version Conflict", async () => {
  await withFake(async (fake, call) => {
    const created = await call("POST", CM, configMap("m", { a: "1" }));
    assert.equal(created.status, 201);
    assert.equal(created.body.kind, "ConfigMap");
    assert.equal(created.body.metadata.namespace, NS);
    assert.match(created.body.metadata.uid, /^[0-9a-f-]{36}$/);
    assert.match(created.body.metadata.creationTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const v1 = created.body.metadata.resourceVersion as string;

    const again = await call("POST", CM, configMap("m", { a: "2" }));
    assert.equal(again.status, 409);
    assert.equal(again.body.reason, "AlreadyExists");
    assert.equal(again.body.message, 'configmaps "m" already exists');

    const updated = await call("PUT", `${CM}/m`, configMap("m", { a: "2" }, v1));
    assert.equal(updated.status, 200);
    const v2 = updated.body.metadata.resourceVersion as string;
    assert.ok(Number(v2) > Number(v1));
    assert.equal(updated.body.metadata.uid, created.body.metadata.uid);

    const stale = await call("PUT", `${CM}/m`, configMap("m", { a: "3" }, v1));
    assert.equal(stale.status, 409);
    assert.deepEqual(stale.body, {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message:
        'Operation cannot be fulfilled on configmaps "m": the object has been modified; please apply your changes to the latest version and try again',
      reason: "Conflict",
      details: { name: "m", kind: "configmaps" },
      code: 409,
    });
    assert.deepEqual(fake.configMap(NS, "m"), { data: { a: "2" }, resourceVersion: v2 });

    // ConfigMaps allow an unconditional update; an update that changes nothing keeps the version.
    const unconditional = await call("PUT", `${CM}/m`, configMap("m", { a: "4" }));
    assert.equal(unconditional.status, 200);
    const v3 = unconditional.body.metadata.resourceVersion as string;
    const same = await call("PUT", `${CM}/m`, configMap("m", { a: "4" }, v3));
    assert.equal(same.body.metadata.resourceVersion, v3);

    const fetched = await call("GET", `${CM}/m`);
    assert.deepEqual(fetched.body.data, { a: "4" });
    assert.equal(fetched.body.metadata.resourceVersion, v3);
  });
});

Deno.test("fake kubernetes: ConfigMap updates of a missing object, a wrong name or bad data are refused", async () => {
  await withFake(async (_fake, call) => {
    const missing = await call("PUT", `${CM}/gone`, configMap("gone", {}, "1"));
    assert.equal(missing.status, 404);
    assert.equal(missing.body.reason, "NotFound");

    await call("POST", CM, configMap("m", {}));
    const renamed = await call("PUT", `${CM}/m`, configMap("other", {}));
    assert.equal(renamed.status, 400);
    assert.equal(renamed.body.reason, "BadRequest");

    const badKey = await call("POST", CM, configMap("n", { "not a key": "x" }));
    assert.equal(badKey.status, 422);
    assert.equal(badKey.body.reason, "Invalid");
    assert.match(badKey.body.message, /^ConfigMap "n" is invalid: data\[not a key\]/);

    const tooBig = await call("POST", CM, configMap("big", { k: "x".repeat(1024 * 1024) }));
    assert.equal(tooBig.status, 422);
    assert.match(tooBig.body.message, /Too long: must have at most 1048576 bytes/);

    const notString = await call("POST", CM, { metadata: { name: "n" }, data: { k: 1 } });
    assert.equal(notString.status, 400);

    const otherNs = await call("POST", CM, { metadata: { name: "n", namespace: "elsewhere" } });
    assert.equal(otherNs.status, 400);
  });
});

Deno.test("fake kubernetes: every write bumps one counter shared by all resources", async () => {
  await withFake(async (fake, call) => {
    const versions: number[] = [];
    versions.push(Number(fake.setConfigMap(NS, "a", {})));
    versions.push(
      Number((await call("POST", CM, configMap("b", {}))).body.metadata.resourceVersion),
    );
    const lease = await call("POST", LEASES, { metadata: { name: "l" }, spec: {} });
    versions.push(Number(lease.body.metadata.resourceVersion));
    versions.push(Number(fake.setConfigMap(NS, "a", { x: "1" })));
    assert.deepEqual(versions, [...versions].sort((x, y) => x - y));
    assert.equal(new Set(versions).size, versions.length);
  });
});

Deno.test("fake kubernetes: Leases need a resourceVersion to update, create on update, and honour delete preconditions", async () => {
  await withFake(async (fake, call) => {
    const body = (holder: string, resourceVersion?: string) => ({
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: { name: "irsa-leader", ...(resourceVersion ? { resourceVersion } : {}) },
      spec: { holderIdentity: holder, leaseDurationSeconds: 15 },
    });
    const created = await call("POST", LEASES, body("a"));
    assert.equal(created.status, 201);
    assert.equal(created.body.apiVersion, "coordination.k8s.io/v1");
    const v1 = created.body.metadata.resourceVersion as string;

    const missing = await call("GET", `${LEASES}/nope`);
    assert.equal(missing.status, 404);
    assert.equal(missing.body.message, 'leases.coordination.k8s.io "nope" not found');
    assert.deepEqual(missing.body.details, {
      name: "nope",
      group: "coordination.k8s.io",
      kind: "leases",
    });

    const unconditional = await call("PUT", `${LEASES}/irsa-leader`, body("b"));
    assert.equal(unconditional.status, 422);
    assert.equal(unconditional.body.reason, "Invalid");

    const renewed = await call("PUT", `${LEASES}/irsa-leader`, body("b", v1));
    assert.equal(renewed.status, 200);
    const v2 = renewed.body.metadata.resourceVersion as string;

    const stale = await call("PUT", `${LEASES}/irsa-leader`, body("c", v1));
    assert.equal(stale.status, 409);
    assert.equal(
      stale.body.message,
      'Operation cannot be fulfilled on leases.coordination.k8s.io "irsa-leader": the object has been modified; please apply your changes to the latest version and try again',
    );
    assert.equal(
      (fake.lease(NS, "irsa-leader")?.spec as Record<string, unknown>).holderIdentity,
      "b",
    );

    const badDuration = await call("PUT", `${LEASES}/irsa-leader`, {
      ...body("b", v2),
      spec: { leaseDurationSeconds: 0 },
    });
    assert.equal(badDuration.status, 422);

    const upsert = await call("PUT", `${LEASES}/other`, {
      ...body("z"),
      metadata: { name: "other" },
    });
    assert.equal(upsert.status, 201);

    const staleDelete = await call("DELETE", `${LEASES}/irsa-leader`, {
      preconditions: { resourceVersion: v1 },
    });
    assert.equal(staleDelete.status, 409);
    assert.equal(staleDelete.body.reason, "Conflict");

    const deleted = await call("DELETE", `${LEASES}/irsa-leader`, {
      preconditions: { resourceVersion: v2 },
    });
    assert.equal(deleted.status, 200);
    assert.equal(deleted.body.status, "Success");
    assert.equal(deleted.body.details.kind, "leases");
    assert.equal((await call("GET", `${LEASES}/irsa-leader`)).status, 404);

    // Leases live in their API group only.
    assert.equal((await call("GET", `/api/v1/namespaces/${NS}/leases/other`)).status, 404);
  });
});

Deno.test("fake kubernetes: pods are listed by label selector, per namespace, without item kinds", async () => {
  await withFake(async (fake, call) => {
    const pod = (name: string, labels: Record<string, string>) => ({
      metadata: { name, labels },
      spec: { serviceAccountName: "sa" },
      status: { phase: "Running" },
    });
    fake.addPod("domino-compute", pod("a", { run: "1", tier: "x" }));
    fake.addPod("domino-compute", pod("b", { run: "2" }));
    fake.addPod("other", pod("c", { run: "1" }));
    const names = async (selector: string) => {
      const q = new URLSearchParams({ labelSelector: selector });
      const got = await call("GET", `/api/v1/namespaces/domino-compute/pods?${q}`);
      assert.equal(got.status, 200, JSON.stringify(got.body));
      return (got.body.items as { metadata: { name: string } }[]).map((p) => p.metadata.name);
    };
    assert.deepEqual(await names("run=1"), ["a"]);
    assert.deepEqual(await names("run==2"), ["b"]);
    assert.deepEqual(await names("run in (1, 2)"), ["a", "b"]);
    assert.deepEqual(await names("run notin (1)"), ["b"]);
    assert.deepEqual(await names("run=1,tier=x"), ["a"]);
    assert.deepEqual(await names("tier"), ["a"]);
    assert.deepEqual(await names("!tier"), ["b"]);
    assert.deepEqual(await names("run!=1"), ["b"]);
    assert.deepEqual(await names(""), ["a", "b"]);

    const list = await call("GET", "/api/v1/namespaces/domino-compute/pods?labelSelector=run%3D1");
    assert.equal(list.body.kind, "PodList");
    assert.equal(list.body.items[0].kind, undefined);
    assert.equal(list.body.items[0].metadata.namespace, "domino-compute");
    assert.equal(list.body.items[0].spec.serviceAccountName, "sa");

    const bad = await call(
      "GET",
      `/api/v1/namespaces/domino-compute/pods?${new URLSearchParams({ labelSelector: "run=a b" })}`,
    );
    assert.equal(bad.status, 400);
    assert.equal(bad.body.reason, "BadRequest");
    assert.equal(fake.requests.at(-1)?.query, "labelSelector=run%3Da+b");
  });
});

Deno.test("fake kubernetes: failNext injects real Status failures, then answers normally", async () => {
  await withFake(async (fake, call) => {
    fake.setConfigMap(NS, "m", { a: "1" });
    fake.failNext(2, 500);
    fake.failNext(1, 409, { method: "PUT" });
    const first = await call("GET", `${CM}/m`);
    assert.equal(first.status, 500);
    assert.equal(first.body.reason, "InternalError");
    assert.equal((await call("GET", `${CM}/m`)).status, 500);
    assert.equal((await call("GET", `${CM}/m`)).status, 200);
    const put = await call("PUT", `${CM}/m`, configMap("m", { a: "2" }));
    assert.equal(put.status, 409);
    assert.equal(put.body.reason, "Conflict");
    assert.equal((await call("PUT", `${CM}/m`, configMap("m", { a: "2" }))).status, 200);

    fake.failNext(1, 403);
    const denied = await call("GET", `${CM}/m`);
    assert.equal(denied.status, 403);
    assert.match(
      denied.body.message,
      /^configmaps "m" is forbidden: User ".*" cannot get resource "configmaps"/,
    );
    assert.deepEqual(fake.requests.map((r) => `${r.method} ${r.status}`), [
      "GET 500",
      "GET 500",
      "GET 200",
      "PUT 409",
      "PUT 200",
      "GET 403",
    ]);
  });
});
