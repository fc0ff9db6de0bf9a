import assert from "node:assert/strict";
import { Hono } from "hono";
import { createCredentialCache, type ServedProfile } from "./credential_cache.ts";
import { mountCredentialRoutes } from "./credential_routes.ts";
import { createLogger } from "../lib/log.ts";
import type { StsCredentials } from "./sts.ts";

const LIST: ServedProfile = {
  name: "acme-list-bucket-role",
  proxyRoleArn: "arn:aws:iam::111111111111:role/acme-list-bucket-role",
  assetRoleArn: "arn:aws:iam::222222222222:role/acme-list-bucket-role",
  sessionName: "jdoe",
};
const READ: ServedProfile = {
  ...LIST,
  name: "acme-read-bucket-role",
  assetRoleArn: "arn:aws:iam::222222222222:role/acme-read-bucket-role",
};

/** A cache on a clock the test moves, whose chain is a fake STS answer counted per profile. */
function world(options: { defaultProfile?: string } = {}) {
  let now = Date.UTC(2026, 11, 4, 16, 0, 0);
  const calls: string[] = [];
  let gate: Promise<void> | undefined;
  const cache = createCredentialCache({
    now: () => now,
    refreshMarginMs: 300_000,
    ...options,
    chain: async (p): Promise<StsCredentials> => {
      calls.push(p.name);
      await gate;
      return {
        accessKeyId: `ASIA${calls.length}`,
        secretAccessKey: "secret",
        sessionToken: `token-${p.name}`,
        expiration: now + 900_000,
      };
    },
  });
  return {
    cache,
    calls,
    advance: (ms: number) => (now += ms),
    hold: () => {
      const { promise, resolve } = Promise.withResolvers<void>();
      gate = promise;
      return () => {
        gate = undefined;
        resolve();
      };
    },
  };
}

const code = async (p: Promise<unknown>) => {
  try {
    await p;
    return "ok";
  } catch (e) {
    return (e as { code: string }).code;
  }
};

Deno.test("credential cache: one chain per profile, reused until the margin before expiry, then renewed", async () => {
  const w = world();
  w.cache.setProfiles([LIST]);
  const [a, b] = await Promise.all([w.cache.get(LIST.name), w.cache.get(LIST.name)]);
  assert.equal(a.credentials.accessKeyId, "ASIA1");
  assert.equal(b.credentials.accessKeyId, "ASIA1");
  assert.deepEqual(w.calls, [LIST.name]);
  w.advance(599_000); // 301 s left: still fresh
  assert.equal((await w.cache.get(LIST.name)).credentials.accessKeyId, "ASIA1");
  w.advance(2_000); // 299 s left: renewed before it is handed out
  assert.equal((await w.cache.get(LIST.name)).credentials.accessKeyId, "ASIA2");
  await w.cache.refreshAll();
  assert.equal((await w.cache.get(LIST.name)).credentials.accessKeyId, "ASIA3");
  assert.deepEqual(w.cache.stats(), {
    vended: 5,
    refused: 0,
    chains: 3,
    chainFailures: 0,
    cached: 1,
  });
});

Deno.test("credential cache: the timer's pass renews only what is within the margin", async () => {
  const w = world();
  w.cache.setProfiles([LIST, READ]);
  await w.cache.get(LIST.name);
  w.advance(300_000);
  await w.cache.get(READ.name);
  await w.cache.refreshDue();
  assert.deepEqual(w.calls, [LIST.name, READ.name], "both fresh: nothing renewed");
  w.advance(301_000); // LIST has 299 s left, READ 599 s
  await w.cache.refreshDue();
  assert.deepEqual(w.calls, [LIST.name, READ.name, LIST.name]);
  assert.equal((await w.cache.get(LIST.name)).credentials.accessKeyId, "ASIA3", "no wait");
  assert.equal(w.calls.length, 3);
});

Deno.test("credential cache: nothing before the first sync; the default is the named one, else the only one", async () => {
  const w = world();
  assert.equal(await code(w.cache.get(undefined)), "unavailable");
  w.cache.setProfiles([LIST]);
  assert.equal((await w.cache.get(undefined)).profile, LIST.name);
  w.cache.setProfiles([LIST, READ]);
  await assert.rejects(
    w.cache.get(undefined),
    /2 profiles \("acme-list-bucket-role", "acme-read-bucket-role"\) and no default/,
  );
  const named = world({ defaultProfile: READ.name });
  named.cache.setProfiles([LIST, READ]);
  assert.equal((await named.cache.get(undefined)).profile, READ.name);
});

Deno.test("credential cache: a profile unmapped at a sync is refused at once, even while its chain was running", async () => {
  const w = world();
  w.cache.setProfiles([LIST, READ]);
  await w.cache.get(LIST.name);
  w.cache.setProfiles([READ]);
  await assert.rejects(w.cache.get(LIST.name), /no longer mapped to this workspace/);
  assert.equal(await code(w.cache.get("nobody")), "not_found");
  const release = w.hold();
  const pending = w.cache.get(READ.name);
  w.cache.setProfiles([]);
  release();
  assert.equal(await code(pending), "not_found");
  assert.equal(w.cache.stats().cached, 0);
  assert.equal(w.cache.stats().refused, 3);
});

Deno.test("credential routes: the token is required, both formats, JSON errors without credentials", async () => {
  const w = world();
  w.cache.setProfiles([LIST]);
  const app = new Hono();
  mountCredentialRoutes(app, w.cache, () => "s3cret", createLogger({ level: "error" }));
  const get = (path: string, token?: string) =>
    app.request(path, token === undefined ? {} : { headers: { Authorization: token } });

  for (const [token, status] of [[undefined, 401], ["wrong", 401], ["s3cre", 401]] as const) {
    const res = await get("/credentials", token);
    assert.equal(res.status, status);
    assert.equal(res.headers.get("WWW-Authenticate"), 'Bearer error="invalid_token"');
    const body = await res.text();
    assert.doesNotMatch(body, /ASIA|token-/);
    assert.equal(JSON.parse(body).code, "unauthorized");
  }
  const container = await (await get("/credentials", "s3cret")).json();
  assert.deepEqual(Object.keys(container), [
    "AccessKeyId",
    "SecretAccessKey",
    "Token",
    "Expiration",
  ]);
  assert.match(container.Expiration, /^2026-12-04T16:15:00Z$/);
  const process = await (await get(`/credentials/${LIST.name}?format=process`, "s3cret")).json();
  assert.equal(process.Version, 1);
  assert.equal(process.SessionToken, `token-${LIST.name}`);
  const unknown = await get("/credentials/other", "s3cret");
  assert.equal(unknown.status, 404);
  assert.match((await unknown.json()).message, /Profile "other" is not mapped/);
  assert.equal((await get("/credentials", "Bearer s3cret")).status, 200);
});
