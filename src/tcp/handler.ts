/** The one shape of everything on the TCP data path: something that takes a connection. */
import type { EntryPointSlots } from "../graph/shared.ts";
import type { MatchInfo } from "./rule.ts";
import type { Logger } from "../log/logger.ts";
import type { AcmeChallenges } from "../tls/acme.ts";
import type { ConnRecord, TrafficTracker } from "../metrics/tracker.ts";
import type { NetAddr, Runtime, TcpConn } from "../runtime/types.ts";

/** What every handler may use: sockets, accounting and the log. */
export interface ProxyEnv {
  runtime: Runtime;
  /** Its `live` set holds every TCP connection not yet ended, for a drain to wait on. */
  tracker: TrafficTracker;
  logger: Logger;
  /** Challenges of ACME orders under way, answered by the routers. */
  acme?: AcmeChallenges;
  /** In a group of workers: `maxConnections` places held by the others. */
  slots?: EntryPointSlots;
}

/** Something to tell when a connection ends. */
export interface EndWatcher {
  contextEnded(): void;
}

/** What a connection's watcher becomes once it has ended (a flag without a field of its own). */
const ENDED: EndWatcher = { contextEnded() {} };

/**
 * An accepted client connection on its way to a backend, and its own record for the tracker
 * (every field here is memory an idle connection holds, so the two are one object).
 */
export class TcpContext implements ConnRecord {
  readonly id: number;
  readonly startedAt: number;
  router = "";
  service = "";
  server = "";
  bytesIn = 0;
  bytesOut = 0;
  liveSlot = -1;
  /** Client bytes already read (a peeked ClientHello, say) that the backend must get first. */
  initial: Uint8Array | undefined;
  /** What the router learnt of the connection's first bytes (SNI, ALPN, protocols). */
  match: MatchInfo | undefined;
  #destination: NetAddr | undefined;
  #client: NetAddr | undefined;
  /** Told when the connection ends; {@link ENDED} once it has. */
  #onEnd: EndWatcher | undefined;

  /** The server name of the client's TLS ClientHello, when the router read one. */
  get sni(): string | undefined {
    return this.match?.sni;
  }

  /** `conn` may be replaced by a wrapper (a PROXY header guard) before it is served. */
  constructor(public conn: TcpConn, readonly entryPoint: string, readonly env: ProxyEnv) {
    this.id = env.tracker.nextId();
    this.startedAt = env.tracker.now();
    // Read at once only when closed connections are looked at (the access log, the dashboard):
    // Bun forgets the peer's port once the socket has closed.
    if (env.tracker.watchesClosed) this.#client = conn.remoteAddr;
    env.tracker.open(this);
  }

  /**
   * The client: the socket's peer, or the original client a trusted PROXY header named. Read
   * from the socket when first asked (on Bun each read of the peer is a system call; most
   * connections are never asked), or at once when closed connections are looked at.
   */
  get client(): NetAddr {
    return this.#client ??= this.conn.remoteAddr;
  }

  set client(addr: NetAddr) {
    this.#client = addr;
  }

  /**
   * The address the client connected to: ours, or the one a trusted PROXY header gave. Read
   * from the socket when asked (only PROXY headers need it), not kept on every connection.
   */
  get destination(): NetAddr {
    return this.#destination ?? this.conn.localAddr;
  }

  set destination(addr: NetAddr) {
    this.#destination = addr;
  }

  /**
   * Tells `watcher` when the connection ends (the proxy closes its backend so, a middleware
   * gives back its place); at once if it has ended already. A second watcher costs an object,
   * made only for connections that have one.
   */
  onEnd(watcher: EndWatcher): void {
    const first = this.#onEnd;
    if (first === ENDED) return watcher.contextEnded();
    this.#onEnd = first
      ? {
        contextEnded() {
          first.contextEnded();
          watcher.contextEnded();
        },
      }
      : watcher;
  }

  /** True once {@link end} has been called. */
  get ended(): boolean {
    return this.#onEnd === ENDED;
  }

  /** Closes the client connection and records why; later calls do nothing. */
  end(reason: string): void {
    const watcher = this.#onEnd;
    if (watcher === ENDED) return;
    this.#onEnd = ENDED;
    this.conn.close();
    watcher?.contextEnded();
    this.env.tracker.close(this, reason);
  }
}

/** A router, a service, a balancer: each takes a connection and sees it through. */
export interface TcpHandler {
  serve(ctx: TcpContext): void;
}
