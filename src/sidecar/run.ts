/** `irsa sidecar`: wires the syncer to real I/O, serves /healthz and /refresh, resyncs, and releases on stop. */

import type { SidecarConfig } from "./settings.ts";
import type { Logger } from "../lib/log.ts";
import { createSidecarApp } from "./app.ts";
import { createBrokerClient, createPodFetch } from "./broker_client.ts";
import { createSyncer } from "./syncer.ts";
import { tryAssumeRoleWithWebIdentity } from "./sts_check.ts";

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
  });
  const app = createSidecarApp(syncer, config.configFile, logger);
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
  } catch (e) {
    ac.abort();
    await server.finished;
    throw e;
  }

  let timer: ReturnType<typeof setInterval> | undefined;
  const started = syncer.start(config.startDeadlineMs).catch((e) =>
    logger.error("first sync failed; /refresh or the periodic sync will try again", {
      error: (e as Error).message,
    })
  ).then(() => {
    if (ac.signal.aborted) return;
    timer = setInterval(() => syncer.sync("periodic").catch(() => {}), config.syncIntervalMs);
  });

  return {
    url,
    finished: server.finished,
    async stop() {
      clearInterval(timer);
      await syncer.release(RELEASE_TIMEOUT_MS);
      ac.abort();
      await server.finished;
      await Promise.race([started, new Promise((r) => setTimeout(r, 100))]);
      broker.close();
    },
  };
}
