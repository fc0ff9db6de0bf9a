/** The settings engine: a mode's settings as one table, read from flags and environment variables, validated all at once. */

import * as v from "valibot";
import type { Level } from "./log.ts";

/**
 * A setting: its flag, the environment variables that may set it (first wins), its default and
 * how to read it into a value of type `T`.
 */
export interface Setting<T = unknown> {
  readonly flag: string;
  readonly env: readonly string[];
  /** Without a default the setting is required. */
  readonly default?: string;
  readonly help: string;
  readonly schema: v.GenericSchema<string, T>;
  /** Flags that take no value (`--insecure-http`) are booleans. */
  readonly boolean?: boolean;
}

/** Declares a setting; its value has the type its schema reads. */
export function setting<T>(declaration: Setting<T>): Setting<T> {
  return declaration;
}

/** A mode's settings, keyed by the name of the value each one gives. */
export type SettingsTable = Readonly<Record<string, Setting>>;

/** What {@link readSettings} gives for a table: each key's value, typed by its schema. */
export type SettingsOf<Table extends SettingsTable> = {
  readonly [K in keyof Table]: v.InferOutput<Table[K]["schema"]>;
};

/** A table's settings in the order they are declared, for help text, references and tests. */
export function settingsList(table: SettingsTable): readonly Setting[] {
  return Object.values(table);
}

/** The modes the one binary runs in. */
export type Mode = "server" | "sidecar";

const MODES: readonly Mode[] = ["server", "sidecar"];

/** A whole number of `unit`, from 0 to `max`. */
function wholeNumber(unit: string, max: number) {
  return v.pipe(
    v.string(),
    v.regex(/^\d+$/, `expected a whole number of ${unit}`),
    v.transform(Number),
    v.maxValue(max, `expected at most ${max} ${unit}`),
  );
}

/** One of `values`, named in the message. */
function oneOf<const T extends string>(values: readonly T[]) {
  return v.pipe(
    v.string(),
    v.trim(),
    v.picklist(values, `expected one of ${values.map((s) => `"${s}"`).join(", ")}`),
  );
}

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
  wholeNumber,
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
  /** A comma-separated list of IAM role names; empty for none. */
  nameList: v.pipe(
    v.string(),
    v.transform((s) => s.split(",").map((n) => n.trim()).filter((n) => n !== "")),
    v.check(
      (names) => names.every((n) => /^[\w+=,.@-]{1,64}$/.test(n)),
      'expected comma-separated IAM role names (letters, digits, "+=.@_-")',
    ),
  ),
  oneOf,
  logLevel: oneOf<Level>(["debug", "info", "warn", "error"]),
};

/** `--log-level`, the same in every mode. */
export const logLevelSetting = setting({
  flag: "log-level",
  env: ["IRSA_LOG_LEVEL"],
  default: "info",
  help: "debug, info, warn or error.",
  schema: read.logLevel,
});

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
 * the table's keys, or throws {@link ConfigError} with every problem found.
 */
export function readSettings<Table extends SettingsTable>(
  table: Table,
  args: readonly string[],
  env: (name: string) => string | undefined,
): SettingsOf<Table> {
  const problems: ConfigProblem[] = [];
  const byFlag = new Map(settingsList(table).map((s) => [s.flag, s]));
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
  for (const [key, setting] of Object.entries(table)) {
    const fromEnv = setting.env.map((name) => ({ name, value: env(name) })).find((e) =>
      e.value !== undefined
    );
    const raw = given.get(setting.flag) ?? fromEnv?.value ?? setting.default;
    if (raw === undefined) {
      problems.push({ setting: label(setting), message: "required, not set" });
      continue;
    }
    const result = v.safeParse(setting.schema, raw);
    if (result.success) values[key] = result.output;
    else {
      const source = given.has(setting.flag)
        ? `--${setting.flag}`
        : fromEnv
        ? fromEnv.name
        : "default";
      problems.push({
        setting: label(setting),
        message: `${result.issues[0].message} (got ${JSON.stringify(raw)} from ${source})`,
      });
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  // Every key of the table has its schema's output here: each one either parsed or threw above.
  return values as SettingsOf<Table>;
}

function label(s: Setting): string {
  return [`--${s.flag}`, ...s.env].join(" / ");
}

/** The `--help` text of a mode: every setting with its variables and default. */
export function helpText(
  mode: Mode | undefined,
  tables: Readonly<Record<Mode, SettingsTable>>,
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
  const modes = mode ? [mode] : MODES;
  const sections = modes.map((m) =>
    [
      "",
      `Settings of "irsa ${m}" (flag, environment variables, default):`,
      ...settingsList(tables[m]).flatMap((s) => [
        `  --${s.flag}${s.env.length ? `  [${s.env.join(", ")}]` : ""}${
          s.default !== undefined ? `  (default: ${JSON.stringify(s.default)})` : "  (required)"
        }`,
        `      ${s.help}`,
      ]),
    ].join("\n")
  );
  return [...head, ...sections].join("\n") + "\n";
}
