import assert from "node:assert/strict";
import { type OidcIssuer, startOidcIssuer } from "../../tests/fixtures/oidc_issuer.ts";
import { silentLogger } from "../lib/log.ts";
import { serverConfig } from "./config.ts";
import { startServer } from "./server.ts";

// A start that fails at a late step leaves nothing running: the test sanitizers fail these tests
// if the cleanup loop's timer, a client or a listener outlives the rejection.

/** Starts a server with a file store, the editable set from the settings alone, and `args`. */
async function startWith(issuer: OidcIssuer, dir: string, args: string[]) {
  const config = serverConfig([
    ...args,
    ...["--oidc-provider", "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLE"],
    ...["--jwt-issuer", issuer.issuer, "--mapping-store", "file"],
    ...["--mapping-file", `${dir}/mappings.json`, "--cleanup-interval-seconds", "1"],
    ...["--proxy-role-account", "111111111111", "--proxy-role-partition", "aws"],
    // No STS answers here: the settings alone name the editable set.
    ...["--sts-endpoint", "http://127.0.0.1:9", "--iam-endpoint", "http://127.0.0.1:9"],
  ], () => undefined);
  return await startServer(config, silentLogger, {
    readTextFile: (path) => Deno.readTextFile(path),
  });
}

async function withIssuer(test: (issuer: OidcIssuer, dir: string) => Promise<void>) {
  const issuer = await startOidcIssuer();
  const dir = await Deno.makeTempDir();
  try {
    await test(issuer, dir);
  } finally {
    await issuer.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a server whose port is taken fails to start and stops what it had started", async () => {
  await withIssuer(async (issuer, dir) => {
    using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    await assert.rejects(
      startWith(issuer, dir, [
        ...["--insecure-http", "--host", "127.0.0.1", "--port", String(taken.addr.port)],
      ]),
      Deno.errors.AddrInUse,
    );
  });
});

Deno.test("a server whose TLS files cannot be read fails before it starts anything", async () => {
  await withIssuer(async (issuer, dir) => {
    await assert.rejects(
      startWith(issuer, dir, [
        ...["--tls-cert", `${dir}/missing.crt`, "--tls-key", `${dir}/missing.key`],
        ...["--host", "127.0.0.1", "--port", "0"],
      ]),
      Deno.errors.NotFound,
    );
  });
});

Deno.test("a server with Kubernetes whose hand-off key is short fails before it starts anything", async () => {
  await withIssuer(async (issuer, dir) => {
    await Deno.writeTextFile(`${dir}/handoff-key`, "too short\n");
    await assert.rejects(
      startWith(issuer, dir, [
        ...["--insecure-http", "--host", "127.0.0.1", "--port", "0"],
        ...["--kubernetes-api", "http://127.0.0.1:9", "--handoff-key-file", `${dir}/handoff-key`],
      ]),
      /Cannot use the hand-off key in ".*\/handoff-key": it is 9 bytes long, under the 32 required/,
    );
  });
});
