/** Verifies a user token by asking the platform API who it belongs to, with a short-lived cache. */

import * as v from "valibot";
import { AppError } from "../lib/errors.ts";
import { API_KEY_HEADER } from "./bearer.ts";
import type { Caller, UserVerifier } from "./caller.ts";

/** Options of {@link createDominoVerifier}. */
export interface DominoVerifierOptions {
  /** The platform API, `DOMINO_USER_HOST`, e.g. `http://nucleus-frontend.domino-platform:80`. */
  readonly apiUrl: string;
  /** How long a verified token's caller is reused. */
  readonly cacheTtlMs: number;
  /** Most tokens cached at once; the oldest go first. Defaults to 10 000. */
  readonly cacheMaxEntries?: number;
  /** Timeout of each request to the platform API. */
  readonly timeoutMs: number;
  /** Epoch milliseconds, for the cache. */
  readonly clock?: () => number;
  readonly fetch?: typeof fetch;
  /** Called after each principal query; `ok` when the API answered 200 with a valid principal. */
  readonly onPrincipalQuery?: (ok: boolean) => void;
  /** Called after each organizations query; `ok` when the API answered 200 with a valid list. */
  readonly onOrgQuery?: (ok: boolean) => void;
}

/** A {@link UserVerifier} backed by the platform API. */
export interface DominoVerifier extends UserVerifier {
  /** Asks the platform API with the key in `X-Domino-Api-Key`, cached like tokens. */
  verifyApiKey(key: string): Promise<Caller>;
  /** The cache's keys, SHA-256 hex digests of tokens (never tokens), oldest first; for tests. */
  cacheKeys(): readonly string[];
}

// The platform answers an anonymous request with a principal that may lack the names.
const Principal = v.variant("isAnonymous", [
  v.looseObject({ isAnonymous: v.literal(true) }),
  v.looseObject({
    isAnonymous: v.literal(false),
    canonicalName: v.pipe(v.string(), v.minLength(1)),
    canonicalId: v.pipe(v.string(), v.minLength(1)),
    isAdmin: v.optional(v.boolean(), false),
  }),
]);

const Organizations = v.array(v.looseObject({ name: v.pipe(v.string(), v.minLength(1)) }));

// How one kind of user credential is sent to the platform, named in errors and cached.
interface Credential {
  readonly what: "Token" | "API key";
  readonly headers: Readonly<Record<string, string>>;
  readonly cachePrefix: string;
}

interface Entry {
  readonly caller: Promise<Caller>;
  /** Unset while the platform API is being asked. */
  expiresAt?: number;
}

