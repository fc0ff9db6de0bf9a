/**
 * A proxy in front of the real Kubernetes API server (tests/fixtures/kube_apiserver.ts) that logs
 * every request irsa makes and can answer the next ones with an injected failure: what only a
 * fake could do, without a fake's opinion of the API. Everything else is the real server's answer.
 */

/** One request that passed (or was refused by) the proxy; the token is never kept. */
export interface ProxiedRequest {
  readonly method: string;
  readonly path: string;
  /** The raw query string without `?`, e.g. `labelSelector=app%3Dx`. */
  readonly query: string;
  readonly status: number;
  /** True when the proxy answered instead of the API server. */
  readonly injected: boolean;
  /** Bytes of the request's body (0 for a GET, or when the proxy answered before reading it). */
  readonly bytes: number;
}

/** Which requests {@link KubeFaultProxy.failNext} applies to; all when omitted. */
export interface FailMatch {
  readonly method?: string;
  /** A path prefix, or a pattern tested against the path. */
  readonly path?: string | RegExp;
  /** A pattern tested against the raw query string (without `?`). */
  readonly query?: RegExp;
}

/** A running proxy. */
export interface KubeFaultProxy {
  /** `http(s)://127.0.0.1:<port>`, the `apiUrl` to give irsa. */
  readonly url: string;
  /** Every request so far, in order of arrival. */
  readonly requests: readonly ProxiedRequest[];
  /** The next `n` requests matching `match` are answered with `status` and a `Status` body. */
  failNext(n: number, status: number, match?: FailMatch): void;
  /**
   * The next watch is held `delayMs`, then answered as the API server answers a watch from a
   * version compacted away: 200 and one `ERROR` event with code 410 (`Expired`).
   */
  goneNextWatch(delayMs?: number): void;
  /** Ends every watch in progress cleanly (as the API server does when a watch times out). */
  endWatches(): void;
  /** Forgets the request log. */
  clearRequests(): void;
  close(): Promise<void>;
}

/** Options of {@link startKubeFaultProxy}. */
export interface KubeFaultProxyOptions {
  /** Serve HTTPS with this PEM pair instead of plain HTTP on loopback. */
  readonly tls?: { readonly cert: string; readonly key: string };
}

// The reason the API server gives with each status (apimachinery's StatusReason).
const REASONS: Record<number, string> = {
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  409: "Conflict",
  422: "Invalid",
  429: "TooManyRequests",
  500: "InternalError",
  503: "ServiceUnavailable",
  504: "Timeout",
};

/** Starts the proxy in front of `upstream` (an API server trusting `caCert`). */
export function startKubeFaultProxy(
  upstream: { url: string; caCert: string },
  options: KubeFaultProxyOptions = {},
): KubeFaultProxy {
  const requests: ProxiedRequest[] = [];
  const failures: { remaining: number; status: number; match?: FailMatch }[] = [];
  const client = Deno.createHttpClient({ caCerts: [upstream.caCert] });
  let gone: { delayMs: number } | undefined;
  const watches = new Set<() => void>();

  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: () => {}, // the default prints a line into test output
    ...(options.tls ?? {}),
  }, async (request) => {
    const url = new URL(request.url);
    let bytes = 0;
    const log = (status: number, injected: boolean) =>
      requests.push({
        method: request.method,
        path: url.pathname,
        query: url.search.replace(/^\?/, ""),
        status,
        injected,
        bytes,
      });
    const failure = failures.find((f) =>
      f.remaining > 0 && matches(f.match, request.method, url.pathname, url.search)
    );
    if (failure) {
      failure.remaining--;
      await request.body?.cancel();
      log(failure.status, true);
      return injected(failure.status);
    }
    const headers = new Headers(request.headers);
    headers.delete("host");
    const body = request.method === "GET" || request.method === "HEAD"
      ? undefined
      : await request.arrayBuffer();
    bytes = body?.byteLength ?? 0;
    // A watch streams until the client goes: pass it on as it comes, and end it with the client.
    const watching = url.searchParams.get("watch") === "1";
    if (watching && gone) {
      const { delayMs } = gone;
      gone = undefined;
      await new Promise((r) => setTimeout(r, delayMs));
      log(200, true);
      // What the API server streams when the watch's version was compacted away.
      const event = {
        type: "ERROR",
        object: {
          kind: "Status",
          apiVersion: "v1",
          metadata: {},
          status: "Failure",
          message: `too old resource version: ${url.searchParams.get("resourceVersion")}`,
          reason: "Expired",
          code: 410,
        },
      };
      return new Response(JSON.stringify(event) + "\n", {
        headers: { "Content-Type": "application/json" },
      });
    }
    const response = await fetch(upstream.url + url.pathname + url.search, {
      method: request.method,
      headers,
      body,
      client,
      ...(watching ? { signal: request.signal } : {}),
    });
    if (watching) {
      log(response.status, false);
      const passed = new Headers(response.headers);
      passed.delete("content-encoding");
      passed.delete("content-length");
      // Passed on chunk by chunk, so that endWatches() can end it between two.
      const upstreamBody = response.body!;
      const reader = upstreamBody.getReader();
      let end = () => {};
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          end = () => {
            watches.delete(end);
            reader.cancel().catch(() => {});
            try {
              controller.close();
            } catch { /* already closed */ }
          };
          watches.add(end);
        },
        async pull(controller) {
          const { done, value } = await reader.read().catch(() => ({
            done: true,
            value: undefined,
          }));
          if (done) {
            watches.delete(end);
            try {
              controller.close();
            } catch { /* already closed */ }
          } else controller.enqueue(value);
        },
        cancel() {
          watches.delete(end);
          return reader.cancel().catch(() => {});
        },
      });
      return new Response(body, { status: response.status, headers: passed });
    }
    const answer = await response.arrayBuffer();
    log(response.status, false);
    // fetch has already decoded a gzipped answer (the API server compresses large ones): pass
    // on the decoded bytes without the encoding headers.
    const passed = new Headers(response.headers);
    passed.delete("content-encoding");
    passed.delete("content-length");
    return new Response(answer, { status: response.status, headers: passed });
  });

  return {
    url: `${options.tls ? "https" : "http"}://127.0.0.1:${server.addr.port}`,
    requests,
    failNext(n, status, match) {
      failures.push({ remaining: n, status, match });
    },
    goneNextWatch(delayMs = 0) {
      gone = { delayMs };
    },
    endWatches() {
      for (const end of [...watches]) end();
    },
    clearRequests() {
      requests.length = 0;
    },
    async close() {
      await server.shutdown();
      client.close();
    },
  };
}

function matches(
  match: FailMatch | undefined,
  method: string,
  path: string,
  search: string,
): boolean {
  if (!match) return true;
  if (match.query !== undefined && !match.query.test(search.replace(/^\?/, ""))) return false;
  if (match.method !== undefined && match.method.toUpperCase() !== method) return false;
  if (typeof match.path === "string") return path.startsWith(match.path);
  if (match.path instanceof RegExp) return match.path.test(path);
  return true;
}

function injected(code: number): Response {
  const reason = REASONS[code] ?? "Unknown";
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (code === 429) headers["Retry-After"] = "1";
  return new Response(
    JSON.stringify({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: `injected by the fault proxy: ${reason}`,
      reason,
      code,
    }),
    { status: code, headers },
  );
}
