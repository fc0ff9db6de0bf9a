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
  /** SHA-256 hex digests of the cached credentials, oldest first; for tests. */
  cacheKeys(): readonly string[];
}

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
  // One cache for tokens and API keys; a key's digest covers its header name too, so a key never
  // shares an entry with an equal token.
  const check = (prefix: string, credential: string, ask: () => Promise<Caller>) => {
    // A synchronous digest: the cached path stays a few microseconds (WebCrypto's is async).
    const key = createHash("sha256").update(prefix + credential).digest("hex");
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
    verify: (token) => check("", token, () => inner.verify(token)),
    ...(apiKeys
      ? { verifyApiKey: (key: string) => check("X-Domino-Api-Key:", key, () => apiKeys(key)) }
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
