/** A TCP entrypoint: a listener whose connections go to a (swappable) handler. */
import { formatAddr, type HostPort } from "../config/address.ts";
import type { NetAddr, TcpListener } from "../runtime/types.ts";
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
      onAcceptError: (error) =>
        env.logger.error("accept failed", { entryPoint: this.name, error: errorText(error) }),
    }, (conn) => {
      const ctx = new TcpContext(conn, this.name, env);
      // Guarded: the fields would be built for every connection even with debug off.
      if (env.logger.enabled("debug")) {
        env.logger.debug("accepted", { entryPoint: this.name, client: formatAddr(ctx.client) });
      }
      this.#accepted(ctx);
    });
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
