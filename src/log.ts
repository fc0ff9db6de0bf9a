/** JSON-lines logger: the only module that writes to the console. */

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
  /** Where lines go; defaults to standard error. Tests pass an array's push. */
  write?: (line: string) => void;
  now?: () => Date;
}

/** Creates a logger that writes one JSON object per line. */
export function createLogger(options: LoggerOptions = {}, base: Fields = {}): Logger {
  const min = rank[options.level ?? "info"];
  const write = options.write ?? ((line: string) => console.error(line));
  const now = options.now ?? (() => new Date());
  const emit = (level: Level, msg: string, fields: Fields = {}) => {
    if (rank[level] < min) return;
    write(
      JSON.stringify({ time: now().toISOString(), level, msg, ...base, ...fields }, errorReplacer),
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
