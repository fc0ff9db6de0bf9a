/**
 * `helm upgrade` of a release of the current IRSA service's chart (1.8) to deploy/helm/irsa, on a
 * real Kubernetes API server (tests/fixtures/kube_apiserver.ts) with the real Helm that
 * scripts/check_deploy.sh installs: the stand-in chart tests/testdata/irsa_1_8_chart is installed
 * with an admin's 1.8 values file, the old service writes mappings into its ConfigMap, then the
 * same values file upgrades the release to irsa. Without Helm or the rendered manifests (.ci/run
 * runs scripts/check_deploy.sh first) the test reports itself skipped.
 */
import assert from "node:assert/strict";
import { createKubeClient } from "../src/kube/client.ts";
import { CHART, findHelm, helm, mustHelm, prepareForChart } from "./fixtures/helm.ts";
import { type KubeApiServer, startKubeApiServer } from "./fixtures/kube_apiserver.ts";

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);
const CHART_1_8 = `${ROOT}tests/testdata/irsa_1_8_chart`;
const VALUES_1_8 = `${ROOT}tests/testdata/irsa_1_8_values.yaml`;
/** What scripts/check_deploy.sh renders with the same values: the objects irsa's chart makes. */
const RENDERED = `${ROOT}.tools/rendered/from-1.8.json`;
const RELEASE = "irsa";
const FIELD_NS = "domino-field";
const MAPPINGS = "domino-org-iamrole-mapping";

/** The image keys an admin changes in a 1.8 values file (docs/upgrade-from-1.8.md, "Upgrade from the current IRSA
 * service"); the same as scripts/check_deploy.sh's from-1.8 render. */
const IRSA_IMAGE = [
  "--set",
  "image.repository=registry.example.com/domino",
  "--set",
  "image.serverContainer=irsa",
  "--set",
  "image.clientContainer=irsa",
  "--set",
  "image.serverAppVersion=",
  "--set",
  "image.clientAppVersion=",
];

/** What the current service writes: one key per organization, its JSON as Python's json.dumps
 * spells it: one object (1.7-era, flag a boolean), a list (multi-role, flag a string), and a
 * pretty-printed object with a trailing newline, which a YAML round trip must not touch. */
const OLD_MAPPINGS: Record<string, string> = {
  "irsa-iamrole-list-bucket":
    '{"iam_role_arn": "arn:aws:iam::222222222222:role/acme-list-bucket-role", "proxy_iam_role_arn": "arn:aws:iam::111111111111:role/acme-list-bucket-role", "update_iam_role_trust_policy": true}',
  "irsa-iamrole-read-bucket":
    '[{"domino_org": "irsa-iamrole-read-bucket", "iam_role_arn": "arn:aws:iam::222222222222:role/acme-read-bucket-role", "proxy_iam_role_arn": "arn:aws:iam::111111111111:role/acme-read-bucket-role", "update_iam_role_trust_policy": "false"}, {"domino_org": "irsa-iamrole-read-bucket", "iam_role_arn": "arn:aws:iam::222222222222:role/acme-update-bucket-role", "proxy_iam_role_arn": "arn:aws:iam::111111111111:role/acme-update-bucket-role"}]',
  "irsa-iamrole-update-bucket":
    '{\n  "iam_role_arn": "arn:aws:iam::222222222222:role/acme-update-bucket-role",\n  "proxy_iam_role_arn": "arn:aws:iam::111111111111:role/acme-update-bucket-role"\n}\n',
};

// Kubernetes objects are loose by nature; the test checks the fields it reads.
// deno-lint-ignore no-explicit-any
type Loose = any;

