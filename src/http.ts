/** HTTP plumbing shared by the server's routes: request ids, the one error funnel, body parsing and the API description. */

import type { Context, Hono } from "hono";
import { toJsonSchema } from "@valibot/to-json-schema";
import * as v from "valibot";
import { AppError, statusFor } from "./errors.ts";
import type { Logger } from "./log.ts";

/** Largest request body accepted. */
export const MAX_BODY_BYTES = 64 * 1024;

/** Context variables set by the server's middleware. */
export type ServerEnv = { Variables: { requestId: string } };

/** Answers an AppError as JSON with its code, message and the request id; unknown errors become a bare 500. */
export function installErrorFunnel<E extends ServerEnv>(app: Hono<E>, logger: Logger): void {
  app.onError((err, c) => {
    const requestId = c.get("requestId") ?? "";
    if (err instanceof AppError) {
      const status = statusFor(err.code);
      logger.info("request failed", {
        request_id: requestId,
        code: err.code,
        status,
        reason: err.message,
        ...err.details,
      });
      if (status === 401) c.header("WWW-Authenticate", `Bearer error="invalid_token"`);
      return c.json({ code: err.code, message: err.message, request_id: requestId }, status as 400);
    }
    logger.error("unexpected error", { request_id: requestId, error: err });
    return c.json({ code: "internal", message: "Internal error", request_id: requestId }, 500);
  });
  app.notFound((c) =>
    c.json({
      code: "not_found",
      message: `No route for ${c.req.method} ${c.req.path}`,
      request_id: c.get("requestId") ?? "",
    }, 404)
  );
}

/** Gives every request an id (taken from `X-Request-Id` when sane) and echoes it. */
export function requestIds() {
  return async function requestId(c: Context<ServerEnv>, next: () => Promise<void>) {
    const given = c.req.header("x-request-id");
    const id = given && /^[\w.-]{1,64}$/.test(given) ? given : crypto.randomUUID();
    c.set("requestId", id);
    c.header("X-Request-Id", id);
    await next();
  };
}

/**
 * Refuses bodies over {@link MAX_BODY_BYTES} with 413, however they are sent: by their
 * Content-Length, or, for a chunked body, by reading it up to the limit.
 */
export function limitBody() {
  const tooLarge = () =>
    new AppError("payload_too_large", `Request body is over ${MAX_BODY_BYTES} bytes`);
  return async function limitBody(c: Context, next: () => Promise<void>) {
    const raw = c.req.raw;
    if (raw.body === null) return await next();
    const length = raw.headers.get("content-length");
    if (length !== null && !raw.headers.has("transfer-encoding")) {
      if (Number.parseInt(length, 10) > MAX_BODY_BYTES) throw tooLarge();
      return await next();
    }
    const reader = raw.body.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > MAX_BODY_BYTES) {
        await reader.cancel();
        throw tooLarge();
      }
      chunks.push(value);
    }
    const body = new Uint8Array(size);
    let at = 0;
    for (const chunk of chunks) {
      body.set(chunk, at);
      at += chunk.length;
    }
    // Rebuilt from its parts, not with `new Request(raw, ...)` as Hono's bodyLimit does: that
    // reads `raw.signal`, and Deno 2.9 then prints a plain-text "legacy behavior" warning to
    // standard error, the one line of the log that was not JSON.
    c.req.raw = new Request(raw.url, { method: raw.method, headers: raw.headers, body });
    await next();
  };
}

/** Reads and validates a JSON body; a problem answers 400 naming the field. */
export async function jsonBody<T extends v.GenericSchema>(
  c: Context,
  schema: T,
): Promise<v.InferOutput<T>> {
  const text = await c.req.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new AppError(
      "bad_request",
      text.trim() === ""
        ? "Request body is empty: expected a JSON object"
        : "Request body is not valid JSON",
    );
  }
  const result = v.safeParse(schema, json);
  if (!result.success) {
    const issue = result.issues[0];
    const field = v.getDotPath(issue);
    throw new AppError(
      "bad_request",
      field ? `Invalid field "${field}": ${issue.message}` : `Invalid body: ${issue.message}`,
    );
  }
  return result.output;
}

/** Who may call a route. */
export type Access = "public" | "user" | "admin";

/** The description of one route, from which the OpenAPI document is generated. */
export interface RouteDoc {
  readonly method: "get" | "post" | "delete";
  readonly path: string;
  readonly summary: string;
  readonly access: Access;
  /** The same valibot schema that validates the body. */
  readonly body?: v.GenericSchema;
  readonly responses: Readonly<Record<number, string>>;
  /** Media types of the success answer, JSON when absent. */
  readonly produces?: readonly string[];
  readonly headers?: Readonly<Record<string, string>>;
}

/** Collects route descriptions as routes register, so the document can never drift from them. */
export class ApiDescription {
  readonly routes: RouteDoc[] = [];
  add(doc: RouteDoc): void {
    this.routes.push(doc);
  }

  /** The OpenAPI 3.1 document. */
  document(): Record<string, unknown> {
    const paths: Record<string, Record<string, unknown>> = {};
    const error = { $ref: "#/components/schemas/Error" };
    for (const r of this.routes) {
      const responses = Object.fromEntries(
        Object.entries(r.responses).map(([status, description]) => [
          status,
          {
            description,
            content: Number(status) < 300
              ? Object.fromEntries(
                (r.produces ?? ["application/json"]).map((
                  t,
                ) => [t, { schema: t === "application/json" ? {} : { type: "string" } }]),
              )
              : { "application/json": { schema: error } },
          },
        ]),
      );
      const parameters = Object.entries(r.headers ?? {}).map(([name, description]) => ({
        name,
        in: "header",
        required: false,
        description,
        schema: { type: "string" },
      }));
      paths[r.path] ??= {};
      paths[r.path][r.method] = {
        summary: r.summary,
        ...(r.access === "public" ? { security: [] } : {}),
        ...(r.access === "admin" ? { description: "Admins only." } : {}),
        ...(parameters.length ? { parameters } : {}),
        ...(r.body
          ? {
            requestBody: {
              required: true,
              content: {
                "application/json": { schema: toJsonSchema(r.body, { errorMode: "ignore" }) },
              },
            },
          }
          : {}),
        responses,
      };
    }
    return {
      openapi: "3.1.0",
      info: {
        title: "irsa",
        version: "1",
        description: "AWS roles for platform workspaces through IRSA and role chaining.",
      },
      components: {
        securitySchemes: {
          bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" },
          apiKey: { type: "apiKey", in: "header", name: "X-Domino-Api-Key" },
        },
        schemas: {
          Error: {
            type: "object",
            required: ["code", "message", "request_id"],
            properties: {
              code: { type: "string" },
              message: { type: "string" },
              request_id: { type: "string" },
            },
          },
        },
      },
      security: [{ bearer: [] }, { apiKey: [] }],
      paths,
    };
  }
}
