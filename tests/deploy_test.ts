/**
 * The deployment files against the program they deploy: the IAM documents of deploy/aws, the
 * CloudFormation template that creates the same documents, and the Helm chart's rendered manifests,
 * whose flags and variables are checked against the settings tables that `irsa server` and
 * `irsa sidecar` really read (src/server/settings.ts, src/sidecar/settings.ts).
 * scripts/check_deploy.sh renders the chart with the real Helm into .tools/rendered/ (.ci/run runs
 * it before the tests); without that folder the tests that need it report themselves skipped, and
 * with a render older than the chart they fail.
 */
import assert from "node:assert/strict";
import { type Setting, settingsList } from "../src/lib/settings.ts";
import { serverConfig } from "../src/server/config.ts";
import { serverSettings } from "../src/server/settings.ts";
import { sidecarConfig, sidecarSettings } from "../src/sidecar/settings.ts";
import { editTrustPolicy, oidcProviderArn } from "../src/core/trust_policy.ts";

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);
const AWS_DIR = `${ROOT}deploy/aws/`;
const CHART_DIR = `${ROOT}deploy/helm/irsa`;
const RENDERED_DIR = `${ROOT}.tools/rendered/`;
const RENDER_HINT = "run scripts/check_deploy.sh (as .ci/run does) to render the chart";

/** docs/design.md's example data, put in place of the placeholders of the IAM documents. */
const EXAMPLE = {
  EKS_ACCOUNT_NO: "111111111111",
  ASSETS_ACCOUNT_NO: "222222222222",
  OIDC_PROVIDER: "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
  PROXY_ROLE_PREFIX: "acme-",
  ASSET_ROLE_NAME: "acme-list-bucket-role",
} as const;

/** The labels of an example run pod, for the variables the Mutation takes from labels. */
const RUN_LABELS: Record<string, string> = {
  "dominodatalab.com/execution-id": "646d27b817c28b5ea4b5b0c1",
  "dominodatalab.com/starting-user-username": "jdoe",
};

/** docs/design.md's workspace variables that the Mutation gives the user's containers, with the current
 * chart's DOMINO_API_PROXY_PORT; the platform itself sets DOMINO_RUN_ID and DOMINO_STARTING_USERNAME
 * there. */
/** The container credential provider's variables, given to the user's containers when the
 * sidecar vends credentials (sidecar.credentials.enabled). */
const CONTAINER_PROVIDER_VARIABLES = [
  "AWS_CONTAINER_CREDENTIALS_FULL_URI",
  "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
];
const WORKSPACE_VARIABLES = [
  "POD_INFO_PATH",
  "DOMINO_API_PROXY",
  "DOMINO_API_PROXY_PORT",
  "AWS_WEB_IDENTITY_TOKEN_FILE",
  "AWS_CONFIG_FILE",
  "DOMINO_IRSA_ENDPOINT",
  "DOMINO_IRSA_PROXY",
  "DOMINO_IRSA_SSL_CERT",
  "AWS_REGION",
  "AWS_DEFAULT_REGION",
  "AWS_STS_REGIONAL_ENDPOINTS",
  "OIDC_PROVIDER",
  "OIDC_PROVIDER_AUDIENCE",
];

/** Read by Deno's HTTP client rather than by a setting (docs/reference/settings.md). */
const PROXY_VARIABLES = ["HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"];

// Parsed JSON and rendered manifests are loose by nature; the tests below check their shape.
// deno-lint-ignore no-explicit-any
type Loose = any;

function readJson(path: string): Loose {
  return JSON.parse(Deno.readTextFileSync(path));
}