/** API path prefix, plural and scope of each kind that either chart makes. */
const RESOURCES: Record<string, { prefix: string; plural: string; namespaced: boolean }> = {
  ConfigMap: { prefix: "/api/v1", plural: "configmaps", namespaced: true },
  Service: { prefix: "/api/v1", plural: "services", namespaced: true },
  ServiceAccount: { prefix: "/api/v1", plural: "serviceaccounts", namespaced: true },
  Deployment: { prefix: "/apis/apps/v1", plural: "deployments", namespaced: true },
  Role: { prefix: "/apis/rbac.authorization.k8s.io/v1", plural: "roles", namespaced: true },
  RoleBinding: {
    prefix: "/apis/rbac.authorization.k8s.io/v1",
    plural: "rolebindings",
    namespaced: true,
  },
  NetworkPolicy: {
    prefix: "/apis/networking.k8s.io/v1",
    plural: "networkpolicies",
    namespaced: true,
  },
  PodDisruptionBudget: {
    prefix: "/apis/policy/v1",
    plural: "poddisruptionbudgets",
    namespaced: true,
  },
  Certificate: { prefix: "/apis/cert-manager.io/v1", plural: "certificates", namespaced: true },
  Issuer: { prefix: "/apis/cert-manager.io/v1", plural: "issuers", namespaced: true },
  ClusterIssuer: {
    prefix: "/apis/cert-manager.io/v1",
    plural: "clusterissuers",
    namespaced: false,
  },
  // The hand-off key the chart makes once and keeps.
  Secret: { prefix: "/api/v1", plural: "secrets", namespaced: true },
  Mutation: {
    prefix: "/apis/apps.dominodatalab.com/v1alpha1",
    plural: "mutations",
    namespaced: true,
  },
};

function pathOf(doc: { kind: string; metadata: { name: string; namespace?: string } }): string {
  const r = RESOURCES[doc.kind];
  assert.ok(r, `no API path known for kind ${doc.kind}`);
  const ns = r.namespaced ? `/namespaces/${doc.metadata.namespace ?? FIELD_NS}` : "";
  return `${r.prefix}${ns}/${r.plural}/${doc.metadata.name}`;
}

