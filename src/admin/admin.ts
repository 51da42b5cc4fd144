/**
 * The admin listener: Prometheus metrics at `/metrics`, live state at `/api/status` and
 * `/api/connections` (the shape of traefik's raw data API) and pushed every second at
 * `/api/events`, the dashboard at `/dashboard/` (a client of those, nothing more), liveness at
 * `/healthz`.
 */
import { formatAddr, type HostPort } from "../config/address.ts";
import type {
  Config,
  HealthCheckConfig,
  PassiveHealthCheckConfig,
  ServerConfig,
  WeightedConfig,
} from "../config/model.ts";
import type { ServerState } from "../health/server_state.ts";
import { parseIp } from "../net/ip.ts";
import { renderMetrics } from "../metrics/prometheus.ts";
import type { Totals, TrafficTracker, UdpTotals } from "../metrics/tracker.ts";
import type { WorkerStatus } from "../server/cluster.ts";
import type { HttpServer } from "../runtime/types.ts";
import { createHash, timingSafeEqual } from "node:crypto";
import UPLOT_CSS from "uplot/dist/uPlot.min.css" with { type: "text" };
import UPLOT_JS from "uplot/dist/uPlot.iife.min.js" with { type: "text" };
import DASHBOARD from "./dashboard.html" with { type: "text" };
import { EventStreams, LiveHistory } from "./live.ts";
import type { ProviderStatus } from "../providers/source.ts";
import { routerOrder } from "../graph/describe.ts";
import type { L4pServer } from "../server/server.ts";

/** Who is running, for `l4p_info` and the status API, and how the listener is guarded. */
export interface AdminInfo {
  version: string;
  /** Access log lines lost to a slow output of its own (a file). */
  accessLogDropped?: () => number;
  /**
   * The bearer token every request must carry (header `Authorization: Bearer …`, or `?token=`
   * for the dashboard's event stream, which a browser opens without headers). None: open.
   */
  token?: string;
  /** `/metrics` without the token, for a Prometheus that has none. */
  publicMetrics?: boolean;
  /**
   * Without a token, the `Host` names requests may carry besides IP literals and `localhost`:
   * a web page that rebinds its own name to this address is refused (DNS rebinding).
   */
  allowedHosts?: readonly string[];
  /** The history to show; one made here otherwise (it outlives the listener when given). */
  history?: LiveHistory;
  /** How the configuration stores are doing (etcd, Redis), when there are any. */
  providers?: () => ProviderStatus[];
  /**
   * With workers: the whole group's counts, asked of every worker when a reader asks
   * (`fresh`), or as last asked (`current`, refreshed every second: the dashboard's stream).
   */
  view?: { fresh(): Promise<TrafficTracker>; current(): TrafficTracker };
  /** With workers: each one, as last heard. */
  workers?: () => WorkerStatus[];
}

/** The admin listener: an HTTP server, and its history and streams to end with it. */
export interface AdminListener extends HttpServer {}

const PATHS = "/dashboard/ /api/status /api/connections /api/events /metrics /healthz /ping";

