/**
 * The chart on a real API server: `helm install` of deploy/helm/irsa, then the real server runs as
 * the chart's ServiceAccount (a TokenRequest token, the chart's Roles and nothing else) through a
 * mapping write, a start, a refresh, a stop and a cleanup pass. The ServiceAccount may do what those
 * calls need and nothing more; a Role without one of its rules stops the server at start, naming
 * the rule; `helm upgrade` and `helm uninstall` keep the mappings ConfigMap.
 */
import assert from "node:assert/strict";
import { describeAction, requiredPermissions } from "../src/kube/permissions.ts";
import { GRANT_CONFIGMAP } from "../src/store/grant_store.ts";
import { shardName } from "../src/core/grant_shards.ts";
import {
  CHART,
  CHART_NAMESPACES,
  findHelm,
  helm,
  mustHelm,
  prepareForChart,
  REQUIRED_VALUES,
  waitFor,
} from "./fixtures/helm.ts";
import { type KubeApiServer, startKubeApiServer } from "./fixtures/kube_apiserver.ts";
import { EXAMPLE, seedExampleRoles, startMoto } from "./fixtures/moto.ts";
import { startOidcIssuer } from "./fixtures/oidc_issuer.ts";
import { startKubeFaultProxy } from "./kube_fault_proxy.ts";
import { startServerProcess } from "./server_process.ts";
import { heldSubjects, pairJson, serverEnv } from "./world.ts";

const { field, compute } = CHART_NAMESPACES;
const CONFIGMAP = "domino-org-iamrole-mapping";
const FULL_VALUES = `${CHART}/ci/full-values.yaml`;
const RUN = "646d27b817c28b5ea4b5b0c1";
const OTHER_RUN = "646f604955daf764547c5b77";

/** `verb group/resource[/name]` for every rule a service account holds in a namespace. */
async function rulesOf(cluster: KubeApiServer, token: string, namespace: string) {
  const review = await cluster.must(
    "POST",
    "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
    { spec: { namespace } },
    { token },
  );
  const out: string[] = [];
  for (const rule of review.status.resourceRules) {
    for (const group of rule.apiGroups ?? [""]) {
      for (const resource of rule.resources ?? []) {
        for (const verb of rule.verbs) {
          for (const name of rule.resourceNames ?? [undefined]) {
            out.push(`${verb} ${group}/${resource}${name ? `/${name}` : ""}`);
          }
        }
      }
    }
  }
  return out.sort();
}

const asRule = (a: ReturnType<typeof requiredPermissions>[number]) =>
  `${a.verb} ${a.group}/${a.resource}${a.name ? `/${a.name}` : ""}`;

// Helm comes from scripts/check_deploy.sh (as .ci/run runs it); outside CI, without it, the test
// says so and is skipped, in CI it fails.
const noHelm = (await findHelm()) === undefined && Deno.env.get("CI") !== "true";

