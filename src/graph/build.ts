/**
 * Building the handler graph from a {@link Config}: a pure step, no sockets. Each TCP
 * entrypoint gets a router; each router's connections pass its middlewares, then its service (a
 * load balancer over servers, or a weighted service over other services). What must outlive a
 * reload (a middleware's per-client counts) is kept in a {@link KeptState} by what it is.
 */
import type { Weighted } from "../balancer/wrr.ts";
import {
  type Config,
  DEFAULTS,
  type EntryPointProxyProtocol,
  type ServerConfig,
  type TcpLoadBalancerConfig,
  type WeightedConfig,
} from "../config/model.ts";
import { type Cidr, CidrSet, parseCidr } from "../net/ip.ts";
import type { AcceptProxyOptions } from "../proxy_protocol/accept.ts";
import type { NetAddr } from "../runtime/types.ts";
import type { TcpHandler } from "../tcp/handler.ts";
import { TcpLoadBalancer, type TcpTransport } from "../tcp/load_balancer.ts";
import { ConnRateLimit, RateBuckets } from "../tcp/middlewares/conn_rate_limit.ts";
import { InFlightConn, InFlightCounts } from "../tcp/middlewares/in_flight_conn.ts";
import { IpAllowList } from "../tcp/middlewares/ip_allow_list.ts";
import { type TcpRoute, TcpRouter } from "../tcp/router.ts";
import { parseRule } from "../tcp/rule.ts";
import { TcpWeighted } from "../tcp/weighted.ts";
import type { UdpRoute } from "../udp/entrypoint.ts";
import { UdpLoadBalancer, type UdpService, UdpWeighted } from "../udp/service.ts";
import { routerOrder } from "./describe.ts";

/** The handlers a configuration runs: a router per TCP entrypoint, a route per UDP one. */
export interface Graph {
  tcp: Map<string, TcpRouter>;
  udp: Map<string, UdpRoute>;
}

/**
 * State that a rebuilt graph takes over from the one before, by key (what it belongs to and its
 * settings): an unchanged `inFlightConn` keeps counting the connections it let through.
 */
export class KeptState {
  #current = new Map<string, unknown>();
  #next = new Map<string, unknown>();

  /** The state kept under `key`, else a new one from `make`; marked as used by the next graph. */
  keep<T>(key: string, make: () => T): T {
    const value = (this.#next.get(key) ?? this.#current.get(key) ?? make()) as T;
    this.#next.set(key, value);
    return value;
  }

  /** The graph built since the last commit is in force: forget what it did not use. */
  commit(): void {
    this.#current = this.#next;
    this.#next = new Map();
  }

  /** The graph built since the last commit was not put in force. */
  discard(): void {
    this.#next = new Map();
  }
}

/** Options of {@link buildGraph}. */
export interface BuildOptions {
  /** Random source for the balancers' shuffle; `null` keeps configuration order. */
  random: (() => number) | null;
  kept: KeptState;
}

/** Builds every router, middleware and service of `config`. */
export function buildGraph(config: Config, options: BuildOptions): Graph {
  return { tcp: buildTcp(config, options), udp: buildUdp(config, options) };
}

function buildUdp(config: Config, { random }: BuildOptions): Map<string, UdpRoute> {
  const service = serviceBuilder<UdpService>(
    "udp",
    config.udp.services,
    (name, lb) => new UdpLoadBalancer(name, servers(lb.servers), random),
    (name, children) => new UdpWeighted(name, children, random),
  );
  const routes = new Map<string, UdpRoute>();
  for (const [router, rc] of Object.entries(config.udp.routers)) {
    for (const ep of rc.entryPoints) routes.set(ep, { router, service: service(rc.service) });
  }
  return routes;
}

function buildTcp(config: Config, options: BuildOptions): Map<string, TcpRouter> {
  const { random } = options;
  const service = serviceBuilder<TcpHandler>(
    "tcp",
    config.tcp.services,
    (name, lb) => new TcpLoadBalancer(name, servers(lb.servers), transportOf(config, lb), random),
    (name, children) => new TcpWeighted(name, children, random),
  );
  // A router on several entrypoints is one handler chain: its middlewares count once.
  const chains = new Map<string, TcpHandler>();
  const chain = (router: string) => {
    let h = chains.get(router);
    if (!h) {
      const rc = config.tcp.routers[router];
      h = middlewareChain(config, router, rc.middlewares, service(rc.service), options.kept);
      chains.set(router, h);
    }
    return h;
  };
  const routers = new Map<string, TcpRouter>();
  for (const [ep, epc] of Object.entries(config.entryPoints)) {
    if (epc.protocol !== "tcp") continue;
    const routes: TcpRoute[] = routerOrder(config, ep).map((name) => ({
      name,
      rule: parseRule(config.tcp.routers[name].rule),
      handler: chain(name),
    }));
    routers.set(ep, new TcpRouter(ep, routes, epc.helloTimeout));
  }
  return routers;
}

/** `next` behind the router's middlewares, the first named being the outermost. */
function middlewareChain(
  config: Config,
  router: string,
  names: readonly string[],
  next: TcpHandler,
  kept: KeptState,
): TcpHandler {
  let handler = next;
  for (const name of [...names].reverse()) {
    const mc = config.tcp.middlewares[name];
    const key = `${router} ${name} ${JSON.stringify(mc)}`;
    if ("ipAllowList" in mc) {
      handler = new IpAllowList(router, name, cidrSet(mc.ipAllowList.sourceRange), handler);
    } else if ("inFlightConn" in mc) {
      const counts = kept.keep(key, () => new InFlightCounts());
      handler = new InFlightConn(router, name, mc.inFlightConn.amount, counts, handler);
    } else {
      const { average, period, burst } = mc.connRateLimit;
      const buckets = kept.keep(key, () => new RateBuckets(average, period, burst));
      handler = new ConnRateLimit(router, name, buckets, handler);
    }
  }
  return handler;
}

/** Ranges already validated by the configuration's schema. */
function cidrSet(ranges: readonly string[]): CidrSet {
  return new CidrSet(
    ranges.map((t) => parseCidr(t)).filter((c): c is Cidr => typeof c !== "string"),
  );
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

/** What an entrypoint's PROXY protocol settings mean for accepting connections. */
export function acceptOptions(
  pp: EntryPointProxyProtocol | undefined,
): AcceptProxyOptions | undefined {
  if (!pp) return undefined;
  return { trusted: pp.insecure ? "all" : cidrSet(pp.trustedIPs), headerTimeout: pp.headerTimeout };
}

/** The transport a load balancer uses: its serversTransport, then its own v2 settings. */
export function transportOf(config: Config, lb: TcpLoadBalancerConfig): TcpTransport {
  const named = lb.serversTransport ? config.tcp.serversTransports[lb.serversTransport] : undefined;
  return {
    dialTimeout: named?.dialTimeout ?? DEFAULTS.dialTimeout,
    terminationDelay: lb.terminationDelay ?? named?.terminationDelay ?? DEFAULTS.terminationDelay,
    proxyProtocol: (lb.proxyProtocol ?? named?.proxyProtocol)?.version,
    dialKeepAlive: named?.dialKeepAlive ?? DEFAULTS.dialKeepAlive,
  };
}