/** Starts the admin listener; throws a `SocketError` when the address can't be had. */
export function startAdmin(
  server: L4pServer,
  address: HostPort,
  info: AdminInfo,
): AdminListener {
  const runtime = `${server.env.runtime.name} ${server.env.runtime.version}`;
  const view = info.view;
  const history = info.history ?? new LiveHistory(server.tracker, view?.current);
  history.start();
  const streams = new EventStreams();
  const snapshot = (tracker = view?.current() ?? server.tracker) => ({
    ...status(server, info.version, runtime, tracker),
    ...(info.workers ? { workers: info.workers() } : {}),
    providers: info.providers?.() ?? [],
    sample: history.latest(),
    recent: history.recent(),
  });
  const route = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    const path = url.pathname;
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("method not allowed\n", {
        status: 405,
        headers: { allow: "GET, HEAD" },
      });
    }
    // Liveness, the charting library's files (no data in them), and /metrics when asked.
    const open = path === "/healthz" || path === "/ping" || path.startsWith("/dashboard/uplot.") ||
      (path === "/metrics" && info.publicMetrics);
    // The dashboard's address without its slash: its page would load uplot.js from the root.
    if (path === "/dashboard") {
      return reply("", 308, { location: `/dashboard/${url.search}` });
    }
    if (info.token && !open && !authorized(request, url, info.token)) {
      return reply("unauthorized\n", 401, { "www-authenticate": 'Bearer realm="l4p"' });
    }
    if (!info.token && !hostAllowed(request, info.allowedHosts ?? [])) {
      return reply(
        "forbidden: this Host is not an IP address, localhost or one of metrics.allowedHosts\n",
        403,
      );
    }
    // What the kernel dropped is read when asked, not on a timer.
    if (path === "/metrics" || path === "/api/status") await server.countKernelDrops();
    // With workers, the group's counts, asked of each now.
    const tracker = view && /^\/(metrics|api\/(status|connections))$/.test(path)
      ? await view.fresh()
      : server.tracker;
    switch (path) {
      case "/metrics":
        return new Response(
          renderMetrics({
            tracker,
            workers: info.workers?.(),
            version: info.version,
            runtime,
            startedAt: server.startedAt,
            reloads: server.reloads,
            servers: server.servers,
            providers: info.providers?.(),
            logDropped: {
              log: server.env.logger.dropped,
              access: info.accessLogDropped?.() ?? 0,
            },
            leftOut: server.config?.leftOut.length ?? 0,
          }),
          { headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" } },
        );
      case "/api/status":
        return Response.json(snapshot(tracker));
      case "/api/connections":
        return Response.json(connections(tracker));
      case "/api/events":
        return streams.respond(history, snapshot);
      case "/dashboard/":
        return reply(DASHBOARD, 200, {
          "content-type": "text/html; charset=utf-8",
          "cache-control": "no-store",
          "content-security-policy":
            "default-src 'self'; img-src 'self' data:; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
          "x-frame-options": "DENY",
        });
      case "/dashboard/uplot.js":
        return reply(UPLOT_JS, 200, { "content-type": "text/javascript" });
      case "/dashboard/uplot.css":
        return reply(UPLOT_CSS, 200, { "content-type": "text/css" });
      case "/healthz":
        return reply("ok\n");
      case "/ping":
        // traefik's ping: what its users' health checks (and HEALTHCHECK lines) ask.
        return reply("OK");
      default:
        return reply(`not found: try ${PATHS}\n`, 404);
    }
  };
  const http = server.env.runtime.serveHttp({
    hostname: address.hostname,
    port: address.port,
    async handler(request) {
      const response = await route(request);
      // No browser reads any answer here as anything but what it says it is.
      response.headers.set("x-content-type-options", "nosniff");
      return response;
    },
  });
  return {
    addr: http.addr,
    close() {
      streams.endAll();
      if (!info.history) history.stop();
      http.close();
    },
  };
}

/** A response, plain text unless `headers` say otherwise. */
function reply(body: string, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(body, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", ...headers },
  });
}

/** Paths a browser opens without a header of its own: the page, and its event stream. */
const TOKEN_IN_QUERY = new Set(["/dashboard/", "/api/events"]);

/**
 * Whether `request` carries the token, compared in constant time: as a bearer credential (the
 * scheme in any case, RFC 7235), or as `?token=` where a browser cannot send a header.
 */
function authorized(request: Request, url: URL, token: string): boolean {
  const header = request.headers.get("authorization") ?? "";
  const bearer = header.match(/^bearer +(\S+)\s*$/i)?.[1];
  const given = bearer ??
    (TOKEN_IN_QUERY.has(url.pathname) ? url.searchParams.get("token") : null);
  if (!given) return false;
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(token).digest();
  return timingSafeEqual(a, b);
}

/**
 * Whether the request's `Host` is one a browser cannot be tricked into sending for someone
 * else's page: an IP literal, `localhost`, or a name the operator listed.
 */
function hostAllowed(request: Request, allowed: readonly string[]): boolean {
  const host = request.headers.get("host");
  if (host === null) return true; // not a browser: HTTP/1.0 tools
  const name = host.replace(/:\d+$/, "").replace(/^\[(.*)\]$/, "$1").toLowerCase();
  return name === "localhost" || parseIp(name) !== undefined || allowed.includes(name);
}

const iso = (ms: number) => (ms ? new Date(ms).toISOString() : null);

function tcpCounters(t: Totals | undefined) {
  return {
    connectionsOpen: t ? t.opened - t.closed : 0,
    connectionsTotal: t?.opened ?? 0,
    bytesIn: t?.bytesIn ?? 0,
    bytesOut: t?.bytesOut ?? 0,
    dialErrors: t?.dialErrors ?? 0,
  };
}

