/** The wire contract of the routes that need no token: health, readiness and the API description. */

import * as v from "valibot";

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
