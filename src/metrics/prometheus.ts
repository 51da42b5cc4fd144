/**
 * The Prometheus text exposition of l4p's counters. Label sets are bounded by the configuration
 * (entrypoints, routers, services, servers): no client address is ever a label.
 */
import type { ServerState } from "../health/server_state.ts";
import type { ProviderStatus } from "../providers/source.ts";
import type { Scope, Totals, TrafficTracker, UdpTotals } from "./tracker.ts";

/** What the exposition reads besides the tracker. */
export interface MetricsSource {
  tracker: TrafficTracker;
  version: string;
  runtime: string;
  startedAt: number;
  reloads: { successes: number; failures: number; lastSuccessAt: number; lastFailureAt: number };
  /** The configuration stores and how they are doing. */
  providers?: readonly ProviderStatus[];
  /** Every server of the graph in force, with its health. */
  servers?: readonly ServerState[];
  /** Lines lost to a slow output, by log: `log` (l4p's own) and `access`. */
  logDropped?: { log: number; access: number };
  /** Dynamic items of the configuration in force left out for their problems. */
  leftOut?: number;
  /** With `--workers`: the workers besides the first process, and whether each answered. */
  workers?: readonly { worker: number; answering: boolean }[];
}

type Labels = Record<string, string>;

class Exposition {
  #out = "";

  family(
    name: string,
    type: "counter" | "gauge" | "histogram",
    help: string,
    samples: [Labels, number][],
  ): void {
    this.#out += `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`;
    for (const [labels, value] of samples) this.sample(name, labels, value);
  }

  sample(name: string, labels: Labels, value: number): void {
    const parts = Object.entries(labels).map(([k, v]) => `${k}="${escape(v)}"`);
    this.#out += `${name}${parts.length ? `{${parts.join(",")}}` : ""} ${format(value)}\n`;
  }

  histogramHeader(name: string, help: string): void {
    this.#out += `# HELP ${name} ${help}\n# TYPE ${name} histogram\n`;
  }

  get text(): string {
    return this.#out;
  }
}