function udpCounters(t: UdpTotals | undefined) {
  return {
    sessionsActive: t
      ? t.sessionsCreated - t.sessionsExpired - t.sessionsEvicted - t.sessionsClosed
      : 0,
    sessionsTotal: t?.sessionsCreated ?? 0,
    sessionsExpired: t?.sessionsExpired ?? 0,
    sessionsEvicted: t?.sessionsEvicted ?? 0,
    datagramsIn: t?.datagramsIn ?? 0,
    datagramsOut: t?.datagramsOut ?? 0,
    bytesIn: t?.bytesIn ?? 0,
    bytesOut: t?.bytesOut ?? 0,
  };
}

/** The configuration in force with every piece's counters. */
export function status(
  server: L4pServer,
  version: string,
  runtime: string,
  tracker: TrafficTracker = server.tracker,
): Record<string, unknown> {
  const config: Config | undefined = server.config;
  const tcp = {
    entryPoint: tracker.tcpTotals("entryPoint"),
    router: tracker.tcpTotals("router"),
    service: tracker.tcpTotals("service"),
    server: tracker.tcpTotals("server"),
  };
  const udp = {
    entryPoint: tracker.udpTotals("entryPoint"),
    router: tracker.udpTotals("router"),
    service: tracker.udpTotals("service"),
    server: tracker.udpTotals("server"),
  };
  const entryPoints: Record<string, unknown> = {};
  const tcpRouters: Record<string, unknown> = {};
  const udpRouters: Record<string, unknown> = {};
  for (const [name, ep] of Object.entries(config?.entryPoints ?? {})) {
    const bound = server.addressOf(name);
    entryPoints[name] = {
      address: ep.address.text,
      protocol: ep.protocol,
      listening: bound ? formatAddr(bound) : null,
      ...(ep.protocol === "tcp"
        ? {
          routers: config ? routerOrder(config, name) : [],
          ...tcpCounters(tcp.entryPoint.get(name)),
          maxConnections: server.maxConnectionsOf(name) ?? null,
          refusedOverLimit: tracker.overLimit.get(name) ?? 0,
        }
        : {
          ...udpCounters(udp.entryPoint.get(name)),
          dropped: udp.entryPoint.get(name)?.dropped ?? 0,
        }),
    };
  }
  for (const [name, r] of Object.entries(config?.tcp.routers ?? {})) {
    const refused: Record<string, number> = {};
    for (const mw of r.middlewares) refused[mw] = tracker.refusals.get(`${name} ${mw}`) ?? 0;
    tcpRouters[name] = {
      ...r,
      provider: providerOf(config, "tcp", "routers", name),
      status: "enabled",
      ...tcpCounters(tcp.router.get(name)),
      refused,
    };
  }

  const health = new Map(server.servers.map((s) => [`${s.protocol} ${s.service} ${s.label}`, s]));
  const tcpServices = services(
    config?.tcp.services ?? {},
    tcp.service,
    tcp.server,
    tcpCounters,
    (svc, label) => health.get(`tcp ${svc} ${label}`),
  );
  for (const [name, r] of Object.entries(config?.udp.routers ?? {})) {
    udpRouters[name] = {
      ...r,
      provider: providerOf(config, "udp", "routers", name),
      ...udpCounters(udp.router.get(name)),
    };
  }
  const udpServices = services(
    config?.udp.services ?? {},
    udp.service,
    udp.server,
    udpCounters,
    (svc, label) => health.get(`udp ${svc} ${label}`),
  );
  // Where each service came from, as each router says.
  for (const [section, out] of [["tcp", tcpServices], ["udp", udpServices]] as const) {
    for (const [name, svc] of Object.entries(out)) {
      (svc as Record<string, unknown>).provider = providerOf(config, section, "services", name);
    }
  }
  // Left out, as traefik shows a disabled item: where it is, with its error.
  const places: Record<string, Record<string, unknown>> = {
    "tcp.routers": tcpRouters,
    "tcp.services": tcpServices,
    "udp.routers": udpRouters,
    "udp.services": udpServices,
  };
  for (const { item, errors } of config?.leftOut ?? []) {
    const m = item.match(/^(tcp|udp)\.(routers|services)\.(.+)$/);
    const into = m && places[`${m[1]}.${m[2]}`];
    if (into) into[m[3]] = { status: "disabled", error: errors.join("; ") };
  }
  const r = server.reloads;
  return {
    version,
    runtime,
    startedAt: iso(server.startedAt),
    uptimeSeconds: Math.round((Date.now() - server.startedAt) / 1000),
    config: {
      reloadsSucceeded: r.successes,
      reloadsFailed: r.failures,
      lastReload: iso(r.lastSuccessAt),
      lastFailure: iso(r.lastFailureAt),
      lastError: r.lastError || null,
    },
    entryPoints,
    tcp: { routers: tcpRouters, services: tcpServices },
    udp: { routers: udpRouters, services: udpServices },
    leftOut: config?.leftOut ?? [],
  };
}

