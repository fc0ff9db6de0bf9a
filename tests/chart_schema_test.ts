/**
 * The chart's values schema checked against the settings table it renders into: every value the
 * schema lets an admin set for a server flag is one the server's own setting accepts, so a
 * `helm install` that validates never starts a server that refuses its flags. Reads
 * deploy/helm/irsa/values.schema.json and src/server/settings.ts; needs no Helm.
 */

import assert from "node:assert/strict";
import * as v from "valibot";
import { settingsList } from "../src/lib/settings.ts";
import { serverSettings } from "../src/server/settings.ts";

type Schema = {
  readonly $ref?: string;
  readonly enum?: readonly unknown[];
  readonly type?: string;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly minLength?: number;
  readonly pattern?: string;
  readonly items?: Schema;
  readonly properties?: Record<string, Schema>;
};

const root: Schema & { $defs: Record<string, Schema> } = JSON.parse(
  await Deno.readTextFile(new URL("../deploy/helm/irsa/values.schema.json", import.meta.url)),
);

/**
 * The `server` values that deploy/helm/irsa/templates/deployment.yaml renders as a flag, and how:
 * the value's text, or a list joined by commas.
 */
const RENDERED: readonly { readonly path: string; readonly flag: string; readonly list?: true }[] =
  [
    { path: "verifier", flag: "verifier" },
    { path: "jwt.issuer", flag: "jwt-issuer" },
    { path: "jwt.audience", flag: "jwt-audience" },
    { path: "jwt.usernameClaim", flag: "jwt-username-claim" },
    { path: "jwt.groupsClaim", flag: "jwt-groups-claim" },
    { path: "jwt.adminClaim", flag: "jwt-admin-claim" },
    { path: "jwt.adminValue", flag: "jwt-admin-value" },
    { path: "subjectFormat", flag: "subject-format" },
    { path: "trustPolicyQuota", flag: "trust-policy-quota" },
    { path: "editWindowMs", flag: "edit-window-ms" },
    { path: "callerCacheSeconds", flag: "caller-cache-seconds" },
    { path: "grantShards", flag: "grant-shards" },
    { path: "logLevel", flag: "log-level" },
    { path: "proxyRoles.prefix", flag: "proxy-role-prefix" },
    { path: "proxyRoles.names", flag: "proxy-role-names", list: true },
  ];

function resolve(schema: Schema): Schema {
  if (schema.$ref === undefined) return schema;
  const name = schema.$ref.replace("#/$defs/", "");
  return resolve(root.$defs[name]);
}

function schemaAt(path: string): Schema {
  let at: Schema = resolve(root.properties!.server);
  for (const key of path.split(".")) at = resolve(at.properties![key]);
  return at;
}

/** The keywords the chart's schema uses for these values, as JSON Schema defines them. */
function accepts(schema: Schema, value: unknown): boolean {
  const s = resolve(schema);
  if (s.enum !== undefined && !s.enum.includes(value)) return false;
  if (s.type === "integer" && !Number.isInteger(value)) return false;
  if (s.type === "string" && typeof value !== "string") return false;
  if (s.type === "array") {
    return Array.isArray(value) && value.every((item) => accepts(s.items ?? {}, item));
  }
  if (typeof value === "number") {
    if (s.minimum !== undefined && value < s.minimum) return false;
    if (s.maximum !== undefined && value > s.maximum) return false;
  }
  if (typeof value === "string") {
    if (s.minLength !== undefined && value.length < s.minLength) return false;
    if (s.pattern !== undefined && !new RegExp(s.pattern, "u").test(value)) return false;
  }
  return true;
}

/** Values worth trying against a schema: its enum, its bounds and their neighbours, some strings. */
function probes(schema: Schema): unknown[] {
  const s = resolve(schema);
  if (s.type === "array") {
    return [[], ...probes(s.items ?? {}).map((item) => [item]), [
      "acme-list-bucket-role",
      "acme-read-bucket-role",
    ]];
  }
  const numbers = [s.minimum, s.maximum].filter((n) => n !== undefined).flatMap((n) => [
    n - 1,
    n,
    n + 1,
  ]);
  return [
    ...(s.enum ?? []),
    "unknown-value",
    ...numbers,
    -1,
    0,
    1,
    50,
    2048,
    3600,
    10_000,
    86_400,
    "",
    "x",
    "acme-",
    "https://keycloak.example.com/auth/realms/DominoRealm",
    "not a url",
    "a,b",
  ];
}

const settings = new Map(settingsList(serverSettings).map((s) => [s.flag, s]));

Deno.test("every server value the chart renders as a flag names a setting of the server", () => {
  assert.deepEqual(RENDERED.filter((r) => !settings.has(r.flag)).map((r) => r.flag), []);
  const template = Deno.readTextFileSync(
    new URL("../deploy/helm/irsa/templates/deployment.yaml", import.meta.url),
  );
  for (const r of RENDERED) assert.ok(template.includes(`- --${r.flag}\n`), r.flag);
});

for (const r of RENDERED) {
  Deno.test(`chart value server.${r.path}: whatever the schema accepts, --${r.flag} accepts`, () => {
    const schema = schemaAt(r.path);
    const setting = settings.get(r.flag)!;
    const tried = probes(schema).filter((value) => accepts(schema, value));
    assert.ok(tried.length > 0, `no probe value is valid for server.${r.path}`);
    for (const value of tried) {
      const text = r.list ? (value as unknown[]).join(",") : String(value);
      const result = v.safeParse(setting.schema, text);
      assert.ok(
        result.success,
        `server.${r.path} = ${JSON.stringify(value)} passes the chart's schema, but --${r.flag} ${
          JSON.stringify(text)
        } is refused: ${result.success ? "" : result.issues[0].message}`,
      );
    }
  });
}
