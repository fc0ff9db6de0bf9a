/**
 * The chart's hand-off key on a real API server: `helm install` makes the Secret with a random key,
 * the server pods mount it where --handoff-key-file points, `helm upgrade` keeps the key, the
 * server's ServiceAccount cannot read any Secret, and server.handoffKeySecret names the admin's own.
 */
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { importHandoffKey } from "../src/trust/handoff_seal.ts";
import {
  CHART,
  CHART_NAMESPACES,
  findHelm,
  mustHelm,
  prepareForChart,
  REQUIRED_VALUES,
} from "./fixtures/helm.ts";
import { type KubeApiServer, startKubeApiServer } from "./fixtures/kube_apiserver.ts";

const { field } = CHART_NAMESPACES;
const SECRET = "irsa-handoff-key";

// deno-lint-ignore no-explicit-any
type Loose = any;

/** The key of the chart's Secret, as the server reads it from its file. */
async function keyOf(cluster: KubeApiServer, name = SECRET): Promise<string> {
  const secret = await cluster.must("GET", `/api/v1/namespaces/${field}/secrets/${name}`);
  return atob(secret.data.key);
}

/** The Deployment's hand-off key: the file --handoff-key-file names, in the Secret mounted there. */
async function mountedSecret(cluster: KubeApiServer): Promise<string> {
  const deployment = await cluster.must(
    "GET",
    `/apis/apps/v1/namespaces/${field}/deployments/irsa`,
  );
  const pod = deployment.spec.template.spec;
  const [container] = pod.containers;
  const file = container.args[container.args.indexOf("--handoff-key-file") + 1];
  const mount = container.volumeMounts.find((m: Loose) => file.startsWith(`${m.mountPath}/`));
  assert.ok(mount?.readOnly, `${file} is on a read-only mount`);
  const volume = pod.volumes.find((v: Loose) => v.name === mount.name);
  const path = file.slice(mount.mountPath.length + 1);
  assert.deepEqual(volume.secret.items, [{ key: "key", path }]);
  return volume.secret.secretName;
}

/** Whether the chart's ServiceAccount may `verb` Secrets in the field namespace. */
async function saMay(cluster: KubeApiServer, verb: string, name?: string): Promise<boolean> {
  const review = await cluster.must(
    "POST",
    "/apis/authorization.k8s.io/v1/subjectaccessreviews",
    {
      spec: {
        user: `system:serviceaccount:${field}:irsa`,
        groups: ["system:serviceaccounts", `system:serviceaccounts:${field}`],
        resourceAttributes: { namespace: field, verb, resource: "secrets", name },
      },
    },
  );
  return review.status.allowed === true;
}

const noHelm = (await findHelm()) === undefined && Deno.env.get("CI") !== "true";

Deno.test({
  name: noHelm
    ? "the chart's hand-off key (skipped: no Helm; run scripts/check_deploy.sh, as .ci/run does)"
    : "the chart's hand-off key: made once, kept by upgrades, mounted by the server only, never readable through its RBAC",
  ignore: noHelm,
}, async () => {
  const cluster = await startKubeApiServer();
  try {
    await prepareForChart(cluster);
    await mustHelm(cluster, ["install", "irsa", CHART, "-n", field, ...REQUIRED_VALUES]);
    const key = await keyOf(cluster);
    assert.match(key, /^[A-Za-z0-9]{64}$/);
    await importHandoffKey(key); // the server accepts it
    assert.equal(await mountedSecret(cluster), SECRET);

    // An upgrade renders the chart again: the key stays, whatever else changes.
    await mustHelm(cluster, ["upgrade", "irsa", CHART, "-n", field, ...REQUIRED_VALUES]);
    await mustHelm(cluster, [
      ...["upgrade", "irsa", CHART, "-n", field, ...REQUIRED_VALUES],
      ...["--set", "server.editWindowMs=80"],
    ]);
    assert.equal(await keyOf(cluster), key, "helm upgrade changed the key");

    // The server's Role names no Secret: it can read neither this one nor any other.
    for (const verb of ["get", "list", "watch"]) {
      assert.equal(await saMay(cluster, verb, verb === "get" ? SECRET : undefined), false, verb);
    }

    // An admin's own Secret instead: the chart renders none and mounts that one.
    const manifest = await mustHelm(cluster, [
      ...["template", "irsa", CHART, "-n", field, ...REQUIRED_VALUES],
      ...["--set", "server.handoffKeySecret=irsa-handoff-key-gitops", "--kube-version", "1.37.0"],
    ]);
    const docs: Loose[] = parseAllDocuments(manifest).map((d) => d.toJSON());
    assert.ok(!docs.some((d) => d?.kind === "Secret"), "the chart renders no Secret then");
    await mustHelm(cluster, [
      ...["upgrade", "irsa", CHART, "-n", field, ...REQUIRED_VALUES],
      ...["--set", "server.handoffKeySecret=irsa-handoff-key-gitops"],
    ]);
    assert.equal(await mountedSecret(cluster), "irsa-handoff-key-gitops");
  } finally {
    await cluster.stop();
  }
});
