/**
 * The access log: one line per closed TCP connection and per ended UDP session, JSON by default
 * (for log shippers) or text (for people), to stderr or a file.
 */
import process from "node:process";
import { formatAddr } from "../config/address.ts";
import type { ClosedConn, ClosedSession, TrafficTracker } from "../metrics/tracker.ts";
import type { LogOutput } from "../runtime/types.ts";
import { BoundedWriter } from "./writer.ts";

/** Where access lines go and how they look. */
export interface AccessLogOptions {
  format: "json" | "text";
  /** Only connections and sessions that lasted at least this long, in ms (traefik's filter). */
  minDuration?: number;
  /** Its own output (a file), written through a bounded writer of its own and closed with it. */
  output?: LogOutput;
  /** Else a writer shared with the log (stderr), so lines of both never interleave. */
  writer?: BoundedWriter;
  /** Else this receives each line (tests); else stderr. */
  write?: (line: string) => void;
  /** Told how many access lines a slow output cost, once it has caught up. */
  onDropped?: (count: number) => void;
  now?: () => Date;
  /** Whether lines are written now (access lines are info-level); always when absent. */
  active?: () => boolean;
}

/** Writes an access line for every connection and session `tracker` sees end. */
export class AccessLog {
  /** The writer of its own output, if it has one. */
  readonly #own: BoundedWriter | undefined;
  readonly #write: (line: string) => void;
  readonly #now: () => Date;

  constructor(tracker: TrafficTracker, readonly options: AccessLogOptions) {
    this.#now = options.now ?? (() => new Date());
    const writer = options.output
      ? this.#own = new BoundedWriter(options.output, undefined, options.onDropped)
      : options.writer;
    this.#write = writer
      ? (line) => writer.write(line)
      : options.write ?? ((line) => process.stderr.write(line));
    tracker.onClosed((c) => this.#tcp(c));
    tracker.onSessionClosed((s) => this.#udp(s));
  }

  /** Access lines lost to a slow or failed output of its own since the start. */
  get dropped(): number {
    return this.#own?.dropped ?? 0;
  }

  /** Writes what is queued, then closes its own output (a file), if any. */
  async close(): Promise<void> {
    if (!this.#own) return;
    await this.#own.flush();
    this.#own.output.close();
  }

  #tcp({ record: r, durationMs, reason }: ClosedConn): void {
    if (durationMs < (this.options.minDuration ?? 0)) return;
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
    if (durationMs < (this.options.minDuration ?? 0)) return;
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
