/** The settings of `irsa sidecar`, and the configuration built from them. */

import * as v from "valibot";
import { ConfigError, logLevelSetting, read, readSettings, setting } from "../lib/settings.ts";

/** Settings of `irsa sidecar`; the variables are those the platform's mutation injects today. */
export const sidecarSettings = {
  host: setting({
    flag: "host",
    env: ["IRSA_SIDECAR_HOST"],
    default: "127.0.0.1",
    help: "Address to listen on (loopback: only the pod reaches it).",
    schema: read.string,
  }),
  port: setting({
    flag: "port",
    env: ["IRSA_SIDECAR_PORT"],
    default: "6003",
    help: "Port to listen on.",
    schema: read.port,
  }),
  apiProxy: setting({
    flag: "api-proxy",
    env: ["DOMINO_API_PROXY"],
    default: "http://localhost:8899",
    help: "The pod-local platform API proxy; GET <it>/access-token answers the user's token.",
    schema: read.url,
  }),
  endpoint: setting({
    flag: "endpoint",
    env: ["DOMINO_IRSA_ENDPOINT"],
    default: "https://irsa-svc.domino-field/map_iam_roles_to_pod_sa",
    help: "The server's mapping endpoint.",
    schema: read.url,
  }),
  caFile: setting({
    flag: "ca-file",
    env: ["DOMINO_IRSA_SSL_CERT"],
    default: "",
    help: "CA (PEM) of the server's certificate (default: the system's roots).",
    schema: read.optionalString,
  }),
  configFile: setting({
    flag: "config-file",
    env: ["AWS_CONFIG_FILE"],
    default: "/var/run/.aws/config",
    help: "The AWS config file to write.",
    schema: read.string,
  }),
  tokenFile: setting({
    flag: "token-file",
    env: ["AWS_WEB_IDENTITY_TOKEN_FILE"],
    default: "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
    help: "The pod's projected service-account token, re-read at every sync.",
    schema: read.string,
  }),
  podInfo: setting({
    flag: "pod-info",
    env: ["POD_INFO_PATH"],
    default: "/var/run/podinfo/labels",
    help: "The downward-API labels file.",
    schema: read.string,
  }),
  runId: setting({
    flag: "run-id",
    env: ["DOMINO_RUN_ID"],
    default: "",
    help: "This pod's run id.",
    schema: read.optionalString,
  }),
  username: setting({
    flag: "username",
    env: ["DOMINO_STARTING_USERNAME"],
    default: "",
    help: "The starting user, written as role_session_name so CloudTrail shows who acted.",
    schema: read.optionalString,
  }),
  region: setting({
    flag: "region",
    env: ["AWS_REGION", "AWS_DEFAULT_REGION"],
    default: "",
    help: "Region written into the profiles and used for STS.",
    schema: read.optionalString,
  }),
  stsRegionalEndpoints: setting({
    flag: "sts-regional-endpoints",
    env: ["AWS_STS_REGIONAL_ENDPOINTS"],
    default: "",
    help: '"regional" or "legacy", written into the profiles.',
    schema: v.pipe(
      v.string(),
      v.trim(),
      v.picklist(["", "regional", "legacy"], 'expected "regional" or "legacy"'),
    ),
  }),
  stsEndpoint: setting({
    flag: "sts-endpoint",
    env: ["AWS_ENDPOINT_URL_STS"],
    default: "",
    help: "STS endpoint of the propagation check (default: https://sts.<region>.amazonaws.com).",
    schema: read.optionalUrl,
  }),
  propagationCheck: setting({
    flag: "propagation-check",
    env: ["IRSA_PROPAGATION_CHECK"],
    default: "true",
    help:
      "After a sync, try AssumeRoleWithWebIdentity on each proxy role until it works; /healthz tells.",
    schema: read.boolean,
  }),
  propagationDeadlineSeconds: setting({
    flag: "propagation-deadline-seconds",
    env: ["IRSA_PROPAGATION_DEADLINE_SECONDS"],
    default: "60",
    help: "How long the propagation check keeps trying.",
    schema: read.positiveInt,
  }),
  syncIntervalSeconds: setting({
    flag: "sync-interval-seconds",
    env: ["IRSA_SYNC_INTERVAL_SECONDS"],
    default: "300",
    help: "Period of the resync that picks up mapping changes.",
    schema: read.positiveInt,
  }),
  startDeadlineSeconds: setting({
    flag: "start-deadline-seconds",
    env: ["IRSA_START_DEADLINE_SECONDS"],
    default: "120",
    help: "How long the first sync retries while the token endpoint or the server is not up.",
    schema: read.positiveInt,
  }),
  credentials: setting({
    flag: "credentials",
    env: ["IRSA_CREDENTIALS"],
    default: "true",
    help:
      "Serve each profile's credentials on GET /credentials/<profile> (loopback only, with the token file) and add credential_process to the profiles.",
    schema: read.boolean,
  }),
  defaultProfile: setting({
    flag: "default-profile",
    env: ["IRSA_DEFAULT_PROFILE"],
    default: "",
    help:
      "The profile GET /credentials answers (AWS_CONTAINER_CREDENTIALS_FULL_URI); default: the only profile, when there is one.",
    schema: read.optionalString,
  }),
  sessionDurationSeconds: setting({
    flag: "session-duration-seconds",
    env: ["IRSA_SESSION_DURATION_SECONDS"],
    default: "3600",
    help:
      "Lifetime of the credentials the sidecar vends, 900 to 3600 (AWS caps a chained role at one hour); a revoked role's credentials live this long at most.",
    schema: v.pipe(
      read.positiveInt,
      v.minValue(900, "expected at least 900 seconds"),
      v.maxValue(
        3600,
        "expected at most 3600 seconds (AWS caps a chained role session at one hour)",
      ),
    ),
  }),
  credentialsTokenFile: setting({
    flag: "credentials-token-file",
    env: ["IRSA_CREDENTIALS_TOKEN_FILE"],
    default: "",
    help:
      "Where the sidecar writes the credential endpoint's authorization token, new at each start (default: irsa-credentials-token beside the config file).",
    schema: read.optionalString,
  }),
  credentialHelperFile: setting({
    flag: "credential-helper-file",
    env: ["IRSA_CREDENTIAL_HELPER_FILE"],
    default: "",
    help:
      "Where the sidecar writes the credential_process helper script (default: irsa-credential-process beside the config file).",
    schema: read.optionalString,
  }),
  logLevel: logLevelSetting,
};

