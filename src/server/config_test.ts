import assert from "node:assert/strict";
import { ConfigError } from "../lib/settings.ts";
import { serverConfig } from "./config.ts";

const BASE: Record<string, string> = {
  OIDC_PROVIDER: "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLE",
  IRSA_JWT_ISSUER: "https://idp.example/auth/realms/DominoRealm",
};
const configOf = (args: string[], env: Record<string, string> = {}) =>
  serverConfig(["--insecure-http", ...args], (n) => ({ ...BASE, ...env })[n]);

Deno.test("editable set: empty by default (learned from STS at start), or set by flags and variables", () => {
  assert.deepEqual(configOf([]).editable, {
    account: undefined,
    partition: undefined,
    prefix: "",
    names: [],
    serverRoleName: undefined,
  });
  assert.equal(configOf([]).stsEndpoint, undefined);
  const set = configOf([
    "--proxy-role-account",
    "111111111111",
    "--proxy-role-partition",
    "aws-us-gov",
    "--proxy-role-names",
    " acme-a, acme-b ,,",
  ], {
    IRSA_PROXY_ROLE_PREFIX: "acme-",
    IRSA_SERVER_ROLE_NAME: "irsa-service-role",
    AWS_ENDPOINT_URL_STS: "http://127.0.0.1:5000",
  });
  assert.deepEqual(set.editable, {
    account: "111111111111",
    partition: "aws-us-gov",
    prefix: "acme-",
    names: ["acme-a", "acme-b"],
    serverRoleName: "irsa-service-role",
  });
  assert.equal(set.stsEndpoint, "http://127.0.0.1:5000");
});

Deno.test("editable set: bad values are reported at once, naming the setting", () => {
  assert.throws(
    () =>
      configOf(["--proxy-role-account", "1111"], {
        IRSA_PROXY_ROLE_PARTITION: "aws-mars",
        IRSA_PROXY_ROLE_NAMES: "ok,not ok",
        IRSA_SERVER_ROLE_NAME: "a/b",
      }),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      const text = e.message;
      assert.match(text, /--proxy-role-account \/ IRSA_PROXY_ROLE_ACCOUNT: expected a 12-digit/);
      assert.match(text, /IRSA_PROXY_ROLE_PARTITION: expected one of "aws", "aws-cn"/);
      assert.match(text, /IRSA_PROXY_ROLE_NAMES: expected comma-separated IAM role names/);
      assert.match(text, /IRSA_SERVER_ROLE_NAME: expected an IAM role name/);
      return true;
    },
  );
});

Deno.test("cleanup interval: whole seconds, 0 turns the loop off", () => {
  assert.equal(configOf(["--cleanup-interval-seconds", "0"]).cleanupIntervalMs, 0);
  assert.equal(
    configOf([], { IRSA_CLEANUP_INTERVAL_SECONDS: "65535" }).cleanupIntervalMs,
    65_535_000,
  );
  assert.throws(
    () => configOf(["--cleanup-interval-seconds", "1m"]),
    /--cleanup-interval-seconds \/ IRSA_CLEANUP_INTERVAL_SECONDS: expected a whole number of seconds \(got "1m" from --cleanup-interval-seconds\)/,
  );
});
