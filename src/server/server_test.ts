import assert from "node:assert/strict";
import { startOidcIssuer } from "../../tests/fixtures/oidc_issuer.ts";
import { silentLogger } from "../lib/log.ts";
import { serverConfig } from "./config.ts";
import { startServer } from "./server.ts";

// A start that fails at its last step (the port is taken) leaves nothing running: the test
// sanitizers fail it if the cleanup loop's timer, a client or a listener outlives the rejection.
Deno.test("a server whose port is taken fails to start and stops what it had started", async () => {
  const issuer = await startOidcIssuer();
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const dir = await Deno.makeTempDir();
  try {
    const config = serverConfig([
      ...["--insecure-http", "--host", "127.0.0.1", "--port", String(taken.addr.port)],
      ...["--oidc-provider", "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLE"],
      ...["--jwt-issuer", issuer.issuer, "--mapping-store", "file"],
      ...["--mapping-file", `${dir}/mappings.json`, "--cleanup-interval-seconds", "1"],
      // The editable set from the settings alone: no STS answers at this address.
      ...["--proxy-role-account", "111111111111", "--proxy-role-partition", "aws"],
      ...["--sts-endpoint", "http://127.0.0.1:9", "--iam-endpoint", "http://127.0.0.1:9"],
    ], () => undefined);
    await assert.rejects(
      startServer(config, silentLogger, { readTextFile: (path) => Deno.readTextFile(path) }),
      Deno.errors.AddrInUse,
    );
  } finally {
    taken.close();
    await issuer.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a server whose TLS files cannot be read fails before it starts anything", async () => {
  const issuer = await startOidcIssuer();
  const dir = await Deno.makeTempDir();
  try {
    const config = serverConfig([
      ...["--tls-cert", `${dir}/missing.crt`, "--tls-key", `${dir}/missing.key`],
      ...["--host", "127.0.0.1", "--port", "0"],
      ...["--oidc-provider", "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLE"],
      ...["--jwt-issuer", issuer.issuer, "--mapping-store", "file"],
      ...["--mapping-file", `${dir}/mappings.json`, "--cleanup-interval-seconds", "1"],
      ...["--proxy-role-account", "111111111111", "--proxy-role-partition", "aws"],
      ...["--sts-endpoint", "http://127.0.0.1:9", "--iam-endpoint", "http://127.0.0.1:9"],
    ], () => undefined);
    await assert.rejects(
      startServer(config, silentLogger, { readTextFile: (path) => Deno.readTextFile(path) }),
      Deno.errors.NotFound,
    );
  } finally {
    await issuer.close();
    await Deno.remove(dir, { recursive: true });
  }
});
