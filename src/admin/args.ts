/** `irsa admin`'s command line: the commands, their flags, and parsing them into one plain value. */

/** Thrown for bad usage; main exits 2 with its message. */
export class UsageError extends Error {
  override readonly name = "UsageError";
  constructor(message: string, readonly command?: string) {
    super(message);
  }
}

/** A flag: `value` flags take one argument (`--x V` or `--x=V`), the others none. */
export interface FlagSpec {
  readonly name: string;
  readonly short?: string;
  readonly value?: string;
  readonly env?: string;
  readonly help: string;
}

/** One command: its words, positional arguments, own flags and help. */
export interface CommandSpec {
  readonly words: readonly string[];
  readonly args?: readonly string[];
  readonly flags: readonly FlagSpec[];
  readonly summary: string;
  readonly example: string;
}

/** Flags every command takes. */
export const GLOBAL_FLAGS: readonly FlagSpec[] = [
  {
    name: "server",
    value: "URL",
    env: "IRSA_SERVER",
    help:
      "The irsa server (default: the origin of DOMINO_IRSA_ENDPOINT, as in workspaces, else https://irsa-svc.domino-field)",
  },
  {
    name: "ca",
    value: "FILE",
    env: "DOMINO_IRSA_SSL_CERT",
    help: "PEM file of the CA to trust for the server",
  },
  { name: "token", value: "TOKEN", env: "IRSA_TOKEN", help: "Bearer token of an admin" },
  { name: "token-file", value: "FILE", help: "File holding the bearer token" },
  {
    name: "api-key",
    value: "KEY",
    env: "DOMINO_USER_API_KEY",
    help: "Platform API key, sent as X-Domino-Api-Key",
  },
  {
    name: "output",
    short: "o",
    value: "FORMAT",
    help: "table (default), json or yaml",
  },
  { name: "help", short: "h", help: "Show help" },
];

/** Every command. */
export const COMMANDS: readonly CommandSpec[] = [
  {
    words: ["mappings", "get"],
    flags: [],
    summary: "Show every organization's role pairs",
    example: "irsa admin mappings get -o yaml > mappings.yaml",
  },
  {
    words: ["mappings", "apply"],
    flags: [
      {
        name: "filename",
        short: "f",
        value: "FILE",
        help: 'YAML or JSON file: {"all_role_mappings": {...}} or the organizations alone',
      },
      { name: "dry-run", help: "Change nothing; show the diff and each role's capacity after" },
      { name: "prune", help: "Remove organizations the file does not name (and revoke)" },
    ],
    summary: "Apply a whole mappings file in one update, checked first",
    example: "irsa admin mappings apply -f mappings.yaml --dry-run --prune",
  },
  {
    words: ["capacity"],
    flags: [],
    summary: "Each proxy role's subjects held and how many more fit",
    example: "irsa admin capacity",
  },
  {
    words: ["trust"],
    args: ["ROLE_ARN"],
    flags: [],
    summary: "The subjects in a proxy role's trust policy and who holds them",
    example: "irsa admin trust arn:aws:iam::111111111111:role/acme-list-bucket-role",
  },
  {
    words: ["explain"],
    flags: [
      { name: "user", value: "USER", help: "The platform user name (required)" },
      { name: "run", value: "RUN_ID", help: "The run whose pod to check" },
      { name: "profile", value: "NAME", help: "The AWS profile (asset role name) to check" },
    ],
    summary: "Why a user's pod can or cannot assume a profile, step by step",
    example:
      "irsa admin explain --user jdoe --run 646d27b817c28b5ea4b5b0c1 --profile acme-read-bucket-role",
  },
  {
    words: ["report"],
    flags: [{ name: "html", value: "FILE", help: "Where to write the report (required)" }],
    summary: "One self-contained HTML page: capacity, mappings, holders, last changes",
    example: "irsa admin report --html irsa-report.html",
  },
];

/** A parsed command line. */
export interface Parsed {
  readonly command?: CommandSpec;
  readonly args: readonly string[];
  readonly flags: Readonly<Record<string, string | true>>;
  readonly help: boolean;
}

