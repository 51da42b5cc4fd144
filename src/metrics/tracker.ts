/**
 * Accounting of connections: the live set and running totals per entrypoint, router, service and
 * server. Bytes are added to a connection's record on the data path (one addition a chunk) and
 * folded into the totals when it closes; a reader of totals adds the live records itself, so the
 * hot path never touches a map.
 */
import type { NetAddr } from "../runtime/types.ts";

/**
 * One proxied TCP connection, as the metrics, the status API and the access log see it. The
 * connection's own object is its record (one object less per connection held).
 */
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
  /** Where the tracker keeps the record in its live list; -1 when it is not there. */
  liveSlot: number;
  /** Closes the connection (a drain that ran out of time, a forced stop). */
  end(reason: string): void;
}

/**
 * The records of live connections, in no particular order. Adding and removing are O(1) and
 * allocate nothing once the array has grown: each record knows its slot, and the last record
 * fills a removed one's. A `Set` did the same work with a hash table whose churn (one add and
 * one delete a connection) cost l4p on Bun about 0.35 page faults a connection, measured (0.5
 * against 0.15 with no live set at all).
 */
export class LiveRecords<R extends { liveSlot: number }> implements Iterable<R> {
  #items: R[] = [];

  get size(): number {
    return this.#items.length;
  }

  add(record: R): void {
    record.liveSlot = this.#items.length;
    this.#items.push(record);
  }

  /** Removes `record`; false when it was not there. */
  delete(record: R): boolean {
    const items = this.#items;
    const slot = record.liveSlot;
    if (slot < 0 || items[slot] !== record) return false;
    const last = items.pop()!;
    if (last !== record) {
      items[slot] = last;
      last.liveSlot = slot;
    }
    record.liveSlot = -1;
    return true;
  }

  /** Iterates a copy, so that records may close meanwhile. */
  [Symbol.iterator](): Iterator<R> {
    return this.#items.slice()[Symbol.iterator]();
  }
}

/** Running totals of one entrypoint, router, service or server. */
export class Totals {
  opened = 0;
  closed = 0;
  bytesIn = 0;
  bytesOut = 0;
  dialErrors = 0;
}

/** A histogram with fixed buckets (upper bounds, in seconds). */
export class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(readonly buckets: readonly number[]) {
    this.counts = buckets.map(() => 0);
  }

  observe(value: number): void {
    const buckets = this.buckets;
    for (let i = 0; i < buckets.length; i++) {
      if (value <= buckets[i]) {
        this.counts[i]++;
        break;
      }
    }
    this.sum += value;
    this.count++;
  }
}

/** Connection duration buckets: from a quick exchange to an hour-long stream. */
export const DURATION_BUCKETS = [0.005, 0.05, 0.5, 1, 5, 30, 60, 300, 1800, 3600];

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
  /** See {@link ConnRecord.liveSlot}. */
  liveSlot: number;
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

/** What totals are kept by. */
export type Scope = "entryPoint" | "router" | "service" | "server";

/** The live connections and the totals; one per running l4p. */
export class TrafficTracker {
  readonly live: LiveRecords<ConnRecord> = new LiveRecords();
  readonly entryPoints: Map<string, Totals> = new Map();
  readonly routers: Map<string, Totals> = new Map();
  readonly services: Map<string, Totals> = new Map();
  /** Keyed by `service` and server address, joined by a space. */
  readonly servers: Map<string, Totals> = new Map();
  /** Connection durations, by entrypoint. */
  readonly durations: Map<string, Histogram> = new Map();
  /** Connections a middleware refused, keyed by router and middleware, joined by a space. */
  readonly refusals: Map<string, number> = new Map();
  /** Connections an entrypoint closed at once because it had `maxConnections` open. */
  readonly overLimit: Map<string, number> = new Map();
  /** Failed dials by service and error code, joined by a space (EADDRNOTAVAIL: out of ports). */
  readonly dialErrorCodes: Map<string, number> = new Map();
  /** Routing hooks' calls by `router middleware result` (pass, service, refuse, error, timeout). */
  readonly hookResults: Map<string, number> = new Map();
  /** The same for UDP routers' hooks (asked once per new session). */
  readonly udpHookResults: Map<string, number> = new Map();
  readonly udpLive: LiveRecords<UdpSessionRecord> = new LiveRecords();
  readonly udpEntryPoints: Map<string, UdpTotals> = new Map();
  readonly udpRouters: Map<string, UdpTotals> = new Map();
  readonly udpServices: Map<string, UdpTotals> = new Map();
  /** Keyed by `service` and server address, joined by a space. */
  readonly udpServers: Map<string, UdpTotals> = new Map();
  #lastId = 0;
  #onClosed: ((closed: ClosedConn) => void)[] = [];
  readonly #serverKeys: Map<string, Map<string, string>> = new Map();
  #onSessionClosed: ((closed: ClosedSession) => void)[] = [];
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** An id for a new connection or session. */
  nextId(): number {
    return ++this.#lastId;
  }

