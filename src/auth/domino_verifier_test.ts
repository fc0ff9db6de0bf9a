// Tests of the platform-API user verifier against the fake platform API.

import assert from "node:assert/strict";
import { AppError } from "../lib/errors.ts";
import {
  type FakePlatformApi,
  PLATFORM_PATHS,
  startFakePlatformApi,
} from "../../tests/fakes/platform_api.ts";
import {
  createDominoVerifier,
  type DominoVerifier,
  type DominoVerifierOptions,
} from "./domino_verifier.ts";

const JDOE = {
  token: "jdoe-token-0123456789",
  canonicalName: "jdoe",
  canonicalId: "646d27b817c28b5ea4b5b0aa",
  isAdmin: false,
  organizations: ["irsa-iamrole-list-bucket", "irsa-iamrole-read-bucket"],
};

const JDOE_CALLER = {
  username: "jdoe",
  userId: JDOE.canonicalId,
  organizations: JDOE.organizations,
  isAdmin: false,
};

async function withApi(fn: (api: FakePlatformApi) => Promise<void>): Promise<void> {
  const api = startFakePlatformApi();
  try {
    await fn(api);
  } finally {
    await api.close();
  }
}

function verifierFor(
  api: FakePlatformApi,
  extra: Partial<DominoVerifierOptions> = {},
): DominoVerifier {
  return createDominoVerifier({ apiUrl: api.url, cacheTtlMs: 60_000, timeoutMs: 2_000, ...extra });
}

async function rejectsWith(promise: Promise<unknown>, code: AppError["code"]): Promise<AppError> {
  const error = await promise.then(() => undefined, (e) => e);
  assert.ok(error instanceof AppError, `expected an AppError, got ${error}`);
  assert.equal(error.code, code, error.message);
  return error;
}

const principalRequests = (api: FakePlatformApi) => api.requestCount(PLATFORM_PATHS.principal);
const orgRequests = (api: FakePlatformApi) => api.requestCount(PLATFORM_PATHS.organizations);

Deno.test("a registered token yields the principal and organizations as the caller", async () => {
  await withApi(async (api) => {
    api.addUser(JDOE);
    api.addUser({
      token: "admin-token",
      canonicalName: "root",
      canonicalId: "646d27b817c28b5ea4b5b0bb",
      isAdmin: true,
    });
    const queries: string[] = [];
    const verifier = verifierFor(api, {
      apiUrl: `${api.url}/`,
      onPrincipalQuery: (ok) => queries.push(`principal:${ok}`),
      onOrgQuery: (ok) => queries.push(`org:${ok}`),
    });
    assert.deepEqual(await verifier.verify(JDOE.token), JDOE_CALLER);
    assert.deepEqual(await verifier.verify("admin-token"), {
      username: "root",
      userId: "646d27b817c28b5ea4b5b0bb",
      organizations: [],
      isAdmin: true,
    });
    assert.deepEqual(queries, ["principal:true", "org:true", "principal:true", "org:true"]);
    assert.equal(await verifier.ready(), true);
  });
});

Deno.test("unknown and anonymous tokens are unauthorized", async () => {
  await withApi(async (api) => {
    api.addUser({ ...JDOE, token: "anonymous-token", isAnonymous: true });
    const queries: boolean[] = [];
    const verifier = verifierFor(api, { onPrincipalQuery: (ok) => queries.push(ok) });
    await rejectsWith(verifier.verify("unknown-token"), "unauthorized");
    const anonymous = await rejectsWith(verifier.verify("anonymous-token"), "unauthorized");
    assert.equal(anonymous.message, "Token is anonymous");
    await rejectsWith(verifier.verify(""), "unauthorized");
    assert.equal(orgRequests(api), 0, "organizations are not asked for a refused token");
    assert.deepEqual(queries, [false, true]);
    assert.deepEqual(verifier.cacheKeys(), [], "failures are not cached");
  });
});

Deno.test("a platform failure is unavailable or upstream_error, never unauthorized", async () => {
  await withApi(async (api) => {
    api.addUser(JDOE);
    const principal: boolean[] = [];
    const orgs: boolean[] = [];
    const verifier = verifierFor(api, {
      onPrincipalQuery: (ok) => principal.push(ok),
      onOrgQuery: (ok) => orgs.push(ok),
    });
    api.failNext(1, 500);
    const error = await rejectsWith(verifier.verify(JDOE.token), "upstream_error");
    assert.ok(!error.message.includes(JDOE.token));
    api.failNext(1, 503, PLATFORM_PATHS.organizations);
    await rejectsWith(verifier.verify(JDOE.token), "upstream_error");
    assert.deepEqual(principal, [false, true]);
    assert.deepEqual(orgs, [false]);
    // The failure was not cached: the next call asks again and succeeds.
    assert.deepEqual(await verifier.verify(JDOE.token), JDOE_CALLER);
    assert.equal(principalRequests(api), 3);
  });
  // An API that is not there at all.
  const gone = startFakePlatformApi();
  await gone.close();
  const verifier = createDominoVerifier({ apiUrl: gone.url, cacheTtlMs: 1_000, timeoutMs: 2_000 });
  await rejectsWith(verifier.verify(JDOE.token), "unavailable");
});

