/** Settings: one table per mode, read from flags and environment variables, validated all at once. */

import * as v from "valibot";
import { PARTITIONS } from "../core/arn.ts";

/** A setting: its flag, the environment variables that may set it (first wins), its default and how to read it. */
export interface Setting {
  readonly flag: string;
  readonly env: readonly string[];
  readonly default?: string;
  readonly help: string;
  // deno-lint-ignore no-explicit-any
  readonly schema: v.GenericSchema<string, any>;
  /** Flags that take no value (`--insecure-http`) are booleans. */
  readonly boolean?: boolean;
}

/** The modes the one binary runs in. */
export type Mode = "server" | "sidecar";

/** Readers for setting values, each with a message that says what was expected. */
export const read = {
  string: v.pipe(v.string(), v.trim(), v.minLength(1, "expected a non-empty value")),
  optionalString: v.pipe(v.string(), v.trim()),
  port: v.pipe(
    v.string(),
    v.regex(/^\d+$/, "expected a port number"),
    v.transform(Number),
    v.minValue(0, "expected a port number"),
    v.maxValue(65535, "expected a port number up to 65535"),
  ),
  positiveInt: v.pipe(
    v.string(),
    v.regex(/^\d+$/, "expected a whole number"),
    v.transform(Number),
    v.minValue(1, "expected a number of at least 1"),
  ),
  boolean: v.pipe(
    v.string(),
    v.toLowerCase(),
    v.picklist(["true", "false", "1", "0", "yes", "no"], 'expected "true" or "false"'),
    v.transform((s) => ["true", "1", "yes"].includes(s)),
  ),
  url: v.pipe(v.string(), v.trim(), v.url("expected a URL")),
  optionalUrl: v.pipe(
    v.string(),
    v.trim(),
    v.check((s) => s === "" || URL.canParse(s), "expected a URL"),
  ),
  regex: v.pipe(
    v.string(),
    v.check((s) => {
      try {
        new RegExp(s);
        return true;
      } catch {
        return false;
      }
    }, "expected a regular expression"),
    v.transform((s) => new RegExp(s)),
  ),
  /** A comma-separated list of IAM role names; empty for none. */
  nameList: v.pipe(
    v.string(),
    v.transform((s) => s.split(",").map((n) => n.trim()).filter((n) => n !== "")),
    v.check(
      (names) => names.every((n) => /^[\w+=,.@-]{1,64}$/.test(n)),
      'expected comma-separated IAM role names (letters, digits, "+=.@_-")',
    ),
  ),
  oneOf: <const T extends string>(values: readonly T[]) =>
    v.pipe(
      v.string(),
      v.trim(),
      v.picklist(values, `expected one of ${values.map((s) => `"${s}"`).join(", ")}`),
    ),
};

/** A problem with one setting, named by its flag and the variables that can set it. */
export interface ConfigProblem {
  readonly setting: string;
  readonly message: string;
}

/** Thrown when settings are wrong; lists every problem at once. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(readonly problems: readonly ConfigProblem[]) {
    super(problems.map((p) => `${p.setting}: ${p.message}`).join("\n"));
  }
}

/**
 * Reads a settings table from command-line arguments (`--flag value`, `--flag=value`) and
 * environment variables; flags win over variables, variables over defaults. Returns the values by
 * flag name, or throws {@link ConfigError} with every problem found.
 */
