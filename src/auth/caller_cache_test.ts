import assert from "node:assert/strict";
import { AppError } from "../lib/errors.ts";
import type { Caller, UserVerifier } from "./caller.ts";
import { cacheCallers, jwtExpiryMs } from "./caller_cache.ts";

const T0 = 1_700_000_000_000;

/** An inner verifier that counts its calls and accepts only the credentials it was given. */
function countingVerifier(accepted: Set<string>) {
  const calls: string[] = [];
  const verifier: UserVerifier = {
    verify(credential) {
      calls.push(credential);
      if (!accepted.has(credential)) {
        return Promise.reject(new AppError("unauthorized", "Token is not accepted"));
      }
      const caller: Caller = {
        username: `u-${credential.length}`,
        organizations: [],
        isAdmin: false,
      };
      return Promise.resolve(caller);
    },
    ready: () => Promise.resolve(true),
  };
  return { verifier, calls };
}

/** An unsigned JWT-shaped string with the given `exp` (seconds); the cache never checks signatures. */
const jwtWithExp = (exp: number) =>
  [{ alg: "RS256" }, { exp, sub: "jdoe" }].map((part) =>
    btoa(JSON.stringify(part)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_")
  ).join(".") + ".c2ln";

const sha256 = async (text: string) =>
  Array.from(
    new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text))),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");

Deno.test("a verified credential is not verified again within the TTL; another one is", async () => {
  let now = T0;
  const inner = countingVerifier(new Set(["api-key-a", "api-key-b"]));
  const cached = cacheCallers(inner.verifier, { ttlMs: 60_000, clock: () => now });
  const first = await cached.verify("api-key-a");
  assert.deepEqual(await cached.verify("api-key-a"), first);
  assert.equal(inner.calls.length, 1);
  await cached.verify("api-key-b");
  assert.equal(inner.calls.length, 2);
  now += 59_999;
  await cached.verify("api-key-a");
  assert.equal(inner.calls.length, 2);
  now += 1;
  await cached.verify("api-key-a");
  assert.equal(inner.calls.length, 3, "verified again once the TTL has passed");
});

Deno.test("a JWT is cached no longer than its exp, even when the TTL is longer", async () => {
  let now = T0;
  const token = jwtWithExp(T0 / 1000 + 10);
  assert.equal(jwtExpiryMs(token), T0 + 10_000);
  const inner = countingVerifier(new Set([token]));
  const cached = cacheCallers(inner.verifier, { ttlMs: 3_600_000, clock: () => now });
  await cached.verify(token);
  now += 9_999;
  await cached.verify(token);
  assert.equal(inner.calls.length, 1);
  now += 1;
  await cached.verify(token);
  assert.equal(inner.calls.length, 2, "an expired token goes back to the inner verifier");
});

Deno.test("a failure is not cached, and concurrent checks of one credential share one verification", async () => {
  const accepted = new Set<string>();
  const inner = countingVerifier(accepted);
  const cached = cacheCallers(inner.verifier, { ttlMs: 60_000 });
  await assert.rejects(() => cached.verify("later-good"), /not accepted/);
  assert.deepEqual(cached.cacheKeys(), []);
  accepted.add("later-good");
  await Promise.all([cached.verify("later-good"), cached.verify("later-good")]);
  assert.equal(inner.calls.length, 2, "one refused call, then one shared call");
});

Deno.test("the cache holds at most maxEntries, oldest out first, keyed by SHA-256 and never by the credential", async () => {
  const creds = ["key-1", "key-2", "key-3"];
  const inner = countingVerifier(new Set(creds));
  const cached = cacheCallers(inner.verifier, { ttlMs: 60_000, maxEntries: 2 });
  for (const c of creds) await cached.verify(c);
  assert.deepEqual(cached.cacheKeys(), [
    `token:${await sha256("key-2")}`,
    `token:${await sha256("key-3")}`,
  ]);
  await cached.verify("key-1");
  assert.equal(inner.calls.length, 4, "the evicted credential is verified again");
});

Deno.test("jwtExpiryMs reads only a JWT's numeric exp", () => {
  assert.equal(jwtExpiryMs("an-api-key"), undefined);
  assert.equal(jwtExpiryMs("a.b.c"), undefined);
  assert.equal(jwtExpiryMs(jwtWithExp(Number.NaN)), undefined);
});

Deno.test("an API key's entry is never the answer to a bearer token, whatever the token says", async () => {
  const admin: Caller = { username: "admin", organizations: [], isAdmin: true };
  const inner: UserVerifier = {
    verify: () => Promise.reject(new AppError("unauthorized", "Token is not accepted")),
    verifyApiKey: (key) =>
      key === "admin-key"
        ? Promise.resolve(admin)
        : Promise.reject(new AppError("unauthorized", "Key is not accepted")),
    ready: () => Promise.resolve(true),
  };
  const cached = cacheCallers(inner, { ttlMs: 60_000 });
  assert.equal((await cached.verifyApiKey!("admin-key")).username, "admin");
  // The platform refuses this token; a cache keyed by "X-Domino-Api-Key:" + key answered it.
  await assert.rejects(() => cached.verify("X-Domino-Api-Key:admin-key"), /not accepted/);
});
