/** `irsa server`: builds the real dependencies from the configuration and serves the app over HTTPS. */

import { createApp } from "./app.ts";
import { createAuditTrail } from "../observe/audit_trail.ts";
import { parseRoleArn } from "../core/arn.ts";
import { oidcProviderArn } from "../core/trust_policy.ts";
import type { UserVerifier, WorkloadVerifier } from "../auth/caller.ts";
import type { RunLookup } from "../kube/run_lookup.ts";
import { cacheCallers } from "../auth/caller_cache.ts";
import { createDominoVerifier } from "../auth/domino_verifier.ts";
import { createJwtVerifier } from "../auth/jwt_verifier.ts";
import { createWorkloadVerifier } from "../auth/workload_verifier.ts";
import { createIamClient, createIamTrustPolicyStore } from "../aws/iam.ts";
import { getCallerArn } from "../aws/sts.ts";
import type { ServerConfig } from "./config.ts";
import {
  callerIdentityFromArn,
  describeEditable,
  type EditableRoles,
  notEditableReason,
} from "../core/editable.ts";
import { guardEditor } from "../trust/editable_guard.ts";
import { AppError } from "../lib/errors.ts";
import { ApiDescription } from "../http/openapi.ts";
import { createKubeClient, type KubeClient } from "../kube/client.ts";
import { checkPermissions, requiredPermissions } from "../kube/permissions.ts";
import { createRunLookup } from "../kube/run_lookup.ts";
import { createServiceAccountAdmin, type ServiceAccountAdmin } from "../kube/service_accounts.ts";
import type { Logger } from "../lib/log.ts";
import { createServerMetrics, renderMetrics } from "../observe/metrics.ts";
import { createConfigMapStore } from "../store/configmap_store.ts";
import { createFileStore } from "../store/file_store.ts";
import {
  createConfigMapGrantStore,
  createFileGrantStore,
  GRANT_CONFIGMAP,
  grantFileBeside,
  type GrantStore,
} from "../store/grant_store.ts";
import { type MappingStore, withSharedReads } from "../store/mapping_store.ts";
import { createTrustEditor } from "../trust/trust_editor.ts";
import { createCleanup, kubernetesLiveness } from "../grants/cleanup.ts";
import { createLeaseRoleLock, createLocalRoleLock } from "../trust/role_lock.ts";

/** The file system reads the server needs, passed in by main. */
export interface ServerIo {
  readTextFile(path: string): Promise<string>;
}

/** A running server; `stop()` drains it and releases every client. */
export interface RunningServer {
  readonly url: string;
  stop(): Promise<void>;
  readonly finished: Promise<void>;
}

const HTTP_TIMEOUT_MS = 5_000;
/** Where pods mount the projected token; the same path the current service writes. */
const WEB_IDENTITY_TOKEN_FILE = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token";

