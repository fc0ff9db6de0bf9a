/** The sidecar's client of the pod-local token endpoint and of the irsa server. */

import * as v from "valibot";

/** An HTTP answer that was not a success; `retryable` for 429 and 5xx. */
export class HttpStatusError extends Error {
  override readonly name = "HttpStatusError";
  constructor(readonly url: string, readonly status: number, readonly detail: string) {
    super(`${url} answered ${status}${detail ? `: ${detail}` : ""}`);
  }
  get retryable(): boolean {
    return this.status === 429 || this.status >= 500;
  }
}

/** True for failures worth retrying: no connection, a timeout, 429 or 5xx. */
export function isRetryable(error: unknown): boolean {
  if (error instanceof HttpStatusError) return error.retryable;
  return error instanceof TypeError ||
    (error instanceof DOMException && error.name === "TimeoutError");
}

const RoleResult = v.object({
  iam_role_arn: v.string(),
  proxy_iam_role_arn: v.nullable(v.string()),
  profile: v.string(),
  status: v.picklist(["added", "present", "failed"]),
  error: v.optional(v.object({ code: v.string(), message: v.string() })),
});

/** The server's JSON answer to a mapping request. */
export const MapAnswer = v.object({
  subject: v.string(),
  roles: v.array(RoleResult),
});

/** The server's answer, validated. */
export type MapAnswer = v.InferOutput<typeof MapAnswer>;

/** What the sidecar sends with each request. */
export interface PodIdentity {
  readonly userToken: string;
  readonly workloadToken: string;
  readonly runId?: string;
  readonly workloadType?: string;
}

/** A fetch through one HTTP client that trusts a CA besides the public roots; `close()` frees it. */
export interface PodFetch {
  readonly fetch: typeof fetch;
  close(): void;
}

/**
 * The sidecar's one HTTP client, for the server, the token endpoint and STS alike: every client
 * parses its own copy of the roots (megabytes), so there is one. It is made at the first call, not
 * at start: reading and parsing the CA takes a millisecond or more, and the sidecar listens before
 * it syncs. `caCert` may still be being read.
 */
export function createPodFetch(caCert?: string | Promise<string | undefined>): PodFetch {
  let client: Deno.HttpClient | undefined;
  return {
    fetch: async (input, init) => {
      const ca = await caCert;
      if (ca === undefined) return await fetch(input, init);
      client ??= Deno.createHttpClient({ caCerts: [ca] });
      return await fetch(input, { ...init, client });
    },
    close: () => client?.close(),
  };
}

/** Options of {@link createBrokerClient}. */
export interface BrokerClientOptions {
  readonly apiProxy: string;
  readonly endpoint: string;
  /** The HTTP client of every call; by default one that trusts `caCert`. */
  readonly http?: PodFetch;
  readonly caCert?: string;
  readonly timeoutMs: number;
}

/** Calls the token endpoint and the server. */
export interface BrokerClient {
  accessToken(): Promise<string>;
  map(pod: PodIdentity): Promise<MapAnswer>;
  unmap(pod: PodIdentity, timeoutMs: number): Promise<void>;
  close(): void;
}

/** Creates the client; with a CA, the server's certificate must chain to it. */
export function createBrokerClient(options: BrokerClientOptions): BrokerClient {
  const http = options.http ?? createPodFetch(options.caCert);
  const call = async (
    url: string,
    init: RequestInit,
    timeoutMs = options.timeoutMs,
  ): Promise<Response> => {
    const res = await http.fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) {
      const text = (await res.text().catch(() => "")).slice(0, 500);
      let detail = text.trim();
      try {
        detail = JSON.parse(text).message ?? detail;
      } catch { /* not JSON: keep the text */ }
      throw new HttpStatusError(url, res.status, detail);
    }
    return res;
  };
  const request = (pod: PodIdentity, method: string) => ({
    method,
    headers: {
      Authorization: `Bearer ${pod.userToken}`,
      "X-Irsa-Workload-Token": pod.workloadToken,
      "Content-Type": "application/json",
      Accept: "application/json",
    },
    body: JSON.stringify({
      ...(pod.runId ? { run_id: pod.runId } : {}),
      ...(pod.workloadType ? { irsa_workload_type: pod.workloadType } : {}),
    }),
  });
  return {
    async accessToken() {
      const token = (await (await call(`${options.apiProxy}/access-token`, {})).text()).trim();
      if (token === "") {
        throw new HttpStatusError(`${options.apiProxy}/access-token`, 503, "empty token");
      }
      return token;
    },
    async map(pod) {
      const json = await (await call(options.endpoint, request(pod, "POST"))).json();
      const result = v.safeParse(MapAnswer, json);
      if (!result.success) {
        throw new Error(
          `The server's answer is not what irsa expects: ${v.summarize(result.issues)}`,
        );
      }
      return result.output;
    },
    async unmap(pod, timeoutMs) {
      await (await call(options.endpoint, request(pod, "DELETE"), timeoutMs)).body?.cancel();
    },
    close: () => http.close(),
  };
}
