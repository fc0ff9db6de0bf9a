/** JSON-lines logger: the only module that writes to standard error or touches the console. */

import { isoTime } from "./iso_time.ts";

/** Log levels in increasing order of severity. */
export type Level = "debug" | "info" | "warn" | "error";

const rank: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Fields of one log line; never put a token or a secret here. */
export type Fields = Readonly<Record<string, unknown>>;

/** A structured logger; `child` adds fields to every line it writes. */
export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  child(fields: Fields): Logger;
}

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  level?: Level;
  /** Where lines go; defaults to standard error (not through `console`, which {@link captureConsole} may take over). Tests pass an array's push. */
  write?: (line: string) => void;
  now?: () => Date;
}

/** Creates a logger that writes one JSON object per line. */
export function createLogger(options: LoggerOptions = {}, base: Fields = {}): Logger {
  const min = rank[options.level ?? "info"];
  const write = options.write ?? writeStderr;
  // A number, not a Date: see isoTime.
  const now = options.now ? () => options.now!().getTime() : Date.now;
  const emit = (level: Level, msg: string, fields: Fields = {}) => {
    if (rank[level] < min) return;
    write(
      JSON.stringify({ time: isoTime(now()), level, msg, ...base, ...fields }, errorReplacer),
    );
  };
  return {
    debug: (msg, fields) => emit("debug", msg, fields),
    info: (msg, fields) => emit("info", msg, fields),
    warn: (msg, fields) => emit("warn", msg, fields),
    error: (msg, fields) => emit("error", msg, fields),
    child: (fields) => createLogger(options, { ...base, ...fields }),
  };
}

/** A logger that drops everything, for tests that do not look at logs. */
export const silentLogger: Logger = createLogger({ write: () => {} });

// Error objects stringify to {} by default; keep what helps an operator.
function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    return {
      name: value.name,
      message: value.message,
      ...("code" in value ? { code: value.code } : {}),
    };
  }
  return value;
}

const encoder = new TextEncoder();

function writeStderr(line: string): void {
  const bytes = encoder.encode(line + "\n");
  for (let at = 0; at < bytes.length;) at += Deno.stderr.writeSync(bytes.subarray(at));
}

type ConsoleMethod = "debug" | "log" | "info" | "warn" | "error" | "trace";
const CONSOLE_LEVELS: Record<ConsoleMethod, Level> = {
  debug: "debug",
  log: "info",
  info: "info",
  warn: "warn",
  error: "error",
  trace: "debug",
};

/**
 * Makes whatever else writes to the console (the runtime's own warnings, such as Deno.serve's
 * legacy-abort notice, and libraries) write JSON lines through `logger` instead of plain text, so
 * every line of the process parses. Returns a function that puts the console back.
 */
export function captureConsole(logger: Logger, target: Console = console): () => void {
  const saved = new Map<ConsoleMethod, unknown>();
  for (const method of Object.keys(CONSOLE_LEVELS) as ConsoleMethod[]) {
    saved.set(method, target[method]);
    const level = CONSOLE_LEVELS[method];
    target[method] = (...args: unknown[]) =>
      logger[level]("console output", {
        source: "console",
        text: args.map((a) => typeof a === "string" ? a : Deno.inspect(a)).join(" "),
      });
  }
  return () => {
    for (const [method, original] of saved) {
      (target as unknown as Record<string, unknown>)[method] = original;
    }
  };
}
