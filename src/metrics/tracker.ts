/**
 * Accounting of connections: the live set and running totals per entrypoint, router, service and
 * server. Bytes are added to a connection's record on the data path (one addition a chunk) and
 * folded into the totals when it closes; a reader of totals adds the live records itself, so the
 * hot path never touches a map.
 */
import type { NetAddr } from "../runtime/types.ts";

/** One proxied TCP connection, as the metrics, the status API and the access log see it. */
export interface ConnRecord {
  readonly id: number;
  readonly entryPoint: string;
  readonly client: NetAddr;
  readonly startedAt: number;
  router: string;
  service: string;
  /** The backend address once one is dialled, else "". */
  server: string;
  /** Bytes from the client to the backend. */
  bytesIn: number;
  /** Bytes from the backend to the client. */
  bytesOut: number;
}

/** Running totals of one entrypoint, router, service or server. */
export class Totals {
  opened = 0;
  closed = 0;
  bytesIn = 0;
  bytesOut = 0;
  dialErrors = 0;
}

/** What a closed connection looked like, for the access log. */
export interface ClosedConn {
  record: ConnRecord;
  durationMs: number;
  reason: string;
}

/** The live connections and the totals; one per running l4p. */
export class TrafficTracker {
  readonly live = new Set<ConnRecord>();
  readonly entryPoints = new Map<string, Totals>();
  readonly routers = new Map<string, Totals>();
  readonly services = new Map<string, Totals>();
  /** Keyed by `service` and server address, joined by a space. */
  readonly servers = new Map<string, Totals>();
  #nextId = 1;
  #onClosed: ((closed: ClosedConn) => void)[] = [];
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** Calls `listener` for every connection that closes (the access log). */
  onClosed(listener: (closed: ClosedConn) => void): void {
    this.#onClosed.push(listener);
  }

  /** Records an accepted connection. */
  open(entryPoint: string, client: NetAddr): ConnRecord {
    const record: ConnRecord = {
      id: this.#nextId++,
      entryPoint,
      client,
      startedAt: this.#now(),
      router: "",
      service: "",
      server: "",
      bytesIn: 0,
      bytesOut: 0,
    };
    this.live.add(record);
    totals(this.entryPoints, entryPoint).opened++;
    return record;
  }

  /** Records that `record` reached a backend. */
  connected(record: ConnRecord, service: string, server: string): void {
    record.service = service;
    record.server = server;
    totals(this.services, service).opened++;
    totals(this.servers, `${service} ${server}`).opened++;
  }

  /** Records that `record` was routed. */
  routed(record: ConnRecord, router: string): void {
    record.router = router;
    totals(this.routers, router).opened++;
  }

  /** Records a failed dial of `server` in `service`. */
  dialFailed(service: string, server: string): void {
    totals(this.services, service).dialErrors++;
    totals(this.servers, `${service} ${server}`).dialErrors++;
  }

  /** Records the end of `record`; call once. */
  close(record: ConnRecord, reason: string): void {
    if (!this.live.delete(record)) return;
    const keys: [Map<string, Totals>, string][] = [[this.entryPoints, record.entryPoint]];
    if (record.router) keys.push([this.routers, record.router]);
    if (record.server) {
      keys.push([this.services, record.service], [
        this.servers,
        `${record.service} ${record.server}`,
      ]);
    }
    for (const [map, key] of keys) {
      const t = totals(map, key);
      t.closed++;
      t.bytesIn += record.bytesIn;
      t.bytesOut += record.bytesOut;
    }
    const closed = { record, durationMs: this.#now() - record.startedAt, reason };
    for (const listener of this.#onClosed) listener(closed);
  }
}

function totals(map: Map<string, Totals>, key: string): Totals {
  let t = map.get(key);
  if (!t) map.set(key, t = new Totals());
  return t;
}
