import assert from "node:assert/strict";
import { runMain } from "./server_process.ts";

Deno.test("--help lists both modes and every setting with its variable", async () => {
  const { code, stdout } = await runMain(["--help"]);
  assert.equal(code, 0);
  for (
    const text of [
      "irsa server",
      "irsa sidecar",
      "--oidc-provider  [OIDC_PROVIDER]",
      "DOMINO_USER_HOST",
      "DEFAULT_COMPUTE_NS",
      "PROMETHEUS_METRICS_PORT",
      "IRSA_MODE",
    ]
  ) {
    assert.ok(stdout.includes(text), text);
  }
  const server = await runMain(["server", "--help"]);
  assert.equal(server.code, 0);
  assert.ok(server.stdout.includes("--trust-policy-quota"));
});

Deno.test("an unknown mode or flag exits 2 with a clear message", async () => {
  const mode = await runMain(["serve"]);
  assert.equal(mode.code, 2);
  assert.match(mode.stderr, /unknown mode "serve": expected "server" or "sidecar"/);
  const none = await runMain([]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /no mode given/);
  const flag = await runMain(["server", "--nope=1", "--insecure-http"], {
    OIDC_PROVIDER: "oidc.example/id/X",
    IRSA_JWT_ISSUER: "https://idp.example",
  });
  assert.equal(flag.code, 2);
  assert.match(flag.stderr, /--nope=1: unknown flag/);
});

Deno.test("every configuration problem is reported at once, naming the variable, with exit 2", async () => {
  const { code, stderr } = await runMain(["server"], {
    IRSA_PORT: "70000",
    IRSA_SUBJECT_FORMAT: "loose",
    IRSA_MODE: "server",
  });
  assert.equal(code, 2);
  assert.match(stderr, /--oidc-provider \/ OIDC_PROVIDER: required, not set/);
  assert.match(
    stderr,
    /--port \/ IRSA_PORT: expected a port number up to 65535 \(got "70000" from IRSA_PORT\)/,
  );
  assert.match(stderr, /IRSA_SUBJECT_FORMAT: expected one of "wildcard", "exact"/);
  const missingIssuer = await runMain([], {
    IRSA_MODE: "server",
    OIDC_PROVIDER: "oidc.example/id/X",
  });
  assert.equal(missingIssuer.code, 2);
  assert.match(
    missingIssuer.stderr,
    /--jwt-issuer \/ IRSA_JWT_ISSUER: required with --verifier jwt/,
  );
});

Deno.test("the sidecar reads the variables the platform's mutation injects, and reports bad ones with exit 2", async () => {
  const help = await runMain(["sidecar", "--help"]);
  assert.equal(help.code, 0);
  for (
    const name of [
      "DOMINO_API_PROXY",
      "DOMINO_IRSA_ENDPOINT",
      "DOMINO_IRSA_SSL_CERT",
      "AWS_CONFIG_FILE",
      "AWS_WEB_IDENTITY_TOKEN_FILE",
      "POD_INFO_PATH",
      "DOMINO_RUN_ID",
      "AWS_REGION",
      "AWS_STS_REGIONAL_ENDPOINTS",
    ]
  ) {
    assert.ok(help.stdout.includes(name), name);
  }
  const bad = await runMain(["sidecar"], {
    DOMINO_IRSA_ENDPOINT: "not a url",
    AWS_STS_REGIONAL_ENDPOINTS: "global",
  });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /DOMINO_IRSA_ENDPOINT: expected a URL/);
  assert.match(bad.stderr, /AWS_STS_REGIONAL_ENDPOINTS: expected "regional" or "legacy"/);
});

/** The modules of a static module graph, as `deno info` reads it. */
async function graphOf(path: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL(path, import.meta.url).pathname],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  // `modules` is the graph itself; `npmPackages` lists every package of the lockfile, used or not.
  return JSON.parse(new TextDecoder().decode(out.stdout)).modules.map((m: { specifier: string }) =>
    m.specifier
  );
}

Deno.test("main.ts names neither mode in its static graph, and the sidecar's holds nothing of the server", async () => {
  // A string-literal import of a mode's entry would put it, and its npm metadata, in every start.
  assert.deepEqual((await graphOf("../main.ts")).map((s) => s.replace(/^.*\//, "")), ["main.ts"]);
  const sidecar = await graphOf("../src/sidecar/main.ts");
  assert.ok(sidecar.some((s) => s.includes("hono")), "the graph was read");
  assert.deepEqual(
    sidecar.filter((s) => /aws-sdk|@smithy|jose|\/src\/(server|app|routes|aws|auth)\b/.test(s)),
    [],
  );
  const server = await graphOf("../src/server/main.ts");
  assert.ok(server.some((s) => s.endsWith("/src/server/server.ts")));
});

Deno.test("a sidecar whose CA file cannot be read exits 1 at start (the file is read while it starts listening)", async () => {
  const out = await runMain(["sidecar", "--port", "0", "--ca-file", "/nonexistent/irsa-ca.crt"]);
  assert.equal(out.code, 1, out.stderr);
  assert.match(out.stderr, /irsa sidecar failed to start/);
  assert.match(out.stderr, /nonexistent\/irsa-ca\.crt/);
});
