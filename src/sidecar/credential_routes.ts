/**
 * `GET /credentials[/<profile>]`: a profile's credentials in the container credential provider's
 * format, or with `?format=process` in credential_process's. Every request carries the
 * authorization token; the answers are never logged.
 */

import type { Context, Hono } from "hono";
import { AppError, statusFor } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import type { CredentialCache } from "./credential_cache.ts";
import { sameToken } from "./credential_files.ts";

const NO_STORE = { "Content-Type": "application/json", "Cache-Control": "no-store" };

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

/** Mounts the credential routes on the sidecar's app. */
export function mountCredentialRoutes(
  app: Hono,
  cache: CredentialCache,
  authToken: () => string,
  logger: Logger,
): void {
  const answer = async (c: Context, profile: string | undefined) => {
    try {
      const given = c.req.header("Authorization");
      if (given === undefined || given === "") {
        cache.refused();
        throw new AppError(
          "unauthorized",
          "Missing Authorization header: send the content of AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        );
      }
      if (!sameToken(given.replace(/^Bearer /, ""), authToken())) {
        cache.refused();
        throw new AppError("unauthorized", "Wrong authorization token");
      }
      const { credentials } = await cache.get(profile);
      const process = c.req.query("format") === "process";
      const body = process
        ? {
          Version: 1,
          AccessKeyId: credentials.accessKeyId,
          SecretAccessKey: credentials.secretAccessKey,
          SessionToken: credentials.sessionToken,
          Expiration: iso(credentials.expiration),
        }
        : {
          AccessKeyId: credentials.accessKeyId,
          SecretAccessKey: credentials.secretAccessKey,
          Token: credentials.sessionToken,
          Expiration: iso(credentials.expiration),
        };
      return new Response(JSON.stringify(body), { headers: NO_STORE });
    } catch (e) {
      const error = e instanceof AppError
        ? e
        : new AppError("internal", "The sidecar could not answer; see its log");
      if (!(e instanceof AppError)) logger.error("credential request failed", { error: e });
      else logger.info("credential request refused", { code: error.code });
      const headers: Record<string, string> = { ...NO_STORE };
      if (error.code === "unauthorized") {
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"';
      }
      return new Response(
        JSON.stringify({ code: error.code, message: error.message }, null, 2) + "\n",
        { status: statusFor(error.code), headers },
      );
    }
  };
  app.get("/credentials", (c) => answer(c, undefined));
  app.get("/credentials/:profile", (c) => answer(c, c.req.param("profile")));
}
