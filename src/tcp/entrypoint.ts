/** A TCP entrypoint: a listener whose connections go to a (swappable) handler. */
import { formatAddr, type HostPort } from "../config/address.ts";
import type { NetAddr, TcpConn, TcpListener } from "../runtime/types.ts";
import {
  type AcceptProxyOptions,
  guardAgainstProxyHeader,
  isTrusted,
  readProxyHeader,
} from "../proxy_protocol/accept.ts";
import { type ProxyEnv, TcpContext, type TcpHandler } from "./handler.ts";
import { errorText } from "./proxy.ts";

/** Settings of a TCP entrypoint. */
export interface TcpEntryPointOptions {
  /** SO_REUSEPORT, so that several processes can share the port. */
  reusePort?: boolean;
  /** Take PROXY headers from these sources (and refuse them from others). */
  proxyProtocol?: AcceptProxyOptions;
  /** TCP keep-alive idle time on accepted connections, in ms; absent or ≤ 0: off. */
  keepAlive?: number;
  /**
   * Most connections open at once. Beyond it a new connection is closed as soon as it is
   * accepted (counted, logged once a second at most): the listener keeps accepting, so the
   * kernel's queue never fills and the clients hear at once.
   */
  maxConnections?: number;
}

/** Listens on one address and hands each accepted connection to `handler`. */
export class TcpEntryPoint {
  /** Where new connections go; replacing it affects only connections accepted afterwards. */
  handler: TcpHandler;
  #listener: TcpListener | undefined;

  constructor(
    /** The entrypoint's name; a reload that renames it keeps the listener. */
    public name: string,
    readonly address: HostPort,
    readonly env: ProxyEnv,
    handler: TcpHandler,
    readonly options: TcpEntryPointOptions = {},
  ) {
    this.handler = handler;
  }

  /** The bound address (with the real port when 0 was asked for). */
  get addr(): NetAddr | undefined {
    return this.#listener?.addr;
  }

  /** Starts listening; throws a `SocketError` (EADDRINUSE, …) when the address can't be had. */
  start(): void {
    const env = this.env;
    this.#listener = env.runtime.listen({
      hostname: this.address.hostname,
      port: this.address.port,
      reusePort: this.options.reusePort,
      onAcceptError: (error) => {
        const code = errorText(error);
        env.logger.repeated("error", `accept ${this.name} ${code}`, "accept failed", {
          entryPoint: this.name,
          error: code,
          hint: code === "EMFILE" || code === "ENFILE"
            ? "out of file descriptors: raise the limit (ulimit -n, LimitNOFILE) or set maxConnections"
            : undefined,
        });
      },
    }, (conn) => {
      const max = this.options.maxConnections;
      if (max === undefined) return void this.#admit(conn);
      const here = env.tracker.openOn(this.name);
      if (here >= max) return this.#overLimit(conn);
      const taken = env.slots ? env.slots.take(this.name, max, here) : true;
      if (taken === true) return void this.#admit(conn);
      if (taken === false) return this.#overLimit(conn);
      // A worker's place, held in the first process: given back when the connection ends.
      const name = this.name;
      taken.then((ok) => {
        if (!ok) return this.#overLimit(conn);
        this.#admit(conn).onEnd({ contextEnded: () => env.slots!.give(name) });
      });
    });
  }

  /** Takes `conn` in: its context, handed to the handler (past a PROXY header, if any). */
  #admit(conn: TcpConn): TcpContext {
    const env = this.env;
    // Read per connection: a reload changes the options in place, keeping the socket.
    const keepAlive = this.options.keepAlive;
    if (keepAlive !== undefined && keepAlive > 0) conn.keepAlive?.(keepAlive);
    const ctx = new TcpContext(conn, this.name, env);
    // Guarded: the fields would be built for every connection even with debug off.
    if (env.logger.enabled("debug")) {
      env.logger.debug("accepted", { entryPoint: this.name, client: formatAddr(ctx.client) });
    }
    this.#accepted(ctx);
    return ctx;
  }

  #overLimit(conn: TcpConn): void {
    const env = this.env;
    conn.close();
    env.tracker.refusedOverLimit(this.name);
    env.logger.repeated(
      "warn",
      `maxConnections ${this.name}`,
      "entrypoint at maxConnections; new connection closed",
      {
        entryPoint: this.name,
        maxConnections: this.options.maxConnections,
      },
    );
  }

  #accepted(ctx: TcpContext): void {
    const pp = this.options.proxyProtocol;
    if (!pp) return this.handler.serve(ctx);
    if (!isTrusted(pp, ctx)) {
      ctx.conn = guardAgainstProxyHeader(ctx);
      return this.handler.serve(ctx);
    }
    readProxyHeader(ctx, pp).then((ok) => {
      if (ok) this.handler.serve(ctx);
    });
  }

  /** Stops accepting; established connections go on. Resolves once the port refuses. */
  close(): Promise<void> {
    const listener = this.#listener;
    this.#listener = undefined;
    return listener ? listener.close() : Promise.resolve();
  }
}
