/** The middleware every request passes: request ids, the body limit and the one error funnel. */

import type { Context, Hono } from "hono";
import type { ErrorBody } from "../api/errors.ts";
import { AppError, statusFor } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";

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
      const body: ErrorBody = { code: err.code, message: err.message, request_id: requestId };
      return c.json(body, status as 400);
    }
    logger.error("unexpected error", { request_id: requestId, error: err });
    const body: ErrorBody = { code: "internal", message: "Internal error", request_id: requestId };
    return c.json(body, 500);
  });
  app.notFound((c) => {
    const body: ErrorBody = {
      code: "not_found",
      message: `No route for ${c.req.method} ${c.req.path}`,
      request_id: c.get("requestId") ?? "",
    };
    return c.json(body, 404);
  });
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
