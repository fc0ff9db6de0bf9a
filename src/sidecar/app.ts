/** The sidecar's own small Hono app: /healthz and /refresh, answered in JSON a person can read. */

import { Hono } from "hono";
import type { Logger } from "../lib/log.ts";
import type { Syncer } from "./syncer.ts";

const pretty = (value: unknown) => JSON.stringify(value, null, 2) + "\n";

/** Builds the sidecar app around a syncer. */
export function createSidecarApp(syncer: Syncer, configFile: string, logger: Logger): Hono {
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
  app.notFound((c) =>
    c.body(pretty({ status: "NotFound", message: "Try /healthz or /refresh" }), 404, {
      "Content-Type": "application/json",
    })
  );
  return app;
}
