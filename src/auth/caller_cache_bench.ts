import { cacheCallers } from "./caller_cache.ts";
import { createJwtVerifier } from "./jwt_verifier.ts";
import { startOidcIssuer } from "../../tests/fixtures/oidc_issuer.ts";

// The real RS256 verifier behind the cache; the token is verified once before measuring.
const issuer = await startOidcIssuer();
const jwt = createJwtVerifier({ issuer: issuer.issuer, jwksUrl: issuer.jwksUri, timeoutMs: 5000 });
const cached = cacheCallers(jwt, { ttlMs: 60_000 });
const token = await issuer.userToken({
  username: "jdoe",
  groups: ["irsa-iamrole-list-bucket"],
  expiresIn: 3600,
});
await cached.verify(token);

Deno.bench("caller cache: RS256 user token already verified", async () => {
  await cached.verify(token);
});

globalThis.addEventListener("unload", () => {
  jwt.close();
  issuer.close();
});
