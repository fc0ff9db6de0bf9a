/** Verifies Keycloak-style user access tokens locally against the realm's published signing keys. */

import {
  createRemoteJWKSet,
  customFetch,
  decodeJwt,
  errors,
  type JWTPayload,
  jwtVerify,
  type JWTVerifyGetKey,
} from "jose";
import { AppError } from "../lib/errors.ts";
import type { Caller, UserVerifier } from "./caller.ts";

/**
 * The only algorithms a token may be signed with: public-key ones, so that a published key can
 * never double as an HMAC secret and `alg: none` is refused before any key is looked up.
 */
export const ASYMMETRIC_ALGORITHMS: readonly string[] = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
];

/** Options of {@link createJwtVerifier}. */
export interface JwtVerifierOptions {
  /** The realm's issuer, compared exactly with `iss`. */
  readonly issuer: string;
  /** The realm's JWKS, e.g. `<issuer>/protocol/openid-connect/certs`. */
  readonly jwksUrl: string;
  /** When set, `aud` must contain it; Keycloak tokens often carry several audiences. */
  readonly audience?: string;
  /** Claim holding the user name; defaults to `preferred_username`. */
  readonly usernameClaim?: string;
  /** Claim holding the organizations, a list of names or group paths; defaults to `user_groups`. */
  readonly groupsClaim?: string;
  /** Dotted path of the admin marker; defaults to `realm_access.roles`. */
  readonly adminClaim?: string;
  /** Value of the admin marker (the claim, or a member of it when a list); defaults to `DominoAdmin`. */
  readonly adminValue?: string;
  /** PEM of a private CA that signs the issuer's certificate. */
  readonly caCert?: string;
  /** Timeout of one key fetch. */
  readonly timeoutMs: number;
  /** How long fetched keys are used before they are fetched again; jose's default is 10 minutes. */
  readonly cacheMaxAgeMs?: number;
  /** Least time between two fetches caused by unknown key ids; defaults to 30 seconds. */
  readonly cooldownMs?: number;
  /** Epoch milliseconds against which `exp` and `nbf` are checked (not the key cache). */
  readonly clock?: () => number;
  readonly fetch?: typeof fetch;
}

/** A {@link UserVerifier} that holds an HTTP client; `close()` releases it. */
export interface JwtVerifier extends UserVerifier {
  close(): void;
}

/** Creates a verifier of user access tokens signed by one realm. */
export function createJwtVerifier(opts: JwtVerifierOptions): JwtVerifier {
  const claims = {
    username: opts.usernameClaim ?? "preferred_username",
    groups: opts.groupsClaim ?? "user_groups",
    adminPath: (opts.adminClaim ?? "realm_access.roles").split("."),
    adminValue: opts.adminValue ?? "DominoAdmin",
  };
  const http = createKeyFetch(opts);
  const keys = createRemoteKeys(opts.jwksUrl, http.fetch, opts);
  return {
    async verify(token) {
      const payload = await verifyToken(token, keys, {
        issuer: opts.issuer,
        audience: opts.audience,
        clock: opts.clock,
      });
      const username = payload[claims.username];
      if (typeof username !== "string" || username === "") {
        throw unauthorized(`Token has no ${claims.username} claim`);
      }
      return {
        username,
        organizations: organizationsFrom(payload[claims.groups], claims.groups),
        isAdmin: isAdminValue(valueAt(payload, claims.adminPath), claims.adminValue),
      } satisfies Caller;
    },
    ready: () => keys.ready(),
    close: http.close,
  };
}

/** A fetch for keys and discovery that trusts `caCert` when given, and releases its client. */
export function createKeyFetch(
  opts: { readonly caCert?: string; readonly fetch?: typeof fetch },
): { readonly fetch: typeof fetch; close(): void } {
  const base = opts.fetch ?? fetch;
  if (opts.caCert === undefined) return { fetch: base, close: () => {} };
  const client = Deno.createHttpClient({ caCerts: [opts.caCert] });
  let closed = false;
  return {
    fetch: (input, init) => base(input, { ...init, client }),
    close: () => {
      if (!closed) client.close();
      closed = true;
    },
  };
}

/** A cached remote key set, as jose fetches it, whose fetch failures are told apart from bad tokens. */
export interface RemoteKeys {
  readonly url: string;
  readonly resolve: JWTVerifyGetKey;
  /** True once keys were fetched; otherwise tries one fetch. */
  ready(): Promise<boolean>;
}

