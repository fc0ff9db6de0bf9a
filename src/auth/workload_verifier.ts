/** Verifies a pod's projected service-account token against the cluster's OIDC issuer. */

import * as v from "valibot";
import { AppError } from "../lib/errors.ts";
import { serviceAccountFromTokenSubject } from "../core/subject.ts";
import type { Workload, WorkloadVerifier } from "./caller.ts";
import { createKeyFetch, createRemoteKeys, type RemoteKeys, verifyToken } from "./jwt_verifier.ts";

/** Options of {@link createWorkloadVerifier}. */
export interface WorkloadVerifierOptions {
  /** The cluster's issuer, `https://<OIDC_PROVIDER host>`, compared exactly with `iss`. */
  readonly issuer: string;
  /** The cluster's JWKS; by default the `jwks_uri` of the issuer's discovery document. */
  readonly jwksUrl?: string;
  /** `aud` must contain it: `sts.amazonaws.com` for IRSA tokens. */
  readonly audience: string;
  /** PEM of a private CA that signs the issuer's certificate. */
  readonly caCert?: string;
  /** Timeout of one discovery or key fetch. */
  readonly timeoutMs: number;
  readonly cacheMaxAgeMs?: number;
  /** Least time between two key fetches caused by unknown key ids; defaults to 30 seconds. */
  readonly cooldownMs?: number;
  /** Epoch milliseconds against which `exp` and `nbf` are checked. */
  readonly clock?: () => number;
  readonly fetch?: typeof fetch;
}

/** A {@link WorkloadVerifier} that can report readiness and holds an HTTP client until `close()`. */
export interface ClusterWorkloadVerifier extends WorkloadVerifier {
  /** True once the keys were fetched; otherwise tries discovery and one key fetch. */
  ready(): Promise<boolean>;
  close(): void;
}

const Discovery = v.looseObject({
  issuer: v.string(),
  jwks_uri: v.pipe(v.string(), v.url()),
});

// Only the fields that must agree with `sub`; the rest of `kubernetes.io` is ignored.
const KubernetesClaims = v.looseObject({
  namespace: v.optional(v.string()),
  pod: v.optional(v.looseObject({ name: v.optional(v.string()) })),
  serviceaccount: v.optional(v.looseObject({ name: v.optional(v.string()) })),
});

/** Creates a verifier of projected service-account tokens issued by one cluster. */
export function createWorkloadVerifier(opts: WorkloadVerifierOptions): ClusterWorkloadVerifier {
  const http = createKeyFetch(opts);
  let keys: Promise<RemoteKeys> | undefined;
  // Discovery runs once; a failed one is forgotten so that the next token tries again.
  const getKeys = () =>
    keys ??= discoverJwksUrl(opts, http.fetch).then(
      (url) => createRemoteKeys(url, http.fetch, opts),
      (error) => {
        keys = undefined;
        throw error;
      },
    );

  return {
    async verify(token): Promise<Workload> {
      const payload = await verifyToken(token, await getKeys(), {
        issuer: opts.issuer,
        audience: opts.audience,
        clock: opts.clock,
      });
      if (typeof payload.sub !== "string") throw unauthorized("Token has no sub claim");
      let serviceAccount;
      try {
        serviceAccount = serviceAccountFromTokenSubject(payload.sub);
      } catch {
        throw unauthorized("Token subject is not a service account");
      }
      const k8s = payload["kubernetes.io"];
      if (k8s === undefined) return { serviceAccount };
      const parsed = v.safeParse(KubernetesClaims, k8s);
      if (!parsed.success) throw unauthorized("Token claim kubernetes.io is malformed");
      const { namespace, pod, serviceaccount } = parsed.output;
      // A token whose claims name another account than its subject was not minted by the cluster.
      if (
        (namespace !== undefined && namespace !== serviceAccount.namespace) ||
        (serviceaccount?.name !== undefined && serviceaccount.name !== serviceAccount.name)
      ) {
        throw unauthorized("Token subject disagrees with its kubernetes.io claims");
      }
      return pod?.name === undefined ? { serviceAccount } : { serviceAccount, podName: pod.name };
    },
    async ready() {
      try {
        return await (await getKeys()).ready();
      } catch {
        return false;
      }
    },
    close: http.close,
  };
}

async function discoverJwksUrl(
  opts: WorkloadVerifierOptions,
  fetchDocument: typeof fetch,
): Promise<string> {
  if (opts.jwksUrl !== undefined) return opts.jwksUrl;
  const url = `${opts.issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`;
  const fail = (why: string, cause?: unknown) =>
    new AppError("unavailable", `Cannot discover the cluster's signing keys at ${url}: ${why}`, {
      url,
      ...(cause === undefined ? {} : { cause }),
    });
  let response: Response;
  try {
    response = await fetchDocument(url, {
      headers: { accept: "application/json" },
      redirect: "manual",
      signal: AbortSignal.timeout(opts.timeoutMs),
    });
  } catch (error) {
    throw fail("the request failed", error);
  }
  if (response.status !== 200) {
    await response.body?.cancel();
    throw fail(`the answer was HTTP ${response.status}`);
  }
  let body: unknown;
  try {
    body = await response.json();
  } catch (error) {
    throw fail("the answer is not JSON", error);
  }
  const parsed = v.safeParse(Discovery, body);
  if (!parsed.success) throw fail("the document has no valid jwks_uri");
  // OpenID Connect Discovery 1.0, section 4.3: the document must name the issuer it was fetched for.
  if (parsed.output.issuer !== opts.issuer) {
    throw fail(`the document names issuer ${JSON.stringify(parsed.output.issuer)}`);
  }
  return parsed.output.jwks_uri;
}

function unauthorized(reason: string): AppError {
  return new AppError("unauthorized", reason);
}
