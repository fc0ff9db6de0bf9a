/** The settings of `irsa server`: flags, variables, defaults and how each value is read. */

import * as v from "valibot";
import { PARTITIONS } from "../core/arn.ts";
import { MAX_SHARDS, MIN_SHARDS } from "../core/grant_shards.ts";
import { parseUserServiceAccounts, userServiceAccountsProblem } from "../core/user_accounts.ts";
import { logLevelSetting, read, setting } from "../lib/settings.ts";

/** The platform API inside the cluster, as the current service's chart sets it. */
export const DEFAULT_DOMINO_USER_HOST = "http://nucleus-frontend.domino-platform:80";

/** Settings of `irsa server`. Variable names of the current service are kept where it has them. */
export const serverSettings = {
  host: setting({
    flag: "host",
    env: ["IRSA_HOST"],
    default: "0.0.0.0",
    help: "Address to listen on.",
    schema: read.string,
  }),
  port: setting({
    flag: "port",
    env: ["IRSA_PORT"],
    default: "6000",
    help: "HTTPS port (the Service maps 443 to it).",
    schema: read.port,
  }),
  tlsCert: setting({
    flag: "tls-cert",
    env: ["IRSA_TLS_CERT"],
    default: "/ssl/tls.crt",
    help: "Server certificate (PEM).",
    schema: read.string,
  }),
  tlsKey: setting({
    flag: "tls-key",
    env: ["IRSA_TLS_KEY"],
    default: "/ssl/tls.key",
    help: "Server private key (PEM).",
    schema: read.string,
  }),
  insecureHttp: setting({
    flag: "insecure-http",
    env: ["IRSA_INSECURE_HTTP"],
    default: "false",
    help: "Serve plain HTTP instead of HTTPS; for local use only.",
    schema: read.boolean,
    boolean: true,
  }),
  metricsPort: setting({
    flag: "metrics-port",
    env: ["PROMETHEUS_METRICS_PORT"],
    default: "0",
    help: "Also serve GET /metrics over plain HTTP on this port (0: only on the main port).",
    schema: read.port,
  }),
  oidcProvider: setting({
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
  }),
  oidcProviderAudience: setting({
    flag: "oidc-provider-audience",
    env: ["OIDC_PROVIDER_AUDIENCE"],
    default: "sts.amazonaws.com",
    help: "Audience of projected service-account tokens.",
    schema: read.string,
  }),
  clusterIssuer: setting({
    flag: "cluster-issuer",
    env: ["IRSA_CLUSTER_ISSUER"],
    default: "",
    help: "Issuer of projected service-account tokens (default: https://<oidc-provider>).",
    schema: read.optionalUrl,
  }),
  clusterJwksUrl: setting({
    flag: "cluster-jwks-url",
    env: ["IRSA_CLUSTER_JWKS_URL"],
    default: "",
    help: "JWKS of that issuer (default: discovered from its /.well-known/openid-configuration).",
    schema: read.optionalUrl,
  }),
  awsRegion: setting({
    flag: "aws-region",
    env: ["AWS_REGION", "AWS_DEFAULT_REGION"],
    default: "us-east-1",
    help: "AWS region of the SDK clients.",
    schema: read.string,
  }),
  iamEndpoint: setting({
    flag: "iam-endpoint",
    env: ["AWS_ENDPOINT_URL_IAM"],
    default: "",
    help: "IAM endpoint override (tests point it at moto).",
    schema: read.optionalUrl,
  }),
  iamTimeoutMs: setting({
    flag: "iam-timeout-ms",
    env: ["IRSA_IAM_TIMEOUT_MS"],
    default: "5000",
    help: "Timeout of one IAM call.",
    schema: read.positiveInt,
  }),
  stsEndpoint: setting({
    flag: "sts-endpoint",
    env: ["AWS_ENDPOINT_URL_STS"],
    default: "",
    help:
      "STS endpoint override, for GetCallerIdentity at start (tests point it at moto; default: the region's).",
    schema: read.optionalUrl,
  }),
  proxyRoleAccount: setting({
    flag: "proxy-role-account",
    env: ["IRSA_PROXY_ROLE_ACCOUNT"],
    default: "",
    help:
      "Account of the editable proxy roles; it must be the account of the server's credentials (default: learned from STS GetCallerIdentity at start).",
    schema: v.pipe(
      read.optionalString,
      v.regex(/^(\d{12})?$/, "expected a 12-digit AWS account id"),
    ),
  }),
  proxyRolePartition: setting({
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
  }),
  proxyRolePrefix: setting({
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
  }),
  proxyRoleNames: setting({
    flag: "proxy-role-names",
    env: ["IRSA_PROXY_ROLE_NAMES"],
    default: "",
    help:
      "Comma-separated names of the editable proxy roles (with --proxy-role-prefix, either admits; empty: any name).",
    schema: read.nameList,
  }),
  serverRoleName: setting({
    flag: "server-role-name",
    env: ["IRSA_SERVER_ROLE_NAME"],
    default: "",
    help:
      "The server's own IAM role, never editable; learned from STS when the server runs as an assumed role, set it when its credentials are an IAM user's.",
    schema: v.pipe(
      read.optionalString,
      v.regex(/^([\w+=,.@-]{1,64})?$/, 'expected an IAM role name (letters, digits, "+=,.@_-")'),
    ),
  }),
  subjectFormat: setting({
    flag: "subject-format",
    env: ["IRSA_SUBJECT_FORMAT"],
    default: "wildcard",
    help:
      'How trust policies name service accounts: "wildcard" (*:<ns>:<sa> in StringLike) or "exact" (system:serviceaccount:<ns>:<sa> in StringEquals).',
    schema: read.oneOf(["wildcard", "exact"]),
  }),
  trustPolicyQuota: setting({
    flag: "trust-policy-quota",
    env: ["IRSA_TRUST_POLICY_QUOTA"],
    default: "2048",
    help: "Trust-policy length quota of the proxy roles (AWS quota L-C07B4B0D).",
    schema: read.positiveInt,
  }),
  computeNamespace: setting({
    flag: "compute-namespace",
    env: ["DEFAULT_COMPUTE_NS"],
    default: "domino-compute",
    help: "Namespace of run pods.",
    schema: read.string,
  }),
  fieldNamespace: setting({
    flag: "field-namespace",
    env: ["DEFAULT_FIELD_NS"],
    default: "domino-field",
    help: "Namespace of irsa and its ConfigMap.",
    schema: read.string,
  }),
  runIdPattern: setting({
    flag: "run-id-pattern",
    env: ["IRSA_RUN_ID_PATTERN"],
    default: "^[0-9a-f]{24}$",
    help: "Pattern a run_id must match.",
    schema: read.regex,
  }),
  userBasedServiceAccounts: setting({
    flag: "user-based-service-accounts",
    env: ["IRSA_USER_BASED_SERVICE_ACCOUNTS"],
    default: "false",
    help:
      "Pods run as per-user service accounts (<compute ns>:<username>, or as --user-service-accounts maps the user) instead of run-<run id>.",
    schema: read.boolean,
    boolean: true,
  }),
  userServiceAccounts: setting({
    flag: "user-service-accounts",
    env: ["IRSA_USER_SERVICE_ACCOUNTS"],
    default: "{}",
    help:
      "With --user-based-service-accounts: the platform's user mappings, the same as its mutation's (the chart's userbasedserviceaccounts.user_mappings), as a JSON object of user name to service-account name, e.g. {\"integration-test\":\"aws-test\"}. A pod's service account gets roles only when it is the caller's: the one mapped to the caller, else (the caller unmapped) the one named as the caller, and mapped to no other user.",
    schema: v.pipe(
      v.string(),
      v.check(
        (text) => userServiceAccountsProblem(text) === undefined,
        (issue) => userServiceAccountsProblem(String(issue.input)) ?? "expected a JSON object",
      ),
      v.transform(parseUserServiceAccounts),
    ),
  }),
  trustPodTokenAlone: setting({
    flag: "trust-pod-token-alone",
    env: ["IRSA_TRUST_POD_TOKEN_ALONE"],
    default: "false",
    help:
      "Without a Kubernetes API, accept a pod's service-account token alone as proof that the pod is the caller's. It then trusts whoever holds the token: a user who obtains another pod's token can add that pod to their own roles. With a Kubernetes API it has no effect (the run's pods must show the caller as starting user).",
    schema: read.boolean,
    boolean: true,
  }),
  verifier: setting({
    flag: "verifier",
    env: ["IRSA_VERIFIER"],
    default: "jwt",
    help:
      '"jwt": verify user tokens against the identity provider\'s JWKS; "domino": ask the platform API.',
    schema: read.oneOf(["jwt", "domino"]),
  }),
  jwtIssuer: setting({
    flag: "jwt-issuer",
    env: ["IRSA_JWT_ISSUER"],
    default: "",
    help: "Issuer of user tokens (jwt verifier; required with it).",
    schema: read.optionalUrl,
  }),
  jwtJwksUrl: setting({
    flag: "jwt-jwks-url",
    env: ["IRSA_JWT_JWKS_URL"],
    default: "",
    help: "JWKS of user tokens (default: <issuer>/protocol/openid-connect/certs, Keycloak's).",
    schema: read.optionalUrl,
  }),
  jwtAudience: setting({
    flag: "jwt-audience",
    env: ["IRSA_JWT_AUDIENCE"],
    default: "",
    help: "Audience user tokens must carry (empty: not checked).",
    schema: read.optionalString,
  }),
  jwtUsernameClaim: setting({
    flag: "jwt-username-claim",
    env: ["IRSA_JWT_USERNAME_CLAIM"],
    default: "preferred_username",
    help: "Claim with the user name.",
    schema: read.string,
  }),
  jwtGroupsClaim: setting({
    flag: "jwt-groups-claim",
    env: ["IRSA_JWT_GROUPS_CLAIM"],
    default: "user_groups",
    help: "Claim with the user's organizations.",
    schema: read.string,
  }),
  jwtAdminClaim: setting({
    flag: "jwt-admin-claim",
    env: ["IRSA_JWT_ADMIN_CLAIM"],
    default: "realm_access.roles",
    help: "Dotted path of the claim that marks admins.",
    schema: read.string,
  }),
  jwtAdminValue: setting({
    flag: "jwt-admin-value",
    env: ["IRSA_JWT_ADMIN_VALUE"],
    default: "DominoAdmin",
    help: "Value of that claim that makes an admin.",
    schema: read.string,
  }),
  dominoUserHost: setting({
    flag: "domino-user-host",
    env: ["DOMINO_USER_HOST"],
    default: "",
    help:
      `The platform API (/v4/auth/principal, /v4/organizations/self): the domino verifier asks it for every caller (empty: ${DEFAULT_DOMINO_USER_HOST}); with the jwt verifier, set it to accept platform API keys in X-Domino-Api-Key, which it resolves (empty: keys are refused).`,
    schema: read.optionalUrl,
  }),
  principalCacheSeconds: setting({
    flag: "principal-cache-seconds",
    env: ["IRSA_PRINCIPAL_CACHE_SECONDS"],
    default: "30",
    help: "How long the domino verifier caches an answer, keyed by a hash of the token.",
    schema: read.positiveInt,
  }),
  caFile: setting({
    flag: "ca-file",
    env: ["IRSA_CA_FILE"],
    default: "",
    help: "Extra CA (PEM) trusted for the identity provider and cluster issuer.",
    schema: read.optionalString,
  }),
  mappingStore: setting({
    flag: "mapping-store",
    env: ["IRSA_MAPPING_STORE"],
    default: "file",
    help:
      '"file" (a JSON file) or "configmap" (ConfigMap domino-org-iamrole-mapping in the field namespace).',
    schema: read.oneOf(["file", "configmap"]),
  }),
  mappingFile: setting({
    flag: "mapping-file",
    env: ["IRSA_MAPPING_FILE"],
    default: "irsa-mappings.json",
    help: "The file store's file.",
    schema: read.string,
  }),
  mappingConfigMap: setting({
    flag: "mapping-configmap",
    env: ["IRSA_MAPPING_CONFIGMAP"],
    default: "domino-org-iamrole-mapping",
    help: "The ConfigMap store's ConfigMap.",
    schema: read.string,
  }),
  kubernetesApi: setting({
    flag: "kubernetes-api",
    env: ["IRSA_KUBERNETES_API"],
    default: "",
    help:
      "Kubernetes API URL (default in a cluster: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT; empty outside one: no run lookup).",
    schema: read.optionalUrl,
  }),
  kubernetesTokenFile: setting({
    flag: "kubernetes-token-file",
    env: ["IRSA_KUBERNETES_TOKEN_FILE"],
    default: "/var/run/secrets/kubernetes.io/serviceaccount/token",
    help: "Token for the Kubernetes API, re-read at every call.",
    schema: read.string,
  }),
  kubernetesCaFile: setting({
    flag: "kubernetes-ca-file",
    env: ["IRSA_KUBERNETES_CA_FILE"],
    default: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
    help: "CA of the Kubernetes API.",
    schema: read.string,
  }),
  logLevel: logLevelSetting,
  grantShards: setting({
    flag: "grant-shards",
    env: ["IRSA_GRANT_SHARDS"],
    default: "64",
    help:
      "With Kubernetes: the grant record is spread over this many ConfigMaps, irsa-grants-00 onwards in the field namespace (the chart creates them). Fixed once grants are recorded: a server finding shards written with another count refuses to start.",
    schema: v.pipe(
      read.wholeNumber("shards", MAX_SHARDS),
      v.minValue(MIN_SHARDS, `expected at least ${MIN_SHARDS} shard`),
    ),
  }),
  cleanupIntervalSeconds: setting({
    flag: "cleanup-interval-seconds",
    env: ["IRSA_CLEANUP_INTERVAL_SECONDS"],
    default: "300",
    help:
      "Period of the loop that removes subjects of ended runs and enforces mappings edited out of band (0: off); with Kubernetes the pod watch revokes a run's end at once, and this loop is the safety net.",
    // The bound it had when it borrowed the port's reader: no value accepted before is refused.
    schema: read.wholeNumber("seconds", 65_535),
  }),
  cleanupGraceSeconds: setting({
    flag: "cleanup-grace-seconds",
    env: ["IRSA_CLEANUP_GRACE_SECONDS"],
    default: "300",
    help: "The cleanup never removes a subject it first saw less than this long ago.",
    schema: read.positiveInt,
  }),
  runLeaseSeconds: setting({
    flag: "run-lease-seconds",
    env: ["IRSA_RUN_LEASE_SECONDS"],
    default: "900",
    help: "Without Kubernetes: a run whose sidecar has not synced for this long has ended.",
    schema: read.positiveInt,
  }),
  leaseDurationSeconds: setting({
    flag: "lease-duration-seconds",
    env: ["IRSA_LEASE_DURATION_SECONDS"],
    default: "15",
    help: "With Kubernetes: the per-role Lease expires this long after its holder stops renewing.",
    schema: read.positiveInt,
  }),
  handoffKeyFile: setting({
    flag: "handoff-key-file",
    env: ["IRSA_HANDOFF_KEY_FILE"],
    default: "",
    help:
      "With Kubernetes: a file holding the key (32 bytes or more; every replica the same) that seals the edits replicas hand each other on a role's Lease, and their results. Empty: nothing is handed over; a replica that finds a role's Lease held waits for it.",
    schema: read.optionalString,
  }),
  policyCacheSeconds: setting({
    flag: "policy-cache-seconds",
    env: ["IRSA_POLICY_CACHE_SECONDS"],
    default: "300",
    help: "A cached trust policy is read from IAM again after this long.",
    schema: read.positiveInt,
  }),
  callerCacheSeconds: setting({
    flag: "caller-cache-seconds",
    env: ["IRSA_CALLER_CACHE_SECONDS"],
    default: "30",
    help: "A verified user token or API key is reused this long (never past its exp).",
    schema: read.positiveInt,
  }),
  editWindowMs: setting({
    flag: "edit-window-ms",
    env: ["IRSA_EDIT_WINDOW_MS"],
    default: "50",
    help: "Edits of one role within this long of the first are written together (0: none).",
    schema: read.wholeNumber("milliseconds", 10_000),
  }),
};