/** Wraps jose's remote JWKS: fetched once, cached, refetched on an unknown kid after a cooldown. */
export function createRemoteKeys(
  url: string,
  fetchKeys: typeof fetch,
  opts: {
    readonly timeoutMs: number;
    readonly cacheMaxAgeMs?: number;
    readonly cooldownMs?: number;
  },
): RemoteKeys {
  const remote = createRemoteJWKSet(new URL(url), {
    timeoutDuration: opts.timeoutMs,
    cacheMaxAge: opts.cacheMaxAgeMs,
    cooldownDuration: opts.cooldownMs ?? 30_000,
    [customFetch]: fetchKeys,
  });
  return {
    url,
    async resolve(header, token) {
      try {
        return await remote(header, token);
      } catch (error) {
        // These say the token names no usable key; anything else is the key server's fault.
        if (
          error instanceof errors.JWKSNoMatchingKey ||
          error instanceof errors.JWKSMultipleMatchingKeys ||
          error instanceof errors.JOSENotSupported
        ) throw error;
        throw new KeysUnavailable(url, error);
      }
    },
    async ready() {
      if (remote.jwks() !== undefined) return true;
      try {
        await remote.reload();
        return true;
      } catch {
        return false;
      }
    },
  };
}

/** What {@link verifyToken} checks besides the signature. */
export interface TokenChecks {
  readonly issuer: string;
  readonly audience?: string;
  readonly clock?: () => number;
}

/**
 * Verifies a token's signature (asymmetric algorithms only), `iss`, `exp` (required), `nbf` and
 * `aud` when given. Throws AppError `unauthorized` with a short reason that never quotes the token,
 * or `unavailable` when the keys cannot be fetched.
 */
export async function verifyToken(
  token: string,
  keys: RemoteKeys,
  checks: TokenChecks,
): Promise<JWTPayload> {
  try {
    // A token of another issuer is refused before its unknown kid could make us refetch keys.
    if (decodeJwt(token).iss !== checks.issuer) throw unauthorized("Token issuer is not trusted");
    const { payload } = await jwtVerify(token, keys.resolve, {
      algorithms: [...ASYMMETRIC_ALGORITHMS],
      issuer: checks.issuer,
      audience: checks.audience,
      requiredClaims: ["exp"],
      currentDate: checks.clock ? new Date(checks.clock()) : undefined,
    });
    return payload;
  } catch (error) {
    throw tokenFailure(error);
  }
}

class KeysUnavailable extends Error {
  constructor(readonly url: string, cause: unknown) {
    super(`Cannot fetch the token signing keys from ${url}`, { cause });
  }
}

function unauthorized(reason: string, details: Record<string, unknown> = {}): AppError {
  return new AppError("unauthorized", reason, details);
}

// jose's claim errors carry the payload; only the code and the claim name go into the details.
function tokenFailure(error: unknown): AppError {
  if (error instanceof AppError) return error;
  if (error instanceof KeysUnavailable) {
    return new AppError("unavailable", error.message, { url: error.url, cause: error.cause });
  }
  if (!(error instanceof errors.JOSEError)) throw error;
  const details = { joseCode: error.code };
  if (error instanceof errors.JWTExpired) return unauthorized("Token expired", details);
  if (error instanceof errors.JWTClaimValidationFailed) {
    const claim = error.claim;
    const withClaim = { ...details, claim };
    if (error.reason === "missing") return unauthorized(`Token has no ${claim} claim`, withClaim);
    if (claim === "iss") return unauthorized("Token issuer is not trusted", withClaim);
    if (claim === "aud") return unauthorized("Token audience is not accepted", withClaim);
    if (claim === "nbf") return unauthorized("Token is not yet valid", withClaim);
    return unauthorized(`Token claim ${claim} is invalid`, withClaim);
  }
  if (error instanceof errors.JOSEAlgNotAllowed) {
    return unauthorized("Token algorithm is not allowed", details);
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return unauthorized("Token signature is invalid", details);
  }
  if (error instanceof errors.JWKSNoMatchingKey) {
    return unauthorized("Token signing key is not known", details);
  }
  if (error instanceof errors.JWKSMultipleMatchingKeys) {
    return unauthorized("Token signing key is ambiguous", details);
  }
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid) {
    return unauthorized("Token is malformed", details);
  }
  return unauthorized("Token cannot be verified", details);
}

// Keycloak's group mapper may emit full paths ("/org"); only the leading slash goes, so that
// "/a/team" and "/b/team" stay distinct organizations.
function organizationsFrom(value: unknown, claim: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((g) => typeof g === "string")) {
    throw unauthorized(`Token claim ${claim} is not a list of strings`);
  }
  const names = value.map((g: string) => g.startsWith("/") ? g.slice(1) : g);
  return [...new Set(names.filter((name) => name !== ""))];
}

function valueAt(payload: JWTPayload, path: readonly string[]): unknown {
  let value: unknown = payload;
  for (const key of path) {
    if (typeof value !== "object" || value === null || !Object.hasOwn(value, key)) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

// Only the configured string marks an admin, or a list holding it: a boolean `true`, a number or
// an object in the claim does not, whatever it seems to say.
function isAdminValue(value: unknown, adminValue: string): boolean {
  return value === adminValue || (Array.isArray(value) && value.includes(adminValue));
}
