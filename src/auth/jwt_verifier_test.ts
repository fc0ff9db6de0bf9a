// Tests of the JWT user verifier against the local OIDC issuer fixture, over HTTP and HTTPS.

import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { AppError } from "../lib/errors.ts";
import { ADMIN_ROLE, type OidcIssuer, startOidcIssuer } from "../../tests/fixtures/oidc_issuer.ts";
import { makeTestTls } from "../../tests/fixtures/tls.ts";
import { createJwtVerifier, type JwtVerifier, type JwtVerifierOptions } from "./jwt_verifier.ts";

function verifierFor(oidc: OidcIssuer, extra: Partial<JwtVerifierOptions> = {}): JwtVerifier {
  return createJwtVerifier({
    issuer: oidc.issuer,
    jwksUrl: oidc.jwksUri,
    usernameClaim: "preferred_username",
    groupsClaim: "user_groups",
    adminClaim: "realm_access.roles",
    adminValue: ADMIN_ROLE,
    timeoutMs: 2_000,
    ...extra,
  });
}

async function withIssuer(
  fn: (oidc: OidcIssuer) => Promise<void>,
): Promise<void> {
  const oidc = await startOidcIssuer();
  try {
    await fn(oidc);
  } finally {
    await oidc.close();
  }
}

async function rejectsWith(
  promise: Promise<unknown>,
  code: AppError["code"],
  message?: string | RegExp,
): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof AppError, `expected an AppError, got ${error}`);
    assert.equal(error.code, code);
    if (typeof message === "string") assert.equal(error.message, message);
    else if (message) assert.match(error.message, message);
    return true;
  });
}

// A port nothing listens on: one that a server just gave back.
async function closedPort(): Promise<number> {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response(),
  );
  const port = server.addr.port;
  await server.shutdown();
  return port;
}

Deno.test("a valid user token yields the caller with organizations and admin", async () => {
  await withIssuer(async (oidc) => {
    const verifier = verifierFor(oidc, { audience: "domino-play" });
    const admin = await oidc.userToken({
      username: "jdoe",
      groups: ["irsa-iamrole-list-bucket", "/irsa-iamrole-read-bucket", "/parent/child"],
      admin: true,
    });
    assert.deepEqual(await verifier.verify(admin), {
      username: "jdoe",
      organizations: ["irsa-iamrole-list-bucket", "irsa-iamrole-read-bucket", "parent/child"],
      isAdmin: true,
    });
    const plain = await oidc.userToken({ username: "asmith" });
    assert.deepEqual(await verifier.verify(plain), {
      username: "asmith",
      organizations: [],
      isAdmin: false,
    });
    const noGroups = await oidc.userToken({
      username: "asmith",
      extraClaims: { user_groups: undefined },
    });
    assert.deepEqual((await verifier.verify(noGroups)).organizations, []);
  });
});

Deno.test("admin marker is the configured value, or a list holding it; a boolean or another type is not", async () => {
  await withIssuer(async (oidc) => {
    const byString = verifierFor(oidc, { adminClaim: "profile.role", adminValue: "admin" });
    const stringToken = (role: unknown) =>
      oidc.userToken({ username: "jdoe", extraClaims: { profile: { role } } });
    assert.equal((await byString.verify(await stringToken("admin"))).isAdmin, true);
    assert.equal((await byString.verify(await stringToken("user"))).isAdmin, false);
    assert.equal((await byString.verify(await stringToken(["user", "admin"]))).isAdmin, true);

    // A regression: `realm_access.roles: true` wrote mappings, whatever --jwt-admin-value said.
    const byDefault = verifierFor(oidc, {});
    for (const roles of [true, 1, { DominoAdmin: true }, "domino-admin", ["dominoadmin"], null]) {
      const token = await oidc.userToken({
        username: "mallory",
        extraClaims: { realm_access: { roles } },
      });
      assert.equal((await byDefault.verify(token)).isAdmin, false, JSON.stringify(roles));
    }
    const byBoolean = verifierFor(oidc, { adminClaim: "is_admin", adminValue: "true" });
    const boolToken = (value: unknown) =>
      oidc.userToken({ username: "jdoe", extraClaims: { is_admin: value } });
    assert.equal((await byBoolean.verify(await boolToken(true))).isAdmin, false);
    assert.equal((await byBoolean.verify(await boolToken("true"))).isAdmin, true);

    const byGroup = verifierFor(oidc, { adminClaim: "user_groups", adminValue: "admins" });
    const groupToken = await oidc.userToken({ username: "jdoe", groups: ["admins"] });
    assert.equal((await byGroup.verify(groupToken)).isAdmin, true);
  });
});

