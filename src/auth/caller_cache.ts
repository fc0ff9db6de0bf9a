/**
 * A cache in front of any {@link UserVerifier}: a credential (user token or API key) verified once
 * is not verified again until a short TTL passes or, for a JWT, its `exp`, whichever comes first.
 */

import { createHash } from "node:crypto";
import type { Caller, UserVerifier } from "./caller.ts";

/** Options of {@link cacheCallers}. */
export interface CallerCacheOptions {
  /** Longest a verified credential's caller is reused. */
  readonly ttlMs: number;
  /** Most credentials cached at once; the oldest goes first. Defaults to 10 000. */
  readonly maxEntries?: number;
  /** Epoch milliseconds. */
  readonly clock?: () => number;
}

/** A {@link UserVerifier} with a cache; `cacheKeys()` shows what it holds (digests, never tokens). */
export interface CachedUserVerifier extends UserVerifier {
  /** The cached entries' keys, `<kind>:<SHA-256 hex of the credential>`, oldest first; for tests. */
  cacheKeys(): readonly string[];
}

/** What a cached credential is: a bearer token or a platform API key. */
type CredentialKind = "token" | "api-key";

interface Entry {
  readonly caller: Promise<Caller>;
  /** Unset while the inner verifier is being asked. */
  expiresAt?: number;
}

/**
 * Wraps `inner`. Failures are never cached; concurrent checks of one credential share one inner
 * verification. The key is the credential's SHA-256, so no credential is kept in memory.
 */
export function cacheCallers(inner: UserVerifier, opts: CallerCacheOptions): CachedUserVerifier {
  const clock = opts.clock ?? Date.now;
  const maxEntries = opts.maxEntries ?? 10_000;
  const cache = new Map<string, Entry>();
  // One cache for tokens and API keys, keyed by the credential's kind and its digest: the kind is
  // not part of the hashed text, so no token, whatever it holds, can name an API key's entry.
  const check = (kind: CredentialKind, credential: string, ask: () => Promise<Caller>) => {
    // A synchronous digest: the cached path stays a few microseconds (WebCrypto's is async).
    const key = `${kind}:${createHash("sha256").update(credential).digest("hex")}`;
    const hit = cache.get(key);
    if (hit && (hit.expiresAt === undefined || clock() < hit.expiresAt)) return hit.caller;
    cache.delete(key);
    const entry: Entry = { caller: ask() };
    cache.set(key, entry);
    if (cache.size > maxEntries) cache.delete(cache.keys().next().value!);
    entry.caller.then(
      () => {
        const exp = jwtExpiryMs(credential);
        entry.expiresAt = Math.min(clock() + opts.ttlMs, exp ?? Infinity);
      },
      // Only this entry is dropped, not one that replaced it.
      () => cache.get(key) === entry && cache.delete(key),
    );
    return entry.caller;
  };
  const apiKeys = inner.verifyApiKey?.bind(inner);
  return {
    verify: (token) => check("token", token, () => inner.verify(token)),
    ...(apiKeys
      ? { verifyApiKey: (key: string) => check("api-key", key, () => apiKeys(key)) }
      : {}),
    ready: () => inner.ready(),
    cacheKeys: () => [...cache.keys()],
  };
}

/**
 * The `exp` of a JWT in epoch milliseconds, or undefined for anything else (an API key). Read
 * without checking the signature: the inner verifier has just accepted this exact credential.
 */
export function jwtExpiryMs(credential: string): number | undefined {
  const parts = credential.split(".");
  if (parts.length !== 3) return undefined;
  try {
    const json = atob(parts[1].replace(/-/g, "+").replace(/_/g, "/"));
    const exp = JSON.parse(json).exp;
    return typeof exp === "number" && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
