/**
 * A fault-injecting proxy between the server and moto: IAM-like latency (reads and writes apart),
 * and Throttling or 5xx answers at configurable rates. It counts what passes, for the benchmark.
 */

/** Settings of the proxy; rates are between 0 and 1. */
export interface FaultSettings {
  readLatencyMs: number;
  writeLatencyMs: number;
  throttleRate: number;
  serverErrorRate: number;
}

/** A running proxy. */
export interface FaultProxy {
  readonly url: string;
  readonly settings: FaultSettings;
  /** Calls forwarded to moto, by IAM action, and faults injected. */
  readonly counts: {
    reads: number;
    writes: number;
    other: number;
    throttled: number;
    serverErrors: number;
  };
  reset(): void;
  close(): Promise<void>;
}

const WRITES = new Set(["UpdateAssumeRolePolicy", "CreateRole", "PutRolePolicy", "DeleteRole"]);

/** Starts the proxy in front of `upstream` (moto's endpoint). */
export function startFaultProxy(
  upstream: string,
  settings: Partial<FaultSettings> = {},
  random = Math.random,
): FaultProxy {
  const s: FaultSettings = {
    readLatencyMs: 0,
    writeLatencyMs: 0,
    throttleRate: 0,
    serverErrorRate: 0,
    ...settings,
  };
  const counts = { reads: 0, writes: 0, other: 0, throttled: 0, serverErrors: 0 };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const body = await req.arrayBuffer();
    const action = new URLSearchParams(new TextDecoder().decode(body)).get("Action") ?? "";
    const write = WRITES.has(action);
    const isIam = action !== "";
    await new Promise((r) => setTimeout(r, write ? s.writeLatencyMs : isIam ? s.readLatencyMs : 0));
    if (isIam && random() < s.throttleRate) {
      counts.throttled++;
      return iamError(400, "Sender", "Throttling", "Rate exceeded");
    }
    if (isIam && random() < s.serverErrorRate) {
      counts.serverErrors++;
      return iamError(503, "Receiver", "ServiceUnavailable", "Service unavailable");
    }
    if (action === "GetRole") counts.reads++;
    else if (write) counts.writes++;
    else counts.other++;
    const url = new URL(req.url);
    const headers = new Headers(req.headers);
    headers.delete("host");
    const res = await fetch(`${upstream}${url.pathname}${url.search}`, {
      method: req.method,
      headers,
      body: req.method === "GET" ? undefined : body,
    });
    return new Response(await res.arrayBuffer(), { status: res.status, headers: res.headers });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    settings: s,
    counts,
    reset() {
      Object.assign(counts, { reads: 0, writes: 0, other: 0, throttled: 0, serverErrors: 0 });
    },
    close: () => server.shutdown(),
  };
}

function iamError(status: number, type: string, code: string, message: string): Response {
  const xml =
    `<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>${type}</Type>` +
    `<Code>${code}</Code><Message>${message}</Message></Error><RequestId>${crypto.randomUUID()}</RequestId></ErrorResponse>`;
  return new Response(xml, { status, headers: { "Content-Type": "text/xml" } });
}