Deno.test("expired, not yet valid, wrong issuer and wrong audience are unauthorized", async () => {
  await withIssuer(async (oidc) => {
    const verifier = verifierFor(oidc, { audience: "domino-play" });
    await rejectsWith(
      verifier.verify(await oidc.userToken({ username: "jdoe", expiresIn: -60 })),
      "unauthorized",
      "Token expired",
    );
    await rejectsWith(
      verifier.verify(await oidc.userToken({ username: "jdoe", notBefore: 600 })),
      "unauthorized",
      "Token is not yet valid",
    );
    await rejectsWith(
      verifier.verify(await oidc.userToken({ username: "jdoe", issuer: "https://evil.example" })),
      "unauthorized",
      "Token issuer is not trusted",
    );
    await rejectsWith(
      verifier.verify(await oidc.userToken({ username: "jdoe", audience: "other-client" })),
      "unauthorized",
      "Token audience is not accepted",
    );
    await rejectsWith(
      verifier.verify(await oidc.userToken({ username: "jdoe", extraClaims: { exp: undefined } })),
      "unauthorized",
      "Token has no exp claim",
    );
    // Without a configured audience any audience is accepted.
    const anyAudience = verifierFor(oidc);
    const other = await oidc.userToken({ username: "jdoe", audience: "other-client" });
    assert.equal((await anyAudience.verify(other)).username, "jdoe");
  });
});

Deno.test("alg none, forged signature and an HS256 guess are refused", async () => {
  await withIssuer(async (oidc) => {
    const verifier = verifierFor(oidc);
    await rejectsWith(
      verifier.verify(oidc.noneAlgToken({ username: "mallory", admin: true })),
      "unauthorized",
      "Token algorithm is not allowed",
    );
    await rejectsWith(
      verifier.verify(await oidc.forgedUserToken({ username: "mallory", admin: true })),
      "unauthorized",
      "Token signature is invalid",
    );

    // Classic confusion attack: HMAC keyed with the published public key, or a guessed secret.
    const jwks = await (await fetch(oidc.jwksUri)).json();
    for (const secret of [JSON.stringify(jwks.keys[0]), jwks.keys[0].n, "secret"]) {
      const hs256 = await new SignJWT({
        iss: oidc.issuer,
        preferred_username: "mallory",
        realm_access: { roles: [ADMIN_ROLE] },
      })
        .setProtectedHeader({ alg: "HS256", kid: oidc.currentKid })
        .setExpirationTime("5m")
        .sign(new TextEncoder().encode(secret));
      await rejectsWith(verifier.verify(hs256), "unauthorized", "Token algorithm is not allowed");
    }
    await rejectsWith(verifier.verify("not-a-jwt"), "unauthorized", "Token is malformed");
    await rejectsWith(verifier.verify(""), "unauthorized", "Token is malformed");
  });
});

Deno.test("a token without the username claim, or with groups not a list, is refused", async () => {
  await withIssuer(async (oidc) => {
    const verifier = verifierFor(oidc);
    await rejectsWith(
      verifier.verify(
        await oidc.userToken({ username: "jdoe", extraClaims: { preferred_username: undefined } }),
      ),
      "unauthorized",
      "Token has no preferred_username claim",
    );
    await rejectsWith(
      verifier.verify(await oidc.userToken({ username: "jdoe", extraClaims: { user_groups: 7 } })),
      "unauthorized",
      "Token claim user_groups is not a list of strings",
    );
  });
});

Deno.test("failure reasons never include the token", async () => {
  await withIssuer(async (oidc) => {
    const verifier = verifierFor(oidc, { audience: "domino-play" });
    const tokens = [
      await oidc.userToken({ username: "jdoe", expiresIn: -60 }),
      await oidc.userToken({ username: "jdoe", audience: "x" }),
      await oidc.forgedUserToken({ username: "jdoe" }),
      oidc.noneAlgToken({ username: "jdoe" }),
    ];
    for (const token of tokens) {
      const error = await verifier.verify(token).catch((e) => e);
      assert.ok(error instanceof AppError);
      const text = JSON.stringify({ message: error.message, details: error.details });
      for (const part of token.split(".").filter((p) => p.length > 0)) {
        assert.ok(!text.includes(part), `reason ${text} quotes the token`);
      }
    }
  });
});

