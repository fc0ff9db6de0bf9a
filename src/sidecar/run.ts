/** `irsa sidecar`: wires the syncer to real I/O, serves /healthz and /refresh, resyncs, and releases on stop. */

import type { SidecarConfig } from "./settings.ts";
import type { Logger } from "../lib/log.ts";
import { createSidecarApp } from "./app.ts";
import { createBrokerClient, createPodFetch } from "./broker_client.ts";
import { createSyncer } from "./syncer.ts";
import { tryAssumeRoleWithWebIdentity } from "./sts_check.ts";
import { createCredentialCache } from "./credential_cache.ts";
import { assumeRole, assumeRoleWithWebIdentity, type StsOptions } from "./sts.ts";
import { helperScript, newAuthToken, writeFileAtomic } from "./credential_files.ts";

const HTTP_TIMEOUT_MS = 10_000;
const RELEASE_TIMEOUT_MS = 3_000;

/** A running sidecar. */
export interface RunningSidecar {
  readonly url: string;
  /** Releases this pod's subject (bounded), then stops serving. */
  stop(): Promise<void>;
  readonly finished: Promise<void>;
}

/** Starts the sidecar; the first sync runs in the background so /healthz answers at once. */
export async function startSidecar(config: SidecarConfig, logger: Logger): Promise<RunningSidecar> {
  // Read while the server starts listening; a missing CA still fails the start, just after.
  const caCert = config.caFile ? Deno.readTextFile(config.caFile) : Promise.resolve(undefined);
  caCert.catch(() => {}); // Awaited below, once listening.
  const http = createPodFetch(caCert);
  const broker = createBrokerClient({
    apiProxy: config.apiProxy,
    endpoint: config.endpoint,
    http,
    timeoutMs: HTTP_TIMEOUT_MS,
  });
  const sts: StsOptions = {
    endpoint: config.stsEndpoint,
    region: config.region ?? "us-east-1",
    timeoutMs: HTTP_TIMEOUT_MS,
    fetch: http.fetch,
    now: Date.now,
  };
  const duration = config.sessionDurationSeconds;
  const cache = config.credentials
    ? createCredentialCache({
      chain: async (p) => {
        // Re-read at every chain: the kubelet rotates the pod's token.
        const token = (await Deno.readTextFile(config.tokenFile)).trim();
        const first = await assumeRoleWithWebIdentity(
          sts,
          p.proxyRoleArn ?? p.assetRoleArn,
          token,
          p.sessionName,
          duration,
        );
        return p.proxyRoleArn
          ? await assumeRole(sts, first, p.assetRoleArn, p.sessionName, duration)
          : first;
      },
      now: Date.now,
      // A third of the lifetime, at most 15 minutes: SDKs then never see credentials near their end.
      refreshMarginMs: Math.min(duration / 3, 900) * 1000,
      defaultProfile: config.defaultProfile,
    })
    : undefined;
  const authToken = newAuthToken();
  const helper = config.credentialHelperFile;
  const syncer = createSyncer({
    settings: config,
    broker,
    readTextFile: (path) => Deno.readTextFile(path),
    assume: (role, token, session) =>
      tryAssumeRoleWithWebIdentity(
        config.stsEndpoint,
        role,
        token,
        session,
        HTTP_TIMEOUT_MS,
        http.fetch,
      ),
    logger,
    ...(cache
      ? {
        credentialProcess: (profile: string) => `/bin/sh ${helper} ${profile}`,
        onSynced: (profiles) => cache.setProfiles(profiles),
        defaultSection: { profile: config.defaultProfile },
      }
      : {}),
  });
  const app = createSidecarApp(
    syncer,
    config.configFile,
    logger,
    cache ? { cache, authToken: () => authToken } : undefined,
  );
  const ac = new AbortController();
  const { promise: listening, resolve } = Promise.withResolvers<string>();
  const server = Deno.serve({
    hostname: config.host,
    port: config.port,
    signal: ac.signal,
    onListen: ({ hostname, port }) => {
      const url = `http://${hostname}:${port}`;
      logger.info("irsa sidecar listening", {
        url,
        endpoint: config.endpoint,
        config_file: config.configFile,
      });
      resolve(url);
    },
  }, app.fetch);
  const url = await listening;
  try {
    await caCert;
    if (cache) {
      // Before the first sync writes a profile that names the helper. Readable by the workspace's
      // user (another uid); the volume is the pod's alone.
      // No newline: botocore sends the file as it is, and a newline is not legal in a header.
      await writeFileAtomic(config.credentialsTokenFile, authToken, 0o644);
      const local = `http://127.0.0.1:${new URL(url).port}/credentials`;
      await writeFileAtomic(helper, helperScript(local, config.credentialsTokenFile), 0o755);
    }
  } catch (e) {
    ac.abort();
    await server.finished;
    throw e;
  }

  let timer: ReturnType<typeof setInterval> | undefined;
  let renewer: ReturnType<typeof setInterval> | undefined;
  const started = syncer.start(config.startDeadlineMs).catch((e) =>
    logger.error("first sync failed; /refresh or the periodic sync will try again", {
      error: (e as Error).message,
    })
  ).then(() => {
    if (ac.signal.aborted) return;
    timer = setInterval(() => syncer.sync("periodic").catch(() => {}), config.syncIntervalMs);
    // Renews vended credentials before their margin, so a request rarely waits for STS.
    if (cache) renewer = setInterval(() => cache.refreshDue(), 60_000);
  });

  return {
    url,
    finished: server.finished,
    async stop() {
      clearInterval(timer);
      clearInterval(renewer);
      await syncer.release(RELEASE_TIMEOUT_MS);
      ac.abort();
      await server.finished;
      await Promise.race([started, new Promise((r) => setTimeout(r, 100))]);
      broker.close();
    },
  };
}
