/** Leveled, structured logging to one sink (stderr unless told otherwise). */
import process from "node:process";

/** Severity, lowest first. */
export type LogLevel = "debug" | "info" | "warn" | "error";
/** `text` for people at a terminal, `json` for log shippers. */
export type LogFormat = "text" | "json";
/** Extra key/value pairs of a log line. */
export type LogFields = Record<string, string | number | boolean | undefined>;

/** The log levels in order, for validation. */
export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];
const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** Where log lines go and how they look. */
export interface LoggerOptions {
  level?: LogLevel;
  format?: LogFormat;
  /** Receives each finished line, newline included. Defaults to stderr. */
  write?: (line: string) => void;
  /** The clock, for tests. */
  now?: () => Date;
}

/** A logger; lines below its level cost one comparison. */
export class Logger {
  level: LogLevel;
  format: LogFormat;
  readonly #write: (line: string) => void;
  readonly #now: () => Date;

  constructor(options: LoggerOptions = {}) {
    this.level = options.level ?? "info";
    this.format = options.format ?? "text";
    this.#write = options.write ?? ((line) => process.stderr.write(line));
    this.#now = options.now ?? (() => new Date());
  }

  /** True when a line at `level` would be written. */
  enabled(level: LogLevel): boolean {
    return RANK[level] >= RANK[this.level];
  }

  debug(msg: string, fields?: LogFields): void {
    if (RANK.debug >= RANK[this.level]) this.#emit("debug", msg, fields);
  }

  info(msg: string, fields?: LogFields): void {
    if (RANK.info >= RANK[this.level]) this.#emit("info", msg, fields);
  }

  warn(msg: string, fields?: LogFields): void {
    if (RANK.warn >= RANK[this.level]) this.#emit("warn", msg, fields);
  }

  error(msg: string, fields?: LogFields): void {
    this.#emit("error", msg, fields);
  }

  #emit(level: LogLevel, msg: string, fields?: LogFields): void {
    const time = this.#now().toISOString();
    if (this.format === "json") {
      this.#write(JSON.stringify({ time, level, msg, ...fields }) + "\n");
      return;
    }
    let line = `${time} ${level.toUpperCase().padEnd(5)} ${msg}`;
    if (fields) {
      for (const [k, v] of Object.entries(fields)) {
        if (v === undefined) continue;
        const s = String(v);
        line += /[\s"=]/.test(s) || s === "" ? ` ${k}=${JSON.stringify(s)}` : ` ${k}=${s}`;
      }
    }
    this.#write(line + "\n");
  }
}
