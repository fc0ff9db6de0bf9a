import assert from "node:assert/strict";
import { ConfigError, helpText, read, readSettings, setting, settingsList } from "./settings.ts";

const TABLE = {
  name: setting({ flag: "name", env: ["X_NAME", "Y_NAME"], help: "A name.", schema: read.string }),
  port: setting({
    flag: "port",
    env: ["X_PORT"],
    default: "80",
    help: "A port.",
    schema: read.port,
  }),
  verbose: setting({
    flag: "verbose",
    env: [],
    default: "false",
    help: "Say more.",
    schema: read.boolean,
    boolean: true,
  }),
  windowMs: setting({
    flag: "window-ms",
    env: ["X_WINDOW_MS"],
    default: "50",
    help: "A window.",
    schema: read.wholeNumber("milliseconds", 10_000),
  }),
};

const envOf = (vars: Record<string, string>) => (name: string) => vars[name];

/** The problems {@link readSettings} reports, as "setting: message" lines. */
function problemsOf(args: string[], vars: Record<string, string> = {}): string[] {
  try {
    readSettings(TABLE, args, envOf(vars));
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.name, "ConfigError");
    return e.problems.map((p) => `${p.setting}: ${p.message}`);
  }
  assert.fail("expected a ConfigError");
}

Deno.test("readSettings: flags win over variables, the first variable set wins, then defaults", () => {
  assert.deepEqual(readSettings(TABLE, [], envOf({ Y_NAME: "y" })), {
    name: "y",
    port: 80,
    verbose: false,
    windowMs: 50,
  });
  assert.deepEqual(
    readSettings(
      TABLE,
      ["--name", "flag", "--port=8080", "--verbose", "--window-ms", "0"],
      envOf({ X_NAME: "x", Y_NAME: "y", X_PORT: "9" }),
    ),
    { name: "flag", port: 8080, verbose: true, windowMs: 0 },
  );
  assert.equal(readSettings(TABLE, [], envOf({ X_NAME: "x", Y_NAME: "y" })).name, "x");
  assert.equal(readSettings(TABLE, ["--name=a", "--verbose=false"], envOf({})).verbose, false);
});

Deno.test("readSettings: every problem at once, naming the setting and where the value came from", () => {
  assert.deepEqual(
    problemsOf(["stray", "--nope", "--port=70000", "--window-ms", "20000", "--name"], {
      X_PORT: "1",
    }),
    [
      "stray: unknown argument",
      "--nope: unknown flag",
      "--name: expected a value after the flag",
      "--name / X_NAME / Y_NAME: required, not set",
      '--port / X_PORT: expected a port number up to 65535 (got "70000" from --port)',
      '--window-ms / X_WINDOW_MS: expected at most 10000 milliseconds (got "20000" from --window-ms)',
    ],
  );
  assert.deepEqual(problemsOf([], { X_NAME: " ", X_WINDOW_MS: "1.5" }), [
    '--name / X_NAME / Y_NAME: expected a non-empty value (got " " from X_NAME)',
    '--window-ms / X_WINDOW_MS: expected a whole number of milliseconds (got "1.5" from X_WINDOW_MS)',
  ]);
});

Deno.test("settingsList and helpText: the settings in the order they are declared", () => {
  assert.deepEqual(settingsList(TABLE).map((s) => s.flag), [
    "name",
    "port",
    "verbose",
    "window-ms",
  ]);
  const help = helpText("sidecar", { server: {}, sidecar: TABLE });
  assert.ok(
    help.endsWith(
      [
        'Settings of "irsa sidecar" (flag, environment variables, default):',
        "  --name  [X_NAME, Y_NAME]  (required)",
        "      A name.",
        '  --port  [X_PORT]  (default: "80")',
        "      A port.",
        '  --verbose  (default: "false")',
        "      Say more.",
        '  --window-ms  [X_WINDOW_MS]  (default: "50")',
        "      A window.",
        "",
      ].join("\n"),
    ),
    help,
  );
  assert.ok(!help.includes('"irsa server"'));
});