Deno.test({
  name: noHelm
    ? "the chart on a real API server (skipped: no Helm; run scripts/check_deploy.sh, as .ci/run does)"
    : "the chart on a real API server: the server runs as its ServiceAccount, with only the rights it needs",
  ignore: noHelm,
}, async (t) => {
  const cluster = await startKubeApiServer();
  const moto = await startMoto();
  const iam = moto.iamClient();
  const issuer = await startOidcIssuer();
  // The proxy only watches: every call the server makes is logged with the API server's answer.
  const kube = startKubeFaultProxy(cluster);
  const dir = await Deno.makeTempDir();
  try {
    await prepareForChart(cluster);
    await t.step("helm install with the 1.8 chart's values keys", async () => {
      await mustHelm(cluster, ["install", "irsa", CHART, "-n", field, ...REQUIRED_VALUES]);
      assert.ok(await cluster.configMap(field, CONFIGMAP), "the chart made the mappings ConfigMap");
    });

    // The chart's ServiceAccount, with a token as the kubelet would mount it in the server's pod.
    const saToken = await cluster.tokenRequest(field, "irsa", { audience: cluster.issuer });
    const tokenFile = `${dir}/token`;
    await Deno.writeTextFile(tokenFile, saToken);

    await t.step(
      "SelfSubjectRulesReview: nothing beyond what the server's calls need",
      async () => {
        // The chart's defaults turn per-user service accounts on (as 1.8), so /service_account's
        // rights are needed; events create is the one grant the server does not use, kept
        // because the current chart (1.8) grants it in both namespaces.
        const needed = [
          ...requiredPermissions({
            grantConfigMap: GRANT_CONFIGMAP,
            grantShards: Array.from({ length: 64 }, (_, i) => shardName(GRANT_CONFIGMAP, i)),
            serviceAccounts: true,
            fieldNamespace: field,
            computeNamespace: compute,
            mappingConfigMap: CONFIGMAP,
          }),
          ...[field, compute].map((namespace) => ({
            verb: "create",
            group: "",
            resource: "events",
            namespace,
          })),
        ];
        // What every authenticated user holds (reviewing its own access, reading trust bundles)
        // is the cluster's doing, not the chart's: a service account with no binding shows it.
        await cluster.createServiceAccount(field, "nobody");
        const nobody = await cluster.tokenRequest(field, "nobody", { audience: cluster.issuer });
        for (const ns of [field, compute, "default"]) {
          const baseline = new Set(await rulesOf(cluster, nobody, ns));
          assert.deepEqual(
            (await rulesOf(cluster, saToken, ns)).filter((r) => !baseline.has(r)),
            needed.filter((a) => a.namespace === ns).map(asRule).sort(),
            ns,
          );
        }
      },
    );

    const world = await seedExampleRoles(iam);
    const env = serverEnv(moto, world, issuer, {
      DEFAULT_FIELD_NS: field,
      DEFAULT_COMPUTE_NS: compute,
      IRSA_CLUSTER_ISSUER: cluster.issuer,
      IRSA_CA_FILE: cluster.caCertPath,
      IRSA_CLEANUP_INTERVAL_SECONDS: "1",
      IRSA_CLEANUP_GRACE_SECONDS: "1",
    });
    const args = [
      "--insecure-http",
      "--mapping-store",
      "configmap",
      "--kubernetes-api",
      kube.url,
      "--kubernetes-token-file",
      tokenFile,
    ];

    await t.step("start, refresh, stop and a cleanup pass, every call allowed", async () => {
      // Two runs of jdoe, Pending pods as the platform labels them, each with a pod-bound token.
      const tokens: Record<string, string> = {};
      for (const id of [RUN, OTHER_RUN]) {
        const pod = `run-${id}-abcde`;
        await cluster.createPod(compute, {
          name: pod,
          labels: {
            "dominodatalab.com/execution-id": id,
            "dominodatalab.com/starting-user-username": "jdoe",
          },
          serviceAccountName: `run-${id}`,
        });
        tokens[id] = await cluster.tokenRequest(compute, `run-${id}`, { pod });
      }
      const server = await startServerProcess(args, env);
      try {
        const admin = await issuer.userToken({ username: "boss", admin: true });
        const mapped = await server.fetch("/update_role_mapping", {
          method: "POST",
          headers: { Authorization: `Bearer ${admin}` },
          body: JSON.stringify({
            domino_org: "irsa-iamrole-list-bucket",
            ...pairJson(EXAMPLE.roleNames[0]),
          }),
        });
        assert.equal(mapped.status, 200, await mapped.text());

        const user = await issuer.userToken({
          username: "jdoe",
          groups: ["irsa-iamrole-list-bucket"],
        });
        const start = (id: string, workloadToken?: string) =>
          server.fetch("/map_iam_roles_to_pod_sa", {
            method: "POST",
            headers: {
              Authorization: `Bearer ${user}`,
              Accept: "application/json",
              ...(workloadToken ? { "X-Irsa-Workload-Token": workloadToken } : {}),
            },
            body: JSON.stringify({ run_id: id }),
          }).then(async (r) => ({ status: r.status, body: await r.json() }));
        // Proven by the pod's real token, verified against the API server's discovery and JWKS.
        const first = await start(RUN, tokens[RUN]);
        assert.equal(first.status, 200, JSON.stringify(first.body));
        assert.deepEqual(first.body.roles.map((r: { status: string }) => r.status), ["added"]);
        // Proven by the run lookup (a pod list in the compute namespace).
        const second = await start(OTHER_RUN);
        assert.equal(second.status, 200, JSON.stringify(second.body));
        const refresh = await start(RUN, tokens[RUN]);
        assert.deepEqual(refresh.body.roles.map((r: { status: string }) => r.status), [
          "present",
        ]);
        const subject = (id: string) => `*:${compute}:run-${id}`;
        const held = () => heldSubjects(iam, world, EXAMPLE.roleNames[0]);
        assert.deepEqual((await held()).sort(), [subject(RUN), subject(OTHER_RUN)].sort());

        const stop = await server.fetch("/map_iam_roles_to_pod_sa", {
          method: "DELETE",
          headers: { Authorization: `Bearer ${user}`, "X-Irsa-Workload-Token": tokens[RUN] },
          body: JSON.stringify({ run_id: RUN }),
        });
        assert.equal(stop.status, 200, await stop.text());
        assert.deepEqual(await held(), [subject(OTHER_RUN)]);

        // The other run ends: the cleanup sees no pod for it and removes its subject.
        await cluster.deletePod(compute, `run-${OTHER_RUN}-abcde`);
        await waitFor(
          "the cleanup to remove the ended run",
          async () => (await held()).length === 0,
        );

        // The server's writes kept what Helm needs to keep the ConfigMap on upgrade and uninstall.
        const cm = await cluster.must("GET", `/api/v1/namespaces/${field}/configmaps/${CONFIGMAP}`);
        assert.equal(cm.metadata.annotations["helm.sh/resource-policy"], "keep");
        assert.equal(cm.metadata.annotations["meta.helm.sh/release-name"], "irsa");

        const calls = kube.requests.map((r) => `${r.method} ${r.path} ${r.status}`);
        assert.ok(
          calls.some((c) => /^PUT .*\/configmaps\/domino-org-iamrole-mapping 200$/.test(c)),
        );
        assert.ok(calls.some((c) => /^GET .*\/namespaces\/domino-compute\/pods 200$/.test(c)));
        assert.ok(calls.some((c) => /^PUT .*\/leases\/.* 200$/.test(c)));
        assert.deepEqual(
          kube.requests.filter((r) => r.status === 401 || r.status === 403),
          [],
          "no call was refused",
        );
      } finally {
        assert.equal(await server.stop(), 0);
      }
    });

    await t.step("a Role with one rule removed stops the server at start, naming it", async () => {
      const path = `/apis/rbac.authorization.k8s.io/v1/namespaces/${field}/roles/irsa`;
      const role = await cluster.must("GET", path);
      const leases = role.rules.filter((r: { resources: string[] }) =>
        !r.resources.includes("leases")
      );
      assert.equal(leases.length, role.rules.length - 1);
      await cluster.must("PUT", path, { ...role, rules: leases });
      try {
        await assert.rejects(startServerProcess(args, env), (e: Error) => {
          const missing = requiredPermissions({
            grantConfigMap: GRANT_CONFIGMAP,
            grantShards: Array.from({ length: 64 }, (_, i) => shardName(GRANT_CONFIGMAP, i)),
            serviceAccounts: false,
            fieldNamespace: field,
            computeNamespace: compute,
            mappingConfigMap: CONFIGMAP,
          }).filter((a) => a.resource === "leases").map(describeAction);
          assert.match(e.message, /irsa server failed to start/);
          assert.match(
            e.message,
            /Cannot start: the Kubernetes service account may not get leases/,
          );
          for (const m of missing) assert.ok(e.message.includes(JSON.stringify(m).slice(1, -1)), m);
          return true;
        });
      } finally {
        // helm upgrade puts the chart's Role back.
        await mustHelm(cluster, ["upgrade", "irsa", CHART, "-n", field, ...REQUIRED_VALUES]);
      }
      assert.equal((await cluster.must("GET", path)).rules.length, role.rules.length);
    });

    await t.step(
      "a grant shard deleted by hand stops the server at start, naming it; helm upgrade renders it again and keeps the others",
      async () => {
        const shards = Array.from({ length: 64 }, (_, i) => shardName(GRANT_CONFIGMAP, i));
        const read = () => Promise.all(shards.map((name) => cluster.configMap(field, name)));
        const before = await read();
        // The shards the starts above wrote (their grants are gone since; the roles stay).
        const holding = shards.filter((_, i) => before[i]?.data["grants.json"] !== undefined);
        assert.ok(holding.length > 0, "the starts above recorded their grants in shards");
        const gone = shards.find((name) => !holding.includes(name))!;
        await cluster.must("DELETE", `/api/v1/namespaces/${field}/configmaps/${gone}`);
        await assert.rejects(startServerProcess(args, env), (e: Error) => {
          // The log line is JSON: its quotes are escaped.
          const said = JSON.stringify(`ConfigMaps "${gone}" are missing`).slice(1, -1);
          assert.ok(e.message.includes(said), e.message);
          assert.match(e.message, /may not create them/);
          return true;
        });
        await mustHelm(cluster, ["upgrade", "irsa", CHART, "-n", field, ...REQUIRED_VALUES]);
        const after = await read();
        assert.ok(after.every((c) => c !== undefined), "every shard is there again");
        for (const name of holding) {
          const i = shards.indexOf(name);
          assert.equal(after[i]!.data["grants.json"], before[i]!.data["grants.json"], name);
        }
        // The count cannot change once the server recorded it: the upgrade fails, changing nothing.
        const changed = await helm(cluster, [
          ...["upgrade", "irsa", CHART, "-n", field, ...REQUIRED_VALUES],
          ...["--set", "server.grantShards=32"],
        ]);
        assert.notEqual(changed.code, 0);
        assert.match(
          changed.stderr,
          /server.grantShards is 32, but the grant record was written in 64 shards/,
        );
        assert.equal((await read()).filter((c) => c !== undefined).length, 64);
      },
    );

    await t.step(
      "helm upgrade (full values) and helm uninstall keep the mappings ConfigMap",
      async () => {
        // The mapping the server wrote above, as it wrote it.
        const before = (await cluster.configMap(field, CONFIGMAP))!.data;
        assert.deepEqual(Object.keys(before), ["irsa-iamrole-list-bucket"]);
        await mustHelm(cluster, ["upgrade", "irsa", CHART, "-n", field, "-f", FULL_VALUES]);
        assert.deepEqual((await cluster.configMap(field, CONFIGMAP))?.data, before);
        await mustHelm(cluster, ["uninstall", "irsa", "-n", field]);
        assert.deepEqual((await cluster.configMap(field, CONFIGMAP))?.data, before);
        const roles = await cluster.must(
          "GET",
          `/apis/rbac.authorization.k8s.io/v1/namespaces/${field}/roles`,
        );
        assert.deepEqual(roles.items, [], "uninstall removed the rest");
      },
    );
  } finally {
    iam.destroy();
    await kube.close();
    await issuer.close();
    await moto.stop();
    await cluster.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
