/**
 * Every line the server and the sidecar write is one JSON object, also when raw HTTP requests
 * (chunked bodies, garbage, half-sent requests) reach them: log collectors parse each line.
 */
import assert from "node:assert/strict";
import { EXAMPLE, type Moto, seedExampleRoles, startMoto } from "./fixtures/moto.ts";
import { startOidcIssuer } from "./fixtures/oidc_issuer.ts";
import { makeTestTls, type TestTls } from "./fixtures/tls.ts";
import { startIrsaProcess, startServerProcess } from "./server_process.ts";
import { pairJson, serverEnv } from "./world.ts";

let moto: Moto;
let tls: TestTls;

Deno.test.beforeAll(async () => {
  moto = await startMoto();
  tls = await makeTestTls();
});
Deno.test.afterAll(async () => {
  await moto.stop();
  await tls.cleanup();
});

/** Sends `request` as raw bytes and reads until the server closes or a second passes. */
async function raw(conn: Deno.Conn | Deno.TlsConn, request: string): Promise<string> {
  const decoder = new TextDecoder();
  await conn.write(new TextEncoder().encode(request));
  const buffer = new Uint8Array(64 * 1024);
  let answer = "";
  // Closing the connection ends a read that would wait for more.
  const timer = setTimeout(() => conn.close(), 1_000);
  try {
    for (;;) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) break;
      answer += decoder.decode(buffer.subarray(0, n));
      if (/\r\n0\r\n\r\n$|"\}\s*$/.test(answer)) break;
    }
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed by the timer */ }
  }
  return answer;
}

const chunked = (method: string, path: string, headers: string, body: string) =>
  `${method} ${path} HTTP/1.1\r\nHost: localhost\r\n${headers}Content-Type: application/json\r\n` +
  `Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n` +
  `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;

function assertJsonLines(logs: readonly string[], who: string) {
  assert.ok(logs.length > 0, `${who} wrote nothing`);
  for (const line of logs) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      assert.fail(`${who} wrote a line that is not JSON: ${line}`);
    }
    assert.ok(
      typeof parsed === "object" && parsed !== null && !Array.isArray(parsed),
      `${who} wrote a line that is not a JSON object: ${line}`,
    );
  }
}

Deno.test("server: every line on standard error is a JSON object, after raw HTTP requests", async () => {
  await moto.reset();
  const world = await seedExampleRoles(moto.iamClient());
  const issuer = await startOidcIssuer({ tls: { cert: tls.cert, key: tls.key } });
  const dir = await Deno.makeTempDir();
  const server = await startServerProcess(
    [
      "--tls-cert",
      tls.certPath,
      "--tls-key",
      tls.keyPath,
      "--ca-file",
      tls.caCertPath,
      "--mapping-file",
      `${dir}/mappings.json`,
    ],
    serverEnv(moto, world, issuer),
    tls.caCert,
  );
  try {
    const { hostname, port } = new URL(server.url);
    const connect = () => Deno.connectTls({ hostname, port: Number(port), caCerts: [tls.caCert] });
    const admin = `Authorization: Bearer ${await issuer.userToken({
      username: "boss",
      admin: true,
    })}\r\n`;
    const body = JSON.stringify({
      domino_org: "irsa-iamrole-list-bucket",
      ...pairJson(EXAMPLE.roleNames[0]),
    });
    // A chunked body has no Content-Length, so the body limit reads and replaces it.
    const updated = await raw(
      await connect(),
      chunked("POST", "/update_role_mapping", admin, body),
    );
    assert.match(updated, /^HTTP\/1\.1 200/);
    const bad = await raw(await connect(), chunked("POST", "/update_role_mapping", admin, "{"));
    assert.match(bad, /^HTTP\/1\.1 400/);
    const anonymous = await raw(
      await connect(),
      chunked("POST", "/map_iam_roles_to_pod_sa", "", "{}"),
    );
    assert.match(anonymous, /^HTTP\/1\.1 401/);
    await raw(
      await connect(),
      "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    await raw(await connect(), "NONSENSE\r\n\r\n");
    // A request cut off in the middle of its body.
    const cut = await connect();
    await cut.write(
      new TextEncoder().encode(
        `POST /update_role_mapping HTTP/1.1\r\nHost: localhost\r\n${admin}Transfer-Encoding: chunked\r\n\r\n40\r\n{"dom`,
      ),
    );
    cut.close();
    const plain = await Deno.connect({ hostname, port: Number(port) });
    await raw(plain, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
  } finally {
    assert.equal(await server.stop(), 0);
    await issuer.close();
    await Deno.remove(dir, { recursive: true });
  }
  assertJsonLines(server.logs, "irsa server");
  // Not merely wrapped: nothing reads request.signal any more, so Deno has nothing to warn about.
  assert.ok(!server.logs.some((l) => l.includes("legacy behavior")), "the legacy-abort warning");
});

Deno.test("sidecar: every line on standard error is a JSON object, after raw HTTP requests", async () => {
  const dir = await Deno.makeTempDir();
  // Nothing listens on port 9 of loopback: every sync fails, which the sidecar logs.
  const sidecar = await startIrsaProcess("sidecar", [], {
    DOMINO_API_PROXY: "http://127.0.0.1:9",
    DOMINO_IRSA_ENDPOINT: "https://127.0.0.1:9/map_iam_roles_to_pod_sa",
    AWS_CONFIG_FILE: `${dir}/config`,
    AWS_WEB_IDENTITY_TOKEN_FILE: `${dir}/token`,
    POD_INFO_PATH: `${dir}/labels`,
    DOMINO_RUN_ID: "646d27b817c28b5ea4b5b0c1",
    IRSA_START_DEADLINE_SECONDS: "1",
  });
  try {
    const { hostname, port } = new URL(sidecar.url);
    const connect = () => Deno.connect({ hostname, port: Number(port) });
    await raw(await connect(), chunked("POST", "/refresh", "", "{}"));
    await raw(
      await connect(),
      "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    await raw(await connect(), "NONSENSE\r\n\r\n");
  } finally {
    await sidecar.stop();
    await Deno.remove(dir, { recursive: true });
  }
  assertJsonLines(sidecar.logs, "irsa sidecar");
});
