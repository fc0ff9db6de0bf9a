// Fake of the platform API (nucleus-frontend) and the pod-local API proxy, speaking their HTTP contract.

/** A user the fake knows, found by the bearer token the user presents. */
export interface FakeUser {
  readonly token: string;
  /** The user's platform API key, accepted in `X-Domino-Api-Key` as the platform does. */
  readonly apiKey?: string;
  readonly canonicalName: string;
  readonly canonicalId: string;
  readonly isAdmin?: boolean;
  /** The platform answers an anonymous principal for this token. */
  readonly isAnonymous?: boolean;
  /** Organization names. */
  readonly organizations?: readonly string[];
}

/**
 * A running fake on 127.0.0.1:
 * - `GET /v4/auth/principal`: the principal of the bearer token's (or `X-Domino-Api-Key` key's)
 *   user, as docs/design.md shows it; an anonymous principal without either; 401 for an unknown one.
 * - `GET /v4/organizations/self`: the user's organizations as `[{id, name}]`; 401 as above.
 * - `GET /access-token`: the configured user token as `text/plain`, as the pod-local proxy at
 *   `localhost:8899` answers it.
 */
export interface FakePlatformApi {
  /** `http://127.0.0.1:<port>`, the value of `DOMINO_USER_HOST` or `DOMINO_API_PROXY`. */
  readonly url: string;
  addUser(user: FakeUser): void;
  /** What `/access-token` answers; until set it answers 404. */
  setAccessToken(token: string): void;
  /** The next `n` requests (to `path` only, when given) answer `status` with a JSON error. */
  failNext(n: number, status: number, path?: string): void;
  /** Requests received for a path so far, failed ones included. */
  requestCount(path: string): number;
  /** Stops the server and waits until it has finished. Safe to call twice. */
  close(): Promise<void>;
}

/** The paths the fake answers. */
export const PLATFORM_PATHS = {
  principal: "/v4/auth/principal",
  organizations: "/v4/organizations/self",
  accessToken: "/access-token",
} as const;

// What the platform answers for a request without a user.
const ANONYMOUS_PRINCIPAL = {
  canonicalName: "Anonymous",
  canonicalId: "000000000000000000000000",
  isAnonymous: true,
  isAdmin: false,
};

/** Starts the fake on a free port. Call `close()` when done. */
export function startFakePlatformApi(): FakePlatformApi {
  const users = new Map<string, FakeUser>();
  const orgIds = new Map<string, string>();
  const counts = new Map<string, number>();
  const failures: { status: number; path?: string }[] = [];
  let accessToken: string | undefined;

  const orgId = (name: string) => {
    let id = orgIds.get(name);
    if (id === undefined) {
      id = hexId();
      orgIds.set(name, id);
    }
    return id;
  };

  const handle = (request: Request): Response => {
    const path = new URL(request.url).pathname;
    counts.set(path, (counts.get(path) ?? 0) + 1);
    const failure = failures.findIndex((f) => f.path === undefined || f.path === path);
    if (failure >= 0) {
      const [{ status }] = failures.splice(failure, 1);
      return json({ message: `Injected failure ${status}` }, status);
    }
    if (request.method !== "GET") return json({ message: "Method not allowed" }, 405);

    if (path === PLATFORM_PATHS.accessToken) {
      return accessToken === undefined
        ? new Response("No access token configured\n", { status: 404 })
        : new Response(accessToken, { headers: { "content-type": "text/plain; charset=utf-8" } });
    }
    if (path !== PLATFORM_PATHS.principal && path !== PLATFORM_PATHS.organizations) {
      return json({ message: "Not found" }, 404);
    }

    const authorization = request.headers.get("authorization");
    const apiKey = request.headers.get("x-domino-api-key");
    if (authorization === null && apiKey === null) {
      return path === PLATFORM_PATHS.principal
        ? json(ANONYMOUS_PRINCIPAL)
        : json({ message: "Unauthorized" }, 401);
    }
    const match = authorization === null ? null : /^Bearer (\S+)$/i.exec(authorization);
    const user = match
      ? users.get(match[1])
      : [...users.values()].find((u) => u.apiKey !== undefined && u.apiKey === apiKey);
    if (user === undefined) return json({ message: "Unauthorized" }, 401);
    if (path === PLATFORM_PATHS.principal) {
      return json(
        user.isAnonymous ? ANONYMOUS_PRINCIPAL : {
          canonicalName: user.canonicalName,
          canonicalId: user.canonicalId,
          isAnonymous: false,
          isAdmin: user.isAdmin ?? false,
        },
      );
    }
    return json((user.organizations ?? []).map((name) => ({ id: orgId(name), name })));
  };

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handle);
  let closing: Promise<void> | undefined;

  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    addUser(user) {
      users.set(user.token, user);
    },
    setAccessToken(token) {
      accessToken = token;
    },
    failNext(n, status, path) {
      for (let i = 0; i < n; i++) failures.push({ status, path });
    },
    requestCount: (path) => counts.get(path) ?? 0,
    close: () => closing ??= server.shutdown().then(() => server.finished),
  };
}

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

// The platform's ids are 24-hex-character object ids.
function hexId(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(12)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}
