/** Health, readiness, metrics and the API description: the routes that need no token. */

import type { Hono } from "hono";
import type { AuthEnv } from "../auth/bearer.ts";
import { renderMetrics } from "../metrics.ts";
import type { ServerDeps } from "./deps.ts";

/** Registers /healthz, /readyz, /metrics and /openapi.json. */
export function registerOperationRoutes(app: Hono<AuthEnv>, deps: ServerDeps): void {
  deps.api.add({
    method: "get",
    path: "/healthz",
    summary: "Liveness.",
    access: "public",
    responses: { 200: { description: '{"status": "Healthy"}' } },
  });
  app.get("/healthz", (c) => c.json({ status: "Healthy" }));

  deps.api.add({
    method: "get",
    path: "/readyz",
    summary: "Readiness: mappings readable and signing keys loaded.",
    access: "public",
    responses: {
      200: { description: "Ready" },
      503: { description: "Not ready, with the reason" },
    },
  });
  app.get("/readyz", async (c) => {
    const reasons: string[] = [];
    try {
      const snapshot = await deps.store.read();
      if (snapshot.problems.length > 0) {
        deps.logger.warn("mappings have malformed entries", { count: snapshot.problems.length });
      }
    } catch (e) {
      reasons.push(`Mappings cannot be read: ${(e as Error).message}`);
    }
    try {
      if (!(await deps.users.ready())) {
        reasons.push("Signing keys of user tokens are not loaded yet");
      }
    } catch (e) {
      reasons.push(`Signing keys of user tokens cannot be loaded: ${(e as Error).message}`);
    }
    return reasons.length === 0
      ? c.json({ status: "Ready" })
      : c.json({ status: "NotReady", reasons }, 503);
  });

  deps.api.add({
    method: "get",
    path: "/metrics",
    summary: "Prometheus metrics.",
    access: "public",
    responses: {
      200: {
        description: "Metrics",
        text: { type: "text/plain", description: "The Prometheus text format, version 0.0.4" },
      },
    },
  });
  app.get(
    "/metrics",
    (c) =>
      c.text(renderMetrics(deps.metrics), 200, {
        "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
      }),
  );

  deps.api.add({
    method: "get",
    path: "/openapi.json",
    summary: "This API as an OpenAPI 3.1 document.",
    access: "public",
    responses: { 200: { description: "The document" } },
  });
  app.get("/openapi.json", (c) => c.json(deps.api.document()));
}
