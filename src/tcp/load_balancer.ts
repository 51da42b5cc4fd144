/**
 * A `loadBalancer` service: picks a server by its strategy among those that are up, dials it,
 * and tries the next on failure.
 */
import type { Strategy } from "../balancer/candidate.ts";
import { formatAddr } from "../config/address.ts";
import type { ServerState } from "../health/server_state.ts";
import type { HealthSource, ServiceHealth } from "../health/service_health.ts";
import { canonicalIp, parseIp } from "../net/ip.ts";
import { originateTls, type TlsClientOptions } from "../runtime/tls.ts";
import { DialCancel, type TcpConn } from "../runtime/types.ts";
import { deadlines } from "./deadlines.ts";
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
  /**
   * TCP keep-alive idle time on backend connections, in ms; ≤ 0: off. Switched on once a
   * connection has lasted a second (`KEEPALIVE_AFTER` in proxy.ts).
   */
  dialKeepAlive: number;
  /** How servers marked `tls` are dialled (system roots and the server's host name if absent). */
  tls?: Omit<TlsClientOptions, "timeout">;
}

/** A TCP service: a handler whose health its parents can follow. */
export interface TcpService extends TcpHandler {
  readonly health: HealthSource;
}

/**
 * Serves each connection from one of its servers. Servers that are down sit out while any
 * server is up (when every one is down, all are tried: better a slow answer than none). A
 * server whose dial fails is skipped and the next one tried, each at most once a connection,
 * so a client sees a failure only when every server failed. While dialling, the client is
 * watched: its first bytes are held for the backend, and if it leaves without sending any, the
 * dial is abandoned.
 */
export class TcpLoadBalancer implements TcpService {
  constructor(
    readonly name: string,
    readonly servers: readonly ServerState[],
    readonly transport: TcpTransport,
    readonly strategy: Strategy<ServerState>,
    readonly health: ServiceHealth,
  ) {}

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

  /** The next server to try: one that is up and untried, else (none such left) any untried. */
  #next(tried: Set<ServerState>, key: string): ServerState | undefined {
    const servers = this.servers;
    if (this.health.upCount === servers.length) {
      return this.strategy.pick(tried.size ? (s) => tried.has(s) : undefined, key);
    }
    const upLeft = servers.some((s) => s.up && !tried.has(s));
    return this.strategy.pick((s) => tried.has(s) || (upLeft && !s.up), key);
  }

  async #connect(ctx: TcpContext): Promise<void> {
    const env = ctx.env;
    const pipe = new TcpPipe(ctx, this.transport.terminationDelay);
    let attempt: DialCancel | undefined;
    // An end of stream before any byte means the client is gone: nothing would reach the
    // backend but a connect and a close. A half-close after some bytes is not that.
    pipe.onClientGone = () => attempt?.abandon();
    ctx.conn.stream(pipe);
    const tried = new Set<ServerState>();
    const key = this.strategy.usesKey ? canonicalIp(ctx.client.hostname) : "";
    for (;;) {
      const server = this.#next(tried, key);
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
        : await this.#dial(ctx, server, attempt = new DialCancel());
      attempt = undefined;
      if (pipe.clientGone) {
        backend?.close();
        // Guarded: the fields (a getpeername on Bun for the client) would be made with debug off.
        if (env.logger.enabled("debug")) {
          env.logger.debug("client left while its backend was being dialled", {
            service: this.name,
            client: formatAddr(ctx.client),
            server: server.label,
          });
        }
        pipe.close("client left during dial");
        return;
      }
      if (ctx.ended) {
        backend?.close();
        return;
      }
      if (!backend) continue;
      env.tracker.connected(ctx, this.name, server.label);
      if (this.strategy.usesLive) {
        server.live++;
        ctx.onEnd({ contextEnded: () => server.live-- });
      }
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
      if (this.transport.dialKeepAlive > 0) pipe.keepBackendAlive(this.transport.dialKeepAlive);
      return;
    }
  }

  /** Dials `server`; a failure is logged, counted and told to passive health, and gives `undefined`. */
  async #dial(
    ctx: TcpContext,
    server: ServerState,
    cancel: DialCancel,
  ): Promise<TcpConn | undefined> {
    // One timer for every dial of this timeout, not one each.
    const deadline = deadlines(this.transport.dialTimeout).add(() => cancel.timeOut());
    const started = Date.now();
    try {
      const conn = await ctx.env.runtime.connect({
        hostname: server.address.hostname,
        port: server.address.port,
        cancel,
        // Switched on by the pipe once the connection has lasted a second, not at every dial.
      });
      if (!server.tls) return conn;
      const host = server.address.hostname;
      return await originateTls(conn, {
        ...this.transport.tls,
        serverName: this.transport.tls?.serverName ?? (parseIp(host) ? undefined : host),
        timeout: Math.max(1, this.transport.dialTimeout - (Date.now() - started)),
      });
    } catch (error) {
      const code = errorText(error);
      if (code === "EABORTED") return undefined;
      ctx.env.tracker.dialFailed(this.name, server.label, code);
      if (code === "EADDRNOTAVAIL") {
        ctx.env.logger.repeated("warn", `ports ${this.name}`, "out of local ports for dials", {
          service: this.name,
          server: server.label,
          hint:
            "each closed connection holds its port in TIME_WAIT for 60s: set net.ipv4.tcp_tw_reuse=1, widen net.ipv4.ip_local_port_range, or spread over more server addresses",
        });
      }
      this.health.dialFailed(server, code);
      // A dead server fails every dial: the first is logged, then one line a second.
      ctx.env.logger.repeated("warn", `dial ${this.name} ${server.label} ${code}`, "dial failed", {
        service: this.name,
        client: formatAddr(ctx.client),
        server: server.label,
        error: code,
        detail: server.tls ? (error as Error).message : undefined,
      });
      return undefined;
    } finally {
      deadline.cancel();
    }
  }
}
