/**
 * What the dashboard and `l4p top` watch: a 15-minute history of connections and bytes per
 * entrypoint and per service (one sample a second, from the tracker's totals), the most recent
 * closed connections, and a Server-Sent Events stream that pushes the status every second.
 */
import type { ClosedConn, TrafficTracker } from "../metrics/tracker.ts";

/** One second's totals of one entrypoint or service. */
export interface Point {
  /** Connections (TCP) or sessions (UDP) open. */
  open: number;
  /** Since the start: connections opened, bytes from and to clients. */
  total: number;
  bytesIn: number;
  bytesOut: number;
}

/** Everything measured at one instant. */
export interface Sample {
  /** ms since the epoch. */
  t: number;
  entryPoints: Record<string, Point>;
  services: Record<string, Point>;
}

/** 15 minutes of samples, one a second. */
export const HISTORY_SAMPLES = 900;
/** Closed connections remembered for the dashboard. */
export const RECENT_CLOSED = 50;

/** Samples the tracker every second while started; remembers recent closes. */
export class LiveHistory {
  readonly #samples: Sample[] = [];
  /** The last {@link RECENT_CLOSED} closes, a ring: kept as they are, formatted when read. */
  readonly #recent: ClosedConn[] = [];
  readonly #recentAt: number[] = [];
  #nextRecent = 0;
  #timer: ReturnType<typeof setInterval> | undefined;

  /**
   * Samples `sample()` (with workers, the group's counts as last asked), else `tracker`, whose
   * closes it remembers.
   */
  constructor(readonly tracker: TrafficTracker, readonly sample?: () => TrafficTracker) {
    tracker.onClosed((c) => this.#closed(c));
  }

  /** Starts sampling (at once, then every second). */
  start(): void {
    if (this.#timer) return;
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), 1000);
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** The samples, oldest first. */
  samples(): Sample[] {
    return [...this.#samples];
  }

  /** The latest sample. */
  latest(): Sample | undefined {
    return this.#samples.at(-1);
  }

  /** The most recent closed connections, newest first. */
  recent(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    const n = this.#recent.length;
    for (let i = 1; i <= n; i++) {
      const at = (this.#nextRecent - i + n) % n;
      out.push(describeClosed(this.#recent[at], this.#recentAt[at]));
    }
    return out;
  }

  #sample(): void {
    const t = this.sample?.() ?? this.tracker;
    const point = (open: number, total: number, bytesIn: number, bytesOut: number): Point => ({
      open,
      total,
      bytesIn,
      bytesOut,
    });
    const entryPoints: Record<string, Point> = {};
    const services: Record<string, Point> = {};
    for (const [name, v] of t.tcpTotals("entryPoint")) {
      entryPoints[name] = point(v.opened - v.closed, v.opened, v.bytesIn, v.bytesOut);
    }
    for (const [name, v] of t.tcpTotals("service")) {
      services[name] = point(v.opened - v.closed, v.opened, v.bytesIn, v.bytesOut);
    }
    const active = (
      v: {
        sessionsCreated: number;
        sessionsExpired: number;
        sessionsEvicted: number;
        sessionsClosed: number;
      },
    ) => v.sessionsCreated - v.sessionsExpired - v.sessionsEvicted - v.sessionsClosed;
    for (const [name, v] of t.udpTotals("entryPoint")) {
      entryPoints[name] = point(active(v), v.sessionsCreated, v.bytesIn, v.bytesOut);
    }
    for (const [name, v] of t.udpTotals("service")) {
      services[`udp:${name}`] = point(active(v), v.sessionsCreated, v.bytesIn, v.bytesOut);
    }
    this.#samples.push({ t: Date.now(), entryPoints, services });
    if (this.#samples.length > HISTORY_SAMPLES) this.#samples.shift();
  }

  /** Runs for every closed connection: only remembers it (formatting waits for a reader). */
  #closed(closed: ClosedConn): void {
    const at = this.#nextRecent;
    this.#recent[at] = closed;
    this.#recentAt[at] = Date.now();
    this.#nextRecent = (at + 1) % RECENT_CLOSED;
  }
}

function describeClosed({ record: r, durationMs, reason }: ClosedConn, at: number) {
  return {
    at: new Date(at).toISOString(),
    entryPoint: r.entryPoint,
    router: r.router || null,
    service: r.service || null,
    client: `${r.client.hostname}:${r.client.port}`,
    server: r.server || null,
    durationMs,
    bytesIn: r.bytesIn,
    bytesOut: r.bytesOut,
    reason,
  };
}

/** Bytes of events a stream may hold unread before its client is dropped. */
export const MAX_UNREAD = 1024 * 1024;

/** Open event streams, so that closing the admin listener ends them. */
export class EventStreams {
  readonly #open = new Set<{ end(): void }>();

  /**
   * A `text/event-stream` response: the history at once, then `status` every second. A client
   * that loses it reconnects after a second (`retry`).
   */
  respond(history: LiveHistory, status: () => unknown): Response {
    const encoder = new TextEncoder();
    let handle: { end(): void } | undefined;
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        const send = (event: string, data: unknown) =>
          controller.enqueue(encoder.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`));
        controller.enqueue(encoder.encode("retry: 1000\n\n"));
        send("history", history.samples());
        send("status", status());
        const timer = setInterval(() => {
          // A client that does not read would have its events pile up here: past the bound,
          // it is dropped (its EventSource reconnects, if it was only slow).
          if (-(controller.desiredSize ?? 0) > MAX_UNREAD) return handle?.end();
          try {
            send("status", status());
          } catch {
            handle?.end(); // the client has gone
          }
        }, 1000);
        handle = {
          end: () => {
            clearInterval(timer);
            this.#open.delete(handle!);
            try {
              controller.close();
            } catch {
              // Already closed or cancelled.
            }
          },
        };
        this.#open.add(handle);
      },
      cancel: () => handle?.end(),
    }, { highWaterMark: 0, size: (chunk) => chunk?.byteLength ?? 0 });
    return new Response(body, {
      headers: {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-store",
      },
    });
  }

  /** Streams open now. */
  get size(): number {
    return this.#open.size;
  }

  /** Ends every stream (the admin listener is closing). */
  endAll(): void {
    for (const h of [...this.#open]) h.end();
  }
}