Deno.test("an answer of the wrong shape is an upstream error", async () => {
  const answers: unknown[] = [
    { canonicalName: "jdoe", isAnonymous: false }, // no canonicalId
    { canonicalName: "jdoe", canonicalId: "x", isAnonymous: "no", isAdmin: false },
    "not json",
  ];
  for (const answer of answers) {
    const fakeFetch: typeof fetch = () =>
      Promise.resolve(
        new Response(typeof answer === "string" ? answer : JSON.stringify(answer), {
          headers: { "content-type": "application/json" },
        }),
      );
    const verifier = createDominoVerifier({
      apiUrl: "http://platform.invalid",
      cacheTtlMs: 1_000,
      timeoutMs: 1_000,
      fetch: fakeFetch,
    });
    await rejectsWith(verifier.verify("t"), "upstream_error");
  }
});

Deno.test("the cache answers within its TTL and asks again after it", async () => {
  await withApi(async (api) => {
    api.addUser(JDOE);
    let now = 1_000_000;
    const verifier = verifierFor(api, { cacheTtlMs: 30_000, clock: () => now });
    await verifier.verify(JDOE.token);
    assert.equal(principalRequests(api), 1);
    assert.equal(orgRequests(api), 1);

    now += 29_999;
    assert.deepEqual(await verifier.verify(JDOE.token), JDOE_CALLER);
    assert.equal(principalRequests(api), 1, "second call within the TTL makes no request");

    now += 1;
    assert.deepEqual(await verifier.verify(JDOE.token), JDOE_CALLER);
    assert.equal(principalRequests(api), 2, "after the TTL the platform is asked again");
    assert.equal(orgRequests(api), 2);
  });
});

Deno.test("concurrent verifies of one token share one request", async () => {
  await withApi(async (api) => {
    api.addUser(JDOE);
    api.addUser({ ...JDOE, token: "other-token", canonicalName: "asmith" });
    const verifier = verifierFor(api);
    const callers = await Promise.all([
      ...Array.from({ length: 10 }, () => verifier.verify(JDOE.token)),
      verifier.verify("other-token"),
    ]);
    assert.equal(principalRequests(api), 2);
    assert.equal(orgRequests(api), 2);
    assert.deepEqual(callers.slice(0, 10), Array(10).fill(JDOE_CALLER));
    assert.equal(callers[10].username, "asmith");

    // Concurrent failures are shared too, and not kept.
    api.failNext(1, 500);
    const failing = await Promise.allSettled([verifier.verify("x"), verifier.verify("x")]);
    assert.deepEqual(failing.map((r) => r.status), ["rejected", "rejected"]);
    assert.equal(principalRequests(api), 3);
  });
});

Deno.test("the cache is keyed by the token's SHA-256, never the token", async () => {
  await withApi(async (api) => {
    api.addUser(JDOE);
    const verifier = verifierFor(api);
    await verifier.verify(JDOE.token);
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(JDOE.token));
    const hex = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
    assert.deepEqual(verifier.cacheKeys(), [hex]);
    for (const key of verifier.cacheKeys()) assert.ok(!key.includes(JDOE.token));
  });
});

Deno.test("the cache holds at most cacheMaxEntries tokens, dropping the oldest", async () => {
  await withApi(async (api) => {
    for (const n of [1, 2, 3]) api.addUser({ ...JDOE, token: `token-${n}` });
    const verifier = verifierFor(api, { cacheMaxEntries: 2 });
    for (const n of [1, 2, 3]) await verifier.verify(`token-${n}`);
    assert.equal(verifier.cacheKeys().length, 2);
    await verifier.verify("token-3");
    assert.equal(principalRequests(api), 3, "the newest is still cached");
    await verifier.verify("token-1");
    assert.equal(principalRequests(api), 4, "the oldest was dropped");
  });
});

Deno.test("fake platform API serves the pod-local access token as text", async () => {
  await withApi(async (api) => {
    const missing = await fetch(`${api.url}${PLATFORM_PATHS.accessToken}`);
    await missing.body?.cancel();
    assert.equal(missing.status, 404);
    api.setAccessToken(JDOE.token);
    const response = await fetch(`${api.url}${PLATFORM_PATHS.accessToken}`);
    assert.match(response.headers.get("content-type") ?? "", /^text\/plain/);
    assert.equal(await response.text(), JDOE.token);
    assert.equal(api.requestCount(PLATFORM_PATHS.accessToken), 2);
    // A request without a token gets the anonymous principal, as the platform answers it.
    const anonymous = await (await fetch(`${api.url}${PLATFORM_PATHS.principal}`)).json();
    assert.equal(anonymous.isAnonymous, true);
  });
});

Deno.test("an API key goes to the platform in X-Domino-Api-Key and is cached by its hash", async () => {
  await withApi(async (api) => {
    const key = "jdoe-api-key-abcdef0123456789";
    api.addUser({ ...JDOE, apiKey: key });
    const verifier = verifierFor(api);
    assert.deepEqual(await verifier.verifyApiKey(key), JDOE_CALLER);
    assert.deepEqual(await verifier.verifyApiKey(key), JDOE_CALLER);
    assert.equal(principalRequests(api), 1);
    // Keyed by the hash of header name and key: neither the key nor the token's own entry.
    const [cacheKey] = verifier.cacheKeys();
    assert.equal(cacheKey, await sha256(`X-Domino-Api-Key:${key}`));
    assert.ok(!verifier.cacheKeys().some((k) => k.includes(key)));
    // A key is not a bearer token: the platform does not know it as one.
    await rejectsWith(verifier.verify(key), "unauthorized");
    const wrong = await rejectsWith(verifier.verifyApiKey("not-a-key"), "unauthorized");
    assert.match(wrong.message, /API key is not accepted by the platform/);
    assert.ok(!wrong.message.includes("not-a-key"));
    await rejectsWith(verifier.verifyApiKey(""), "unauthorized");
  });
});

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}