function escape(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function format(v: number): string {
  return Number.isFinite(v) ? String(v) : v > 0 ? "+Inf" : "-Inf";
}

/** Renders every metric. */
export function renderMetrics(src: MetricsSource): string {
  const e = new Exposition();
  const t = src.tracker;
  e.family("l4p_info", "gauge", "l4p's version and runtime.", [[{
    version: src.version,
    runtime: src.runtime,
  }, 1]]);
  e.family("l4p_start_time_seconds", "gauge", "When l4p started, in seconds since the epoch.", [[
    {},
    src.startedAt / 1000,
  ]]);

  // TCP, by entrypoint, router, service and server.
  const scopes: [string, Scope, (k: string) => Labels][] = [
    ["entrypoint", "entryPoint", (k) => ({ entrypoint: k })],
    ["router", "router", (k) => ({ router: k })],
    ["service", "service", (k) => ({ service: k })],
    ["server", "server", serverLabels],
  ];
  for (const [scope, key, labels] of scopes) {
    const families: Family<Totals>[] = [
      ["connections_opened_total", "counter", "TCP connections opened", (v) => v.opened],
      ["connections_closed_total", "counter", "TCP connections closed", (v) => v.closed],
      ["connections_open", "gauge", "TCP connections open now", (v) => v.opened - v.closed],
      ["received_bytes_total", "counter", "Bytes received from TCP clients", (v) => v.bytesIn],
      ["sent_bytes_total", "counter", "Bytes sent to TCP clients", (v) => v.bytesOut],
    ];
    if (scope === "service" || scope === "server") {
      families.push([
        "dial_errors_total",
        "counter",
        "Failed dials to backends",
        (v) => v.dialErrors,
      ]);
    }
    emitScope(e, `l4p_tcp_${scope}`, scope, labels, t.tcpTotals(key), families);
  }

  e.family(
    "l4p_tcp_service_dial_errors_by_code_total",
    "counter",
    "Failed dials to backends, by service and error code (EADDRNOTAVAIL: no local port left).",
    sorted(t.dialErrorCodes).map(([key, n]) => {
      const space = key.lastIndexOf(" ");
      return [{ service: key.slice(0, space), code: key.slice(space + 1) }, n];
    }),
  );
  e.family(
    "l4p_tcp_entrypoint_connections_refused_total",
    "counter",
    "TCP connections closed at once because the entrypoint had maxConnections open, by entrypoint.",
    sorted(t.overLimit).map(([ep, n]) => [{ entrypoint: ep }, n]),
  );
  e.family(
    "l4p_tcp_middleware_refused_connections_total",
    "counter",
    "TCP connections a middleware refused, by router and middleware.",
    sorted(t.refusals).map(([key, n]) => {
      const [router, middleware] = key.split(" ");
      return [{ router, middleware }, n];
    }),
  );
  for (const [protocol, map] of [["tcp", t.hookResults], ["udp", t.udpHookResults]] as const) {
    if (map.size === 0) continue;
    e.family(
      `l4p_${protocol}_hook_calls_total`,
      "counter",
      `Routing hooks' calls${
        protocol === "udp" ? " (one per new session)" : ""
      }, by router, middleware and result (pass, service, refuse, error, timeout).`,
      sorted(map).map(([key, n]) => {
        const [router, middleware, result] = key.split(" ");
        return [{ router, middleware, result }, n];
      }),
    );
  }

  e.histogramHeader(
    "l4p_tcp_connection_duration_seconds",
    "How long TCP connections lasted, by entrypoint.",
  );
  for (const [ep, h] of [...t.durations].sort(([a], [b]) => a.localeCompare(b))) {
    let cumulative = 0;
    h.buckets.forEach((le, i) => {
      cumulative += h.counts[i];
      e.sample(
        "l4p_tcp_connection_duration_seconds_bucket",
        { entrypoint: ep, le: String(le) },
        cumulative,
      );
    });
    e.sample("l4p_tcp_connection_duration_seconds_bucket", { entrypoint: ep, le: "+Inf" }, h.count);
    e.sample("l4p_tcp_connection_duration_seconds_sum", { entrypoint: ep }, h.sum);
    e.sample("l4p_tcp_connection_duration_seconds_count", { entrypoint: ep }, h.count);
  }

  // UDP, by entrypoint, router, service and server.
  for (const [scope, key, labels] of scopes) {
    const families: Family<UdpTotals>[] = [
      ["sessions_created_total", "counter", "UDP sessions created", (v) => v.sessionsCreated],
      [
        "sessions_expired_total",
        "counter",
        "UDP sessions ended by the idle timeout",
        (v) => v.sessionsExpired,
      ],
      [
        "sessions_evicted_total",
        "counter",
        "UDP sessions evicted from a full table",
        (v) => v.sessionsEvicted,
      ],
      [
        "sessions_active",
        "gauge",
        "UDP sessions alive now",
        (v) => v.sessionsCreated - v.sessionsExpired - v.sessionsEvicted - v.sessionsClosed,
      ],
      [
        "received_datagrams_total",
        "counter",
        "Datagrams received from UDP clients",
        (v) => v.datagramsIn,
      ],
      ["sent_datagrams_total", "counter", "Datagrams sent to UDP clients", (v) => v.datagramsOut],
      ["received_bytes_total", "counter", "Bytes received from UDP clients", (v) => v.bytesIn],
      ["sent_bytes_total", "counter", "Bytes sent to UDP clients", (v) => v.bytesOut],
    ];
    if (scope === "entrypoint") {
      families.push([
        "dropped_datagrams_total",
        "counter",
        "Datagrams dropped (no server, full queue, failed send, a stranger's reply, the kernel's receive queue full)",
        (v) => v.dropped,
      ]);
    }
    emitScope(e, `l4p_udp_${scope}`, scope, labels, t.udpTotals(key), families);
  }

  if (src.workers) {
    e.family(
      "l4p_worker_up",
      "gauge",
      "Each worker besides the first process: 1 if its counts are in these metrics, 0 if it did not answer in time.",
      src.workers.map((w) => [{ worker: String(w.worker) }, w.answering ? 1 : 0]),
    );
  }
  const r = src.reloads;
  e.family(
    "l4p_config_left_out_items",
    "gauge",
    "Dynamic items (routers, services, …) of the configuration in force left out for their problems.",
    [[{}, src.leftOut ?? 0]],
  );
  e.family("l4p_config_reloads_total", "counter", "Configuration reloads, by result.", [
    [{ result: "success" }, r.successes],
    [{ result: "failure" }, r.failures],
  ]);
  e.family(
    "l4p_config_last_reload_success_timestamp_seconds",
    "gauge",
    "When the configuration in force was applied.",
    [[{}, r.lastSuccessAt / 1000]],
  );
  e.family(
    "l4p_config_last_reload_failure_timestamp_seconds",
    "gauge",
    "When a configuration was last refused (0: never).",
    [[{}, r.lastFailureAt / 1000]],
  );
  // One series a server, even when a service lists an address twice.
  const byId = new Map<string, ServerState>();
  for (const s of src.servers ?? []) {
    const key = `${s.protocol} ${s.service} ${s.label}`;
    if (!byId.has(key)) byId.set(key, s);
  }
  const servers = [...byId].sort(([a], [b]) => a.localeCompare(b)).map(([, s]) => s);
  const id = (s: ServerState) => ({ protocol: s.protocol, service: s.service, server: s.label });
  e.family(
    "l4p_server_up",
    "gauge",
    "Whether a server is up (1) or down (0) by its health checks, by protocol, service and server.",
    servers.map((s) => [id(s), s.up ? 1 : 0]),
  );
  e.family(
    "l4p_server_checks_total",
    "counter",
    "Active health checks, by protocol, service, server and result.",
    servers.flatMap((s) => [
      [{ ...id(s), result: "pass" }, s.checksPassed],
      [{ ...id(s), result: "fail" }, s.checksFailed],
    ]),
  );
  e.family(
    "l4p_server_state_changes_total",
    "counter",
    "How often a server went down or up, by protocol, service and server.",
    servers.map((s) => [id(s), s.changes]),
  );
  const stores = src.providers ?? [];
  e.family(
    "l4p_provider_up",
    "gauge",
    "Whether the last read of a configuration store succeeded (1) or not (0), by provider.",
    stores.map((p) => [{ provider: p.provider }, p.connected ? 1 : 0]),
  );
  e.family(
    "l4p_provider_last_read_timestamp_seconds",
    "gauge",
    "When a configuration store was last read, by provider.",
    stores.map((p) => [{ provider: p.provider }, p.lastReadAt / 1000]),
  );
  const dropped = src.logDropped ?? { log: 0, access: 0 };
  e.family(
    "l4p_log_dropped_lines_total",
    "counter",
    "Log lines dropped because the output was too slow (never blocking the proxy), by log.",
    [[{ log: "log" }, dropped.log], [{ log: "access" }, dropped.access]],
  );
  return e.text;
}

/** One metric family of a scope: name (after the prefix), type, help, and its value. */
type Family<T> = [name: string, type: "counter" | "gauge", help: string, value: (v: T) => number];

/** Every family of one scope (entrypoint, router, …), a sample per key, keys in order. */
function emitScope<T>(
  e: Exposition,
  prefix: string,
  scope: string,
  labels: (key: string) => Labels,
  totals: Map<string, T>,
  families: Family<T>[],
): void {
  const rows = [...totals].sort(([a], [b]) => a.localeCompare(b));
  for (const [name, type, help, value] of families) {
    e.family(
      `${prefix}_${name}`,
      type,
      `${help}, by ${scope}.`,
      rows.map(([k, v]) => [labels(k), value(v)]),
    );
  }
}

function sorted<T>(map: Map<string, T>): [string, T][] {
  return [...map].sort(([a], [b]) => a.localeCompare(b));
}

function serverLabels(key: string): Labels {
  const space = key.lastIndexOf(" "); // server addresses have no spaces; service names may
  return { service: key.slice(0, space), server: key.slice(space + 1) };
}