/** Services with their counters, and each load balancer's servers with theirs. */
function services<T>(
  defs: Record<string, ServiceShape>,
  byService: Map<string, T>,
  byServer: Map<string, T>,
  counters: (t: T | undefined) => Record<string, number>,
  healthOf: (service: string, label: string) => ServerState | undefined,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, s] of Object.entries(defs)) {
    if (!s.loadBalancer) {
      out[name] = { type: "weighted", services: s.weighted!.services };
      continue;
    }
    const servers = s.loadBalancer.servers.map((sv) => {
      const label = formatAddr(sv.address);
      return {
        address: sv.address.text,
        weight: sv.weight,
        ...serverHealth(healthOf(name, label)),
        ...counters(byServer.get(`${name} ${label}`)),
      };
    });
    out[name] = {
      type: "loadBalancer",
      strategy: s.loadBalancer.strategy,
      state: servers.some((sv) => sv.state !== "down") ? "up" : "down",
      healthCheck: s.loadBalancer.healthCheck ?? null,
      passiveHealthCheck: s.loadBalancer.passiveHealthCheck ?? null,
      ...counters(byService.get(name)),
      servers,
    };
  }
  return out;
}

/**
 * Where an item came from: a provider (`docker`, `etcd`, `redis`, `http`, or `file` for the
 * configuration file and the files of its file provider), as traefik's `@provider` says.
 */
function providerOf(
  config: Config | undefined,
  section: "tcp" | "udp",
  kind: "routers" | "services",
  name: string,
): string {
  return config?.origins[`${section}.${kind}.${name}`] ?? "file";
}

/** A server's health for the status API. */
function serverHealth(s: ServerState | undefined) {
  if (!s) return { state: "up" };
  return {
    state: s.up ? "up" : "down",
    reason: s.reason,
    since: iso(s.since),
    lastCheck: s.lastCheck
      ? {
        at: iso(s.lastCheck.at),
        ok: s.lastCheck.ok,
        detail: s.lastCheck.detail,
        durationMs: s.lastCheck.durationMs,
      }
      : null,
    checksPassed: s.checksPassed,
    checksFailed: s.checksFailed,
    stateChanges: s.changes,
  };
}

type ServiceShape = {
  loadBalancer?: {
    servers: ServerConfig[];
    strategy: string;
    healthCheck?: HealthCheckConfig;
    passiveHealthCheck?: PassiveHealthCheckConfig;
  };
  weighted?: WeightedConfig;
};

/** Every live TCP connection and UDP session (with workers, the worker that holds it). */
export function connections(tracker: TrafficTracker): Record<string, unknown> {
  const now = Date.now();
  const addr = (a: { hostname: string; port: number }) => formatAddr(a);
  return {
    // Oldest first: the tracker keeps its live records in no particular order.
    tcp: [...tracker.live].sort((a, b) => a.startedAt - b.startedAt || a.id - b.id).map((r) => ({
      id: r.id,
      ...("worker" in r ? { worker: r.worker } : {}),
      entryPoint: r.entryPoint,
      router: r.router || null,
      service: r.service || null,
      client: addr(r.client),
      server: r.server || null,
      ageSeconds: (now - r.startedAt) / 1000,
      bytesIn: r.bytesIn,
      bytesOut: r.bytesOut,
    })),
    udp: [...tracker.udpLive].sort((a, b) => a.startedAt - b.startedAt || a.id - b.id).map((r) => ({
      id: r.id,
      entryPoint: r.entryPoint,
      router: r.router,
      service: r.service,
      client: addr(r.client),
      server: r.server,
      ageSeconds: (now - r.startedAt) / 1000,
      datagramsIn: r.datagramsIn,
      datagramsOut: r.datagramsOut,
      bytesIn: r.bytesIn,
      bytesOut: r.bytesOut,
    })),
  };
}
