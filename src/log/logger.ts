/**
 * Leveled, structured logging to one sink: a {@link BoundedWriter} in a running l4p (never
 * blocking, bounded), stderr unless told otherwise. Repeated identical events are aggregated.
 */
import process from "node:process";
import { setTimeout as timeout } from "node:timers";
import type { LogOutput } from "../runtime/types.ts";
import { BoundedWriter } from "./writer.ts";

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
  /** Receives each finished line, newline included (tests). */
  write?: (line: string) => void;
  /**
   * Where lines go, through a {@link BoundedWriter} (never blocking, lines dropped and reported
   * when the output is slow). Without `write` or `output`: stderr, written synchronously.
   */
  output?: LogOutput;
  /** The clock, for tests. */
  now?: () => Date;
  /** How long repeats of one event are gathered into one summary line, in ms; default 1000. */
  repeatWindow?: number;
}

/** Distinct repeated events gathered at once; beyond it, repeats are only counted. */
const MAX_REPEATED_KEYS = 1000;

interface Repeat {
  level: LogLevel;
  msg: string;
  fields: LogFields | undefined;
  /** Occurrences since the last line about it. */
  count: number;
}

/** A logger; lines below its level cost one comparison. */
export class Logger {
  level: LogLevel;
  format: LogFormat;
  readonly writer: BoundedWriter | undefined;
  readonly #write: (line: string) => void;
  readonly #now: () => Date;
  readonly #repeatWindow: number;
  readonly #repeats = new Map<string, Repeat>();
  #repeatTimer: ReturnType<typeof timeout> | undefined;
  /** Repeats not gathered because too many distinct events were at once. */
  #overflow = 0;

  constructor(options: LoggerOptions = {}) {
    this.level = options.level ?? "info";
    this.format = options.format ?? "text";
    const writer = options.output
      ? new BoundedWriter(
        options.output,
        undefined,
        (dropped) => this.warn("log lines were dropped: the log output was too slow", { dropped }),
      )
      : undefined;
    this.writer = writer;
    this.#write = options.write ??
      (writer ? (line) => writer.write(line) : (line) => process.stderr.write(line));
    this.#now = options.now ?? (() => new Date());
    this.#repeatWindow = options.repeatWindow ?? 1000;
  }

  /** Log lines lost to a slow or failed output since the start. */
  get dropped(): number {
    return this.writer?.dropped ?? 0;
  }

  /** Resolves once every line so far has been written (before the process exits). */
  flush(): Promise<void> {
    return this.writer?.flush() ?? Promise.resolve();
  }

  /**
   * An event that may come in storms (accept failures, dials to a dead server): the first of a
   * kind (`key`) is logged at once; further ones within the window are counted and summed up in
   * one line a window, with `repeated` = how many. A quiet window forgets the key.
   */
  repeated(level: LogLevel, key: string, msg: string, fields?: LogFields): void {
    if (!this.enabled(level)) return;
    const seen = this.#repeats.get(key);
    if (seen) {
      seen.count++;
      seen.fields = fields;
      return;
    }
    if (this.#repeats.size >= MAX_REPEATED_KEYS) {
      this.#overflow++;
      return;
    }
    this.#repeats.set(key, { level, msg, fields, count: 0 });
    this.#emit(level, msg, fields);
    this.#repeatTimer ??= this.#armRepeats();
  }

  #armRepeats(): ReturnType<typeof timeout> {
    const timer = timeout(() => {
      this.#repeatTimer = undefined;
      for (const [key, r] of this.#repeats) {
        if (r.count === 0) {
          this.#repeats.delete(key);
          continue;
        }
        this.#emit(r.level, `${r.msg} (repeated)`, { ...r.fields, repeated: r.count });
        r.count = 0;
      }
      if (this.#overflow > 0) {
        this.#emit("warn", "more repeated events than can be told apart; not logged", {
          repeated: this.#overflow,
        });
        this.#overflow = 0;
      }
      if (this.#repeats.size > 0) this.#repeatTimer = this.#armRepeats();
    }, this.#repeatWindow);
    // A summary pending must not keep a finished process alive.
    timer.unref();
    return timer;
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