Deno.test("keys are fetched once; an unknown kid refetches once, within cooldown not", async () => {
  await withIssuer(async (oidc) => {
    const verifier = verifierFor(oidc, { cooldownMs: 0 });
    await verifier.verify(await oidc.userToken({ username: "jdoe" }));
    await verifier.verify(await oidc.userToken({ username: "asmith" }));
    assert.equal(oidc.jwksRequests, 1, "a cached key does not refetch");

    await oidc.rotateKey();
    const rotated = await oidc.userToken({ username: "jdoe" });
    assert.equal((await verifier.verify(rotated)).username, "jdoe");
    assert.equal(oidc.jwksRequests, 2, "the new kid refetched once");
    await verifier.verify(rotated);
    assert.equal(oidc.jwksRequests, 2);

    // With the default cooldown, an unknown kid right after a fetch does not hit the issuer.
    const cooling = verifierFor(oidc);
    await cooling.verify(rotated);
    assert.equal(oidc.jwksRequests, 3);
    await rejectsWith(
      cooling.verify(await oidc.userToken({ username: "jdoe", kid: "no-such-kid" })),
      "unauthorized",
      "Token signing key is not known",
    );
    assert.equal(oidc.jwksRequests, 3);
  });
});

Deno.test("ready() tries one fetch and reports whether keys are loaded", async () => {
  await withIssuer(async (oidc) => {
    const verifier = verifierFor(oidc);
    assert.equal(oidc.jwksRequests, 0, "nothing is fetched on creation");
    assert.equal(await verifier.ready(), true);
    assert.equal(oidc.jwksRequests, 1);
    assert.equal(await verifier.ready(), true);
    await verifier.verify(await oidc.userToken({ username: "jdoe" }));
    assert.equal(oidc.jwksRequests, 1);
  });
});

Deno.test("unreachable keys make verify unavailable, not unauthorized", async () => {
  await withIssuer(async (oidc) => {
    const port = await closedPort();
    const verifier = verifierFor(oidc, { jwksUrl: `http://127.0.0.1:${port}/certs` });
    assert.equal(await verifier.ready(), false);
    await rejectsWith(
      verifier.verify(await oidc.userToken({ username: "jdoe" })),
      "unavailable",
      /^Cannot fetch the token signing keys from http:\/\/127\.0\.0\.1:\d+\/certs$/,
    );
    // A bad token is still refused for what it is, without asking for keys.
    await rejectsWith(
      verifier.verify(await oidc.userToken({ username: "jdoe", issuer: "https://evil.example" })),
      "unauthorized",
      "Token issuer is not trusted",
    );
  });
});

Deno.test("the injected clock decides exp and nbf", async () => {
  const issued = Date.UTC(2023, 4, 24, 16, 5, 36);
  const oidc = await startOidcIssuer({ now: () => issued });
  try {
    let now = issued + 30_000;
    const verifier = verifierFor(oidc, { clock: () => now });
    const token = await oidc.userToken({ username: "jdoe", expiresIn: 60 });
    assert.equal((await verifier.verify(token)).username, "jdoe");
    now = issued + 61_000;
    await rejectsWith(verifier.verify(token), "unauthorized", "Token expired");
  } finally {
    await oidc.close();
  }
});

Deno.test("keys are fetched over HTTPS through a private CA", async () => {
  const tls = await makeTestTls();
  const oidc = await startOidcIssuer({ tls: { cert: tls.cert, key: tls.key } });
  const trusting = verifierFor(oidc, { caCert: tls.caCert });
  const untrusting = verifierFor(oidc);
  try {
    const token = await oidc.userToken({ username: "jdoe", groups: ["/acme"] });
    assert.deepEqual(await trusting.verify(token), {
      username: "jdoe",
      organizations: ["acme"],
      isAdmin: false,
    });
    assert.equal(await trusting.ready(), true);
    // The same issuer without the CA: the certificate is refused, so no keys.
    assert.equal(await untrusting.ready(), false);
    await rejectsWith(untrusting.verify(token), "unavailable");
  } finally {
    trusting.close();
    trusting.close(); // idempotent
    untrusting.close();
    await oidc.close();
    await tls.cleanup();
  }
});