/** Starts the server. */
export async function startServer(
  config: ServerConfig,
  logger: Logger,
  io: ServerIo,
): Promise<RunningServer> {
  // Every audit line of this process is also kept for GET /audit (irsa admin report).
  const audit = createAuditTrail();
  logger = audit.wrap(logger);
  const metrics = createServerMetrics();
  // Before anything else: without the editable set, no role could be edited safely.
  const rules = await editableRoles(config, logger);
  const editable = (roleArn: string) => notEditableReason(roleArn, rules);
  const caCert = config.caFile ? await io.readTextFile(config.caFile) : undefined;
  // Read before any client or loop starts, so that a missing file leaves nothing running.
  const tls = config.tls
    ? {
      cert: await io.readTextFile(config.tls.certFile),
      key: await io.readTextFile(config.tls.keyFile),
    }
    : {};
  const closers: (() => void)[] = [];

  // The platform API, when there is one: the domino verifier itself, or, beside the jwt
  // verifier, the resolver of platform API keys.
  const platform = config.dominoUserHost === undefined ? undefined : createDominoVerifier({
    apiUrl: config.dominoUserHost,
    cacheTtlMs: config.principalCacheMs,
    timeoutMs: HTTP_TIMEOUT_MS,
    onPrincipalQuery: (ok) =>
      (ok ? metrics.principalQueries : metrics.failedPrincipalQueries).inc(),
    onOrgQuery: (ok) => (ok ? metrics.orgQueries : metrics.failedOrgQueries).inc(),
  });
  let users: UserVerifier;
  if (config.verifier === "jwt") {
    const jwt = createJwtVerifier({ ...config.jwt, caCert, timeoutMs: HTTP_TIMEOUT_MS });
    closers.push(() => jwt.close());
    users = {
      verify: (token) => jwt.verify(token),
      ready: () => jwt.ready(),
      ...(platform ? { verifyApiKey: (key: string) => platform.verifyApiKey(key) } : {}),
    };
  } else {
    users = platform!;
  }
  // A user token (or API key) already verified is reused; a pod's token is verified every time.
  users = cacheCallers(users, { ttlMs: config.callerCacheMs });
  const cluster = createWorkloadVerifier({
    issuer: config.clusterIssuer,
    jwksUrl: config.clusterJwksUrl,
    audience: config.audience,
    caCert,
    timeoutMs: HTTP_TIMEOUT_MS,
  });
  closers.push(() => cluster.close());
  const workloads: WorkloadVerifier = cluster;

  let kube: KubeClient | undefined;
  let runs: RunLookup | undefined;
  let serviceAccounts: ServiceAccountAdmin | undefined;
  if (config.kubernetes) {
    const { apiUrl, tokenFile, caFile } = config.kubernetes;
    const kubeCa = await io.readTextFile(caFile).catch(() => undefined);
    kube = createKubeClient({
      apiUrl,
      caCert: kubeCa,
      token: () => io.readTextFile(tokenFile).then((t) => t.trim()),
      timeoutMs: HTTP_TIMEOUT_MS,
    });
    closers.push(() => kube!.close());
    try {
      await checkPermissions(
        kube,
        requiredPermissions({
          fieldNamespace: config.fieldNamespace,
          computeNamespace: config.computeNamespace,
          ...(config.mappingStore === "configmap"
            ? { mappingConfigMap: config.mappingConfigMap }
            : {}),
          grantConfigMap: GRANT_CONFIGMAP,
          serviceAccounts: config.userBasedServiceAccounts,
        }),
        logger,
      );
    } catch (error) {
      for (const close of closers) close();
      throw error;
    }
    runs = createRunLookup(kube, { namespace: config.computeNamespace });
    serviceAccounts = createServiceAccountAdmin(kube, config.computeNamespace);
  }
  const store: MappingStore = withSharedReads(
    config.mappingStore === "configmap"
      ? createConfigMapStore(kube!, {
        namespace: config.fieldNamespace,
        name: config.mappingConfigMap,
      })
      : createFileStore(config.mappingFile),
  );
  const grants: GrantStore = kube
    ? createConfigMapGrantStore(kube, { namespace: config.fieldNamespace, logger })
    : createFileGrantStore(grantFileBeside(config.mappingFile));

  const iam = createIamClient({
    region: config.awsRegion,
    endpoint: config.iamEndpoint,
    timeoutMs: config.iamTimeoutMs,
  });
  closers.push(() => iam.destroy());
  const roles = createIamTrustPolicyStore(iam, {
    onCall: (operation, outcome) => metrics.iamCalls.inc({ operation, outcome }),
  });
  const lock = kube
    ? createLeaseRoleLock({
      kube,
      namespace: config.fieldNamespace,
      identity: `irsa-${crypto.randomUUID()}`,
      leaseDurationSeconds: config.leaseDurationSeconds,
      logger,
    })
    : createLocalRoleLock();
  // Every path to IAM goes through the guard: routes, DELETE, the cleanup and /capacity.
  const editor = guardEditor(
    createTrustEditor({
      lock,
      cacheMaxAgeMs: config.policyCacheMs,
      windowMs: config.editWindowMs,
      roles,
      oidcProvider: config.oidcProvider,
      audience: config.audience,
      format: config.subjectFormat,
      quota: config.trustPolicyQuota,
      logger,
      metrics,
    }),
    editable,
    { logger, metrics },
  );

  const cleanup = createCleanup({
    editor,
    store,
    grants,
    liveness: kube ? kubernetesLiveness(kube, config.computeNamespace) : undefined,
    format: config.subjectFormat,
    computeNamespace: config.computeNamespace,
    graceMs: config.cleanupGraceMs,
    syncLeaseMs: config.runLeaseMs,
    logger,
    metrics,
  });
  if (config.cleanupIntervalMs > 0) cleanup.start(config.cleanupIntervalMs);

  const app = createApp({
    activity: cleanup,
    users,
    workloads,
    runs,
    serviceAccounts,
    store,
    grants,
    now: () => Date.now(),
    editor,
    editable,
    audit,
    policies: {
      read: (roleArn) => roles.getTrustPolicy(parseRoleArn(roleArn).name),
      providerArnFor: (roleArn) => {
        const role = parseRoleArn(roleArn);
        return oidcProviderArn(role.account, config.oidcProvider, role.partition);
      },
      audience: config.audience,
      quota: config.trustPolicyQuota,
    },
    ownership: {
      computeNamespace: config.computeNamespace,
      runIdPattern: config.runIdPattern,
      userBasedServiceAccounts: config.userBasedServiceAccounts,
      trustPodTokenAlone: config.trustPodTokenAlone,
      format: config.subjectFormat,
    },
    webIdentityTokenFile: WEB_IDENTITY_TOKEN_FILE,
    logger,
    metrics,
    api: new ApiDescription(),
  });

  const ac = new AbortController();
  let resolveUrl: (url: string) => void;
  const listening = new Promise<string>((r) => (resolveUrl = r));
  const servers: Promise<void>[] = [];
  try {
    const server = Deno.serve({
      hostname: config.host,
      port: config.port,
      signal: ac.signal,
      ...tls,
      onListen: ({ hostname, port }) => {
        const url = `${config.tls ? "https" : "http"}://${
          hostname.includes(":") ? `[${hostname}]` : hostname
        }:${port}`;
        logger.info("irsa server listening", {
          url,
          verifier: config.verifier,
          mapping_store: config.mappingStore,
          kubernetes: Boolean(config.kubernetes),
        });
        resolveUrl(url);
      },
    }, app.fetch);
    servers.push(server.finished);
    if (config.metricsPort > 0) {
      const metricsServer = Deno.serve(
        { hostname: config.host, port: config.metricsPort, signal: ac.signal, onListen: () => {} },
        (req) =>
          new URL(req.url).pathname === "/metrics"
            ? new Response(renderMetrics(metrics), {
              headers: { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" },
            })
            : new Response("Not found\n", { status: 404 }),
      );
      servers.push(metricsServer.finished);
    }
  } catch (error) {
    // A port that cannot be bound: undo what started before it, the cleanup loop and the clients.
    ac.abort();
    await Promise.all(servers);
    await cleanup.stop();
    closers.forEach((close) => close());
    throw error;
  }
  const url = await listening;
  const finished = Promise.all(servers).then(async () => {
    await cleanup.stop();
    closers.forEach((close) => close());
  });
  return {
    url,
    finished,
    async stop() {
      ac.abort();
      await finished;
    },
  };
}

/**
 * The editable set: the account and partition of the server's own credentials (STS
 * GetCallerIdentity) or the settings, which must then agree with them, since the IAM adapter
 * edits roles by name in the credentials' account. When both are set and STS cannot answer, the
 * settings are used alone (the server's own role is then known only from --server-role-name).
 */
async function editableRoles(config: ServerConfig, logger: Logger): Promise<EditableRoles> {
  const set = config.editable;
  const explicit = set.account !== undefined && set.partition !== undefined;
  let identity;
  try {
    identity = callerIdentityFromArn(
      await getCallerArn({
        region: config.awsRegion,
        endpoint: config.stsEndpoint,
        timeoutMs: config.iamTimeoutMs,
      }),
    );
  } catch (error) {
    if (!explicit) {
      const why = error instanceof Error ? error.message : String(error);
      throw new AppError(
        "unavailable",
        `${why}; set --proxy-role-account and --proxy-role-partition (and --server-role-name) to start without it`,
      );
    }
    logger.warn("cannot learn the server's own identity; using the configured editable set", {
      error,
    });
  }
  for (const key of ["account", "partition"] as const) {
    if (identity && set[key] !== undefined && set[key] !== identity[key]) {
      throw new AppError(
        "bad_request",
        `The ${key} of the editable proxy roles is ${
          JSON.stringify(set[key])
        } (--proxy-role-${key}), ` +
          `but the server's credentials are in ${key} ${JSON.stringify(identity[key])}: ` +
          "irsa edits roles with its own credentials, so it can only edit roles of their account",
      );
    }
  }
  const serverRoles = [
    ...new Set([identity?.roleName, set.serverRoleName].filter((r): r is string => !!r)),
  ];
  const rules: EditableRoles = {
    partition: set.partition ?? identity!.partition,
    account: set.account ?? identity!.account,
    prefix: set.prefix,
    names: set.names,
    serverRoles,
  };
  logger.info("editable proxy roles", describeEditable(rules));
  if (serverRoles.length === 0) {
    logger.warn(
      "the server's own role is unknown: its credentials are not an assumed role; set --server-role-name if it has one",
    );
  }
  return rules;
}