/** Creates a verifier that asks the platform API for the principal and organizations of a token. */
export function createDominoVerifier(opts: DominoVerifierOptions): DominoVerifier {
  const apiUrl = opts.apiUrl.replace(/\/+$/, "");
  const clock = opts.clock ?? Date.now;
  const doFetch = opts.fetch ?? fetch;
  const maxEntries = opts.cacheMaxEntries ?? 10_000;
  const cache = new Map<string, Entry>();

  // The platform takes a user's credential in the header it came in: a bearer token or an API key.
  const get = async (path: string, credential: Credential, what: string): Promise<unknown> => {
    let response: Response;
    try {
      response = await doFetch(`${apiUrl}${path}`, {
        headers: { ...credential.headers, accept: "application/json" },
        signal: AbortSignal.timeout(opts.timeoutMs),
      });
    } catch (error) {
      throw new AppError("unavailable", `Cannot reach the platform API to query the ${what}`, {
        path,
        cause: error,
      });
    }
    if (response.status === 401 || response.status === 403) {
      await response.body?.cancel();
      throw new AppError("unauthorized", `${credential.what} is not accepted by the platform`, {
        path,
        status: response.status,
      });
    }
    if (response.status !== 200) {
      await response.body?.cancel();
      throw new AppError(
        "upstream_error",
        `The platform API answered HTTP ${response.status} to the ${what} query`,
        { path, status: response.status },
      );
    }
    try {
      return await response.json();
    } catch (error) {
      throw upstreamShape(path, what, error);
    }
  };

  const report = async <T>(hook: ((ok: boolean) => void) | undefined, query: Promise<T>) => {
    try {
      const result = await query;
      hook?.(true);
      return result;
    } catch (error) {
      hook?.(false);
      throw error;
    }
  };

  const ask = async (credential: Credential): Promise<Caller> => {
    const path = "/v4/auth/principal";
    const principal = await report(
      opts.onPrincipalQuery,
      get(path, credential, "principal").then((body) => parse(Principal, body, path, "principal")),
    );
    if (principal.isAnonymous) {
      throw new AppError("unauthorized", `${credential.what} is anonymous`);
    }
    const orgPath = "/v4/organizations/self";
    const orgs = await report(
      opts.onOrgQuery,
      get(orgPath, credential, "organizations").then((body) =>
        parse(Organizations, body, orgPath, "organizations")
      ),
    );
    return {
      username: principal.canonicalName,
      userId: principal.canonicalId,
      organizations: [...new Set(orgs.map((org) => org.name))],
      isAdmin: principal.isAdmin,
    };
  };

  // One cache for both kinds, keyed by a hash (never the secret); an API key's hash is of its
  // header name and the key, so a key never shares an entry with an equal token.
  // Verifies of one credential while its hash is computed join the first one: the cache (below)
  // can only be consulted once the hash is known. Held only while in flight.
  const inflight = new Map<string, Promise<Caller>>();
  const verify = (credential: Credential, secret: string): Promise<Caller> => {
    const id = credential.cachePrefix + secret;
    const joined = inflight.get(id);
    if (joined) return joined;
    const verified = lookup(credential, secret);
    inflight.set(id, verified);
    const leave = () => inflight.get(id) === verified && inflight.delete(id);
    verified.then(leave, leave);
    return verified;
  };
  const lookup = async (credential: Credential, secret: string): Promise<Caller> => {
    if (secret === "") throw new AppError("unauthorized", `${credential.what} is empty`);
    const key = await sha256Hex(credential.cachePrefix + secret);
    const now = clock();
    const cached = cache.get(key);
    if (cached && (cached.expiresAt === undefined || now < cached.expiresAt)) {
      return cached.caller;
    }
    cache.delete(key);
    // Stored before the first await so that concurrent verifies of one token share the request.
    const entry: Entry = { caller: ask(credential) };
    cache.set(key, entry);
    if (cache.size > maxEntries) cache.delete(cache.keys().next().value!);
    entry.caller.then(
      () => entry.expiresAt = clock() + opts.cacheTtlMs,
      // Failures are not cached: the next verify asks again. Only this entry is dropped, not
      // one that replaced it.
      () => cache.get(key) === entry && cache.delete(key),
    );
    return entry.caller;
  };

  return {
    verify: (token) =>
      verify(
        { what: "Token", headers: { authorization: `Bearer ${token}` }, cachePrefix: "" },
        token,
      ),
    verifyApiKey: (apiKey) =>
      verify(
        {
          what: "API key",
          headers: { [API_KEY_HEADER]: apiKey },
          cachePrefix: `${API_KEY_HEADER}:`,
        },
        apiKey,
      ),
    // Nothing to fetch in advance: readiness must not hang on the platform API.
    ready: () => Promise.resolve(true),
    cacheKeys: () => [...cache.keys()],
  };
}

function parse<T extends v.GenericSchema>(
  schema: T,
  body: unknown,
  path: string,
  what: string,
): v.InferOutput<T> {
  const result = v.safeParse(schema, body);
  if (!result.success) throw upstreamShape(path, what, v.summarize(result.issues));
  return result.output;
}

function upstreamShape(path: string, what: string, cause: unknown): AppError {
  return new AppError(
    "upstream_error",
    `The platform API answered the ${what} query with an unexpected body`,
    { path, cause },
  );
}

async function sha256Hex(token: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}
