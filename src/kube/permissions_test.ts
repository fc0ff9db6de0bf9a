import assert from "node:assert/strict";
import { AppError } from "../lib/errors.ts";
import { type Fields, silentLogger } from "../lib/log.ts";
import { sharedKubeApiServer } from "../../tests/fixtures/kube_apiserver.ts";
import { createKubeClient } from "./client.ts";
import { checkPermissions, describeAction, requiredPermissions } from "./permissions.ts";

const USE = {
  fieldNamespace: "f",
  computeNamespace: "c",
  mappingConfigMap: "m",
  grantConfigMap: "g",
  serviceAccounts: false,
};

Deno.test("requiredPermissions: the ConfigMap by name only with the ConfigMap store; the grant record, Leases and pods always; ServiceAccounts with per-user service accounts", () => {
  assert.deepEqual(requiredPermissions(USE).map(describeAction), [
    'get configmaps "m" in "f"',
    'update configmaps "m" in "f"',
    'get configmaps "g" in "f"',
    'update configmaps "g" in "f"',
    'get leases.coordination.k8s.io in "f"',
    'create leases.coordination.k8s.io in "f"',
    'update leases.coordination.k8s.io in "f"',
    'list pods in "c"',
    'watch pods in "c"',
  ]);
  const { mappingConfigMap: _, ...fileStore } = USE;
  assert.deepEqual(
    requiredPermissions(fileStore).map((a) => a.resource),
    ["configmaps", "configmaps", "leases", "leases", "leases", "pods", "pods"],
  );
  assert.deepEqual(
    requiredPermissions({ ...USE, serviceAccounts: true }).slice(-3).map(describeAction),
    [
      'get serviceaccounts in "c"',
      'create serviceaccounts in "c"',
      'delete serviceaccounts in "c"',
    ],
  );
});

Deno.test("checkPermissions: the API server's answers for a Role missing rules name each missing one", async () => {
  const cluster = await sharedKubeApiServer();
  const field = await cluster.createNamespace("field");
  const compute = await cluster.createNamespace("compute");
  await cluster.createServiceAccount(field, "irsa");
  const subject = { namespace: field, serviceAccount: "irsa" };
  // Everything but the ConfigMap update and the pod list and watch.
  await cluster.bindRole(field, "irsa", subject, [
    { apiGroups: [""], resources: ["configmaps"], resourceNames: ["m"], verbs: ["get"] },
    { apiGroups: [""], resources: ["configmaps"], resourceNames: ["g"], verbs: ["get", "update"] },
    {
      apiGroups: ["coordination.k8s.io"],
      resources: ["leases"],
      verbs: ["get", "create", "update"],
    },
  ]);
  const token = await cluster.tokenRequest(field, "irsa", { audience: cluster.issuer });
  const kube = createKubeClient({
    apiUrl: cluster.url,
    token: () => token,
    caCert: cluster.caCert,
  });
  const use = {
    fieldNamespace: field,
    computeNamespace: compute,
    mappingConfigMap: "m",
    grantConfigMap: "g",
    serviceAccounts: false,
  };
  try {
    await assert.rejects(checkPermissions(kube, requiredPermissions(use), silentLogger), (e) => {
      assert.ok(e instanceof AppError);
      assert.equal(e.code, "forbidden");
      assert.equal(
        e.message,
        `Cannot start: the Kubernetes service account may not update configmaps "m" in "${field}", ` +
          `list pods in "${compute}", watch pods in "${compute}"; grant them in its Role (the chart's rbac.yaml does)`,
      );
      return true;
    });
    await cluster.bindRole(compute, "irsa", subject, [
      { apiGroups: [""], resources: ["pods"], verbs: ["list", "watch"] },
    ]);
    await cluster.bindRole(field, "irsa-update", subject, [
      { apiGroups: [""], resources: ["configmaps"], resourceNames: ["m"], verbs: ["update"] },
    ]);
    await checkPermissions(kube, requiredPermissions(use), silentLogger);
  } finally {
    kube.close();
  }
});

Deno.test("checkPermissions: an API it cannot reach is a warning, not a failed start", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const kube = createKubeClient({ apiUrl: `http://127.0.0.1:${port}`, timeoutMs: 1_000 });
  const warnings: [string, Fields | undefined][] = [];
  const logger = {
    ...silentLogger,
    warn: (msg: string, fields?: Fields) => warnings.push([msg, fields]),
  };
  await checkPermissions(kube, requiredPermissions(USE), logger);
  assert.deepEqual(warnings.map(([msg]) => msg), [
    "cannot check the Kubernetes permissions at start",
  ]);
});
