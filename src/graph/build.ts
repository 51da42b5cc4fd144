/**
 * Building the handler graph from a {@link Config}: a pure step, no sockets. Each TCP
 * entrypoint gets a router; each router's connections pass its middlewares, then its service (a
 * load balancer over servers, or a weighted service over other services). What must outlive a
 * reload (a middleware's per-client counts) is kept in a {@link KeptState} by what it is.
 */
import { strategyFor } from "../balancer/strategy.ts";
import type { Weighted } from "../balancer/wrr.ts";
import { formatAddr } from "../config/address.ts";
import {
  type Config,
  DEFAULTS,
  type EntryPointProxyProtocol,
  type HealthCheckConfig,
  type PassiveHealthCheckConfig,
  type ServerConfig,
  type TcpLoadBalancerConfig,
  type TcpRouterConfig,
  type UdpLoadBalancerConfig,
  type WeightedConfig,
} from "../config/model.ts";
import { HealthChecker, type HealthCheckSettings } from "../health/checker.ts";
import { fromHex } from "../health/probe.ts";
import { ServerState } from "../health/server_state.ts";
import { ServiceHealth } from "../health/service_health.ts";
import type { Logger } from "../log/logger.ts";
import { type Certificate, CertificateStore } from "../tls/certificates.ts";
import { TlsTermination } from "../tls/terminate.ts";
import { type Cidr, CidrSet, parseCidr } from "../net/ip.ts";
import type { AcceptProxyOptions } from "../proxy_protocol/accept.ts";
import type { TcpHandler } from "../tcp/handler.ts";
import { TcpLoadBalancer, type TcpService, type TcpTransport } from "../tcp/load_balancer.ts";
import { ConnRateLimit, RateBuckets } from "../tcp/middlewares/conn_rate_limit.ts";
import { InFlightConn, InFlightCounts } from "../tcp/middlewares/in_flight_conn.ts";
import { type Hook, HookMiddleware } from "../tcp/middlewares/hook.ts";
import { hookKey } from "./hooks.ts";
import { IpAllowList } from "../tcp/middlewares/ip_allow_list.ts";
import { type TcpRoute, TcpRouter } from "../tcp/router.ts";
import { ruleOf } from "../tcp/router_order.ts";
import { TcpWeighted } from "../tcp/weighted.ts";
import { UdpRouter } from "../udp/router.ts";
import type { UdpHook } from "../udp/hook.ts";
import { UdpLoadBalancer, type UdpService, UdpWeighted } from "../udp/service.ts";
import { routerOrder } from "../tcp/router_order.ts";
import type { SharedState } from "./shared.ts";

/** The handlers a configuration runs: a router per TCP entrypoint, a route per UDP one. */
export interface Graph {
  tcp: Map<string, TcpRouter>;
  udp: Map<string, UdpRouter>;
  /** Active health checks, to be started when the graph is put in force. */
  checkers: HealthChecker[];
  /** Every server of every load balancer, with its health (status API, metrics). */
  servers: ServerState[];
  /**
   * Puts the graph's changes to state it shares with the graph in force (server weights, states,
   * whose service hears them) into effect: called by apply once it commits, and only then.
   */
  commit(): void;
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