/** Parses `irsa admin ...` (after `admin`); flags may come before or after the command words. */
export function parseArgs(argv: readonly string[]): Parsed {
  const words: string[] = [];
  const raw: { name: string; value?: string }[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") {
      words.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith("--") || (a.startsWith("-") && a.length > 1)) {
      const [name, inline] = a.startsWith("--")
        ? splitOnce(a.slice(2))
        : [a.slice(1, 2), a.length > 2 ? a.slice(2).replace(/^=/, "") : undefined];
      raw.push({ name, value: inline });
      // The value is taken below, once the command (and so its flags) is known.
      const spec = findFlag(name, undefined);
      if (spec?.value && inline === undefined && i + 1 < argv.length) raw.at(-1)!.value = argv[++i];
      continue;
    }
    words.push(a);
  }
  const command = COMMANDS.filter((c) => c.words.every((w, i) => words[i] === w))
    .sort((a, b) => b.words.length - a.words.length)[0];
  const flags: Record<string, string | true> = {};
  let help = false;
  for (const { name, value } of raw) {
    const spec = findFlag(name, command);
    if (!spec) {
      throw new UsageError(
        `unknown flag ${JSON.stringify(name.length === 1 ? `-${name}` : `--${name}`)}`,
        command?.words.join(" "),
      );
    }
    if (spec.name === "help") {
      help = true;
      continue;
    }
    if (spec.value) {
      if (value === undefined) throw new UsageError(`flag --${spec.name} needs a ${spec.value}`);
      flags[spec.name] = value;
    } else {
      if (value !== undefined) throw new UsageError(`flag --${spec.name} takes no value`);
      flags[spec.name] = true;
    }
  }
  if (help) return { command, args: words.slice(command?.words.length ?? 0), flags, help };
  if (!command) {
    throw new UsageError(
      words.length === 0
        ? "no command given"
        : `unknown command ${JSON.stringify(words.join(" "))}`,
    );
  }
  const args = words.slice(command.words.length);
  const want = command.args ?? [];
  if (args.length !== want.length) {
    throw new UsageError(
      want.length === 0
        ? `"${command.words.join(" ")}" takes no arguments, got ${JSON.stringify(args.join(" "))}`
        : `"${command.words.join(" ")}" needs ${want.join(" ")}`,
      command.words.join(" "),
    );
  }
  const output = flags.output;
  if (output !== undefined && !["table", "json", "yaml"].includes(output as string)) {
    throw new UsageError(`-o must be table, json or yaml, not ${JSON.stringify(output)}`);
  }
  return { command, args, flags, help };
}

function splitOnce(s: string): [string, string | undefined] {
  const i = s.indexOf("=");
  return i < 0 ? [s, undefined] : [s.slice(0, i), s.slice(i + 1)];
}

function findFlag(name: string, command: CommandSpec | undefined): FlagSpec | undefined {
  const all = [...GLOBAL_FLAGS, ...(command ? command.flags : COMMANDS.flatMap((c) => c.flags))];
  return all.find((f) => f.name === name || f.short === name);
}

function flagLines(flags: readonly FlagSpec[]): string[] {
  const left = (f: FlagSpec) =>
    `${f.short ? `-${f.short}, ` : "    "}--${f.name}${f.value ? ` ${f.value}` : ""}`;
  const width = Math.max(...flags.map((f) => left(f).length));
  return flags.map((f) => `  ${left(f).padEnd(width)}  ${f.help}${f.env ? ` [env ${f.env}]` : ""}`);
}

/** Where the credentials come from, in the order they are looked for. */
export const AUTHENTICATION =
  "Authentication, first found: --token, --token-file, --api-key, IRSA_TOKEN, DOMINO_USER_API_KEY, then the workspace's $DOMINO_API_PROXY/access-token.";

/** Help for one command, or for `irsa admin` itself. */
export function helpFor(command?: CommandSpec): string {
  const exits = "Exit codes: 0 done, 1 failed (or, for explain, a step failed), 2 bad usage.";
  if (!command) {
    const width = Math.max(
      ...COMMANDS.map((c) => c.words.join(" ").length + 1 + (c.args ?? []).join(" ").length),
    );
    return [
      "irsa admin: see, explain and change what the irsa server does, over its HTTPS API (admins only).",
      "",
      "Usage: irsa admin <command> [flags]",
      "",
      "Commands:",
      ...COMMANDS.map((c) =>
        `  ${[...c.words, ...(c.args ?? [])].join(" ").padEnd(width)}  ${c.summary}`
      ),
      "",
      "Flags of every command:",
      ...flagLines(GLOBAL_FLAGS),
      "",
      AUTHENTICATION,
      exits,
      'Run "irsa admin <command> --help" for a command\'s flags.',
    ].join("\n");
  }
  return [
    `irsa admin ${command.words.join(" ")}: ${command.summary}.`,
    "",
    `Usage: irsa admin ${[...command.words, ...(command.args ?? [])].join(" ")} [flags]`,
    "",
    ...(command.flags.length ? ["Flags:", ...flagLines(command.flags), ""] : []),
    "Flags of every command:",
    ...flagLines(GLOBAL_FLAGS),
    "",
    `Example: ${command.example}`,
    "",
    AUTHENTICATION,
    exits,
  ].join("\n");
}
