/** The sidecar's own small Hono app: /healthz, /refresh and /credentials, answered in JSON. */

import { Hono } from "hono";
import type { Logger } from "../lib/log.ts";
import type { Syncer } from "./syncer.ts";
import type { CredentialCache } from "./credential_cache.ts";
import { mountCredentialRoutes } from "./credential_routes.ts";

/** The credential endpoint, when it is on. */
export interface SidecarCredentials {
  readonly cache: CredentialCache;
  /** The authorization token of this start (known once the token file is written). */
  readonly authToken: () => string;
}

const pretty = (value: unknown) => JSON.stringify(value, null, 2) + "\n";

/** Builds the sidecar app around a syncer. */
export function createSidecarApp(
  syncer: Syncer,
  configFile: string,
  logger: Logger,
  credentials?: SidecarCredentials,
): Hono {
  const app = new Hono();
  const health = () => {
    const s = syncer.state();
    const healthy = syncer.healthy();
    return {
      status: healthy ? "Healthy" : s.state === "starting" ? "Starting" : "Unhealthy",
      state: s.state,
      last_sync: s.lastSync,
      last_attempt: s.lastAttempt,
      profiles: s.profiles,
      usable: s.usable,
      last_error: s.lastError,
      config_file: configFile,
      ...(credentials ? { credentials: credentials.cache.stats() } : {}),
    };
  };
  app.get("/healthz", (c) => {
    const body = health();
    return c.body(pretty(body), body.status === "Healthy" ? 200 : 503, {
      "Content-Type": "application/json",
    });
  });
  const refresh = async () => {
    try {
      const profiles = await syncer.sync("refresh");
      await credentials?.cache.refreshAll();
      return new Response(pretty({ status: "Refreshed", profiles, config_file: configFile }), {
        headers: { "Content-Type": "application/json" },
      });
    } catch (e) {
      logger.warn("refresh failed", { error: (e as Error).message });
      return new Response(
        pretty({ ...health(), status: "RefreshFailed", error: (e as Error).message }),
        {
          status: 502,
          headers: { "Content-Type": "application/json" },
        },
      );
    }
  };
  app.get("/refresh", refresh);
  app.post("/refresh", refresh);
  if (credentials) mountCredentialRoutes(app, credentials.cache, credentials.authToken, logger);
  app.notFound((c) =>
    c.body(pretty({ status: "NotFound", message: "Try /healthz, /refresh or /credentials" }), 404, {
      "Content-Type": "application/json",
    })
  );
  return app;
}
