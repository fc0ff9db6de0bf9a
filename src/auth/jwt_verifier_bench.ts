import { createJwtVerifier } from "./jwt_verifier.ts";
import { startOidcIssuer } from "../../tests/fixtures/oidc_issuer.ts";

// The keys are fetched once before the first measured call; every measured call uses the cache.
const issuer = await startOidcIssuer();
const verifier = createJwtVerifier({
  issuer: issuer.issuer,
  jwksUrl: issuer.jwksUri,
  timeoutMs: 5000,
});
const token = await issuer.userToken({
  username: "jdoe",
  groups: ["irsa-iamrole-list-bucket"],
  expiresIn: 3600,
});
await verifier.verify(token);

Deno.bench("jwt verifier: RS256 user token, cached key", async () => {
  await verifier.verify(token);
});

globalThis.addEventListener("unload", () => {
  verifier.close();
  issuer.close();
});