  /** The tracker's clock, in ms: what `startedAt` is measured by. */
  now(): number {
    return this.#now();
  }

  /** Calls `listener` for every connection that closes (the access log). */
  onClosed(listener: (closed: ClosedConn) => void): void {
    this.#onClosed.push(listener);
  }

  /** Whether anything is told of closed connections (so their client must be known by then). */
  get watchesClosed(): boolean {
    return this.#onClosed.length > 0;
  }

  /**
   * The key of `server` of `service` in {@link servers}: made once per pair, not per connection
   * (a new string would be hashed again at every lookup).
   */
  #serverKey(service: string, server: string): string {
    let keys = this.#serverKeys.get(service);
    if (!keys) this.#serverKeys.set(service, keys = new Map());
    let key = keys.get(server);
    if (key === undefined) keys.set(server, key = `${service} ${server}`);
    return key;
  }

  /**
   * Totals of one scope with the bytes of live connections added: what a reader (metrics, the
   * status API) should show. Copies; the tracker's own totals are not touched.
   */
  tcpTotals(scope: Scope): Map<string, Totals> {
    const keyOf = {
      entryPoint: (r: ConnRecord) => r.entryPoint,
      router: (r: ConnRecord) => r.router || undefined,
      service: (r: ConnRecord) => (r.server ? r.service : undefined),
      server: (r: ConnRecord) => (r.server ? `${r.service} ${r.server}` : undefined),
    }[scope];
    const maps = {
      entryPoint: this.entryPoints,
      router: this.routers,
      service: this.services,
      server: this.servers,
    };
    return withLive(maps[scope], () => new Totals(), this.live, keyOf, (t, r) => {
      t.bytesIn += r.bytesIn;
      t.bytesOut += r.bytesOut;
    });
  }

  /** Like {@link tcpTotals}, for UDP: live sessions' datagrams and bytes added. */
  udpTotals(scope: Scope): Map<string, UdpTotals> {
    const keyOf = {
      entryPoint: (r: UdpSessionRecord) => r.entryPoint,
      router: (r: UdpSessionRecord) => r.router,
      service: (r: UdpSessionRecord) => r.service,
      server: (r: UdpSessionRecord) => `${r.service} ${r.server}`,
    }[scope];
    const maps = {
      entryPoint: this.udpEntryPoints,
      router: this.udpRouters,
      service: this.udpServices,
      server: this.udpServers,
    };
    return withLive(maps[scope], () => new UdpTotals(), this.udpLive, keyOf, (t, r) => {
      t.datagramsIn += r.datagramsIn;
      t.datagramsOut += r.datagramsOut;
      t.bytesIn += r.bytesIn;
      t.bytesOut += r.bytesOut;
    });
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
      id: this.nextId(),
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
      liveSlot: -1,
    };
    this.udpLive.add(record);
    for (const t of this.#udpTotals(record)) t.sessionsCreated++;
    return record;
  }

  /** Records the end of a UDP session; call once. */
  closeSession(
    record: UdpSessionRecord,
    reason: "expired" | "evicted" | "closed" | "server down",
  ): void {
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

  /** Records `count` dropped datagrams (one by default) on `entryPoint`. */
  dropped(entryPoint: string, count = 1): void {
    udpTotals(this.udpEntryPoints, entryPoint).dropped += count;
  }

  #udpTotals(r: UdpSessionRecord): UdpTotals[] {
    return [
      udpTotals(this.udpEntryPoints, r.entryPoint),
      udpTotals(this.udpRouters, r.router),
      udpTotals(this.udpServices, r.service),
      udpTotals(this.udpServers, `${r.service} ${r.server}`),
    ];
  }

  /** Records an accepted connection (its id and start from {@link nextId} and {@link now}). */
  open(record: ConnRecord): void {
    this.live.add(record);
    totals(this.entryPoints, record.entryPoint).opened++;
  }

  /** Records that `record` reached a backend. */
  connected(record: ConnRecord, service: string, server: string): void {
    record.service = service;
    record.server = server;
    totals(this.services, service).opened++;
    totals(this.servers, this.#serverKey(service, server)).opened++;
  }

  /** Records that `record` was routed. */
  routed(record: ConnRecord, router: string): void {
    record.router = router;
    totals(this.routers, router).opened++;
  }

  /** Records a connection refused by middleware `middleware` of `router`. */
  refused(router: string, middleware: string): void {
    const key = `${router} ${middleware}`;
    this.refusals.set(key, (this.refusals.get(key) ?? 0) + 1);
  }

  /** Records how a routing hook's call ended (of a UDP router when `udp`). */
  hookResult(router: string, middleware: string, result: string, udp = false): void {
    const key = `${router} ${middleware} ${result}`;
    const map = udp ? this.udpHookResults : this.hookResults;
    map.set(key, (map.get(key) ?? 0) + 1);
  }

  /** Records a connection `entryPoint` closed at once, being at its `maxConnections`. */
  refusedOverLimit(entryPoint: string): void {
    this.overLimit.set(entryPoint, (this.overLimit.get(entryPoint) ?? 0) + 1);
  }

  /** TCP connections open now on `entryPoint`. */
  openOn(entryPoint: string): number {
    const t = this.entryPoints.get(entryPoint);
    return t ? t.opened - t.closed : 0;
  }

  /** Records a failed dial of `server` in `service`, with its error code. */
  dialFailed(service: string, server: string, code = "EIO"): void {
    const key = `${service} ${code}`;
    this.dialErrorCodes.set(key, (this.dialErrorCodes.get(key) ?? 0) + 1);
    totals(this.services, service).dialErrors++;
    totals(this.servers, this.#serverKey(service, server)).dialErrors++;
  }

  /** Records the end of `record`; call once. Allocates nothing unless something listens. */
  close(record: ConnRecord, reason: string): void {
    if (!this.live.delete(record)) return;
    addClosed(totals(this.entryPoints, record.entryPoint), record);
    if (record.router) addClosed(totals(this.routers, record.router), record);
    if (record.server) {
      addClosed(totals(this.services, record.service), record);
      addClosed(totals(this.servers, this.#serverKey(record.service, record.server)), record);
    }
    const durationMs = this.#now() - record.startedAt;
    let histogram = this.durations.get(record.entryPoint);
    if (!histogram) {
      this.durations.set(record.entryPoint, histogram = new Histogram(DURATION_BUCKETS));
    }
    histogram.observe(durationMs / 1000);
    if (this.#onClosed.length === 0) return;
    const closed = { record, durationMs, reason };
    for (const listener of this.#onClosed) listener(closed);
  }
}

function addClosed(t: Totals, record: ConnRecord): void {
  t.closed++;
  t.bytesIn += record.bytesIn;
  t.bytesOut += record.bytesOut;
}

function totals(map: Map<string, Totals>, key: string): Totals {
  let t = map.get(key);
  if (t === undefined) map.set(key, t = new Totals());
  return t;
}

/** Copies of `totals` with the live records' counts added (the totals are not touched). */
function withLive<T extends object, R>(
  totals: Map<string, T>,
  make: () => T,
  live: Iterable<R>,
  keyOf: (r: R) => string | undefined,
  add: (t: T, r: R) => void,
): Map<string, T> {
  const out = new Map<string, T>();
  for (const [k, v] of totals) out.set(k, Object.assign(make(), v));
  for (const r of live) {
    const t = out.get(keyOf(r) ?? "");
    if (t) add(t, r);
  }
  return out;
}

function udpTotals(map: Map<string, UdpTotals>, key: string): UdpTotals {
  return entry(map, key, () => new UdpTotals());
}

function entry<T>(map: Map<string, T>, key: string, make: () => T): T {
  let t = map.get(key);
  if (t === undefined) map.set(key, t = make());
  return t;
}
