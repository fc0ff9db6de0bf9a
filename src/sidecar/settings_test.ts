import assert from "node:assert/strict";
import { sidecarConfig } from "./settings.ts";

Deno.test("sidecarConfig: defaults fit a workspace pod; empty values are undefined", () => {
  const config = sidecarConfig([], () => undefined);
  assert.equal(config.host, "127.0.0.1");
  assert.equal(config.port, 6003);
  assert.equal(config.runId, undefined);
  assert.equal(config.region, undefined);
  assert.equal(config.stsRegionalEndpoints, undefined);
  assert.equal(config.stsEndpoint, "https://sts.us-east-1.amazonaws.com");
  assert.equal(config.propagationCheck, true);
  assert.equal(config.syncIntervalMs, 300_000);
  assert.equal(config.logLevel, "info");
});

Deno.test("sidecarConfig: the platform's variables, the region's STS endpoint, the proxy without its last slash", () => {
  const vars: Record<string, string> = {
    DOMINO_API_PROXY: "http://localhost:8899/",
    DOMINO_RUN_ID: "646d27b817c28b5ea4b5b0c1",
    AWS_DEFAULT_REGION: "us-west-2",
    AWS_STS_REGIONAL_ENDPOINTS: "regional",
    IRSA_LOG_LEVEL: "debug",
  };
  const config = sidecarConfig(["--propagation-check", "no"], (n) => vars[n]);
  assert.equal(config.apiProxy, "http://localhost:8899");
  assert.equal(config.runId, "646d27b817c28b5ea4b5b0c1");
  assert.equal(config.region, "us-west-2");
  assert.equal(config.stsRegionalEndpoints, "regional");
  assert.equal(config.stsEndpoint, "https://sts.us-west-2.amazonaws.com");
  assert.equal(config.propagationCheck, false);
  assert.equal(config.logLevel, "debug");
});

Deno.test("sidecarConfig: credentials on a loopback listener only, 900 to 3600 s, their files beside the config file", () => {
  const config = sidecarConfig([], () => undefined);
  assert.equal(config.credentials, true);
  assert.equal(config.sessionDurationSeconds, 3600);
  assert.equal(config.credentialsTokenFile, "/var/run/.aws/irsa-credentials-token");
  assert.equal(config.credentialHelperFile, "/var/run/.aws/irsa-credential-process");
  assert.throws(() => sidecarConfig(["--host", "0.0.0.0"], () => undefined), /only a loopback/);
  assert.equal(
    sidecarConfig(["--host", "0.0.0.0", "--credentials", "false"], () => undefined).host,
    "0.0.0.0",
  );
  assert.throws(
    () => sidecarConfig(["--session-duration-seconds", "899"], () => undefined),
    /at least 900/,
  );
  assert.throws(
    () => sidecarConfig(["--session-duration-seconds", "3601"], () => undefined),
    /at most 3600/,
  );
});
