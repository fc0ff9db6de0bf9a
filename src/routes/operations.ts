/** Health, readiness, metrics and the API description: the routes that need no token. */

import type { Hono } from "hono";
import * as v from "valibot";
import type { AuthEnv } from "../auth/bearer.ts";
import { renderMetrics } from "../observe/metrics.ts";
import type { ServerDeps } from "./deps.ts";

/** The answer of GET /healthz. */
export const HealthAnswer = v.strictObject({ status: v.literal("Healthy") });

/** The answer of GET /readyz when ready. */
export const ReadyAnswer = v.strictObject({ status: v.literal("Ready") });

/** The answer of GET /readyz when not ready: every reason, in sentences. */
export const NotReadyAnswer = v.strictObject({
  status: v.literal("NotReady"),
  reasons: v.pipe(v.array(v.string()), v.minLength(1)),
});

/** The answer of GET /openapi.json: an OpenAPI 3.1 document (its own schema is the OpenAPI one). */
export const OpenApiAnswer = v.looseObject({
  openapi: v.literal("3.1.0"),
  info: v.looseObject({ title: v.string(), version: v.string() }),
  components: v.looseObject({}),
  paths: v.record(v.pipe(v.string(), v.startsWith("/")), v.looseObject({})),
});

/** Registers /healthz, /readyz, /metrics and /openapi.json. */
export function registerOperationRoutes(app: Hono<AuthEnv>, deps: ServerDeps): void {
  deps.api.add({
    method: "get",
    path: "/healthz",
    summary: "Liveness.",
    access: "public",
    responses: { 200: { description: "Alive", json: HealthAnswer } },
  });
  app.get(
    "/healthz",
    (c) => c.json({ status: "Healthy" } satisfies v.InferOutput<typeof HealthAnswer>),
  );

  deps.api.add({
    method: "get",
    path: "/readyz",
    summary: "Readiness: mappings readable and signing keys loaded.",
    access: "public",
    responses: {
      200: { description: "Ready", json: ReadyAnswer },
      503: { description: "Not ready, with the reasons", json: NotReadyAnswer },
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
      ? c.json({ status: "Ready" } satisfies v.InferOutput<typeof ReadyAnswer>)
      : c.json({ status: "NotReady", reasons } satisfies v.InferOutput<typeof NotReadyAnswer>, 503);
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
    responses: { 200: { description: "The document", json: OpenApiAnswer } },
  });
  app.get("/openapi.json", (c) => c.json(deps.api.document()));
}