  /** What the graph in force keeps under `key`. */
  get(key: string): unknown {
    return this.#current.get(key);
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

/** Options of {@link buildGraphInSteps}. */
export interface BuildOptions {
  /** Random source for the balancers' shuffle; `null` keeps configuration order. */
  random: (() => number) | null;
  kept: KeptState;
  /** Where health changes are told. */
  logger: Logger;
  /** Certificates obtained by ACME, by name (live: the manager adds to it). */
  obtained?: ReadonlyMap<string, Certificate>;
  /** In a group of workers: limits and health held as one (src/server/cluster.ts). */
  shared?: SharedState;
  /** The routing hooks the configuration names, loaded, by {@link hookKey}. */
  hooks?: ReadonlyMap<string, Hook>;
}

/** What building one graph collects on the way. */
interface Building extends BuildOptions {
  checkers: HealthChecker[];
  servers: ServerState[];
  /** Changes to shared state, made only when the graph is put in force. */
  onCommit: (() => void)[];
}

/** Routers of one entrypoint built in one piece; more are built in slices of this many. */
const BUILD_SLICE = 20_000;

/**
 * Builds every router, middleware and service of `config`, in steps (each `yield` a place to let
 * the event loop run: with 100 000 routers the build takes 200–260 ms). Pure: state shared with
 * the graph in force (kept server states) is read, and changed only by the returned graph's
 * `commit`, so nothing changes between steps.
 */
export function* buildGraphInSteps(config: Config, options: BuildOptions): Generator<void, Graph> {
  const b: Building = { ...options, checkers: [], servers: [], onCommit: [] };
  const tcp = yield* buildTcp(config, b);
  const udp = buildUdp(config, b);
  return {
    tcp,
    udp,
    checkers: b.checkers,
    servers: b.servers,
    commit: () => {
      for (const change of b.onCommit) change();
    },
  };
}

/**
 * The states of a load balancer's servers (kept from the graph before when the same server is
 * in the same service), their service's health, and its checker if it has checks.
 */
function healthOf(
  b: Building,
  protocol: "tcp" | "udp",
  name: string,
  lb: { servers: ServerConfig[]; healthCheck?: HealthCheckConfig },
  passive?: PassiveHealthCheckConfig,
): { states: ServerState[]; health: ServiceHealth } {
  const seen = new Map<string, number>();
  const states = lb.servers.map((s) => {
    const label = formatAddr(s.address);
    const n = (seen.get(label) ?? 0) + 1;
    seen.set(label, n);
    const key = `${protocol} ${name} ${label}${s.tls ? " tls" : ""} ${n}`;
    const state = b.kept.keep(
      key,
      () => new ServerState(protocol, name, s.address, label, s.weight, s.tls ?? false, key),
    );
    if (state.weight !== s.weight) b.onCommit.push(() => state.weight = s.weight);
    return state;
  });
  const health = new ServiceHealth(
    name,
    states,
    b.logger,
    passive,
    lb.healthCheck !== undefined,
    b.shared,
  );
  b.onCommit.push(() => health.attach());
  if (lb.healthCheck) {
    b.checkers.push(
      new HealthChecker(
        protocol,
        name,
        states,
        checkSettings(lb.healthCheck),
        b.random ?? Math.random,
      ),
    );
  } else {
    // Checks removed by a reload: nothing would bring a server they put down back up.
    b.onCommit.push(() => {
      for (const s of states) {
        if (!s.up && !s.ejectedPassively) s.setUp(true, "no health check");
        else if (s.up) s.reason = "no health check"; // not "not checked yet": none will come
      }
    });
  }
  b.servers.push(...states);
  return { states, health };
}

function checkSettings(h: HealthCheckConfig): HealthCheckSettings {
  return {
    ...h,
    send: h.send === undefined ? undefined : fromHex(h.send),
    expect: h.expect === undefined ? undefined : fromHex(h.expect),
  };
}

function buildUdp(config: Config, b: Building): Map<string, UdpRouter> {
  const { random } = b;
  const service = serviceBuilder<UdpService, UdpLoadBalancerConfig>(
    "udp",
    config.udp.services,
    (name, lb) => {
      const { states, health } = healthOf(b, "udp", name, lb);
      return new UdpLoadBalancer(name, states, strategyFor(lb.strategy, states, random), health);
    },
    (name, children) => new UdpWeighted(name, children, random),
  );
  // A router without a rule takes every session: tried last, as a HostSNI(`*`) would be.
  const ordered = Object.fromEntries(
    Object.entries(config.udp.routers).map(([name, rc]) => [name, {
      ...rc,
      rule: rc.rule ?? "HostSNI(`*`)",
    }]),
  );
  const routers = new Map<string, UdpRouter>();
  for (const [ep, epc] of Object.entries(config.entryPoints)) {
    if (epc.protocol !== "udp") continue;
    const routes = routerOrder(ordered, ep).map((router) => {
      const rc = config.udp.routers[router];
      return {
        router,
        service: service(rc.service),
        rule: rc.rule === undefined ? undefined : ruleOf(rc.rule),
        hooks: (rc.middlewares ?? []).map((middleware) => {
          const h = config.udp.middlewares[middleware].hook;
          const hook = b.hooks?.get(hookKey(h));
          // Loaded before the build (apply and check load every hook the configuration names).
          if (!hook) throw new Error(`the hook of udp middleware ${middleware} was not loaded`);
          return { middleware, hook: hook as unknown as UdpHook, timeout: h.timeout };
        }),
      };
    });
    if (routes.length === 0) continue;
    const services = (name: string) => config.udp.services[name] ? service(name) : undefined;
    const helloTimeout = epc.helloTimeout ?? DEFAULTS.helloTimeout;
    routers.set(ep, new UdpRouter(ep, routes, helloTimeout, services));
  }
  return routers;
}

function* buildTcp(config: Config, b: Building): Generator<void, Map<string, TcpRouter>> {
  const { random } = b;
  const service = serviceBuilder<TcpService, TcpLoadBalancerConfig>(
    "tcp",
    config.tcp.services,
    (name, lb) => {
      const { states, health } = healthOf(b, "tcp", name, lb, lb.passiveHealthCheck);
      const strategy = strategyFor(lb.strategy, states, random);
      return new TcpLoadBalancer(name, states, transportOf(config, lb), strategy, health);
    },
    (name, children) => new TcpWeighted(name, children, random),
  );
  const store = new CertificateStore(
    config.tls.certificates,
    config.tls.defaultCertificate,
    b.obtained,
  );
  const helloTimeoutOf = (rc: TcpRouterConfig) =>
    config.entryPoints[rc.entryPoints[0]]?.helloTimeout ?? DEFAULTS.helloTimeout;
  const terminationOptions = (rc: TcpRouterConfig) =>
    config.tls.options[rc.tls!.options] ?? config.tls.options.default;
  // A router on several entrypoints is one handler chain: its middlewares count once.
  const chains = new Map<string, TcpHandler>();
  const chain = (router: string) => {
    let h = chains.get(router);
    if (!h) {
      const rc = config.tcp.routers[router];
      let inner: TcpHandler = service(rc.service);
      if (terminates(rc)) {
        inner = new TlsTermination(
          router,
          store,
          terminationOptions(rc),
          inner,
          helloTimeoutOf(rc),
        );
      }
      // What a hook's { service } goes to: that service, behind the router's termination.
      const routeTo = (name: string) => {
        if (!config.tcp.services[name]) return undefined;
        const to = service(name);
        return terminates(rc)
          ? new TlsTermination(router, store, terminationOptions(rc), to, helloTimeoutOf(rc))
          : to;
      };
      h = middlewareChain(config, router, rc.middlewares, inner, b, routeTo);
      chains.set(router, h);
    }
    return h;
  };
  const routers = new Map<string, TcpRouter>();
  for (const [ep, epc] of Object.entries(config.entryPoints)) {
    if (epc.protocol !== "tcp") continue;
    const names = routerOrder(config.tcp.routers, ep);
    const large = names.length > BUILD_SLICE;
    if (large) yield;
    const routes: TcpRoute[] = [];
    for (const name of names) {
      const rc = config.tcp.routers[name];
      routes.push({
        name,
        rule: ruleOf(rc.rule, rc.ruleSyntax),
        handler: chain(name),
        terminatesTls: terminates(rc),
      });
      if (routes.length % BUILD_SLICE === 0) yield;
    }
    if (large) yield;
    const answersHttp = Object.values(config.certificatesResolvers)
      .some((r) => r.httpEntryPoint === ep);
    routers.set(ep, new TcpRouter(ep, routes, epc.helloTimeout, answersHttp, epc.silenceTimeout));
  }
  return routers;
}

/** Whether a router terminates TLS (a `tls` section without `passthrough`). */
function terminates(rc: TcpRouterConfig): boolean {
  return rc.tls !== undefined && !rc.tls.passthrough;
}

/** `next` behind the router's middlewares, the first named being the outermost. */
function middlewareChain(
  config: Config,
  router: string,
  names: readonly string[],
  next: TcpHandler,
  { kept, shared, hooks }: Building,
  routeTo: (service: string) => TcpHandler | undefined,
): TcpHandler {
  let handler = next;
  for (const name of [...names].reverse()) {
    const mc = config.tcp.middlewares[name];
    const key = `${router} ${name} ${JSON.stringify(mc)}`;
    if ("ipAllowList" in mc) {
      handler = new IpAllowList(router, name, cidrSet(mc.ipAllowList.sourceRange), handler);
    } else if ("inFlightConn" in mc) {
      const counts = shared?.inFlight?.(key) ?? kept.keep(key, () => new InFlightCounts());
      handler = new InFlightConn(router, name, mc.inFlightConn.amount, counts, handler);
    } else if ("hook" in mc) {
      const hook = hooks?.get(hookKey(mc.hook));
      // Loaded before the build (apply and check load every hook the configuration names).
      if (!hook) throw new Error(`the hook of middleware ${name} was not loaded`);
      handler = new HookMiddleware(router, name, hook, mc.hook.timeout, routeTo, handler);
    } else {
      const { average, period, burst } = mc.connRateLimit;
      const buckets = shared?.rate?.(key, average, period, burst) ??
        kept.keep(key, () => new RateBuckets(average, period, burst));
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

/**
 * Builds services on demand, each once: a load balancer from its servers, a weighted service
 * from its (already built) children. The configuration was checked, so a missing service or a
 * cycle here is a bug, and throws.
 */
function serviceBuilder<H, LB>(
  protocol: string,
  defs: Record<string, { loadBalancer?: LB; weighted?: WeightedConfig }>,
  loadBalancer: (name: string, lb: LB) => H,
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
  const named = lb.serversTransport
    ? config.tcp.serversTransports[lb.serversTransport]
    : config.tcp.defaultTransport;
  return {
    dialTimeout: named?.dialTimeout ?? DEFAULTS.dialTimeout,
    terminationDelay: lb.terminationDelay ?? named?.terminationDelay ?? DEFAULTS.terminationDelay,
    proxyProtocol: (lb.proxyProtocol ?? named?.proxyProtocol)?.version,
    dialKeepAlive: named?.dialKeepAlive ?? DEFAULTS.dialKeepAlive,
    tls: named?.tls && {
      serverName: named.tls.serverName,
      ca: named.tls.rootCAs.length ? named.tls.rootCAs : undefined,
      insecureSkipVerify: named.tls.insecureSkipVerify,
      cert: named.tls.certificate?.cert,
      key: named.tls.certificate?.key,
      peerCertURI: named.tls.peerCertURI,
    },
  };
}
