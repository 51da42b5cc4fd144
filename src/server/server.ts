/** Builds the data path from a {@link Config} and runs it. */
import { formatAddr } from "../config/address.ts";
import { formatDuration } from "../config/duration.ts";
import {
  type Config,
  DEFAULTS,
  type EntryPointConfig,
  type EntryPointProxyProtocol,
  type ServerConfig,
  type TcpLoadBalancerConfig,
  type WeightedConfig,
} from "../config/model.ts";
import type { Weighted } from "../balancer/wrr.ts";
import { type Cidr, CidrSet, parseCidr } from "../net/ip.ts";
import type { AcceptProxyOptions } from "../proxy_protocol/accept.ts";
import type { Logger } from "../log/logger.ts";
import { TrafficTracker } from "../metrics/tracker.ts";
import type { NetAddr, Runtime } from "../runtime/types.ts";
import { TcpEntryPoint } from "../tcp/entrypoint.ts";
import type { ProxyEnv, TcpHandler } from "../tcp/handler.ts";
import { TcpLoadBalancer, type TcpTransport } from "../tcp/load_balancer.ts";
import { type TcpRoute, TcpRouter } from "../tcp/router.ts";
import { parseRule } from "../tcp/rule.ts";
import { TcpWeighted } from "../tcp/weighted.ts";
import { UdpEntryPoint, type UdpRoute } from "../udp/entrypoint.ts";
import { UdpLoadBalancer, type UdpService, UdpWeighted } from "../udp/service.ts";

/** An entrypoint could not listen. */
export class ListenError extends Error {
  constructor(
    readonly entryPoint: string,
    readonly address: string,
    readonly code: string,
    cause: unknown,
  ) {
    const why = code === "EADDRINUSE"
      ? "the address is already in use"
      : code === "EACCES"
      ? "permission denied (ports below 1024 need privileges)"
      : code === "EADDRNOTAVAIL"
      ? "no interface has that address"
      : (cause as Error)?.message ?? code;
    super(`entrypoint "${entryPoint}" cannot listen on ${address}: ${why}`, { cause });
    this.name = "ListenError";
  }
}

/** Options for {@link L4pServer}. */
export interface ServerOptions {
  runtime: Runtime;
  logger: Logger;
  /** Random source for the balancers' shuffle; `null` keeps configuration order. */
  random?: (() => number) | null;
}

/** How configuration reloads went, for metrics and the status API. */
export class ReloadStats {
  successes = 0;
  failures = 0;
  /** When the configuration in force was applied (ms since the epoch). */
  lastSuccessAt = 0;
  lastFailureAt = 0;
  lastError = "";
}

/** A running l4p: entrypoints, routers and services built from one configuration. */
export class L4pServer {
  readonly tracker = new TrafficTracker();
  readonly env: ProxyEnv;
  readonly reloads = new ReloadStats();
  readonly startedAt = Date.now();
  readonly #tcp = new Map<string, TcpEntryPoint>();
  readonly #udp = new Map<string, UdpEntryPoint>();
  readonly #random: (() => number) | null;
  #config: Config | undefined;

  constructor(options: ServerOptions) {
    this.env = {
      runtime: options.runtime,
      logger: options.logger,
      tracker: this.tracker,
    };
    this.#random = options.random === undefined ? Math.random : options.random;
  }

  /** The configuration in force. */
  get config(): Config | undefined {
    return this.#config;
  }

  /** Opens every entrypoint of `config`; on failure nothing is left open. */
  async start(config: Config): Promise<void> {
    await this.apply(config);
    this.reloads.lastSuccessAt = Date.now();
  }

