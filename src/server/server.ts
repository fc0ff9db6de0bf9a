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
import type { ServerConfig } from "./config.ts";
import { notEditableReason } from "../core/editable.ts";
import { editableRoles } from "./editable_set.ts";
import { guardEditor } from "../trust/editable_guard.ts";
import { AppError } from "../lib/errors.ts";
import { ApiDescription } from "../http/openapi.ts";
import { createKubeClient, type KubeClient } from "../kube/client.ts";
import { checkPermissions, requiredPermissions } from "../kube/permissions.ts";
import { createRunLookup } from "../kube/run_lookup.ts";
import { createServiceAccountAdmin, type ServiceAccountAdmin } from "../kube/service_accounts.ts";
import type { Logger } from "../lib/log.ts";
import { createServerMetrics, renderMetrics, type ServerMetrics } from "../observe/metrics.ts";
import { createConfigMapStore } from "../store/configmap_store.ts";
import { createFileStore } from "../store/file_store.ts";
import {
  createFileGrantStore,
  GRANT_CONFIGMAP,
  grantFileBeside,
  type GrantStore,
} from "../store/grant_store.ts";
import { startGrantShards } from "./grant_shards.ts";
import { shardName } from "../core/grant_shards.ts";
import { type MappingStore, withSharedReads } from "../store/mapping_store.ts";
import { createTrustEditor } from "../trust/trust_editor.ts";
import { CLEANUP_LEASE, createCleanup, kubernetesLiveness } from "../grants/cleanup.ts";
import { createLeaseMutex } from "../kube/lease_mutex.ts";
import { createLeaseTurn } from "../kube/lease_turn.ts";
import type { ServerDeps } from "../grants/deps.ts";
import { startRunWatch } from "./run_watch.ts";
import { createLeaseRoleLock, createLocalRoleLock } from "../trust/role_lock.ts";
import { type HandoffKey, importHandoffKey } from "../trust/handoff_seal.ts";

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

/**
 * What start-up has started, undone in reverse order: when a later step fails, and when the
 * server stops. A step that starts a client, a loop or a listener registers its undoing at once.
 */
class Started {
  readonly #undo: { what: string; undo: () => void | Promise<void> }[] = [];
  constructor(readonly logger: Logger) {}
  /** Registers the undoing of `what` (named in the log line of a step slower than a second). */
  add(what: string, undo: () => void | Promise<void>): void {
    this.#undo.push({ what, undo });
  }
  async undo(): Promise<void> {
    for (const { what, undo } of this.#undo.splice(0).reverse()) {
      const t = performance.now();
      await undo();
      const ms = Math.round(performance.now() - t);
      if (ms >= 1000) this.logger.info("slow to stop", { what, ms });
    }
  }
}

