/** Health, readiness, metrics and the API description: the routes that need no token. */

import type * as v from "valibot";
import { HealthAnswer, NotReadyAnswer, OpenApiAnswer, ReadyAnswer } from "../api/operations.ts";
import type { AuthEnv } from "../auth/bearer.ts";
import type { ServerDeps } from "../grants/deps.ts";
import { type Route, route } from "../http/route.ts";
import { renderMetrics } from "../observe/metrics.ts";

/** /healthz, /readyz, /metrics and /openapi.json. */
export function operationRoutes(deps: ServerDeps): Route<AuthEnv>[] {
  return [
    route({
      method: "get",
      path: "/healthz",
      summary: "Liveness.",
      access: "public",
      responses: { 200: { description: "Alive", json: HealthAnswer } },
      handle: (c) => c.json({ status: "Healthy" } satisfies v.InferOutput<typeof HealthAnswer>),
    }),
    route({
      method: "get",
      path: "/readyz",
      summary: "Readiness: mappings readable and signing keys loaded.",
      access: "public",
      responses: {
        200: { description: "Ready", json: ReadyAnswer },
        503: { description: "Not ready, with the reasons", json: NotReadyAnswer },
      },
      async handle(c) {
        const reasons = await notReadyReasons(deps);
        return reasons.length === 0
          ? c.json({ status: "Ready" } satisfies v.InferOutput<typeof ReadyAnswer>)
          : c.json(
            { status: "NotReady", reasons } satisfies v.InferOutput<typeof NotReadyAnswer>,
            503,
          );
      },
    }),
    route({
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
      handle: (c) =>
        c.text(renderMetrics(deps.metrics), 200, {
          "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
        }),
    }),
    route({
      method: "get",
      path: "/openapi.json",
      summary: "This API as an OpenAPI 3.1 document.",
      access: "public",
      responses: { 200: { description: "The document", json: OpenApiAnswer } },
      handle: (c) => c.json(deps.api.document()),
    }),
  ];
}

// Why the server is not ready, in sentences: mappings unreadable, or signing keys not loaded.
async function notReadyReasons(deps: ServerDeps): Promise<string[]> {
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
  return reasons;
}