function readJsonIfPresent(path: string): Loose | undefined {
  try {
    return readJson(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/** Replaces `<NAME>` placeholders with {@link EXAMPLE}'s values. */
function withExample(text: string): string {
  return text.replace(/<([A-Z_]+)>/g, (whole, name: string) => {
    assert.ok(name in EXAMPLE, `unknown placeholder ${whole}`);
    return EXAMPLE[name as keyof typeof EXAMPLE];
  });
}

function awsDocument(name: string): { text: string; doc: Loose } {
  const text = Deno.readTextFileSync(`${AWS_DIR}${name}`);
  return { text, doc: JSON.parse(text) };
}

function asList<T>(value: T | T[] | undefined): T[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

// --- IAM documents --------------------------------------------------------------------------

Deno.test("every IAM document in deploy/aws is valid JSON with the documented placeholders and no wildcard action", () => {
  const names = [...Deno.readDirSync(AWS_DIR)]
    .filter((e) => e.isFile && e.name.endsWith(".json"))
    .map((e) => e.name)
    .sort();
  assert.deepEqual(names, [
    "asset-role-trust.json",
    "proxy-role-permissions.json",
    "proxy-role-trust.json",
    "server-role-policy.json",
    "server-role-trust.json",
  ]);
  for (const name of names) {
    const { text, doc } = awsDocument(name);
    assert.equal(doc.Version, "2012-10-17", name);
    assert.ok(Array.isArray(doc.Statement) && doc.Statement.length > 0, name);
    for (const statement of doc.Statement) {
      assert.equal(statement.Effect, "Allow", name);
      for (const negated of ["NotAction", "NotResource", "NotPrincipal"]) {
        assert.ok(!(negated in statement), `${name} uses ${negated}`);
      }
      const actions = asList<string>(statement.Action);
      assert.ok(actions.length > 0, `${name}: a statement without Action`);
      for (const action of actions) {
        assert.ok(!action.includes("*"), `${name}: wildcard action ${JSON.stringify(action)}`);
      }
      for (const resource of asList<string>(statement.Resource)) {
        assert.notEqual(resource, "*", `${name}: Resource "*"`);
      }
    }
    for (const placeholder of text.match(/<[^<>]*>/g) ?? []) {
      assert.ok(
        /^<[A-Z_]+>$/.test(placeholder) && placeholder.slice(1, -1) in EXAMPLE,
        `${name}: undocumented placeholder ${placeholder}`,
      );
    }
    JSON.parse(withExample(text));
  }
});

Deno.test("the server's role may only read and rewrite the trust policies of the proxy roles", () => {
  const { doc: policy } = awsDocument("server-role-policy.json");
  assert.equal(policy.Statement.length, 1);
  const [statement] = policy.Statement;
  assert.deepEqual(asList(statement.Action).sort(), ["iam:GetRole", "iam:UpdateAssumeRolePolicy"]);
  const resources = asList<string>(statement.Resource);
  assert.ok(resources.length > 0);
  for (const resource of resources) {
    // Roles of the EKS account whose name starts with the prefix (or whose path is given).
    assert.match(
      resource,
      /^arn:aws:iam::<EKS_ACCOUNT_NO>:role\/(<PROXY_ROLE_PREFIX>|[\w+=,.@-]+\/)\*$/,
    );
  }

  const { doc: trust } = awsDocument("server-role-trust.json");
  assert.equal(trust.Statement.length, 1);
  assert.deepEqual(trust.Statement[0], {
    Effect: "Allow",
    Principal: { Federated: oidcProviderArn("<EKS_ACCOUNT_NO>", "<OIDC_PROVIDER>") },
    Action: "sts:AssumeRoleWithWebIdentity",
    Condition: {
      StringEquals: {
        "<OIDC_PROVIDER>:aud": "sts.amazonaws.com",
        "<OIDC_PROVIDER>:sub": "system:serviceaccount:domino-field:irsa",
      },
    },
  });
});

Deno.test("a fresh proxy role trusts no one, is the server's golden file, and the server can edit it", () => {
  const { text } = awsDocument("proxy-role-trust.json");
  const golden = readJson(`${ROOT}tests/testdata/fresh_proxy_trust_policy.json`);
  assert.deepEqual(JSON.parse(withExample(text)), golden);

  const subject = "*:domino-compute:run-646d27b817c28b5ea4b5b0c1";
  const edit = editTrustPolicy(withExample(text), { add: [subject] }, {
    providerArn: oidcProviderArn(EXAMPLE.EKS_ACCOUNT_NO, EXAMPLE.OIDC_PROVIDER),
    audience: "sts.amazonaws.com",
    format: "wildcard",
    quota: 2048,
  }, "acme-list-bucket-role");
  assert.equal(edit.changed, true);
  assert.deepEqual(edit.before, []);
  assert.deepEqual(edit.subjects, [subject]);

  const { doc: permissions } = awsDocument("proxy-role-permissions.json");
  assert.equal(permissions.Statement.length, 1);
  assert.equal(permissions.Statement[0].Action, "sts:AssumeRole");
  assert.equal(
    permissions.Statement[0].Resource,
    "arn:aws:iam::<ASSETS_ACCOUNT_NO>:role/<ASSET_ROLE_NAME>",
  );

  const { doc: asset } = awsDocument("asset-role-trust.json");
  assert.deepEqual(asset.Statement, [{
    Effect: "Allow",
    Principal: { AWS: "arn:aws:iam::<EKS_ACCOUNT_NO>:root" },
    Action: "sts:AssumeRole",
    Condition: {
      ArnLike: { "aws:PrincipalArn": "arn:aws:iam::<EKS_ACCOUNT_NO>:role/<PROXY_ROLE_PREFIX>*" },
    },
  }]);
});

// --- CloudFormation -------------------------------------------------------------------------

/** The template's parameters with the example data, as `Fn::Sub` and `Ref` see them. */
const CFN_PARAMETERS: Record<string, string> = {
  "AWS::Partition": "aws",
  EksAccountId: EXAMPLE.EKS_ACCOUNT_NO,
  AssetsAccountId: EXAMPLE.ASSETS_ACCOUNT_NO,
  OidcProvider: EXAMPLE.OIDC_PROVIDER,
  ProxyRolePrefix: EXAMPLE.PROXY_ROLE_PREFIX,
  Audience: "sts.amazonaws.com",
  FieldNamespace: "domino-field",
  ServiceAccountName: "irsa",
  ServerRoleName: "irsa-service-role",
  // The Fn::ForEach identifier, for one role pair.
  RoleName: EXAMPLE.ASSET_ROLE_NAME,
};

/** Resolves `Fn::Sub` and `Ref`; a policy given as a `!Sub` JSON string is parsed. */
function resolveCfn(value: Loose): Loose {
  if (Array.isArray(value)) return value.map(resolveCfn);
  if (value === null || typeof value !== "object") return value;
  if (typeof value["Fn::Sub"] === "string") {
    const text = value["Fn::Sub"].replace(/\$\{([\w:]+)\}/g, (_: string, name: string) => {
      assert.ok(name in CFN_PARAMETERS, `unknown \${${name}}`);
      return CFN_PARAMETERS[name];
    });
    return text.trimStart().startsWith("{") ? JSON.parse(text) : text;
  }
  if (typeof value.Ref === "string" && Object.keys(value).length === 1) {
    assert.ok(value.Ref in CFN_PARAMETERS, `unknown Ref ${value.Ref}`);
    return CFN_PARAMETERS[value.Ref];
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolveCfn(v)]));
}

const cloudFormation = readJsonIfPresent(`${RENDERED_DIR}cloudformation.json`);

Deno.test({
  name: cloudFormation
    ? "the CloudFormation template creates exactly the IAM documents of deploy/aws"
    : `the CloudFormation template (skipped: ${RENDER_HINT})`,
  ignore: !cloudFormation,
  fn() {
    const example = (name: string) => JSON.parse(withExample(awsDocument(name).text));
    const resources = cloudFormation.Resources;
    const server = resolveCfn(resources.ServerRole.Properties);
    assert.deepEqual(server.AssumeRolePolicyDocument, example("server-role-trust.json"));
    assert.deepEqual(server.Policies.map((p: Loose) => p.PolicyDocument), [
      example("server-role-policy.json"),
    ]);

    const [identifier, , proxyBody] = resources["Fn::ForEach::ProxyRoles"];
    assert.equal(identifier, "RoleName");
    const proxy = resolveCfn(proxyBody["ProxyRole&{RoleName}"].Properties);
    assert.equal(proxy.RoleName, EXAMPLE.ASSET_ROLE_NAME, "a proxy role has its asset role's name");
    assert.deepEqual(proxy.AssumeRolePolicyDocument, example("proxy-role-trust.json"));
    assert.deepEqual(proxy.Policies.map((p: Loose) => p.PolicyDocument), [
      example("proxy-role-permissions.json"),
    ]);

    const [, , assetBody] = resources["Fn::ForEach::AssetRoles"];
    const asset = assetBody["AssetRole&{RoleName}"].Properties;
    assert.deepEqual(resolveCfn(asset.AssumeRolePolicyDocument), example("asset-role-trust.json"));

    // The defaults name what the chart's defaults create.
    const p = cloudFormation.Parameters;
    assert.equal(p.FieldNamespace.Default, "domino-field");
    assert.equal(p.ServiceAccountName.Default, "irsa");
    assert.equal(p.ServerRoleName.Default, "irsa-service-role");
  },
});

// --- The chart's rendered manifests ---------------------------------------------------------

/** SHA-256 of the chart's files, computed as scripts/check_deploy.sh does. */
async function chartHash(): Promise<string> {
  const files: string[] = [];
  const walk = (dir: string, prefix: string) => {
    for (const entry of Deno.readDirSync(dir)) {
      const path = prefix + entry.name;
      if (entry.isDirectory) walk(`${dir}/${entry.name}`, `${path}/`);
      else files.push(path);
    }
  };
  walk(CHART_DIR, "");
  const encoder = new TextEncoder();
  const parts: Uint8Array[] = [];
  for (const path of files.sort()) {
    parts.push(
      encoder.encode(`${path}\0`),
      Deno.readFileSync(`${CHART_DIR}/${path}`),
      new Uint8Array(1),
    );
  }
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    all.set(part, offset);
    offset += part.length;
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

const index = readJsonIfPresent(`${RENDERED_DIR}index.json`);

Deno.test({
  name: index
    ? "the rendered manifests are those of the chart as it is now"
    : `the rendered manifests (skipped: ${RENDER_HINT})`,
  ignore: !index,
  async fn() {
    assert.equal(
      index.chart_sha256,
      await chartHash(),
      `.tools/rendered/ was rendered from another version of the chart: ${RENDER_HINT}`,
    );
    assert.deepEqual(index.variants, ["defaults", "full", "govcloud", "from-1.8"]);
  },
});

/** What each variant of scripts/check_deploy.sh turns on; "from-1.8" is an admin's values file of
 * the current chart (tests/testdata/irsa_1_8_values.yaml) with only its image keys changed. */
const VARIANTS: Record<string, {
  sidecar: boolean;
  verifier: string;
  serviceMonitor: boolean;
  userBased: boolean;
  userMappings: Record<string, string>;
  noProxy: string;
}> = {
  defaults: {
    sidecar: true,
    verifier: "domino",
    serviceMonitor: false,
    userBased: true,
    userMappings: {},
    noProxy: ".domino-platform,$(KUBERNETES_SERVICE_HOST)",
  },
  full: {
    sidecar: true,
    verifier: "jwt",
    serviceMonitor: true,
    userBased: true,
    userMappings: { "integration-test": "aws-test" },
    noProxy:
      ".domino-platform,$(KUBERNETES_SERVICE_HOST),.svc,.cluster.local,169.254.169.254,10.0.0.0/8",
  },
  govcloud: {
    sidecar: false,
    verifier: "domino",
    serviceMonitor: false,
    userBased: false,
    userMappings: {},
    noProxy:
      ".domino-platform,$(KUBERNETES_SERVICE_HOST),.svc,.cluster.local,169.254.169.254,10.0.0.0/8",
  },
  "from-1.8": {
    sidecar: true,
    verifier: "domino",
    serviceMonitor: false,
    userBased: true,
    userMappings: {},
    noProxy: ".domino-platform,$(KUBERNETES_SERVICE_HOST),.internal.example.com,169.254.169.254",
  },
};

function only(docs: Loose[], kind: string, namespace?: string): Loose {
  const found = docs.filter((d) =>
    d.kind === kind && (namespace === undefined || d.metadata.namespace === namespace)
  );
  assert.equal(found.length, 1, `expected one ${kind}${namespace ? ` in ${namespace}` : ""}`);
  return found[0];
}

/** The container's variables as the process sees them, labels taken from {@link RUN_LABELS}. */
function environmentOf(container: Loose): Map<string, string> {
  const env = new Map<string, string>();
  for (const e of container.env ?? []) {
    assert.ok(!env.has(e.name), `${container.name}: ${e.name} is set twice`);
    if (e.value !== undefined) env.set(e.name, String(e.value));
    else {
      const path: string = e.valueFrom?.fieldRef?.fieldPath ?? "";
      const label = /^metadata\.labels\['(.+)'\]$/.exec(path);
      assert.ok(label, `${container.name}: ${e.name} comes from ${JSON.stringify(e.valueFrom)}`);
      env.set(e.name, RUN_LABELS[label[1]] ?? "");
    }
  }
  return env;
}

/** The flags in `args`, each checked against the table (value or not, as the setting says). */
function flagsIn(args: readonly string[], table: readonly Setting[]): string[] {
  const byFlag = new Map(table.map((s) => [s.flag, s]));
  const flags: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const m = /^--([a-z0-9-]+)(?:=(.*))?$/s.exec(args[i]);
    assert.ok(m, `argument ${JSON.stringify(args[i])} is not a --flag`);
    const setting = byFlag.get(m[1]);
    assert.ok(setting, `--${m[1]} is not a flag of irsa server`);
    if (m[2] === undefined && !setting.boolean) {
      assert.ok(i + 1 < args.length && !args[i + 1].startsWith("--"), `--${m[1]} has no value`);
      i++;
    }
    flags.push(m[1]);
  }
  return flags;
}

/** The mount of volume `name` in `container`, which must exist. */
function mountOf(container: Loose, name: string): string {
  const mount = (container.volumeMounts ?? []).find((m: Loose) => m.name === name);
  assert.ok(mount, `${container.name} does not mount ${name}`);
  return mount.mountPath.replace(/\/$/, "");
}

function assertUnder(path: string, dir: string, what: string) {
  assert.ok(path.startsWith(`${dir}/`), `${what} ${path} is not under ${dir}`);
}

const SIDECAR_VARIABLES = new Set(settingsList(sidecarSettings).flatMap((s) => s.env));
/** The sidecar's variables that the platform provides (its own IRSA_* tuning and the STS
 * endpoint override have defaults that fit a cluster). */
const SIDECAR_REQUIRED = [...SIDECAR_VARIABLES].filter((n) =>
  !n.startsWith("IRSA_") && n !== "AWS_ENDPOINT_URL_STS"
);

for (const [variant, expect] of Object.entries(VARIANTS)) {
  const docs: Loose[] | undefined = index
    ? readJsonIfPresent(`${RENDERED_DIR}${variant}.json`)
    : undefined;
  const skipped = `(skipped: ${RENDER_HINT})`;

  Deno.test({
    name:
      `chart (${variant}): the server is the current chart's (1.8): name, selector, platform label, Prometheus annotations, NO_PROXY ${
        docs ? "" : skipped
      }`.trim(),
    ignore: !docs,
    fn() {
      const deployment = only(docs!, "Deployment");
      // A Deployment's selector is immutable: `helm upgrade` of a 1.8 release works only with its
      // Deployment's name and exactly its selector (tests/chart_upgrade_test.ts tries it).
      assert.equal(deployment.metadata.name, "irsa");
      assert.deepEqual(deployment.spec.selector, { matchLabels: { app: "irsa" } });
      const template = deployment.spec.template.metadata;
      assert.equal(template.labels.app, "irsa");
      assert.equal(
        template.labels["nucleus-client"],
        "true",
        "the platform API admits its clients",
      );
      for (const kind of ["Service", "NetworkPolicy", "PodDisruptionBudget"]) {
        const doc = only(docs!, kind);
        const selector = doc.spec.selector?.matchLabels ?? doc.spec.selector ??
          doc.spec.podSelector.matchLabels;
        assert.deepEqual(selector, { app: "irsa" }, kind);
      }

      const [container] = deployment.spec.template.spec.containers;
      const metricsPort = container.ports.find((p: Loose) => p.name === "metrics")?.containerPort;
      const prometheus = Object.fromEntries(
        Object.entries(template.annotations ?? {}).filter(([k]) => k.startsWith("prometheus.io/")),
      );
      assert.deepEqual(
        prometheus,
        metricsPort
          ? {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": String(metricsPort),
            "prometheus.io/path": "/metrics",
          }
          : {},
      );

      // The platform namespace as 1.8 sets it, the API server (the kubelet expands the reference
      // from the variables it gives every pod), then the admin's env.proxy.no_proxy.
      const env = environmentOf(container);
      assert.equal(env.get("NO_PROXY"), expect.noProxy);
      assert.deepEqual(env.get("NO_PROXY")!.match(/\$\([^)]*\)/g), ["$(KUBERNETES_SERVICE_HOST)"]);
      assert.ok(
        new URL(env.get("DOMINO_USER_HOST")!).hostname.endsWith(".domino-platform"),
        "NO_PROXY covers the platform API",
      );
    },
  });

  Deno.test({
    name:
      `chart (${variant}): the Deployment passes only flags and variables that irsa server reads, and they configure it as the chart means ${
        docs ? "" : skipped
      }`.trim(),
    ignore: !docs,
    fn() {
      const deployment = only(docs!, "Deployment");
      const fieldNs = deployment.metadata.namespace;
      const pod = deployment.spec.template.spec;
      assert.equal(pod.containers.length, 1);
      const [container] = pod.containers;
      assert.equal(container.args[0], "server");
      const flags = flagsIn(container.args.slice(1), settingsList(serverSettings));
      assert.ok(flags.includes("mapping-store"));
      assert.equal(flags.includes("user-based-service-accounts"), expect.userBased);

      const env = environmentOf(container);
      const readable = new Set([
        ...settingsList(serverSettings).flatMap((s) => s.env),
        ...PROXY_VARIABLES,
      ]);
      for (const name of env.keys()) {
        assert.ok(readable.has(name), `${name} is not a variable that irsa server reads`);
      }
      // In a pod the API server's address comes from the kubelet's variables.
      const inCluster: Record<string, string> = {
        KUBERNETES_SERVICE_HOST: "10.100.0.1",
        KUBERNETES_SERVICE_PORT: "443",
      };
      const config = serverConfig(container.args.slice(1), (n) => env.get(n) ?? inCluster[n]);

      const port = (name: string) =>
        container.ports.find((p: Loose) => p.name === name)?.containerPort;
      assert.equal(config.port, port("https"));
      assert.equal(config.port, 6000);
      assert.equal(config.metricsPort, port("metrics") ?? 0);
      assert.equal(config.verifier, expect.verifier);
      assert.equal(config.mappingStore, "configmap");
      assert.equal(config.fieldNamespace, fieldNs);
      assert.equal(config.kubernetes?.apiUrl, "https://10.100.0.1:443");
      // server.editWindowMs and server.callerCacheSeconds: 50 and 30 unless set (ci/full-values,
      // which the GovCloud variant extends).
      assert.deepEqual(
        [config.editWindowMs, config.callerCacheMs],
        variant === "full" || variant === "govcloud" ? [80, 10_000] : [50, 30_000],
      );
      // The editable set: the account and partition the server's role lives in, never that role.
      assert.deepEqual(config.editable, {
        account: "111111111111",
        partition: variant === "govcloud" ? "aws-us-gov" : "aws",
        prefix: "",
        names: [],
        serverRoleName: "irsa-service-role",
      });

      // The certificate files are in the serving certificate's secret, mounted at /ssl.
      const sslDir = mountOf(container, "tls");
      assertUnder(config.tls!.certFile, sslDir, "--tls-cert");
      assertUnder(config.tls!.keyFile, sslDir, "--tls-key");
      const tlsVolume = pod.volumes.find((v: Loose) => v.name === "tls");
      const serving = only(docs!, "Certificate", fieldNs);
      assert.equal(tlsVolume.secret.secretName, serving.spec.secretName);

      // The ConfigMaps it edits (the mappings and the grant record) are the chart's, and the only
      // ones RBAC lets it touch; the Grafana dashboard's is read by Grafana, never by the server.
      const configMaps = docs!.filter((d) =>
        d.kind === "ConfigMap" && !Object.hasOwn(d.metadata.labels ?? {}, "grafana_dashboard")
      );
      assert.deepEqual(
        configMaps.map((c) => c.metadata.name).sort(),
        [
          config.mappingConfigMap,
          "irsa-grants",
          ...Array.from({ length: 64 }, (_, i) => `irsa-grants-${String(i).padStart(2, "0")}`),
        ].sort(),
      );
      assert.equal(config.grantShards, 64);
      for (const configMap of configMaps) {
        assert.equal(configMap.metadata.namespace, fieldNs);
        assert.equal(configMap.metadata.annotations["helm.sh/resource-policy"], "keep");
        // Empty data, as 1.8 renders it: Helm's three-way merge then never touches the servers'
        // keys (tests/chart_upgrade_test.ts: upgrade from 1.8, rollback to it, upgrade after writes).
        assert.deepEqual(configMap.data, {}, "the ConfigMap is rendered with data: {}");
      }
      const fieldRole = only(docs!, "Role", fieldNs);
      const cmRules = fieldRole.rules.filter((r: Loose) => r.resources.includes("configmaps"));
      assert.deepEqual(
        cmRules.flatMap((r: Loose) => r.resourceNames).sort(),
        [
          config.mappingConfigMap,
          "irsa-grants",
          ...Array.from({ length: 64 }, (_, i) => `irsa-grants-${String(i).padStart(2, "0")}`),
        ].sort(),
      );

      // Run pods are looked up in the namespace where RBAC lets it list pods.
      const computeRole = docs!.find((d) =>
        d.kind === "Role" && d.rules.some((r: Loose) => r.resources.includes("pods"))
      );
      assert.equal(config.computeNamespace, computeRole.metadata.namespace);

      // The IAM role of its ServiceAccount, in the partition of its region.
      const sa = only(docs!, "ServiceAccount");
      assert.equal(pod.serviceAccountName, sa.metadata.name);
      const partition = config.awsRegion.startsWith("us-gov-") ? "aws-us-gov" : "aws";
      assert.match(
        sa.metadata.annotations["eks.amazonaws.com/role-arn"],
        new RegExp(`^arn:${partition}:iam::\\d{12}:role/[\\w+=,.@-]+$`),
      );
    },
  });

  Deno.test({
    name:
      `chart (${variant}): the server pod is non-root, read-only, without capabilities, probed over HTTPS ${
        docs ? "" : skipped
      }`.trim(),
    ignore: !docs,
    fn() {
      const deployment = only(docs!, "Deployment");
      const pod = deployment.spec.template.spec;
      const [container] = pod.containers;
      assert.equal(pod.securityContext.runAsNonRoot, true);
      assert.ok(pod.securityContext.runAsUser > 0);
      assert.deepEqual(container.securityContext, {
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        runAsNonRoot: true,
        capabilities: { drop: ["ALL"] },
      });
      assert.equal(mountOf(container, "tmp"), "/tmp");
      assert.ok(pod.volumes.find((v: Loose) => v.name === "tmp").emptyDir);
      for (const [probe, path] of [["livenessProbe", "/healthz"], ["readinessProbe", "/readyz"]]) {
        assert.deepEqual(container[probe].httpGet, { scheme: "HTTPS", path, port: "https" }, probe);
      }
      assert.ok(container.resources.requests.cpu && container.resources.limits.memory);
      assert.equal(pod.nodeSelector["dominodatalab.com/node-pool"], "platform");
      const anti = pod.affinity.podAntiAffinity;
      const term = anti.requiredDuringSchedulingIgnoredDuringExecution?.[0] ??
        anti.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm;
      assert.equal(term.topologyKey, "kubernetes.io/hostname");
      assert.deepEqual(term.labelSelector.matchLabels, deployment.spec.selector.matchLabels);

      const service = only(docs!, "Service");
      assert.equal(service.metadata.name, "irsa-svc");
      assert.deepEqual(service.spec.selector, deployment.spec.selector.matchLabels);
      const https = service.spec.ports.find((p: Loose) => p.port === 443);
      assert.equal(https.targetPort, "https");

      const policy = only(docs!, "NetworkPolicy");
      assert.deepEqual(policy.spec.podSelector.matchLabels, deployment.spec.selector.matchLabels);
      const open = policy.spec.ingress.find((r: Loose) => r.from === undefined);
      assert.deepEqual(open.ports, [{ port: 6000, protocol: "TCP" }]);
      for (const rule of policy.spec.ingress.filter((r: Loose) => r.from !== undefined)) {
        assert.deepEqual(rule.from, [{
          namespaceSelector: { matchLabels: { "domino-platform": "true" } },
        }]);
      }
      const pdb = only(docs!, "PodDisruptionBudget");
      assert.deepEqual(pdb.spec.selector.matchLabels, deployment.spec.selector.matchLabels);
      assert.equal(
        docs!.some((d) => d.kind === "ServiceMonitor"),
        expect.serviceMonitor,
        "ServiceMonitor only when enabled",
      );
    },
  });

  Deno.test({
    name:
      `chart (${variant}): RBAC grants the ConfigMaps, Leases and events in the field namespace, pod reads, ServiceAccounts and events in the compute namespace, nothing more ${
        docs ? "" : skipped
      }`.trim(),
    ignore: !docs,
    fn() {
      const deployment = only(docs!, "Deployment");
      const fieldNs = deployment.metadata.namespace;
      for (const kind of ["ClusterRole", "ClusterRoleBinding"]) {
        assert.ok(!docs!.some((d) => d.kind === kind), `no ${kind}`);
      }
      const roles = docs!.filter((d) => d.kind === "Role");
      assert.equal(roles.length, 2);
      const userBased = deployment.spec.template.spec.containers.some((c: Loose) =>
        (c.args ?? []).includes("--user-based-service-accounts")
      );
      const field = roles.find((r) => r.metadata.namespace === fieldNs);
      const compute = roles.find((r) => r.metadata.namespace !== fieldNs);
      assert.deepEqual(field.rules, [
        {
          apiGroups: [""],
          resources: ["configmaps"],
          resourceNames: ["domino-org-iamrole-mapping"],
          verbs: ["get", "update"],
        },
        // The grant record's shards and the previous version's single record, read and replaced
        // by name.
        {
          apiGroups: [""],
          resources: ["configmaps"],
          resourceNames: [
            "irsa-grants",
            ...Array.from({ length: 64 }, (_, i) => `irsa-grants-${String(i).padStart(2, "0")}`),
          ],
          verbs: ["get", "update"],
        },
        {
          apiGroups: ["coordination.k8s.io"],
          resources: ["leases"],
          verbs: ["get", "create", "update"],
        },
        { apiGroups: [""], resources: ["events"], verbs: ["create"] },
      ]);
      assert.deepEqual(compute.rules, [
        // Run lookups and the cleanup list pods; the pod watch watches them.
        { apiGroups: [""], resources: ["pods"], verbs: ["list", "watch"] },
        // POST and DELETE /service_account, with per-user service accounts (on by default, as 1.8).
        ...(userBased
          ? [{
            apiGroups: [""],
            resources: ["serviceaccounts"],
            verbs: ["get", "create", "delete"],
          }]
          : []),
        // Not used by the server; granted as 1.8 grants it.
        { apiGroups: [""], resources: ["events"], verbs: ["create"] },
      ]);
      for (const binding of docs!.filter((d) => d.kind === "RoleBinding")) {
        const role = roles.find((r) => r.metadata.namespace === binding.metadata.namespace);
        assert.equal(binding.roleRef.name, role.metadata.name);
        assert.deepEqual(binding.subjects, [{
          kind: "ServiceAccount",
          name: deployment.spec.template.spec.serviceAccountName,
          namespace: fieldNs,
        }]);
      }
    },
  });

  Deno.test({
    name:
      `chart (${variant}): one private CA signs the server's certificate and the copy workspace pods trust ${
        docs ? "" : skipped
      }`.trim(),
    ignore: !docs,
    fn() {
      const deployment = only(docs!, "Deployment");
      const fieldNs = deployment.metadata.namespace;
      const service = only(docs!, "Service");
      const certificates = docs!.filter((d) => d.kind === "Certificate");
      const issuers = docs!.filter((d) => d.kind === "ClusterIssuer");
      assert.equal(certificates.length, 3);
      assert.equal(issuers.length, 2);
      const issuer = (ref: Loose) => {
        assert.equal(ref.kind, "ClusterIssuer");
        return issuers.find((i) => i.metadata.name === ref.name);
      };
      const serving = only(docs!, "Certificate", fieldNs);
      const name = service.metadata.name;
      for (const dns of [name, `${name}.${fieldNs}`, `${name}.${fieldNs}.svc`]) {
        assert.ok(serving.spec.dnsNames.includes(dns), `certificate lacks ${dns}`);
      }
      assert.ok(serving.spec.duration && serving.spec.renewBefore);
      const caIssuer = issuer(serving.spec.issuerRef);
      const ca = certificates.find((c) => c.spec.secretName === caIssuer.spec.ca.secretName);
      assert.equal(ca.spec.isCA, true);
      assert.equal(ca.metadata.namespace, "cert-manager");
      assert.equal(ca.spec.privateKey.rotationPolicy, "Never");
      assert.deepEqual(issuer(ca.spec.issuerRef).spec, { selfSigned: {} });
      const copy = certificates.find((c) => c !== serving && c !== ca);
      assert.equal(
        copy.metadata.namespace,
        only(docs!, "Role", "domino-compute").metadata.namespace,
      );
      assert.deepEqual(copy.spec.issuerRef, serving.spec.issuerRef);
    },
  });

  Deno.test({
    name:
      `chart (${variant}): the Mutations give the sidecar exactly variables that irsa sidecar reads, and the workspace today's ${
        docs ? "" : skipped
      }`.trim(),
    ignore: !docs,
    fn() {
      const deployment = only(docs!, "Deployment");
      const serverContainer = deployment.spec.template.spec.containers[0];
      const serverEnv = environmentOf(serverContainer);
      const service = only(docs!, "Service");
      // The current chart's (1.8) Mutation names, so that an upgrade replaces its Mutations; each
      // holds its own kind of rule.
      const mutations = docs!.filter((d) => d.kind === "Mutation");
      const name = deployment.metadata.name;
      /** Each Mutation's name, and what its rules may do. */
      const expected: [string, (rule: Loose) => boolean][] = [
        [name, (r) => !r.insertContainer && !r.cloudWorkloadIdentity],
      ];
      if (expect.sidecar) {
        expected.push([
          `${name}-sidecar`,
          (r) =>
            r.insertContainer !== undefined ||
            r.insertVolumes?.every((v: Loose) => v.name === "irsa-client-tmp"),
        ]);
      }
      if (expect.userBased) {
        expected.push([
          `${name}-cloud-identity`,
          (r) => Object.keys(r).sort().join() === "cloudWorkloadIdentity,labelSelectors",
        ]);
      }
      assert.deepEqual(mutations.map((m) => m.metadata.name), expected.map(([n]) => n));
      for (const [i, mutation] of mutations.entries()) {
        assert.equal(mutation.apiVersion, "apps.dominodatalab.com/v1alpha1");
        assert.equal(mutation.metadata.namespace, "domino-platform");
        for (const rule of mutation.rules) {
          assert.ok(expected[i][1](rule), `${mutation.metadata.name}: ${JSON.stringify(rule)}`);
        }
      }
      const rules: Loose[] = mutations.flatMap((m) => m.rules);
      for (const rule of rules) {
        assert.equal(rule.labelSelectors.length, 1, "one selector per rule");
      }
      const selectors = [...new Set(rules.map((r) => r.labelSelectors[0]))];
      assert.equal(selectors.length, 3, "edge workloads, cluster heads, cluster workers");
      assert.deepEqual(
        rules.filter((r) => r.modifyLabel).map((r) => [r.modifyLabel.key, r.modifyLabel.value]),
        [
          ["dominodatalab.com/irsa-workload-type", "edge-workload"],
          ["dominodatalab.com/irsa-workload-type", "cluster-master"],
          ["dominodatalab.com/irsa-workload-type", "cluster-worker"],
        ],
      );
      const identities = rules.filter((r) => r.cloudWorkloadIdentity);
      assert.equal(
        identities.length,
        serverContainer.args.includes("--user-based-service-accounts") ? 3 : 0,
      );
      for (const rule of identities) {
        assert.deepEqual(rule.cloudWorkloadIdentity, {
          cloud_type: "aws",
          user_mappings: expect.userMappings,
          assume_sa_mapping: true,
          default_sa: "",
        });
      }

      for (const selector of selectors) {
        const mine = rules.filter((r) => r.labelSelectors[0] === selector);
        const one = (op: string) => {
          const found = mine.filter((r) => r[op]);
          assert.equal(found.length, 1, `${selector}: one ${op} rule`);
          return found[0][op];
        };
        const volumes: Loose[] = mine.flatMap((r) => r.insertVolumes ?? []);
        const volumeNames = volumes.map((v) => v.name);
        assert.deepEqual(volumeNames, [...new Set(volumeNames)], `${selector}: a volume twice`);
        const volume = (name: string) => {
          const v = volumes.find((v) => v.name === name);
          assert.ok(v, `${selector}: no volume ${name}`);
          return v;
        };
        const token = volume("aws-user-token").projected.sources[0].serviceAccountToken;
        assert.equal(token.audience, serverEnv.get("OIDC_PROVIDER_AUDIENCE"));
        assert.equal(token.audience, "sts.amazonaws.com");
        assert.equal(token.expirationSeconds, 86400);
        assert.ok(volume("aws-config-file").emptyDir);
        assert.deepEqual(volume("podinfo").downwardAPI.items, [
          { path: "labels", fieldRef: { fieldPath: "metadata.labels" } },
        ]);
        const caSecret = volume("irsa-ca").secret;
        assert.deepEqual(caSecret.items, [{ key: "ca.crt", path: "ca.crt" }]);
        assert.ok(
          docs!.some((d) => d.kind === "Certificate" && d.spec.secretName === caSecret.secretName),
          "the CA volume is a cert-manager secret",
        );
        assert.deepEqual(one("modifySecurityContext"), { context: { fsGroup: 12574 } });

        // The user's containers: volumes and today's workspace variables.
        const mounts = one("insertVolumeMounts");
        const userEnv = one("modifyEnv");
        assert.deepEqual(mounts.containerSelector, userEnv.containerSelector);
        const user = { name: "run", volumeMounts: mounts.volumeMounts, env: userEnv.env };
        const userVariables = environmentOf(user);
        // With the sidecar's credential endpoint on, the container provider's two variables too.
        const sidecarSpec = mine.find((r) => r.insertContainer)?.insertContainer.spec;
        const vends = sidecarSpec !== undefined &&
          environmentOf(sidecarSpec).get("IRSA_CREDENTIALS") !== "false";
        assert.deepEqual(
          [...userVariables.keys()].sort(),
          [...WORKSPACE_VARIABLES, ...(vends ? CONTAINER_PROVIDER_VARIABLES : [])].sort(),
        );
        assert.equal(userVariables.get("OIDC_PROVIDER"), serverEnv.get("OIDC_PROVIDER"));
        assert.equal(userVariables.get("DOMINO_IRSA_PROXY"), "http://localhost:6003");
        assert.equal(userVariables.get("DOMINO_API_PROXY"), "http://localhost:8899");
        assert.equal(userVariables.get("DOMINO_API_PROXY_PORT"), "8899");
        assertUnder(
          userVariables.get("AWS_CONFIG_FILE")!,
          mountOf(user, "aws-config-file"),
          "config",
        );
        assertUnder(
          userVariables.get("AWS_WEB_IDENTITY_TOKEN_FILE")!,
          mountOf(user, "aws-user-token"),
          "token",
        );
        assertUnder(userVariables.get("DOMINO_IRSA_SSL_CERT")!, mountOf(user, "irsa-ca"), "CA");

        const inserted = mine.filter((r) => r.insertContainer);
        assert.equal(inserted.length, expect.sidecar ? 1 : 0, `${selector}: the sidecar`);
        if (!expect.sidecar) continue;
        const { containerType, spec: sidecar } = inserted[0].insertContainer;
        assert.equal(containerType, "app");
        // The current chart's (1.8) container name, which platform tooling and runbooks use.
        assert.equal(sidecar.name, "aws-config-file-generator");
        assert.deepEqual(sidecar.args, ["sidecar"]);
        assert.equal(sidecar.image, serverContainer.image, "one image for both roles");
        // Variables that other rules add to the sidecar count too.
        const extra = mine.filter((r) => r.modifyEnv?.containerSelector.includes(sidecar.name));
        assert.deepEqual(extra, [], "the sidecar's variables are all in its container spec");

        const env = environmentOf(sidecar);
        for (const name of env.keys()) {
          assert.ok(
            SIDECAR_VARIABLES.has(name),
            `${name} is not a variable that irsa sidecar reads`,
          );
        }
        for (const name of SIDECAR_REQUIRED) {
          assert.ok(env.has(name), `the sidecar does not get ${name}`);
        }
        const config = sidecarConfig([], (n) => env.get(n));
        assert.equal(config.host, "127.0.0.1");
        assert.equal(config.runId, RUN_LABELS["dominodatalab.com/execution-id"]);
        assert.equal(config.username, "jdoe");
        assert.equal(config.region, serverEnv.get("AWS_REGION"));
        assert.equal(
          config.endpoint,
          `https://${service.metadata.name}.${service.metadata.namespace}/map_iam_roles_to_pod_sa`,
        );
        assert.equal(config.endpoint, userVariables.get("DOMINO_IRSA_ENDPOINT"));
        assertUnder(config.configFile, mountOf(sidecar, "aws-config-file"), "AWS_CONFIG_FILE");
        assertUnder(config.tokenFile, mountOf(sidecar, "aws-user-token"), "the token");
        assertUnder(config.podInfo, mountOf(sidecar, "podinfo"), "POD_INFO_PATH");
        assertUnder(config.caFile!, mountOf(sidecar, "irsa-ca"), "DOMINO_IRSA_SSL_CERT");
        assert.equal(config.configFile, userVariables.get("AWS_CONFIG_FILE"));
        if (config.credentials) {
          // The run container reaches the sidecar's endpoint and reads the token file it writes.
          assert.equal(
            userVariables.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
            `http://${config.host}:${config.port}/credentials`,
          );
          assert.equal(
            userVariables.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
            config.credentialsTokenFile,
          );
          assertUnder(config.credentialsTokenFile, mountOf(user, "aws-config-file"), "the token");
          assertUnder(config.credentialHelperFile, mountOf(user, "aws-config-file"), "the helper");
        }
        assert.equal(mountOf(sidecar, "irsa-client-tmp"), "/tmp");
        for (const m of sidecar.volumeMounts) volume(m.name);
        assert.equal(sidecar.securityContext.readOnlyRootFilesystem, true);
        assert.equal(sidecar.securityContext.runAsNonRoot, true);
        assert.deepEqual(sidecar.securityContext.capabilities, { drop: ["ALL"] });
      }
    },
  });
}

// --- A values file of the current chart (1.8) -----------------------------------------------

const VALUES_1_8 = `${ROOT}tests/testdata/irsa_1_8_values.yaml`;
const unchanged18 = index
  ? Deno.readTextFileSync(`${RENDERED_DIR}from-1.8-unchanged.txt`)
  : undefined;

Deno.test({
  name: unchanged18 !== undefined
    ? "chart: a 1.8 values file reused unchanged fails, naming the image keys; with them changed, every container runs irsa's image"
    : `chart: a 1.8 values file (skipped: ${RENDER_HINT})`,
  ignore: unchanged18 === undefined,
  fn() {
    // The test data pins the current service's images, as admins' 1.8 files do.
    const values = Deno.readTextFileSync(VALUES_1_8);
    for (
      const line of [
        "repository: quay.io/domino/field",
        "serverContainer: irsa",
        "clientContainer: irsa-client",
        "serverAppVersion: v1.8.0-release",
      ]
    ) {
      assert.ok(values.includes(`  ${line}\n`), `${VALUES_1_8} lacks ${line}`);
    }
    assert.match(unchanged18!, /quay\.io\/domino\/field\/irsa:v1\.8\.0-release/);
    for (
      const key of [
        "image.repository",
        "image.serverContainer",
        "image.clientContainer",
        "image.serverAppVersion",
        "image.clientAppVersion",
      ]
    ) {
      assert.ok(unchanged18!.includes(key), `the message does not name ${key}: ${unchanged18}`);
    }

    const images = (docs: Loose[]) =>
      docs.flatMap((d) => [
        ...(d.spec?.template?.spec?.containers ?? []),
        ...(d.rules ?? []).filter((r: Loose) => r.insertContainer).map((r: Loose) =>
          r.insertContainer.spec
        ),
      ]).map((c: Loose) => c.image);
    const from18 = images(readJson(`${RENDERED_DIR}from-1.8.json`));
    const irsa = images(readJson(`${RENDERED_DIR}defaults.json`))[0];
    assert.equal(from18.length, 4, "the server and the sidecar of three kinds of pods");
    assert.deepEqual(new Set(from18), new Set([irsa]));
  },
});