/** The sidecar's configuration, frozen. */
export type SidecarConfig = ReturnType<typeof sidecarConfig>;

/** Builds the sidecar's configuration from its settings, or throws a `ConfigError`. */
export function sidecarConfig(args: readonly string[], env: (name: string) => string | undefined) {
  const s = readSettings(sidecarSettings, args, env);
  // Credentials are for the pod's own processes: only a loopback listener serves them.
  if (s.credentials && !["127.0.0.1", "::1", "localhost"].includes(s.host)) {
    throw new ConfigError([{
      setting: "--credentials (IRSA_CREDENTIALS)",
      message:
        `cannot serve credentials on --host "${s.host}": only a loopback address keeps them in the pod; use 127.0.0.1, or --credentials false`,
    }]);
  }
  const configDir = s.configFile.includes("/")
    ? s.configFile.slice(0, s.configFile.lastIndexOf("/")) || "/"
    : ".";
  return Object.freeze({
    host: s.host,
    port: s.port,
    apiProxy: s.apiProxy.replace(/\/$/, ""),
    endpoint: s.endpoint,
    caFile: s.caFile || undefined,
    configFile: s.configFile,
    tokenFile: s.tokenFile,
    podInfo: s.podInfo,
    runId: s.runId || undefined,
    username: s.username || undefined,
    region: s.region || undefined,
    stsRegionalEndpoints: s.stsRegionalEndpoints || undefined,
    stsEndpoint: s.stsEndpoint || `https://sts.${s.region || "us-east-1"}.amazonaws.com`,
    propagationCheck: s.propagationCheck,
    propagationDeadlineMs: s.propagationDeadlineSeconds * 1000,
    syncIntervalMs: s.syncIntervalSeconds * 1000,
    startDeadlineMs: s.startDeadlineSeconds * 1000,
    credentials: s.credentials,
    defaultProfile: s.defaultProfile || undefined,
    sessionDurationSeconds: s.sessionDurationSeconds,
    credentialsTokenFile: s.credentialsTokenFile || `${configDir}/irsa-credentials-token`,
    credentialHelperFile: s.credentialHelperFile || `${configDir}/irsa-credential-process`,
    logLevel: s.logLevel,
  });
}
