/** Builds the data path from a {@link Config} and runs it. */
import { formatAddr } from "../config/address.ts";
import { formatDuration } from "../config/duration.ts";
import {
  type Config,
  DEFAULTS,
  type EntryPointProxyProtocol,
  type TcpLoadBalancerConfig,
} from "../config/model.ts";
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

/** A running l4p: entrypoints, routers and services built from one configuration. */
export class L4pServer {
  readonly tracker = new TrafficTracker();
  readonly env: ProxyEnv;
  readonly #tcp = new Map<string, TcpEntryPoint>();
  readonly #udp = new Map<string, UdpEntryPoint>();
  readonly #random: (() => number) | null;

  constructor(options: ServerOptions) {
    this.env = { runtime: options.runtime, logger: options.logger, tracker: this.tracker };
    this.#random = options.random === undefined ? Math.random : options.random;
  }

  /** Opens every entrypoint of `config`; on failure nothing is left open. */
  async start(config: Config): Promise<void> {
    const routers = this.#buildRouters(config);
    const udpRoutes = this.#buildUdpRoutes(config);
    try {
      for (const [name, ep] of Object.entries(config.entryPoints)) {
        let bound: NetAddr;
        try {
          if (ep.protocol === "tcp") {
            const handler = routers.get(name) ?? new TcpRouter(name, [], ep.helloTimeout);
            const entryPoint = new TcpEntryPoint(name, ep.address, this.env, handler, {
              reusePort: ep.reusePort,
              proxyProtocol: acceptOptions(ep.proxyProtocol),
            });
            entryPoint.start();
            this.#tcp.set(name, entryPoint);
            bound = entryPoint.addr!;
          } else {
            const entryPoint = new UdpEntryPoint(
              name,
              ep.address,
              this.env,
              udpRoutes.get(name),
              ep.udp,
            );
            await entryPoint.start();
            this.#udp.set(name, entryPoint);
            bound = entryPoint.addr!;
          }
        } catch (error) {
          const code = (error as { code?: string }).code ?? "EIO";
          throw new ListenError(name, ep.address.text, code, error);
        }
        this.env.logger.info("listening", {
          entryPoint: name,
          protocol: ep.protocol,
          address: formatAddr(bound),
          forwardsTo: describeRoutes(config, name),
        });
      }
    } catch (error) {
      this.close();
      throw error;
    }
  }

  /** The bound address of an entrypoint (the real port when 0 was asked for). */
  addressOf(entryPoint: string): NetAddr | undefined {
    return this.#tcp.get(entryPoint)?.addr ?? this.#udp.get(entryPoint)?.addr;
  }

  /** The number of live UDP sessions of an entrypoint. */
  udpSessions(entryPoint: string): number {
    return this.#udp.get(entryPoint)?.sessions ?? 0;
  }

  /** Stops every listener; established TCP connections go on, UDP sessions end. */
  close(): void {
    for (const ep of this.#tcp.values()) ep.close();
    this.#tcp.clear();
    for (const ep of this.#udp.values()) ep.close();
    this.#udp.clear();
  }

  #buildUdpRoutes(config: Config): Map<string, UdpRoute> {
    const services = new Map<string, UdpService>();
    const service = (name: string, path: string[] = []): UdpService => {
      const built = services.get(name);
      if (built) return built;
      const sc = config.udp.services[name];
      if (!sc) throw new Error(`udp service "${name}" is not defined`);
      if (path.includes(name)) throw new Error(`udp service cycle: ${[...path, name].join(" → ")}`);
      const handler = sc.loadBalancer
        ? new UdpLoadBalancer(
          name,
          sc.loadBalancer.servers.map((s) => ({ item: s.address, weight: s.weight })),
          this.#random,
        )
        : new UdpWeighted(
          name,
          sc.weighted.services.map((c) => ({
            item: service(c.name, [...path, name]),
            weight: c.weight,
          })),
          this.#random,
        );
      services.set(name, handler);
      return handler;
    };
    const routes = new Map<string, UdpRoute>();
    for (const [router, rc] of Object.entries(config.udp.routers)) {
      for (const ep of rc.entryPoints) routes.set(ep, { router, service: service(rc.service) });
    }
    return routes;
  }

  #buildRouters(config: Config): Map<string, TcpRouter> {
    const services = new Map<string, TcpHandler>();
    const service = (name: string, path: string[] = []): TcpHandler => {
      const built = services.get(name);
      if (built) return built;
      const sc = config.tcp.services[name];
      if (!sc) throw new Error(`tcp service "${name}" is not defined`);
      if (path.includes(name)) throw new Error(`tcp service cycle: ${[...path, name].join(" → ")}`);
      const handler = sc.loadBalancer
        ? new TcpLoadBalancer(
          name,
          sc.loadBalancer.servers.map((s) => ({ item: s.address, weight: s.weight })),
          transportOf(config, sc.loadBalancer),
          this.#random,
        )
        : new TcpWeighted(
          name,
          sc.weighted.services.map((c) => ({
            item: service(c.name, [...path, name]),
            weight: c.weight,
          })),
          this.#random,
        );
      services.set(name, handler);
      return handler;
    };
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
