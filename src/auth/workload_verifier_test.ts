// Tests of the service-account token verifier against the local OIDC issuer fixture's cluster realm,
// and against the real API server's issuer.

import assert from "node:assert/strict";
import { AppError } from "../lib/errors.ts";
import {
  DEFAULT_NAMESPACE,
  type OidcIssuer,
  startOidcIssuer,
  STS_AUDIENCE,
} from "../../tests/fixtures/oidc_issuer.ts";
import { makeTestTls } from "../../tests/fixtures/tls.ts";
import { sharedKubeApiServer } from "../../tests/fixtures/kube_apiserver.ts";
import {
  type ClusterWorkloadVerifier,
  createWorkloadVerifier,
  type WorkloadVerifierOptions,
} from "./workload_verifier.ts";

const RUN_SA = "run-646d27b817c28b5ea4b5b0c1";

async function withIssuer(fn: (oidc: OidcIssuer) => Promise<void>): Promise<void> {
  const oidc = await startOidcIssuer();
  try {
    await fn(oidc);
  } finally {
    await oidc.close();
  }
}

function clusterVerifier(
  oidc: OidcIssuer,
  extra: Partial<WorkloadVerifierOptions> = {},
): ClusterWorkloadVerifier {
  return createWorkloadVerifier({
    issuer: oidc.clusterIssuer,
    audience: STS_AUDIENCE,
    timeoutMs: 2_000,
    ...extra,
  });
}

async function rejectsWith(
  promise: Promise<unknown>,
  code: AppError["code"],
  message?: string | RegExp,
): Promise<void> {
  const error = await promise.then(() => undefined, (e) => e);
  assert.ok(error instanceof AppError, `expected an AppError, got ${error}`);
  assert.equal(error.code, code, error.message);
  if (typeof message === "string") assert.equal(error.message, message);
  else if (message) assert.match(error.message, message);
}

// Counts the requests of each path made through the verifier's fetch.
function countingFetch(): { fetch: typeof fetch; count(path: string): number } {
  const counts = new Map<string, number>();
  return {
    fetch: (input, init) => {
      const path = new URL(input instanceof Request ? input.url : input).pathname;
      counts.set(path, (counts.get(path) ?? 0) + 1);
      return fetch(input, init);
    },
    count: (path) => counts.get(path) ?? 0,
  };
}

Deno.test("a pod token yields its service account and pod, keys found by discovery", async () => {
  await withIssuer(async (oidc) => {
    const counter = countingFetch();
    const verifier = clusterVerifier(oidc, { fetch: counter.fetch });
    const token = await oidc.serviceAccountToken({
      serviceAccount: RUN_SA,
      podName: `${RUN_SA}-fxc2q`,
    });
    const [first, second] = await Promise.all([verifier.verify(token), verifier.verify(token)]);
    assert.deepEqual(first, {
      serviceAccount: { namespace: DEFAULT_NAMESPACE, name: RUN_SA },
      podName: `${RUN_SA}-fxc2q`,
    });
    assert.deepEqual(second, first);
    await verifier.verify(await oidc.serviceAccountToken({ serviceAccount: "run-other" }));
    assert.equal(counter.count("/cluster/.well-known/openid-configuration"), 1);
    assert.equal(oidc.clusterJwksRequests, 1);
    assert.equal(await verifier.ready(), true);
  });
});

Deno.test("expired, wrong audience and user-realm tokens are unauthorized", async () => {
  await withIssuer(async (oidc) => {
    const verifier = clusterVerifier(oidc, { jwksUrl: oidc.clusterJwksUri });
    await rejectsWith(
      verifier.verify(await oidc.serviceAccountToken({ serviceAccount: RUN_SA, expiresIn: -60 })),
      "unauthorized",
      "Token expired",
    );
    await rejectsWith(
      verifier.verify(
        await oidc.serviceAccountToken({ serviceAccount: RUN_SA, audience: "vault" }),
      ),
      "unauthorized",
      "Token audience is not accepted",
    );
    await rejectsWith(
      verifier.verify(
        await oidc.serviceAccountToken({ serviceAccount: RUN_SA, issuer: oidc.issuer }),
      ),
      "unauthorized",
      "Token issuer is not trusted",
    );
    // A user token, even one made out to STS, is from the wrong issuer.
    const userToken = await oidc.userToken({ username: "jdoe", audience: STS_AUDIENCE });
    await rejectsWith(verifier.verify(userToken), "unauthorized", "Token issuer is not trusted");
    // Claiming the cluster issuer does not help: the user realm's key is not the cluster's.
    const posing = await oidc.userToken({
      username: "jdoe",
      audience: STS_AUDIENCE,
      issuer: oidc.clusterIssuer,
      extraClaims: { sub: `system:serviceaccount:${DEFAULT_NAMESPACE}:${RUN_SA}` },
    });
    await rejectsWith(verifier.verify(posing), "unauthorized", "Token signing key is not known");
    await rejectsWith(
      verifier.verify(oidc.noneAlgToken({ username: "jdoe", issuer: oidc.clusterIssuer })),
      "unauthorized",
      "Token algorithm is not allowed",
    );
  });
});

