/** A `loadBalancer` service: picks a server by smooth WRR, dials it, retries the next on failure. */
import { SmoothWeightedRoundRobin, type Weighted } from "../balancer/wrr.ts";
import { formatAddr } from "../config/address.ts";
import type { NetAddr, TcpConn } from "../runtime/types.ts";
import type { TcpContext, TcpHandler } from "./handler.ts";
import { encodeProxyHeader, proxyHeaderFor } from "../proxy_protocol/codec.ts";
import { errorText, TcpPipe } from "./proxy.ts";

const noop = () => {};

/** How l4p talks to the servers of a service (traefik's `serversTransport`). */
export interface TcpTransport {
  /** Give up a dial after this long, in ms. */
  dialTimeout: number;
  /** See {@link TcpPipe}'s `terminationDelay`. */
  terminationDelay: number;
  /** Send a PROXY header of this version before the client's bytes. */
  proxyProtocol?: 1 | 2;
  /** TCP keep-alive idle time on backend connections, in ms; ≤ 0: off. */
  dialKeepAlive: number;
}

/** One backend server. */
export interface TcpServer {
  address: NetAddr;
  /** `host:port`, as in logs and metrics. */
  label: string;
}

/**
 * Serves each connection from one of its servers. A server whose dial fails is skipped and the
 * next one tried, each at most once a connection, so a client sees a failure only when every
 * server failed. While dialling, the client is watched: its first bytes are held for the
 * backend, and if it leaves without sending any, the dial is abandoned.
 */
export class TcpLoadBalancer implements TcpHandler {
  readonly #wrr: SmoothWeightedRoundRobin<TcpServer>;

  constructor(
    readonly name: string,
    servers: readonly Weighted<NetAddr>[],
    readonly transport: TcpTransport,
    random: (() => number) | null = Math.random,
  ) {
    this.#wrr = new SmoothWeightedRoundRobin(
      servers.map((s) => ({
        item: { address: s.item, label: formatAddr(s.item) },
        weight: s.weight,
      })),
      random,
    );
  }

  serve(ctx: TcpContext): void {
    this.#connect(ctx).catch((error) => {
      ctx.env.logger.error("unexpected failure serving a connection", {
        service: this.name,
        client: formatAddr(ctx.client),
        error: errorText(error),
      });
      ctx.end("internal error");
    });
  }

  async #connect(ctx: TcpContext): Promise<void> {
    const env = ctx.env;
    const pipe = new TcpPipe(ctx, this.transport.terminationDelay);
    let attempt: AbortController | undefined;
    // An end of stream before any byte means the client is gone: nothing would reach the
    // backend but a connect and a close. A half-close after some bytes is not that.
    pipe.onClientGone = () => attempt?.abort();
    ctx.conn.stream(pipe);
    const tried = new Set<TcpServer>();
    for (;;) {
      const server = this.#wrr.next((s) => tried.has(s));
      if (!server) {
        env.logger.repeated("warn", `unreachable ${this.name}`, "no server could be reached", {
          service: this.name,
          client: formatAddr(ctx.client),
          tried: tried.size,
        });
        pipe.close("no server reachable");
        return;
      }
      tried.add(server);
      const backend = pipe.clientGone
        ? undefined
        : await this.#dial(ctx, server, attempt = new AbortController());
      attempt = undefined;
      if (pipe.clientGone) {
        backend?.close();
        env.logger.debug("client left while its backend was being dialled", {
          service: this.name,
          client: formatAddr(ctx.client),
          server: server.label,
        });
        pipe.close("client left during dial");
        return;
      }
      if (ctx.ended) {
        backend?.close();
        return;
      }
      if (!backend) continue;
      env.tracker.connected(ctx, this.name, server.label);
      const prefix: Uint8Array[] = [];
      const version = this.transport.proxyProtocol;
      if (version) {
        prefix.push(encodeProxyHeader(proxyHeaderFor(version, ctx.client, ctx.destination)));
      }
      if (ctx.initial) {
        prefix.push(ctx.initial);
        ctx.bytesIn += ctx.initial.length;
        // Handed on: a long connection should not keep its ClientHello.
        ctx.initial = undefined;
      }
      // The closure holds this dial's state; a connection that lives long should not.
      pipe.onClientGone = noop;
      pipe.attach(backend, prefix);
      return;
    }
  }

  /** Dials `server`; a failure is logged and counted, and gives `undefined`. */
  async #dial(
    ctx: TcpContext,
    server: TcpServer,
    abort: AbortController,
  ): Promise<TcpConn | undefined> {
    // A plain timer, cleared as soon as the dial settles: AbortSignal.timeout's would outlive it.
    const timer = setTimeout(
      () => abort.abort(new DOMException("dial timed out", "TimeoutError")),
      this.transport.dialTimeout,
    );
    try {
      return await ctx.env.runtime.connect({
        hostname: server.address.hostname,
        port: server.address.port,
        signal: abort.signal,
        keepAlive: this.transport.dialKeepAlive,
      });
    } catch (error) {
      if ((error as { code?: string }).code === "EABORTED") return undefined;
      const code = errorText(error);
      ctx.env.tracker.dialFailed(this.name, server.label);
      // A dead server fails every dial: the first is logged, then one line a second.
      ctx.env.logger.repeated("warn", `dial ${this.name} ${server.label} ${code}`, "dial failed", {
        service: this.name,
        client: formatAddr(ctx.client),
        server: server.label,
        error: code,
      });
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }
}