/** The release's revisions and their status, oldest first. */
async function history(cluster: KubeApiServer): Promise<string[]> {
  const out = await mustHelm(cluster, ["history", RELEASE, "-n", FIELD_NS, "-o", "json"]);
  return JSON.parse(out).map((r: Loose) => `${r.revision} ${r.status} ${r.chart}`);
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

const ready = (await findHelm()) !== undefined && exists(RENDERED);

Deno.test({
  name: ready
    ? "helm upgrade of a 1.8 release with its values file: refused with the old images, then succeeds, keeps the mappings byte for byte, leaves exactly irsa's objects, and a second upgrade changes nothing"
    : "helm upgrade of a 1.8 release (skipped: run scripts/check_deploy.sh, as .ci/run does, for Helm and the rendered manifests)",
  ignore: !ready,
  async fn(t) {
    const rendered: Loose[] = JSON.parse(Deno.readTextFileSync(RENDERED));
    const cluster = await startKubeApiServer();
    try {
      await prepareForChart(cluster);

      await t.step(
        "the 1.8 release is installed and the old service writes its mappings",
        async () => {
          await mustHelm(cluster, [
            "install",
            RELEASE,
            CHART_1_8,
            "-n",
            FIELD_NS,
            "-f",
            VALUES_1_8,
          ]);
          const deployment = await cluster.must("GET", pathOf(deploymentOf(rendered)));
          assert.deepEqual(deployment.spec.selector, { matchLabels: { app: "irsa" } });
          // As the old service does: read the ConfigMap, set keys, replace it (metadata kept).
          const path = `/api/v1/namespaces/${FIELD_NS}/configmaps/${MAPPINGS}`;
          const configMap = await cluster.must("GET", path);
          assert.equal(configMap.data, undefined, "the 1.8 chart created it empty");
          await cluster.must("PUT", path, { ...configMap, data: OLD_MAPPINGS });
          assert.deepEqual((await cluster.configMap(FIELD_NS, MAPPINGS))?.data, OLD_MAPPINGS);
        },
      );

      await t.step(
        "the 1.8 values file unchanged is refused, naming the image keys, and nothing changes",
        async () => {
          const before = await cluster.must("GET", pathOf(deploymentOf(rendered)));
          const r = await helm(cluster, [
            "upgrade",
            RELEASE,
            CHART,
            "-n",
            FIELD_NS,
            "-f",
            VALUES_1_8,
          ]);
          assert.notEqual(r.code, 0, "helm upgrade with the 1.8 images must fail");
          assert.match(
            r.stderr,
            /Set image\.repository, image\.serverContainer and image\.clientContainer to irsa's image/,
          );
          assert.deepEqual(await history(cluster), ["1 deployed irsa-1.8.0"]);
          const after = await cluster.must("GET", pathOf(deploymentOf(rendered)));
          assert.equal(after.metadata.resourceVersion, before.metadata.resourceVersion);
          assert.deepEqual((await cluster.configMap(FIELD_NS, MAPPINGS))?.data, OLD_MAPPINGS);
        },
      );

      const upgrade = ["upgrade", RELEASE, CHART, "-n", FIELD_NS, "-f", VALUES_1_8, ...IRSA_IMAGE];

      await t.step(
        "with irsa's image the upgrade succeeds and keeps the mappings byte for byte",
        async () => {
          await mustHelm(cluster, upgrade);
          assert.deepEqual((await history(cluster)).at(-1), "2 deployed irsa-0.1.0");
          const configMap = await cluster.must(
            "GET",
            `/api/v1/namespaces/${FIELD_NS}/configmaps/${MAPPINGS}`,
          );
          assert.deepEqual(
            Object.keys(configMap.data ?? {}).sort(),
            Object.keys(OLD_MAPPINGS).sort(),
          );
          for (const [org, value] of Object.entries(OLD_MAPPINGS)) {
            assert.equal(configMap.data[org], value, `the mapping of ${org} changed`);
          }
          assert.equal(configMap.metadata.annotations["helm.sh/resource-policy"], "keep");
        },
      );

      await t.step(
        "the objects are exactly irsa's: its server, its Mutations, none of 1.8's left",
        async () => {
          const deployment = await cluster.must("GET", pathOf(deploymentOf(rendered)));
          const want = deploymentOf(rendered);
          assert.deepEqual(deployment.spec.selector, want.spec.selector);
          assert.deepEqual(
            deployment.spec.template.metadata.labels,
            want.spec.template.metadata.labels,
          );
          assert.deepEqual(
            deployment.spec.template.spec.containers.map((c: Loose) => [c.name, c.image, c.args]),
            want.spec.template.spec.containers.map((c: Loose) => [c.name, c.image, c.args]),
          );

          const mutations = await cluster.must(
            "GET",
            "/apis/apps.dominodatalab.com/v1alpha1/namespaces/domino-platform/mutations",
          );
          const wanted = rendered.filter((d) => d.kind === "Mutation");
          assert.deepEqual(
            mutations.items.map((m: Loose) => m.metadata.name).sort(),
            ["irsa", "irsa-cloud-identity", "irsa-sidecar"],
          );
          for (const live of mutations.items) {
            const mine = wanted.find((m) => m.metadata.name === live.metadata.name);
            assert.deepEqual(live.rules, mine.rules, `Mutation ${live.metadata.name}`);
          }

          for (const doc of rendered) {
            const live = await cluster.must("GET", pathOf(doc));
            assert.equal(
              live.metadata.annotations?.["meta.helm.sh/release-name"],
              RELEASE,
              `${doc.kind} ${doc.metadata.name} is the release's`,
            );
          }
          // 1.8's certificate objects, which irsa names differently, are gone.
          for (const kind of ["Issuer", "Certificate"]) {
            const list = await cluster.must(
              "GET",
              `/apis/cert-manager.io/v1/namespaces/${FIELD_NS}/${RESOURCES[kind].plural}`,
            );
            assert.deepEqual(
              list.items.map((i: Loose) => i.metadata.name).sort(),
              rendered.filter((d) => d.kind === kind && d.metadata.namespace === FIELD_NS)
                .map((d) => d.metadata.name).sort(),
              kind,
            );
          }
        },
      );

      await t.step("a second upgrade with the same values changes no object", async () => {
        const versions = async () => {
          const all: Record<string, string> = {};
          for (const doc of rendered) {
            all[pathOf(doc)] = (await cluster.must("GET", pathOf(doc))).metadata.resourceVersion;
          }
          return all;
        };
        const before = await versions();
        await mustHelm(cluster, upgrade);
        assert.deepEqual((await history(cluster)).at(-1), "3 deployed irsa-0.1.0");
        assert.deepEqual(await versions(), before);
        assert.deepEqual((await cluster.configMap(FIELD_NS, MAPPINGS))?.data, OLD_MAPPINGS);
      });

      // What irsa's server then writes, through its own Kubernetes client, as its ConfigMap store does.
      const mappings = {
        ...OLD_MAPPINGS,
        "irsa-iamrole-new": JSON.stringify([{
          domino_org: "irsa-iamrole-new",
          iam_role_arn: "arn:aws:iam::222222222222:role/acme-list-bucket-role",
          proxy_iam_role_arn: "arn:aws:iam::111111111111:role/acme-list-bucket-role-2",
        }]),
      };
      const serverWrites = async (data: Record<string, string>) => {
        const client = createKubeClient({
          apiUrl: cluster.url,
          token: () => cluster.adminToken,
          caCert: cluster.caCert,
        });
        try {
          const read = await client.getConfigMap(FIELD_NS, MAPPINGS);
          await client.replaceConfigMap(FIELD_NS, MAPPINGS, data, read!.resourceVersion);
        } finally {
          client.close();
        }
        assert.deepEqual((await cluster.configMap(FIELD_NS, MAPPINGS))?.data, data);
      };

      await t.step(
        "after irsa's server writes a mapping, the next upgrade keeps every mapping",
        async () => {
          await serverWrites(mappings);
          await mustHelm(cluster, upgrade);
          assert.deepEqual((await history(cluster)).at(-1), "4 deployed irsa-0.1.0");
          const configMap = await cluster.must(
            "GET",
            `/api/v1/namespaces/${FIELD_NS}/configmaps/${MAPPINGS}`,
          );
          assert.deepEqual(configMap.data, mappings);
          assert.equal(configMap.metadata.annotations["helm.sh/resource-policy"], "keep");
          assert.equal(configMap.metadata.annotations["meta.helm.sh/release-name"], RELEASE);
        },
      );

      await t.step(
        "helm rollback to 1.8 keeps every mapping, and the upgrade after it too",
        async () => {
          await mustHelm(cluster, ["rollback", RELEASE, "1", "-n", FIELD_NS]);
          assert.deepEqual((await history(cluster)).at(-1), "5 deployed irsa-1.8.0");
          assert.deepEqual((await cluster.configMap(FIELD_NS, MAPPINGS))?.data, mappings);
          const deployment = await cluster.must("GET", pathOf(deploymentOf(rendered)));
          assert.equal(
            deployment.spec.template.spec.containers[0].image,
            "quay.io/domino/field/irsa:v1.8.0-release",
          );
          await mustHelm(cluster, upgrade);
          assert.deepEqual((await history(cluster)).at(-1), "6 deployed irsa-0.1.0");
          assert.deepEqual((await cluster.configMap(FIELD_NS, MAPPINGS))?.data, mappings);
        },
      );

      // The server's writes replace the object without Helm's annotations; Helm keeps it anyway,
      // by the keep policy of the release's manifest.
      await t.step(
        "helm uninstall after irsa's server writes a mapping keeps the ConfigMap",
        async () => {
          await serverWrites(mappings);
          await mustHelm(cluster, ["uninstall", RELEASE, "-n", FIELD_NS]);
          assert.deepEqual((await cluster.configMap(FIELD_NS, MAPPINGS))?.data, mappings);
          const left = await cluster.must(
            "GET",
            "/apis/apps.dominodatalab.com/v1alpha1/namespaces/domino-platform/mutations",
          );
          assert.deepEqual(left.items, [], "the Mutations leave with the release");
        },
      );
    } finally {
      await cluster.stop();
    }
  },
});

function deploymentOf(docs: Loose[]): Loose {
  const found = docs.filter((d) => d.kind === "Deployment");
  assert.equal(found.length, 1);
  return found[0];
}
