/** The bearer-token middleware: every route behind it knows its caller. */

import type { Context } from "hono";
import { AppError } from "../errors.ts";
import type { ServerEnv } from "../http.ts";
import type { Caller, UserVerifier } from "./caller.ts";

/** Context variables set by {@link bearerAuth}. */
export type AuthEnv = ServerEnv & { Variables: { caller: Caller } };

/** Verifies `Authorization: Bearer <token>` and sets `caller`; with `admin`, refuses non-admins with 403. */
export function bearerAuth(verifier: UserVerifier, options: { admin?: boolean } = {}) {
  return async function authenticate(c: Context<AuthEnv>, next: () => Promise<void>) {
    const header = c.req.header("authorization") ?? "";
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) {
      throw new AppError(
        "unauthorized",
        header === ""
          ? "Missing Authorization: Bearer <token> header"
          : "Authorization header is not a bearer token",
      );
    }
    const caller = await verifier.verify(m[1]);
    if (options.admin && !caller.isAdmin) {
      throw new AppError("forbidden", `User ${JSON.stringify(caller.username)} is not an admin`);
    }
    c.set("caller", caller);
    await next();
  };
}
