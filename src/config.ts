/** Settings: one table per mode, read from flags and environment variables, validated all at once. */

import * as v from "valibot";

/** A setting: its flag, the environment variables that may set it (first wins), its default and how to read it. */
export interface Setting {
  readonly flag: string;
  readonly env: readonly string[];
  readonly default?: string;
  readonly help: string;
  // deno-lint-ignore no-explicit-any
  readonly schema: v.GenericSchema<string, any>;
  /** Flags that take no value (`--insecure-http`) are booleans. */
  readonly boolean?: boolean;
}

/** The modes the one binary runs in. */
export type Mode = "server" | "sidecar";

/** Readers for setting values, each with a message that says what was expected. */
export const read = {
  string: v.pipe(v.string(), v.trim(), v.minLength(1, "expected a non-empty value")),
  optionalString: v.pipe(v.string(), v.trim()),
  port: v.pipe(
    v.string(),
    v.regex(/^\d+$/, "expected a port number"),
    v.transform(Number),
    v.minValue(0, "expected a port number"),
    v.maxValue(65535, "expected a port number up to 65535"),
  ),
  positiveInt: v.pipe(
    v.string(),
    v.regex(/^\d+$/, "expected a whole number"),
    v.transform(Number),
    v.minValue(1, "expected a number of at least 1"),
  ),
  boolean: v.pipe(
    v.string(),
    v.toLowerCase(),
    v.picklist(["true", "false", "1", "0", "yes", "no"], 'expected "true" or "false"'),
    v.transform((s) => ["true", "1", "yes"].includes(s)),
  ),
  url: v.pipe(v.string(), v.trim(), v.url("expected a URL")),
  optionalUrl: v.pipe(
    v.string(),
    v.trim(),
    v.check((s) => s === "" || URL.canParse(s), "expected a URL"),
  ),
  regex: v.pipe(
    v.string(),
    v.check((s) => {
      try {
        new RegExp(s);
        return true;
      } catch {
        return false;
      }
    }, "expected a regular expression"),
    v.transform((s) => new RegExp(s)),
  ),
  oneOf: <const T extends string>(values: readonly T[]) =>
    v.pipe(
      v.string(),
      v.trim(),
      v.picklist(values, `expected one of ${values.map((s) => `"${s}"`).join(", ")}`),
    ),
};

/** A problem with one setting, named by its flag and the variables that can set it. */
export interface ConfigProblem {
  readonly setting: string;
  readonly message: string;
}

/** Thrown when settings are wrong; lists every problem at once. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(readonly problems: readonly ConfigProblem[]) {
    super(problems.map((p) => `${p.setting}: ${p.message}`).join("\n"));
  }
}

/**
 * Reads a settings table from command-line arguments (`--flag value`, `--flag=value`) and
 * environment variables; flags win over variables, variables over defaults. Returns the values by
 * flag name, or throws {@link ConfigError} with every problem found.
 */
export function readSettings(
  table: readonly Setting[],
  args: readonly string[],
  env: (name: string) => string | undefined,
): Record<string, unknown> {
  const problems: ConfigProblem[] = [];
  const byFlag = new Map(table.map((s) => [s.flag, s]));
  const given = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const m = /^--([a-z0-9-]+)(?:=(.*))?$/s.exec(arg);
    const setting = m ? byFlag.get(m[1]) : undefined;
    if (!m || !setting) {
      problems.push({
        setting: arg,
        message: `unknown ${arg.startsWith("-") ? "flag" : "argument"}`,
      });
      continue;
    }
    let value = m[2];
    if (value === undefined) {
      if (setting.boolean) value = "true";
      else if (i + 1 < args.length) value = args[++i];
      else {
        problems.push({ setting: arg, message: "expected a value after the flag" });
        continue;
      }
    }
    given.set(setting.flag, value);
  }
  const values: Record<string, unknown> = {};
  for (const setting of table) {
    const fromEnv = setting.env.map((name) => [name, env(name)] as const).find(([, value]) =>
      value !== undefined
    );
    const raw = given.get(setting.flag) ?? fromEnv?.[1] ?? setting.default;
    if (raw === undefined) {
      problems.push({ setting: label(setting), message: "required, not set" });
      continue;
    }
    const result = v.safeParse(setting.schema, raw);
    if (result.success) values[setting.flag] = result.output;
    else {
      const source = given.has(setting.flag)
        ? `--${setting.flag}`
        : fromEnv
        ? fromEnv[0]
        : "default";
      problems.push({
        setting: label(setting),
        message: `${result.issues[0].message} (got ${JSON.stringify(raw)} from ${source})`,
      });
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return values;
}

function label(s: Setting): string {
  return [`--${s.flag}`, ...s.env].join(" / ");
}

/** The `--help` text of a mode: every setting with its variables and default. */
export function helpText(
  mode: Mode | undefined,
  tables: Readonly<Record<Mode, readonly Setting[]>>,
): string {
  const head = [
    "irsa: AWS roles for the workspaces of a multi-tenant Kubernetes platform, through IRSA and role chaining.",
    "",
    "Usage: irsa <server|sidecar> [--flag value]...   (the mode may also come from IRSA_MODE)",
    "       irsa [server|sidecar] --help",
    "",
    "Modes:",
    "  server    the HTTPS broker that edits proxy-role trust policies (port 6000)",
    "  sidecar   the workspace sidecar that writes the AWS config file (localhost:6003)",
  ];
  const modes = mode ? [mode] : (Object.keys(tables) as Mode[]);
  const sections = modes.map((m) =>
    [
      "",
      `Settings of "irsa ${m}" (flag, environment variables, default):`,
      ...tables[m].flatMap((s) => [
        `  --${s.flag}${s.env.length ? `  [${s.env.join(", ")}]` : ""}${
          s.default !== undefined ? `  (default: ${JSON.stringify(s.default)})` : "  (required)"
        }`,
        `      ${s.help}`,
      ]),
    ].join("\n")
  );
  return [...head, ...sections].join("\n") + "\n";
}
