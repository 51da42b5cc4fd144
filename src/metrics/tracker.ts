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
  /** The client: the socket's peer, or the original client a trusted PROXY header named. */
  client: NetAddr;
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

/** One UDP session: a client address bound to one backend socket. */
export interface UdpSessionRecord {
  readonly id: number;
  readonly entryPoint: string;
  readonly client: NetAddr;
  readonly startedAt: number;
  readonly router: string;
  readonly service: string;
  readonly server: string;
  /** Datagrams and bytes from the client to the backend. */
  datagramsIn: number;
  bytesIn: number;
  /** Datagrams and bytes from the backend to the client. */
  datagramsOut: number;
  bytesOut: number;
}

/** Running UDP totals of one entrypoint, router, service or server. */
export class UdpTotals {
  sessionsCreated = 0;
  sessionsExpired = 0;
  sessionsEvicted = 0;
  sessionsClosed = 0;
  datagramsIn = 0;
  datagramsOut = 0;
  bytesIn = 0;
  bytesOut = 0;
  /** Datagrams dropped: no server, a full queue, a refused send, a stranger's reply. */
  dropped = 0;
}

/** What an ended UDP session looked like, for the access log. */
export interface ClosedSession {
  record: UdpSessionRecord;
  durationMs: number;
  /** "expired", "evicted" or "closed". */
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
  readonly udpLive = new Set<UdpSessionRecord>();
  readonly udpEntryPoints = new Map<string, UdpTotals>();
  readonly udpRouters = new Map<string, UdpTotals>();
  readonly udpServices = new Map<string, UdpTotals>();
  /** Keyed by `service` and server address, joined by a space. */
  readonly udpServers = new Map<string, UdpTotals>();
  #nextId = 1;
  #onClosed: ((closed: ClosedConn) => void)[] = [];
  #onSessionClosed: ((closed: ClosedSession) => void)[] = [];
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** Calls `listener` for every connection that closes (the access log). */
  onClosed(listener: (closed: ClosedConn) => void): void {
    this.#onClosed.push(listener);
  }

  /** Calls `listener` for every UDP session that ends (the access log). */
  onSessionClosed(listener: (closed: ClosedSession) => void): void {
    this.#onSessionClosed.push(listener);
  }

  /** Records a new UDP session. */
  openSession(
    entryPoint: string,
    client: NetAddr,
    router: string,
    service: string,
    server: string,
  ): UdpSessionRecord {
    const record: UdpSessionRecord = {
      id: this.#nextId++,
      entryPoint,
      client,
      startedAt: this.#now(),
      router,
      service,
      server,
      datagramsIn: 0,
      bytesIn: 0,
      datagramsOut: 0,
      bytesOut: 0,
    };
    this.udpLive.add(record);
    for (const t of this.#udpTotals(record)) t.sessionsCreated++;
    return record;
  }

  /** Records the end of a UDP session; call once. */
  closeSession(record: UdpSessionRecord, reason: "expired" | "evicted" | "closed"): void {
    if (!this.udpLive.delete(record)) return;
    for (const t of this.#udpTotals(record)) {
      if (reason === "expired") t.sessionsExpired++;
      else if (reason === "evicted") t.sessionsEvicted++;
      else t.sessionsClosed++;
      t.datagramsIn += record.datagramsIn;
      t.datagramsOut += record.datagramsOut;
      t.bytesIn += record.bytesIn;
      t.bytesOut += record.bytesOut;
    }
    const closed = { record, durationMs: this.#now() - record.startedAt, reason };
    for (const listener of this.#onSessionClosed) listener(closed);
  }

  /** Records a dropped datagram on `entryPoint`. */
  dropped(entryPoint: string): void {
    udpTotals(this.udpEntryPoints, entryPoint).dropped++;
  }

  #udpTotals(r: UdpSessionRecord): UdpTotals[] {
    return [
      udpTotals(this.udpEntryPoints, r.entryPoint),
      udpTotals(this.udpRouters, r.router),
      udpTotals(this.udpServices, r.service),
      udpTotals(this.udpServers, `${r.service} ${r.server}`),
    ];
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
  return entry(map, key, () => new Totals());
}

function udpTotals(map: Map<string, UdpTotals>, key: string): UdpTotals {
  return entry(map, key, () => new UdpTotals());
}

function entry<T>(map: Map<string, T>, key: string, make: () => T): T {
  let t = map.get(key);
  if (t === undefined) map.set(key, t = make());
  return t;
}