  /**
   * Puts `config` in force. Entrypoints whose listening settings are unchanged keep their
   * sockets (no connection is refused meanwhile) and only take the new routers and services;
   * new ones are opened, and removed or changed ones closed once their replacements listen.
   * Established connections keep the backend they have. If any listener cannot be opened,
   * nothing changes and the error is thrown.
   */
  async apply(config: Config): Promise<void> {
    const routers = this.#buildRouters(config);
    const udpRoutes = this.#buildUdpRoutes(config);
    // Running entrypoints by what they listen on: a new entrypoint with the same settings
    // (under its old name or, renamed, under another) takes over the socket.
    const running = new Map<string, TcpEntryPoint | UdpEntryPoint>();
    for (const [name, ep] of Object.entries(this.#config?.entryPoints ?? {})) {
      const live = ep.protocol === "tcp" ? this.#tcp.get(name) : this.#udp.get(name);
      if (live) running.set(listenKey(ep), live);
    }
    const kept = new Map<string, TcpEntryPoint | UdpEntryPoint>();
    const opened: (TcpEntryPoint | UdpEntryPoint)[] = [];
    try {
      for (const [name, ep] of Object.entries(config.entryPoints)) {
        const key = listenKey(ep);
        const live = running.get(key);
        if (live) {
          running.delete(key);
          kept.set(name, live);
        } else {
          opened.push(await this.#open(name, ep, routers, udpRoutes, config));
        }
      }
    } catch (error) {
      await Promise.all(opened.map((ep) => ep.close()));
      throw error;
    }
    // Everything listens: switch over, then close what is no longer configured (and wait until
    // its ports refuse, so that "reloaded" means done).
    await Promise.all([...running.values()].map((ep) => ep.close()));
    this.#tcp.clear();
    this.#udp.clear();
    for (const [name, ep] of kept) {
      const epc = config.entryPoints[name];
      ep.name = name;
      if (ep instanceof TcpEntryPoint) {
        ep.handler = routers.get(name) ?? new TcpRouter(name, [], epc.helloTimeout);
        ep.options.proxyProtocol = acceptOptions(epc.proxyProtocol);
        this.#tcp.set(name, ep);
      } else {
        ep.route = udpRoutes.get(name);
        this.#udp.set(name, ep);
      }
    }
    for (const ep of opened) {
      if (ep instanceof TcpEntryPoint) this.#tcp.set(ep.name, ep);
      else this.#udp.set(ep.name, ep);
    }
    this.#config = config;
  }

  async #open(
    name: string,
    ep: EntryPointConfig,
    routers: Map<string, TcpRouter>,
    udpRoutes: Map<string, UdpRoute>,
    config: Config,
  ): Promise<TcpEntryPoint | UdpEntryPoint> {
    let entryPoint: TcpEntryPoint | UdpEntryPoint;
    try {
      if (ep.protocol === "tcp") {
        const handler = routers.get(name) ?? new TcpRouter(name, [], ep.helloTimeout);
        entryPoint = new TcpEntryPoint(name, ep.address, this.env, handler, {
          reusePort: ep.reusePort,
          proxyProtocol: acceptOptions(ep.proxyProtocol),
        });
        entryPoint.start();
      } else {
        entryPoint = new UdpEntryPoint(name, ep.address, this.env, udpRoutes.get(name), ep.udp);
        await entryPoint.start();
      }
    } catch (error) {
      const code = (error as { code?: string }).code ?? "EIO";
      throw new ListenError(name, ep.address.text, code, error);
    }
    this.env.logger.info("listening", {
      entryPoint: name,
      protocol: ep.protocol,
      address: formatAddr(entryPoint.addr!),
      forwardsTo: describeRoutes(config, name),
    });
    return entryPoint;
  }

  /** The bound address of an entrypoint (the real port when 0 was asked for). */
  addressOf(entryPoint: string): NetAddr | undefined {
    return this.#tcp.get(entryPoint)?.addr ?? this.#udp.get(entryPoint)?.addr;
  }

  /** The number of live UDP sessions of an entrypoint. */
  udpSessions(entryPoint: string): number {
    return this.#udp.get(entryPoint)?.sessions ?? 0;
  }

  /**
   * Stops every listener; established TCP connections go on, UDP sessions end. Resolves once
   * every TCP port refuses new connections.
   */
  close(): Promise<void> {
    const closing = [...this.#tcp.values()].map((ep) => ep.close());
    this.#tcp.clear();
    for (const ep of this.#udp.values()) ep.close();
    this.#udp.clear();
    return Promise.all(closing).then(() => {});
  }

  /**
   * Stops accepting, then waits up to `timeoutMs` for established TCP connections to finish;
   * those still open then are closed. Resolves to how many had to be closed.
   */
  async drain(timeoutMs: number): Promise<number> {
    await this.close();
    const live = this.tracker.live;
    if (live.size > 0) {
      this.env.logger.info("draining", { connections: live.size, timeoutMs });
      const end = Date.now() + timeoutMs;
      while (live.size > 0 && Date.now() < end) {
        await new Promise((r) => setTimeout(r, Math.min(50, Math.max(1, end - Date.now()))));
      }
    }
    const forced = live.size;
    for (const conn of [...live]) conn.end("drain timeout");
    return forced;
  }

  #buildUdpRoutes(config: Config): Map<string, UdpRoute> {
    const service = serviceBuilder<UdpService>(
      "udp",
      config.udp.services,
      (name, lb) => new UdpLoadBalancer(name, servers(lb.servers), this.#random),
      (name, children) => new UdpWeighted(name, children, this.#random),
    );
    const routes = new Map<string, UdpRoute>();
    for (const [router, rc] of Object.entries(config.udp.routers)) {
      for (const ep of rc.entryPoints) routes.set(ep, { router, service: service(rc.service) });
    }
    return routes;
  }

  #buildRouters(config: Config): Map<string, TcpRouter> {
    const service = serviceBuilder<TcpHandler>(
      "tcp",
      config.tcp.services,
      (name, lb) =>
        new TcpLoadBalancer(name, servers(lb.servers), transportOf(config, lb), this.#random),
      (name, children) => new TcpWeighted(name, children, this.#random),
    );
    const routers = new Map<string, TcpRouter>();
    for (const [ep, epc] of Object.entries(config.entryPoints)) {
      if (epc.protocol !== "tcp") continue;
      const routes: TcpRoute[] = routerOrder(config, ep).map((name) => ({
        name,
        rule: parseRule(config.tcp.routers[name].rule),
        handler: service(config.tcp.routers[name].service),
      }));
      routers.set(ep, new TcpRouter(ep, routes, epc.helloTimeout));
    }
    return routers;
  }
}

/**
 * The TCP routers of an entrypoint in match order: highest priority first, where a router's
 * priority is its own `priority` or else its rule's length (the longest rule wins, as in
 * traefik); names break ties.
 */
export function routerOrder(config: Config, entryPoint: string): string[] {
  const priority = (name: string) => {
    const r = config.tcp.routers[name];
    return r.priority ?? r.rule.length;
  };
  return Object.keys(config.tcp.routers)
    .filter((name) => config.tcp.routers[name].entryPoints.includes(entryPoint))
    .sort((a, b) => priority(b) - priority(a) || a.localeCompare(b));
}

/** What a configuration sets up, one entrypoint a line with its routers in match order. */
export function describeConfig(config: Config): string {
  let out = "";
  for (const [name, ep] of Object.entries(config.entryPoints)) {
    out += `entrypoint ${name} (${ep.protocol} ${ep.address.text})`;
    if (ep.protocol === "tcp") {
      const order = routerOrder(config, name);
      out += order.length
        ? `: routers in match order: ${
          order.map((r) =>
            `${r} [${config.tcp.routers[r].rule} → ${config.tcp.routers[r].service}]`
          ).join(", ")
        }`
        : ": no router";
    } else {
      const routers = Object.keys(config.udp.routers).filter((r) =>
        config.udp.routers[r].entryPoints.includes(name)
      );
      out += routers.length
        ? `: routers: ${routers.map((r) => `${r} [→ ${config.udp.routers[r].service}]`).join(", ")}`
        : ": no router";
    }
    out += "\n";
  }
  return out;
}

function servers(list: readonly ServerConfig[]): Weighted<NetAddr>[] {
  return list.map((s) => ({ item: s.address, weight: s.weight }));
}

/**
 * Builds services on demand, each once: a load balancer from its servers, a weighted service
 * from its (already built) children. The configuration was checked, so a missing service or a
 * cycle here is a bug, and throws.
 */
function serviceBuilder<H>(
  protocol: string,
  defs: Record<
    string,
    {
      loadBalancer?: TcpLoadBalancerConfig | { servers: ServerConfig[] };
      weighted?: WeightedConfig;
    }
  >,
  loadBalancer: (name: string, lb: TcpLoadBalancerConfig) => H,
  weighted: (name: string, children: Weighted<H>[]) => H,
): (name: string) => H {
  const built = new Map<string, H>();
  const build = (name: string, path: string[]): H => {
    const done = built.get(name);
    if (done) return done;
    const def = defs[name];
    if (!def) throw new Error(`${protocol} service "${name}" is not defined`);
    if (path.includes(name)) {
      throw new Error(`${protocol} service cycle: ${[...path, name].join(" → ")}`);
    }
    const handler = def.loadBalancer ? loadBalancer(name, def.loadBalancer) : weighted(
      name,
      def.weighted!.services.map((c) => ({
        item: build(c.name, [...path, name]),
        weight: c.weight,
      })),
    );
    built.set(name, handler);
    return handler;
  };
  return (name) => build(name, []);
}

/** What must stay the same for an entrypoint to keep its listening socket across a reload. */
function listenKey(ep: EntryPointConfig): string {
  return JSON.stringify([ep.protocol, ep.address.hostname, ep.address.port, ep.reusePort, ep.udp]);
}

function acceptOptions(pp: EntryPointProxyProtocol | undefined): AcceptProxyOptions | undefined {
  if (!pp) return undefined;
  const ranges = pp.trustedIPs.map((t) => parseCidr(t)).filter((c): c is Cidr =>
    typeof c !== "string"
  );
  return { trusted: pp.insecure ? "all" : new CidrSet(ranges), headerTimeout: pp.headerTimeout };
}

/** The transport a load balancer uses: its serversTransport, then its own v2 settings. */
export function transportOf(config: Config, lb: TcpLoadBalancerConfig): TcpTransport {
  const named = lb.serversTransport ? config.tcp.serversTransports[lb.serversTransport] : undefined;
  return {
    dialTimeout: named?.dialTimeout ?? DEFAULTS.dialTimeout,
    terminationDelay: lb.terminationDelay ?? named?.terminationDelay ?? DEFAULTS.terminationDelay,
    proxyProtocol: (lb.proxyProtocol ?? named?.proxyProtocol)?.version,
  };
}

function describeTransport(t: TcpTransport): string {
  const pp = t.proxyProtocol ? `, proxyProtocol v${t.proxyProtocol}` : "";
  const delay = formatDuration(t.terminationDelay);
  return `dialTimeout ${formatDuration(t.dialTimeout)}, terminationDelay ${delay}${pp}`;
}

function describeRoutes(config: Config, entryPoint: string): string {
  const parts: string[] = [];
  const servers = (lb?: { servers: { address: { text: string } }[] }) =>
    lb?.servers.map((s) => s.address.text).join(",");
  for (const [name, rc] of Object.entries(config.tcp.routers)) {
    if (!rc.entryPoints.includes(entryPoint)) continue;
    const sc = config.tcp.services[rc.service];
    const t = sc?.loadBalancer ? transportOf(config, sc.loadBalancer) : undefined;
    parts.push(
      `${name}→${servers(sc?.loadBalancer) ?? `service ${rc.service}`}` +
        (t ? ` (${describeTransport(t)})` : ""),
    );
  }
  for (const [name, rc] of Object.entries(config.udp.routers)) {
    if (!rc.entryPoints.includes(entryPoint)) continue;
    const ep = config.entryPoints[entryPoint];
    const sc = config.udp.services[rc.service];
    parts.push(
      `${name}→${servers(sc?.loadBalancer) ?? `service ${rc.service}`}` +
        ` (timeout ${formatDuration(ep.udp.timeout)}, maxSessions ${ep.udp.maxSessions})`,
    );
  }
  return parts.join("; ") || "nothing (no router)";
}
