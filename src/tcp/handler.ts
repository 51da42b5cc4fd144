/** The one shape of everything on the TCP data path: something that takes a connection. */
import type { Logger } from "../log/logger.ts";
import type { ConnRecord, TrafficTracker } from "../metrics/tracker.ts";
import type { NetAddr, Runtime, TcpConn } from "../runtime/types.ts";

/** What every handler may use: sockets, accounting and the log. */
export interface ProxyEnv {
  runtime: Runtime;
  tracker: TrafficTracker;
  logger: Logger;
  /** Every TCP connection not yet ended, so that a drain can wait for them and end the rest. */
  connections: Set<TcpContext>;
}

/** An accepted client connection on its way to a backend. */
export class TcpContext {
  /** Client bytes already read (a peeked ClientHello, say) that the backend must get first. */
  initial: Uint8Array | undefined;
  #destination: NetAddr | undefined;
  #ended = false;
  #onEnd: { contextEnded(): void } | undefined;

  /** `conn` may be replaced by a wrapper (a PROXY header guard) before it is served. */
  constructor(public conn: TcpConn, readonly record: ConnRecord, readonly env: ProxyEnv) {
    env.connections.add(this);
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

  /** Tells `watcher` when the connection ends (the proxy closes its backend so). */
  onEnd(watcher: { contextEnded(): void }): void {
    this.#onEnd = watcher;
  }

  /** True once {@link end} has been called. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Closes the client connection and records why; later calls do nothing. */
  end(reason: string): void {
    if (this.#ended) return;
    this.#ended = true;
    this.conn.close();
    this.#onEnd?.contextEnded();
    this.env.connections.delete(this);
    this.env.tracker.close(this.record, reason);
  }
}

/** A router, a service, a balancer: each takes a connection and sees it through. */
export interface TcpHandler {
  serve(ctx: TcpContext): void;
}
