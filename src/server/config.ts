/** The server's configuration: its settings read, checked together, and shaped for the server. */

import { ConfigError, type ConfigProblem, readSettings } from "../lib/settings.ts";
import { DEFAULT_DOMINO_USER_HOST, serverSettings } from "./settings.ts";

/** The server's configuration, frozen. */
export type ServerConfig = ReturnType<typeof serverConfig>;

/** Builds the server's configuration from its settings, or throws {@link ConfigError}. */
export function serverConfig(args: readonly string[], env: (name: string) => string | undefined) {
  const s = readSettings(serverSettings, args, env);
  const problems: ConfigProblem[] = [];
  if (s.verifier === "jwt" && s.jwtIssuer === "") {
    problems.push({
      setting: "--jwt-issuer / IRSA_JWT_ISSUER",
      message: "required with --verifier jwt",
    });
  }
  if (!s.insecureHttp && (s.tlsCert === "" || s.tlsKey === "")) {
    problems.push({
      setting: "--tls-cert / --tls-key",
      message: "required unless --insecure-http",
    });
  }
  const inCluster = env("KUBERNETES_SERVICE_HOST");
  const kubernetesApi = s.kubernetesApi ||
    (inCluster ? `https://${inCluster}:${env("KUBERNETES_SERVICE_PORT") ?? "443"}` : "");
  if (s.mappingStore === "configmap" && kubernetesApi === "") {
    problems.push({
      setting: "--kubernetes-api / IRSA_KUBERNETES_API",
      message: "required with --mapping-store configmap outside a cluster",
    });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const issuer = s.jwtIssuer.replace(/\/$/, "");
  return Object.freeze({
    host: s.host,
    port: s.port,
    tls: s.insecureHttp ? undefined : { certFile: s.tlsCert, keyFile: s.tlsKey },
    metricsPort: s.metricsPort,
    oidcProvider: s.oidcProvider,
    audience: s.oidcProviderAudience,
    clusterIssuer: s.clusterIssuer || `https://${s.oidcProvider}`,
    clusterJwksUrl: s.clusterJwksUrl || undefined,
    awsRegion: s.awsRegion,
    iamEndpoint: s.iamEndpoint || undefined,
    iamTimeoutMs: s.iamTimeoutMs,
    stsEndpoint: s.stsEndpoint || undefined,
    // Empty account or partition: learned from STS GetCallerIdentity at start.
    editable: {
      account: s.proxyRoleAccount || undefined,
      partition: s.proxyRolePartition || undefined,
      prefix: s.proxyRolePrefix,
      names: s.proxyRoleNames,
      serverRoleName: s.serverRoleName || undefined,
    },
    subjectFormat: s.subjectFormat,
    trustPolicyQuota: s.trustPolicyQuota,
    computeNamespace: s.computeNamespace,
    fieldNamespace: s.fieldNamespace,
    runIdPattern: s.runIdPattern,
    userBasedServiceAccounts: s.userBasedServiceAccounts,
    trustPodTokenAlone: s.trustPodTokenAlone,
    verifier: s.verifier,
    jwt: {
      issuer,
      jwksUrl: s.jwtJwksUrl || `${issuer}/protocol/openid-connect/certs`,
      audience: s.jwtAudience || undefined,
      usernameClaim: s.jwtUsernameClaim,
      groupsClaim: s.jwtGroupsClaim,
      adminClaim: s.jwtAdminClaim,
      adminValue: s.jwtAdminValue,
    },
    // Undefined: no platform API, so no API keys (jwt verifier only).
    dominoUserHost: (s.dominoUserHost ||
      (s.verifier === "domino" ? DEFAULT_DOMINO_USER_HOST : "")).replace(/\/$/, "") || undefined,
    principalCacheMs: s.principalCacheSeconds * 1000,
    caFile: s.caFile || undefined,
    mappingStore: s.mappingStore,
    mappingFile: s.mappingFile,
    mappingConfigMap: s.mappingConfigMap,
    kubernetes: kubernetesApi === "" ? undefined : {
      apiUrl: kubernetesApi,
      tokenFile: s.kubernetesTokenFile,
      caFile: s.kubernetesCaFile,
    },
    logLevel: s.logLevel,
    grantShards: s.grantShards,
    cleanupIntervalMs: s.cleanupIntervalSeconds * 1000,
    cleanupGraceMs: s.cleanupGraceSeconds * 1000,
    runLeaseMs: s.runLeaseSeconds * 1000,
    leaseDurationSeconds: s.leaseDurationSeconds,
    handoffKeyFile: s.handoffKeyFile || undefined,
    policyCacheMs: s.policyCacheSeconds * 1000,
    callerCacheMs: s.callerCacheSeconds * 1000,
    editWindowMs: s.editWindowMs,
  });
}