export function readSettings(
  table: readonly Setting[],
  args: readonly string[],
  env: (name: string) => string | undefined,
): Record<string, unknown> {
  const problems: ConfigProblem[] = [];
  const byFlag = new Map(table.map((s) => [s.flag, s]));
  const given = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const m = /^--([a-z0-9-]+)(?:=(.*))?$/s.exec(arg);
    const setting = m ? byFlag.get(m[1]) : undefined;
    if (!m || !setting) {
      problems.push({
        setting: arg,
        message: `unknown ${arg.startsWith("-") ? "flag" : "argument"}`,
      });
      continue;
    }
    let value = m[2];
    if (value === undefined) {
      if (setting.boolean) value = "true";
      else if (i + 1 < args.length) value = args[++i];
      else {
        problems.push({ setting: arg, message: "expected a value after the flag" });
        continue;
      }
    }
    given.set(setting.flag, value);
  }
  const values: Record<string, unknown> = {};
  for (const setting of table) {
    const fromEnv = setting.env.map((name) => [name, env(name)] as const).find(([, value]) =>
      value !== undefined
    );
    const raw = given.get(setting.flag) ?? fromEnv?.[1] ?? setting.default;
    if (raw === undefined) {
      problems.push({ setting: label(setting), message: "required, not set" });
      continue;
    }
    const result = v.safeParse(setting.schema, raw);
    if (result.success) values[setting.flag] = result.output;
    else {
      const source = given.has(setting.flag)
        ? `--${setting.flag}`
        : fromEnv
        ? fromEnv[0]
        : "default";
      problems.push({
        setting: label(setting),
        message: `${result.issues[0].message} (got ${JSON.stringify(raw)} from ${source})`,
      });
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return values;
}

function label(s: Setting): string {
  return [`--${s.flag}`, ...s.env].join(" / ");
}

/** The `--help` text of a mode: every setting with its variables and default. */
export function helpText(
  mode: Mode | undefined,
  tables: Readonly<Record<Mode, readonly Setting[]>>,
): string {
  const head = [
    "irsa: AWS roles for the workspaces of a multi-tenant Kubernetes platform, through IRSA and role chaining.",
    "",
    "Usage: irsa <server|sidecar> [--flag value]...   (the mode may also come from IRSA_MODE)",
    "       irsa [server|sidecar] --help",
    "",
    "Modes:",
    "  server    the HTTPS broker that edits proxy-role trust policies (port 6000)",
    "  sidecar   the workspace sidecar that writes the AWS config file (localhost:6003)",
  ];
  const modes = mode ? [mode] : (Object.keys(tables) as Mode[]);
  const sections = modes.map((m) =>
    [
      "",
      `Settings of "irsa ${m}" (flag, environment variables, default):`,
      ...tables[m].flatMap((s) => [
        `  --${s.flag}${s.env.length ? `  [${s.env.join(", ")}]` : ""}${
          s.default !== undefined ? `  (default: ${JSON.stringify(s.default)})` : "  (required)"
        }`,
        `      ${s.help}`,
      ]),
    ].join("\n")
  );
  return [...head, ...sections].join("\n") + "\n";
}

/** The platform API inside the cluster, as the current service's chart sets it. */
const DEFAULT_DOMINO_USER_HOST = "http://nucleus-frontend.domino-platform:80";

/** Settings of `irsa server`. Variable names of the current service are kept where it has them. */
export const serverSettings: readonly Setting[] = [
  {
    flag: "host",
    env: ["IRSA_HOST"],
    default: "0.0.0.0",
    help: "Address to listen on.",
    schema: read.string,
  },
  {
    flag: "port",
    env: ["IRSA_PORT"],
    default: "6000",
    help: "HTTPS port (the Service maps 443 to it).",
    schema: read.port,
  },
  {
    flag: "tls-cert",
    env: ["IRSA_TLS_CERT"],
    default: "/ssl/tls.crt",
    help: "Server certificate (PEM).",
    schema: read.string,
  },
  {
    flag: "tls-key",
    env: ["IRSA_TLS_KEY"],
    default: "/ssl/tls.key",
    help: "Server private key (PEM).",
    schema: read.string,
  },
  {
    flag: "insecure-http",
    env: ["IRSA_INSECURE_HTTP"],
    default: "false",
    help: "Serve plain HTTP instead of HTTPS; for local use only.",
    schema: read.boolean,
    boolean: true,
  },
  {
    flag: "metrics-port",
    env: ["PROMETHEUS_METRICS_PORT"],
    default: "0",
    help: "Also serve GET /metrics over plain HTTP on this port (0: only on the main port).",
    schema: read.port,
  },
  {
    flag: "oidc-provider",
    env: ["OIDC_PROVIDER"],
    help: "The cluster's IAM OIDC provider, host form: oidc.eks.<region>.amazonaws.com/id/<ID>.",
    schema: v.pipe(
      read.string,
      v.regex(
        /^[^\s/:]+(\/[^\s]+)?$/,
        "expected a host and path without scheme, e.g. oidc.eks.us-west-2.amazonaws.com/id/EXAMPLE",
      ),
    ),
  },
  {
    flag: "oidc-provider-audience",
    env: ["OIDC_PROVIDER_AUDIENCE"],
    default: "sts.amazonaws.com",
    help: "Audience of projected service-account tokens.",
    schema: read.string,
  },
  {
    flag: "cluster-issuer",
    env: ["IRSA_CLUSTER_ISSUER"],
    default: "",
    help: "Issuer of projected service-account tokens (default: https://<oidc-provider>).",
    schema: read.optionalUrl,
  },
  {
    flag: "cluster-jwks-url",
    env: ["IRSA_CLUSTER_JWKS_URL"],
    default: "",
    help: "JWKS of that issuer (default: discovered from its /.well-known/openid-configuration).",
    schema: read.optionalUrl,
  },
  {
    flag: "aws-region",
    env: ["AWS_REGION", "AWS_DEFAULT_REGION"],
    default: "us-east-1",
    help: "AWS region of the SDK clients.",
    schema: read.string,
  },
  {
    flag: "iam-endpoint",
    env: ["AWS_ENDPOINT_URL_IAM"],
    default: "",
    help: "IAM endpoint override (tests point it at moto).",
    schema: read.optionalUrl,
  },
  {
    flag: "iam-timeout-ms",
    env: ["IRSA_IAM_TIMEOUT_MS"],
    default: "5000",
    help: "Timeout of one IAM call.",
    schema: read.positiveInt,
  },
  {
    flag: "sts-endpoint",
    env: ["AWS_ENDPOINT_URL_STS"],
    default: "",
    help:
      "STS endpoint override, for GetCallerIdentity at start (tests point it at moto; default: the region's).",
    schema: read.optionalUrl,
  },
  {
    flag: "proxy-role-account",
    env: ["IRSA_PROXY_ROLE_ACCOUNT"],
    default: "",
    help:
      "Account of the editable proxy roles; it must be the account of the server's credentials (default: learned from STS GetCallerIdentity at start).",
    schema: v.pipe(
      read.optionalString,
      v.regex(/^(\d{12})?$/, "expected a 12-digit AWS account id"),
    ),
  },
  {
    flag: "proxy-role-partition",
    env: ["IRSA_PROXY_ROLE_PARTITION"],
    default: "",
    help:
      'Partition of the editable proxy roles, e.g. "aws" or "aws-us-gov" (default: learned from STS GetCallerIdentity at start).',
    schema: v.pipe(
      read.optionalString,
      v.check(
        (s) => s === "" || PARTITIONS.includes(s),
        `expected one of ${PARTITIONS.map((p) => `"${p}"`).join(", ")}`,
      ),
    ),
  },
  {
    flag: "proxy-role-prefix",
    env: ["IRSA_PROXY_ROLE_PREFIX"],
    default: "",
    help:
      "Only proxy roles whose name starts with this are editable (with --proxy-role-names, either admits; empty: any name).",
    schema: v.pipe(
      read.optionalString,
      v.regex(
        /^[\w+=,.@-]{0,64}$/,
        'expected the start of an IAM role name (letters, digits, "+=,.@_-")',
      ),
    ),
  },
  {
    flag: "proxy-role-names",
    env: ["IRSA_PROXY_ROLE_NAMES"],
    default: "",
    help:
      "Comma-separated names of the editable proxy roles (with --proxy-role-prefix, either admits; empty: any name).",
    schema: read.nameList,
  },
  {
    flag: "server-role-name",
    env: ["IRSA_SERVER_ROLE_NAME"],
    default: "",
    help:
      "The server's own IAM role, never editable; learned from STS when the server runs as an assumed role, set it when its credentials are an IAM user's.",
    schema: v.pipe(
      read.optionalString,
      v.regex(/^([\w+=,.@-]{1,64})?$/, 'expected an IAM role name (letters, digits, "+=,.@_-")'),
    ),
  },
  {
    flag: "subject-format",
    env: ["IRSA_SUBJECT_FORMAT"],
    default: "wildcard",
    help:
      'How trust policies name service accounts: "wildcard" (*:<ns>:<sa> in StringLike) or "exact" (system:serviceaccount:<ns>:<sa> in StringEquals).',
    schema: read.oneOf(["wildcard", "exact"]),
  },
  {
    flag: "trust-policy-quota",
    env: ["IRSA_TRUST_POLICY_QUOTA"],
    default: "2048",
    help: "Trust-policy length quota of the proxy roles (AWS quota L-C07B4B0D).",
    schema: read.positiveInt,
  },
  {
    flag: "compute-namespace",
    env: ["DEFAULT_COMPUTE_NS"],
    default: "domino-compute",
    help: "Namespace of run pods.",
    schema: read.string,
  },
  {
    flag: "field-namespace",
    env: ["DEFAULT_FIELD_NS"],
    default: "domino-field",
    help: "Namespace of irsa and its ConfigMap.",
    schema: read.string,
  },
  {
    flag: "run-id-pattern",
    env: ["IRSA_RUN_ID_PATTERN"],
    default: "^[0-9a-f]{24}$",
    help: "Pattern a run_id must match.",
    schema: read.regex,
  },
  {
    flag: "user-based-service-accounts",
    env: ["IRSA_USER_BASED_SERVICE_ACCOUNTS"],
    default: "false",
    help:
      "Pods run as per-user service accounts (<compute ns>:<username>) instead of run-<run id>.",
    schema: read.boolean,
    boolean: true,
  },
  {
    flag: "trust-pod-token-alone",
    env: ["IRSA_TRUST_POD_TOKEN_ALONE"],
    default: "false",
    help:
      "Without a Kubernetes API, accept a pod's service-account token alone as proof that the pod is the caller's. It then trusts whoever holds the token: a user who obtains another pod's token can add that pod to their own roles. With a Kubernetes API it has no effect (the run's pods must show the caller as starting user).",
    schema: read.boolean,
    boolean: true,
  },
  {
    flag: "verifier",
    env: ["IRSA_VERIFIER"],
    default: "jwt",
    help:
      '"jwt": verify user tokens against the identity provider\'s JWKS; "domino": ask the platform API.',
    schema: read.oneOf(["jwt", "domino"]),
  },
  {
    flag: "jwt-issuer",
    env: ["IRSA_JWT_ISSUER"],
    default: "",
    help: "Issuer of user tokens (jwt verifier; required with it).",
    schema: read.optionalUrl,
  },
  {
    flag: "jwt-jwks-url",
    env: ["IRSA_JWT_JWKS_URL"],
    default: "",
    help: "JWKS of user tokens (default: <issuer>/protocol/openid-connect/certs, Keycloak's).",
    schema: read.optionalUrl,
  },
  {
    flag: "jwt-audience",
    env: ["IRSA_JWT_AUDIENCE"],
    default: "",
    help: "Audience user tokens must carry (empty: not checked).",
    schema: read.optionalString,
  },
  {
    flag: "jwt-username-claim",
    env: ["IRSA_JWT_USERNAME_CLAIM"],
    default: "preferred_username",
    help: "Claim with the user name.",
    schema: read.string,
  },
  {
    flag: "jwt-groups-claim",
    env: ["IRSA_JWT_GROUPS_CLAIM"],
    default: "user_groups",
    help: "Claim with the user's organizations.",
    schema: read.string,
  },
  {
    flag: "jwt-admin-claim",
    env: ["IRSA_JWT_ADMIN_CLAIM"],
    default: "realm_access.roles",
    help: "Dotted path of the claim that marks admins.",
    schema: read.string,
  },
  {
    flag: "jwt-admin-value",
    env: ["IRSA_JWT_ADMIN_VALUE"],
    default: "DominoAdmin",
    help: "Value of that claim that makes an admin.",
    schema: read.string,
  },
  {
    flag: "domino-user-host",
    env: ["DOMINO_USER_HOST"],
    default: "",
    help:
      `The platform API (/v4/auth/principal, /v4/organizations/self): the domino verifier asks it for every caller (empty: ${DEFAULT_DOMINO_USER_HOST}); with the jwt verifier, set it to accept platform API keys in X-Domino-Api-Key, which it resolves (empty: keys are refused).`,
    schema: read.optionalUrl,
  },
  {
    flag: "principal-cache-seconds",
    env: ["IRSA_PRINCIPAL_CACHE_SECONDS"],
    default: "30",
    help: "How long the domino verifier caches an answer, keyed by a hash of the token.",
    schema: read.positiveInt,
  },
  {
    flag: "ca-file",
    env: ["IRSA_CA_FILE"],
    default: "",
    help: "Extra CA (PEM) trusted for the identity provider and cluster issuer.",
    schema: read.optionalString,
  },
  {
    flag: "mapping-store",
    env: ["IRSA_MAPPING_STORE"],
    default: "file",
    help:
      '"file" (a JSON file) or "configmap" (ConfigMap domino-org-iamrole-mapping in the field namespace).',
    schema: read.oneOf(["file", "configmap"]),
  },
  {
    flag: "mapping-file",
    env: ["IRSA_MAPPING_FILE"],
    default: "irsa-mappings.json",
    help: "The file store's file.",
    schema: read.string,
  },
  {
    flag: "mapping-configmap",
    env: ["IRSA_MAPPING_CONFIGMAP"],
    default: "domino-org-iamrole-mapping",
    help: "The ConfigMap store's ConfigMap.",
    schema: read.string,
  },
  {
    flag: "kubernetes-api",
    env: ["IRSA_KUBERNETES_API"],
    default: "",
    help:
      "Kubernetes API URL (default in a cluster: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT; empty outside one: no run lookup).",
    schema: read.optionalUrl,
  },
  {
    flag: "kubernetes-token-file",
    env: ["IRSA_KUBERNETES_TOKEN_FILE"],
    default: "/var/run/secrets/kubernetes.io/serviceaccount/token",
    help: "Token for the Kubernetes API, re-read at every call.",
    schema: read.string,
  },
  {
    flag: "kubernetes-ca-file",
    env: ["IRSA_KUBERNETES_CA_FILE"],
    default: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
    help: "CA of the Kubernetes API.",
    schema: read.string,
  },
  {
    flag: "log-level",
    env: ["IRSA_LOG_LEVEL"],
    default: "info",
    help: "debug, info, warn or error.",
    schema: read.oneOf(["debug", "info", "warn", "error"]),
  },
  {
    flag: "cleanup-interval-seconds",
    env: ["IRSA_CLEANUP_INTERVAL_SECONDS"],
    default: "60",
    help: "Period of the loop that removes subjects of ended runs (0: off).",
    schema: read.port,
  },
  {
    flag: "cleanup-grace-seconds",
    env: ["IRSA_CLEANUP_GRACE_SECONDS"],
    default: "300",
    help: "The cleanup never removes a subject it first saw less than this long ago.",
    schema: read.positiveInt,
  },
  {
    flag: "run-lease-seconds",
    env: ["IRSA_RUN_LEASE_SECONDS"],
    default: "900",
    help: "Without Kubernetes: a run whose sidecar has not synced for this long has ended.",
    schema: read.positiveInt,
  },
  {
    flag: "lease-duration-seconds",
    env: ["IRSA_LEASE_DURATION_SECONDS"],
    default: "15",
    help: "With Kubernetes: the per-role Lease expires this long after its holder stops renewing.",
    schema: read.positiveInt,
  },
  {
    flag: "policy-cache-seconds",
    env: ["IRSA_POLICY_CACHE_SECONDS"],
    default: "300",
    help: "A cached trust policy is read from IAM again after this long.",
    schema: read.positiveInt,
  },
  {
    flag: "caller-cache-seconds",
    env: ["IRSA_CALLER_CACHE_SECONDS"],
    default: "30",
    help: "A verified user token or API key is reused this long (never past its exp).",
    schema: read.positiveInt,
  },
  {
    flag: "edit-window-ms",
    env: ["IRSA_EDIT_WINDOW_MS"],
    default: "50",
    help: "Edits of one role within this long of the first are written together (0: none).",
    schema: v.pipe(
      v.string(),
      v.regex(/^\d+$/, "expected a whole number of milliseconds"),
      v.transform(Number),
      v.maxValue(10_000, "expected at most 10000 milliseconds"),
    ),
  },
];

/** Settings of `irsa sidecar`; the variables are those the platform's mutation injects today. */
export const sidecarSettings: readonly Setting[] = [
  {
    flag: "host",
    env: ["IRSA_SIDECAR_HOST"],
    default: "127.0.0.1",
    help: "Address to listen on (loopback: only the pod reaches it).",
    schema: read.string,
  },
  {
    flag: "port",
    env: ["IRSA_SIDECAR_PORT"],
    default: "6003",
    help: "Port to listen on.",
    schema: read.port,
  },
  {
    flag: "api-proxy",
    env: ["DOMINO_API_PROXY"],
    default: "http://localhost:8899",
    help: "The pod-local platform API proxy; GET <it>/access-token answers the user's token.",
    schema: read.url,
  },
  {
    flag: "endpoint",
    env: ["DOMINO_IRSA_ENDPOINT"],
    default: "https://irsa-svc.domino-field/map_iam_roles_to_pod_sa",
    help: "The server's mapping endpoint.",
    schema: read.url,
  },
  {
    flag: "ca-file",
    env: ["DOMINO_IRSA_SSL_CERT"],
    default: "",
    help: "CA (PEM) of the server's certificate (default: the system's roots).",
    schema: read.optionalString,
  },
  {
    flag: "config-file",
    env: ["AWS_CONFIG_FILE"],
    default: "/var/run/.aws/config",
    help: "The AWS config file to write.",
    schema: read.string,
  },
  {
    flag: "token-file",
    env: ["AWS_WEB_IDENTITY_TOKEN_FILE"],
    default: "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
    help: "The pod's projected service-account token, re-read at every sync.",
    schema: read.string,
  },
  {
    flag: "pod-info",
    env: ["POD_INFO_PATH"],
    default: "/var/run/podinfo/labels",
    help: "The downward-API labels file.",
    schema: read.string,
  },
  {
    flag: "run-id",
    env: ["DOMINO_RUN_ID"],
    default: "",
    help: "This pod's run id.",
    schema: read.optionalString,
  },
  {
    flag: "username",
    env: ["DOMINO_STARTING_USERNAME"],
    default: "",
    help: "The starting user, written as role_session_name so CloudTrail shows who acted.",
    schema: read.optionalString,
  },
  {
    flag: "region",
    env: ["AWS_REGION", "AWS_DEFAULT_REGION"],
    default: "",
    help: "Region written into the profiles and used for STS.",
    schema: read.optionalString,
  },
  {
    flag: "sts-regional-endpoints",
    env: ["AWS_STS_REGIONAL_ENDPOINTS"],
    default: "",
    help: '"regional" or "legacy", written into the profiles.',
    schema: v.pipe(
      v.string(),
      v.trim(),
      v.picklist(["", "regional", "legacy"], 'expected "regional" or "legacy"'),
    ),
  },
  {
    flag: "sts-endpoint",
    env: ["AWS_ENDPOINT_URL_STS"],
    default: "",
    help: "STS endpoint of the propagation check (default: https://sts.<region>.amazonaws.com).",
    schema: read.optionalUrl,
  },
  {
    flag: "propagation-check",
    env: ["IRSA_PROPAGATION_CHECK"],
    default: "true",
    help:
      "After a sync, try AssumeRoleWithWebIdentity on each proxy role until it works; /healthz tells.",
    schema: read.boolean,
  },
  {
    flag: "propagation-deadline-seconds",
    env: ["IRSA_PROPAGATION_DEADLINE_SECONDS"],
    default: "60",
    help: "How long the propagation check keeps trying.",
    schema: read.positiveInt,
  },
  {
    flag: "sync-interval-seconds",
    env: ["IRSA_SYNC_INTERVAL_SECONDS"],
    default: "300",
    help: "Period of the resync that picks up mapping changes.",
    schema: read.positiveInt,
  },
  {
    flag: "start-deadline-seconds",
    env: ["IRSA_START_DEADLINE_SECONDS"],
    default: "120",
    help: "How long the first sync retries while the token endpoint or the server is not up.",
    schema: read.positiveInt,
  },
  {
    flag: "log-level",
    env: ["IRSA_LOG_LEVEL"],
    default: "info",
    help: "debug, info, warn or error.",
    schema: read.oneOf(["debug", "info", "warn", "error"]),
  },
];

/** The sidecar's configuration, frozen. */
export type SidecarConfig = ReturnType<typeof sidecarConfig>;

/** Builds the sidecar's configuration from its settings, or throws {@link ConfigError}. */
export function sidecarConfig(args: readonly string[], env: (name: string) => string | undefined) {
  const s = readSettings(sidecarSettings, args, env);
  const str = (k: string) => s[k] as string;
  const region = str("region");
  return Object.freeze({
    host: str("host"),
    port: s.port as number,
    apiProxy: str("api-proxy").replace(/\/$/, ""),
    endpoint: str("endpoint"),
    caFile: str("ca-file") || undefined,
    configFile: str("config-file"),
    tokenFile: str("token-file"),
    podInfo: str("pod-info"),
    runId: str("run-id") || undefined,
    username: str("username") || undefined,
    region: region || undefined,
    stsRegionalEndpoints: (str("sts-regional-endpoints") || undefined) as
      | "regional"
      | "legacy"
      | undefined,
    stsEndpoint: str("sts-endpoint") || `https://sts.${region || "us-east-1"}.amazonaws.com`,
    propagationCheck: s["propagation-check"] as boolean,
    propagationDeadlineMs: (s["propagation-deadline-seconds"] as number) * 1000,
    syncIntervalMs: (s["sync-interval-seconds"] as number) * 1000,
    startDeadlineMs: (s["start-deadline-seconds"] as number) * 1000,
    logLevel: s["log-level"] as "debug" | "info" | "warn" | "error",
  });
}

/** The server's configuration, frozen. */
export type ServerConfig = ReturnType<typeof serverConfig>;

/** Builds the server's configuration from its settings, or throws {@link ConfigError}. */
export function serverConfig(args: readonly string[], env: (name: string) => string | undefined) {
  const s = readSettings(serverSettings, args, env);
  const problems: ConfigProblem[] = [];
  const str = (k: string) => s[k] as string;
  if (s.verifier === "jwt" && str("jwt-issuer") === "") {
    problems.push({
      setting: "--jwt-issuer / IRSA_JWT_ISSUER",
      message: "required with --verifier jwt",
    });
  }
  if (!s["insecure-http"] && (str("tls-cert") === "" || str("tls-key") === "")) {
    problems.push({
      setting: "--tls-cert / --tls-key",
      message: "required unless --insecure-http",
    });
  }
  const inCluster = env("KUBERNETES_SERVICE_HOST");
  const kubernetesApi = str("kubernetes-api") ||
    (inCluster ? `https://${inCluster}:${env("KUBERNETES_SERVICE_PORT") ?? "443"}` : "");
  if (s["mapping-store"] === "configmap" && kubernetesApi === "") {
    problems.push({
      setting: "--kubernetes-api / IRSA_KUBERNETES_API",
      message: "required with --mapping-store configmap outside a cluster",
    });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const provider = str("oidc-provider");
  const issuer = str("jwt-issuer").replace(/\/$/, "");
  return Object.freeze({
    host: str("host"),
    port: s.port as number,
    tls: s["insecure-http"] ? undefined : { certFile: str("tls-cert"), keyFile: str("tls-key") },
    metricsPort: s["metrics-port"] as number,
    oidcProvider: provider,
    audience: str("oidc-provider-audience"),
    clusterIssuer: str("cluster-issuer") || `https://${provider}`,
    clusterJwksUrl: str("cluster-jwks-url") || undefined,
    awsRegion: str("aws-region"),
    iamEndpoint: str("iam-endpoint") || undefined,
    iamTimeoutMs: s["iam-timeout-ms"] as number,
    stsEndpoint: str("sts-endpoint") || undefined,
    // Empty account or partition: learned from STS GetCallerIdentity at start.
    editable: {
      account: str("proxy-role-account") || undefined,
      partition: str("proxy-role-partition") || undefined,
      prefix: str("proxy-role-prefix"),
      names: s["proxy-role-names"] as string[],
      serverRoleName: str("server-role-name") || undefined,
    },
    subjectFormat: s["subject-format"] as "wildcard" | "exact",
    trustPolicyQuota: s["trust-policy-quota"] as number,
    computeNamespace: str("compute-namespace"),
    fieldNamespace: str("field-namespace"),
    runIdPattern: s["run-id-pattern"] as RegExp,
    userBasedServiceAccounts: s["user-based-service-accounts"] as boolean,
    trustPodTokenAlone: s["trust-pod-token-alone"] as boolean,
    verifier: s.verifier as "jwt" | "domino",
    jwt: {
      issuer,
      jwksUrl: str("jwt-jwks-url") || `${issuer}/protocol/openid-connect/certs`,
      audience: str("jwt-audience") || undefined,
      usernameClaim: str("jwt-username-claim"),
      groupsClaim: str("jwt-groups-claim"),
      adminClaim: str("jwt-admin-claim"),
      adminValue: str("jwt-admin-value"),
    },
    // Undefined: no platform API, so no API keys (jwt verifier only).
    dominoUserHost: (str("domino-user-host") ||
      (s.verifier === "domino" ? DEFAULT_DOMINO_USER_HOST : "")).replace(/\/$/, "") || undefined,
    principalCacheMs: (s["principal-cache-seconds"] as number) * 1000,
    caFile: str("ca-file") || undefined,
    mappingStore: s["mapping-store"] as "file" | "configmap",
    mappingFile: str("mapping-file"),
    mappingConfigMap: str("mapping-configmap"),
    kubernetes: kubernetesApi === "" ? undefined : {
      apiUrl: kubernetesApi,
      tokenFile: str("kubernetes-token-file"),
      caFile: str("kubernetes-ca-file"),
    },
    logLevel: s["log-level"] as "debug" | "info" | "warn" | "error",
    cleanupIntervalMs: (s["cleanup-interval-seconds"] as number) * 1000,
    cleanupGraceMs: (s["cleanup-grace-seconds"] as number) * 1000,
    runLeaseMs: (s["run-lease-seconds"] as number) * 1000,
    leaseDurationSeconds: s["lease-duration-seconds"] as number,
    policyCacheMs: (s["policy-cache-seconds"] as number) * 1000,
    callerCacheMs: (s["caller-cache-seconds"] as number) * 1000,
    editWindowMs: s["edit-window-ms"] as number,
  });
}