// The fixture's cluster realm always writes consistent claims, so these tokens come from the user
// realm, with a verifier that trusts it as if it were a cluster.
Deno.test("sub must be a service account that agrees with the kubernetes.io claims", async () => {
  await withIssuer(async (oidc) => {
    const verifier = createWorkloadVerifier({
      issuer: oidc.issuer,
      audience: STS_AUDIENCE,
      timeoutMs: 2_000,
    });
    const token = (extraClaims: Record<string, unknown>) =>
      oidc.userToken({ username: "jdoe", audience: STS_AUDIENCE, extraClaims });
    const sub = `system:serviceaccount:${DEFAULT_NAMESPACE}:${RUN_SA}`;

    assert.deepEqual(await verifier.verify(await token({ sub })), {
      serviceAccount: { namespace: DEFAULT_NAMESPACE, name: RUN_SA },
    });
    await rejectsWith(
      verifier.verify(
        await token({
          sub,
          "kubernetes.io": { namespace: DEFAULT_NAMESPACE, serviceaccount: { name: "run-other" } },
        }),
      ),
      "unauthorized",
      "Token subject disagrees with its kubernetes.io claims",
    );
    await rejectsWith(
      verifier.verify(await token({ sub, "kubernetes.io": { namespace: "default" } })),
      "unauthorized",
      "Token subject disagrees with its kubernetes.io claims",
    );
    await rejectsWith(
      verifier.verify(await token({ sub, "kubernetes.io": { namespace: 7 } })),
      "unauthorized",
      "Token claim kubernetes.io is malformed",
    );
    // A Keycloak user id is no service account, nor is a wildcard.
    await rejectsWith(
      verifier.verify(await token({})),
      "unauthorized",
      "Token subject is not a service account",
    );
    await rejectsWith(
      verifier.verify(await token({ sub: `system:serviceaccount:${DEFAULT_NAMESPACE}:*` })),
      "unauthorized",
      "Token subject is not a service account",
    );
    await rejectsWith(
      verifier.verify(await token({ sub: undefined })),
      "unauthorized",
      "Token has no sub claim",
    );
  });
});

Deno.test("a failed discovery is unavailable and retried on the next token", async () => {
  await withIssuer(async (oidc) => {
    const token = await oidc.serviceAccountToken({ serviceAccount: RUN_SA });
    let failing = true;
    const flaky: typeof fetch = (input, init) =>
      failing ? Promise.reject(new TypeError("connection refused")) : fetch(input, init);
    const verifier = clusterVerifier(oidc, { fetch: flaky });
    assert.equal(await verifier.ready(), false);
    await rejectsWith(verifier.verify(token), "unavailable", /^Cannot discover/);
    failing = false;
    assert.equal((await verifier.verify(token)).serviceAccount.name, RUN_SA);

    // A discovery document that names another issuer is not trusted.
    const mismatched = createWorkloadVerifier({
      issuer: `${oidc.clusterIssuer}/`,
      audience: STS_AUDIENCE,
      timeoutMs: 2_000,
    });
    await rejectsWith(mismatched.verify(token), "unavailable", /names issuer/);
  });
});

Deno.test("discovery and keys are fetched over HTTPS through a private CA", async () => {
  const tls = await makeTestTls();
  const oidc = await startOidcIssuer({ tls: { cert: tls.cert, key: tls.key } });
  const verifier = clusterVerifier(oidc, { caCert: tls.caCert });
  const untrusting = clusterVerifier(oidc);
  try {
    assert.match(oidc.clusterIssuer, /^https:/);
    const token = await oidc.serviceAccountToken({ serviceAccount: RUN_SA });
    assert.equal((await verifier.verify(token)).serviceAccount.name, RUN_SA);
    assert.equal(await untrusting.ready(), false);
    await rejectsWith(untrusting.verify(token), "unavailable");
  } finally {
    verifier.close();
    untrusting.close();
    await oidc.close();
    await tls.cleanup();
  }
});

Deno.test("a pod token from the real API server's TokenRequest verifies against its own discovery and JWKS", async () => {
  const cluster = await sharedKubeApiServer();
  const compute = await cluster.createNamespace("compute");
  await cluster.createPod(compute, { name: `${RUN_SA}-abcde`, serviceAccountName: RUN_SA });
  const token = await cluster.tokenRequest(compute, RUN_SA, { pod: `${RUN_SA}-abcde` });
  const verifier = createWorkloadVerifier({
    issuer: cluster.issuer,
    audience: STS_AUDIENCE,
    caCert: cluster.caCert,
    timeoutMs: 5_000,
  });
  try {
    assert.deepEqual(await verifier.verify(token), {
      serviceAccount: { namespace: compute, name: RUN_SA },
      podName: `${RUN_SA}-abcde`,
    });
    assert.equal(await verifier.ready(), true);
    // The API server's own token for another audience (its own) is not an IRSA token.
    const apiToken = await cluster.tokenRequest(compute, RUN_SA, { audience: cluster.issuer });
    await assert.rejects(verifier.verify(apiToken), { code: "unauthorized" });
  } finally {
    verifier.close();
  }
});