/**
 * Starts the server in steps: the editable set and the files first (nothing runs yet), then the
 * verifiers, Kubernetes, the stores, the trust editor, the cleanup loop, the app and the
 * listeners. A step that fails undoes every step before it.
 */
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
  // Read before any client or loop starts, so that a missing file leaves nothing running.
  const caCert = config.caFile ? await io.readTextFile(config.caFile) : undefined;
  const tls = config.tls
    ? {
      cert: await io.readTextFile(config.tls.certFile),
      key: await io.readTextFile(config.tls.keyFile),
    }
    : {};
  // Only replicas share Leases: without Kubernetes there is no hand-off to seal.
  const handoffKey = config.kubernetes && config.handoffKeyFile
    ? await importHandoffKey(await io.readTextFile(config.handoffKeyFile), config.handoffKeyFile)
    : undefined;
  const started = new Started(logger);
  try {
    const { users, workloads } = startVerifiers(config, metrics, caCert, started);
    const cluster = config.kubernetes
      ? await startKubernetes(config, config.kubernetes, io, logger, started)
      : undefined;
    const kube = cluster?.kube;
    const store: MappingStore = withSharedReads(
      config.mappingStore === "configmap"
        ? createConfigMapStore(kube!, {
          namespace: config.fieldNamespace,
          name: config.mappingConfigMap,
        })
        : createFileStore(config.mappingFile),
    );
    const grants: GrantStore = kube
      ? await startGrantShards(
        config,
        kube,
        logger,
        metrics,
        (undo) => started.add("the grant record's loop", undo),
      )
      : createFileGrantStore(grantFileBeside(config.mappingFile));
    const { editor, roles } = startEditor(
      config,
      kube,
      handoffKey,
      grants,
      editable,
      logger,
      metrics,
      started,
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
      turn: kube ? cleanupTurn(config, kube, logger) : undefined,
    });
    if (config.cleanupIntervalMs > 0) cleanup.start(config.cleanupIntervalMs);
    started.add("the cleanup", () => cleanup.stop());

    const deps: ServerDeps = {
      activity: cleanup,
      users,
      workloads,
      runs: cluster?.runs,
      serviceAccounts: cluster?.serviceAccounts,
      store,
      grants,
      now: () => Date.now(),
      editor,
      editable,
      audit,
      policies: {
        // IAM reads a role by name in the credentials' account: a role outside the editable set
        // (another account's of the same name, say) is refused, never read as this one.
        read: (roleArn) => {
          const reason = editable(roleArn);
          if (reason !== undefined) {
            throw new AppError("role_not_editable", `Cannot read role ${roleArn}: ${reason}`, {
              role: roleArn,
            });
          }
          return roles.getTrustPolicy(parseRoleArn(roleArn).name);
        },
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
        userServiceAccounts: config.userServiceAccounts,
        trustPodTokenAlone: config.trustPodTokenAlone,
        format: config.subjectFormat,
      },
      webIdentityTokenFile: WEB_IDENTITY_TOKEN_FILE,
      logger,
      metrics,
      api: new ApiDescription(),
    };
    const app = createApp(deps);
    if (kube) {
      // A run's end, seen as it happens, revokes at once; the cleanup loop stays the safety net.
      const watch = startRunWatch(deps, kube, config.computeNamespace);
      started.add("the pod watch", () => watch.stop());
    }
    return await listen(config, app.fetch, tls, metrics, logger, started);
  } catch (error) {
    await started.undo();
    throw error;
  }
}

/**
 * The replicas' turn to run the cleanup's passes, on the Lease `irsa-cleanup`. Its holder renews it
 * every pass; should the holder die, it expires after one and a half intervals and another replica
 * takes it at its next pass.
 */
function cleanupTurn(config: ServerConfig, kube: KubeClient, logger: Logger) {
  const mutex = createLeaseMutex({
    kube,
    namespace: config.fieldNamespace,
    identity: `irsa-${crypto.randomUUID()}`,
    leaseDurationSeconds: Math.max(1, Math.ceil((config.cleanupIntervalMs * 1.5) / 1000)),
    kind: "cleanup",
    logger,
  });
  return createLeaseTurn(mutex, CLEANUP_LEASE, logger);
}

/**
 * The verifier of user tokens (the jwt verifier, or the platform's API, which also resolves API
 * keys beside the jwt verifier when there is one), behind the caller cache; and the verifier of
 * pods' service-account tokens.
 */
function startVerifiers(
  config: ServerConfig,
  metrics: ServerMetrics,
  caCert: string | undefined,
  started: Started,
): { users: UserVerifier; workloads: WorkloadVerifier } {
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
    started.add("the jwt verifier", () => jwt.close());
    users = {
      verify: (token) => jwt.verify(token),
      ready: () => jwt.ready(),
      ...(platform ? { verifyApiKey: (key: string) => platform.verifyApiKey(key) } : {}),
    };
  } else {
    users = platform!;
  }
  const cluster = createWorkloadVerifier({
    issuer: config.clusterIssuer,
    jwksUrl: config.clusterJwksUrl,
    audience: config.audience,
    caCert,
    timeoutMs: HTTP_TIMEOUT_MS,
  });
  started.add("the workload verifier", () => cluster.close());
  // A user token (or API key) already verified is reused; a pod's token is verified every time.
  return { users: cacheCallers(users, { ttlMs: config.callerCacheMs }), workloads: cluster };
}

