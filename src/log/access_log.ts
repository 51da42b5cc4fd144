/**
 * The access log: one line per closed TCP connection and per ended UDP session, JSON by default
 * (for log shippers) or text (for people), to stderr or a file.
 */
import { createWriteStream, type WriteStream } from "node:fs";
import process from "node:process";
import { formatAddr } from "../config/address.ts";
import type { ClosedConn, ClosedSession, TrafficTracker } from "../metrics/tracker.ts";

/** Where access lines go and how they look. */
export interface AccessLogOptions {
  format: "json" | "text";
  /** Append to this file; stderr when absent. */
  filePath?: string;
  /** Receives each line instead (tests). */
  write?: (line: string) => void;
  now?: () => Date;
  /** Whether lines are written now (access lines are info-level); always when absent. */
  active?: () => boolean;
}

/** Writes an access line for every connection and session `tracker` sees end. */
export class AccessLog {
  readonly #write: (line: string) => void;
  readonly #stream: WriteStream | undefined;
  readonly #now: () => Date;

  constructor(tracker: TrafficTracker, readonly options: AccessLogOptions) {
    this.#now = options.now ?? (() => new Date());
    if (options.write) {
      this.#write = options.write;
    } else if (options.filePath) {
      const stream = createWriteStream(options.filePath, { flags: "a" });
      // A failing log file must not take the proxy down; the error is said once on stderr.
      stream.on(
        "error",
        (e) => process.stderr.write(`l4p: access log ${options.filePath}: ${e.message}\n`),
      );
      this.#stream = stream;
      this.#write = (line) => stream.write(line);
    } else {
      this.#write = (line) => process.stderr.write(line);
    }
    tracker.onClosed((c) => this.#tcp(c));
    tracker.onSessionClosed((s) => this.#udp(s));
  }

  /** Flushes and closes the file, if any. */
  close(): void {
    this.#stream?.end();
  }

  #tcp({ record: r, durationMs, reason }: ClosedConn): void {
    this.#line({
      protocol: "tcp",
      entryPoint: r.entryPoint,
      router: r.router || undefined,
      service: r.service || undefined,
      client: formatAddr(r.client),
      server: r.server || undefined,
      durationMs,
      bytesIn: r.bytesIn,
      bytesOut: r.bytesOut,
      reason,
    });
  }

  #udp({ record: r, durationMs, reason }: ClosedSession): void {
    this.#line({
      protocol: "udp",
      entryPoint: r.entryPoint,
      router: r.router,
      service: r.service,
      client: formatAddr(r.client),
      server: r.server,
      durationMs,
      datagramsIn: r.datagramsIn,
      datagramsOut: r.datagramsOut,
      bytesIn: r.bytesIn,
      bytesOut: r.bytesOut,
      reason,
    });
  }

  #line(fields: Record<string, string | number | undefined>): void {
    if (this.options.active && !this.options.active()) return;
    const time = this.#now().toISOString();
    if (this.options.format === "json") {
      this.#write(JSON.stringify({ time, ...fields }) + "\n");
      return;
    }
    const f = fields;
    const datagrams = f.protocol === "udp" ? ` ${f.datagramsIn}/${f.datagramsOut} datagrams` : "";
    this.#write(
      `${time} ${f.protocol} ${f.client} → ${f.entryPoint}/${f.router ?? "-"} → ${
        f.service ?? "-"
      }/${f.server ?? "-"} ` +
        `${f.durationMs}ms in=${f.bytesIn} out=${f.bytesOut}${datagrams} ${
          JSON.stringify(f.reason)
        }\n`,
    );
  }
}
