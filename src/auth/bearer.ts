/** The bearer-token middleware: every route behind it knows its caller. */

import type { Context } from "hono";
import { AppError } from "../lib/errors.ts";
import type { ServerEnv } from "../http/middleware.ts";
import type { Caller, UserVerifier } from "./caller.ts";

/** Context variables set by {@link bearerAuth}. */
export type AuthEnv = ServerEnv & { Variables: { caller: Caller } };

/** The header in which the platform's clients send an API key instead of a bearer token. */
export const API_KEY_HEADER = "X-Domino-Api-Key";

/**
 * Verifies `Authorization: Bearer <token>`, or a platform API key in `X-Domino-Api-Key`, and sets
 * `caller`; with `admin`, refuses non-admins with 403. A bearer token wins when both are sent.
 */
export function bearerAuth(verifier: UserVerifier, options: { admin?: boolean } = {}) {
  return async function authenticate(c: Context<AuthEnv>, next: () => Promise<void>) {
    const header = c.req.header("authorization") ?? "";
    const apiKey = c.req.header(API_KEY_HEADER)?.trim() ?? "";
    let caller: Caller;
    if (header === "" && apiKey !== "") {
      if (!verifier.verifyApiKey) {
        throw new AppError(
          "unauthorized",
          `${API_KEY_HEADER} is not accepted here: this server verifies bearer tokens and has no platform API to resolve keys (set --domino-user-host / DOMINO_USER_HOST)`,
        );
      }
      caller = await verifier.verifyApiKey(apiKey);
    } else {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
      if (!m) {
        throw new AppError(
          "unauthorized",
          header === ""
            ? `Missing Authorization: Bearer <token> header (or ${API_KEY_HEADER})`
            : "Authorization header is not a bearer token",
        );
      }
      caller = await verifier.verify(m[1]);
    }
    if (options.admin && !caller.isAdmin) {
      throw new AppError("forbidden", `User ${JSON.stringify(caller.username)} is not an admin`);
    }
    c.set("caller", caller);
    await next();
  };
}