/** The Kubernetes client, once its permissions are checked, with the run lookup and service accounts on it. */
async function startKubernetes(
  config: ServerConfig,
  where: NonNullable<ServerConfig["kubernetes"]>,
  io: ServerIo,
  logger: Logger,
  started: Started,
): Promise<{ kube: KubeClient; runs: RunLookup; serviceAccounts: ServiceAccountAdmin }> {
  const kubeCa = await io.readTextFile(where.caFile).catch(() => undefined);
  const kube = createKubeClient({
    apiUrl: where.apiUrl,
    caCert: kubeCa,
    token: () => io.readTextFile(where.tokenFile).then((t) => t.trim()),
    timeoutMs: HTTP_TIMEOUT_MS,
  });
  started.add("the Kubernetes client", () => kube.close());
  await checkPermissions(
    kube,
    requiredPermissions({
      fieldNamespace: config.fieldNamespace,
      computeNamespace: config.computeNamespace,
      ...(config.mappingStore === "configmap" ? { mappingConfigMap: config.mappingConfigMap } : {}),
      grantConfigMap: GRANT_CONFIGMAP,
      grantShards: Array.from(
        { length: config.grantShards },
        (_, i) => shardName(GRANT_CONFIGMAP, i),
      ),
      serviceAccounts: config.userBasedServiceAccounts,
    }),
    logger,
  );
  return {
    kube,
    runs: createRunLookup(kube, { namespace: config.computeNamespace }),
    serviceAccounts: createServiceAccountAdmin(kube, config.computeNamespace),
  };
}

/** The trust editor on IAM, behind the guard of the editable set, with the per-role lock. */
function startEditor(
  config: ServerConfig,
  kube: KubeClient | undefined,
  handoffKey: HandoffKey | undefined,
  grants: GrantStore,
  editable: (roleArn: string) => string | undefined,
  logger: Logger,
  metrics: ServerMetrics,
  started: Started,
) {
  const iam = createIamClient({
    region: config.awsRegion,
    endpoint: config.iamEndpoint,
    timeoutMs: config.iamTimeoutMs,
  });
  started.add("the IAM client", () => iam.destroy());
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
      handoffKey,
      metrics,
      // A handed add is applied only for a subject whose start recorded the role first.
      entitlements: async (subjects) => {
        const record = await grants.readFor(subjects); // their shards alone
        return new Map(
          subjects.flatMap((s) =>
            Object.hasOwn(record.grants, s) ? [[s, record.grants[s].roles]] : []
          ),
        );
      },
    })
    : createLocalRoleLock();
  if (kube && !handoffKey) {
    logger.warn(
      "no hand-off key (--handoff-key-file): a replica that finds a role's Lease held waits for it instead of handing its edits over",
    );
  }
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
  return { editor, roles };
}

/** Serves the app (and, on its own port, the metrics); stopping it undoes everything started. */
async function listen(
  config: ServerConfig,
  fetch: (request: Request) => Response | Promise<Response>,
  tls: { cert?: string; key?: string },
  metrics: ServerMetrics,
  logger: Logger,
  started: Started,
): Promise<RunningServer> {
  const ac = new AbortController();
  const servers: Promise<void>[] = [];
  started.add("the listeners (requests in flight)", async () => {
    ac.abort();
    await Promise.all(servers);
  });
  let resolveUrl: (url: string) => void;
  const listening = new Promise<string>((r) => (resolveUrl = r));
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
  }, fetch);
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
  const url = await listening;
  // Once the listeners end (a signal, or stop()), the loop and the clients are undone too.
  const finished = Promise.all(servers).then(() => started.undo());
  return {
    url,
    finished,
    async stop() {
      ac.abort();
      await finished;
    },
  };
}
