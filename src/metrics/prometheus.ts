/**
 * The Prometheus text exposition of l4p's counters. Label sets are bounded by the configuration
 * (entrypoints, routers, services, servers): no client address is ever a label.
 */
import type { Totals, TrafficTracker, UdpTotals } from "./tracker.ts";

/** What the exposition reads besides the tracker. */
export interface MetricsSource {
  tracker: TrafficTracker;
  version: string;
  runtime: string;
  startedAt: number;
  reloads: { successes: number; failures: number; lastSuccessAt: number; lastFailureAt: number };
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
  const scopes: [string, "entryPoint" | "router" | "service" | "server", (k: string) => Labels][] =
    [
      ["entrypoint", "entryPoint", (k) => ({ entrypoint: k })],
      ["router", "router", (k) => ({ router: k })],
      ["service", "service", (k) => ({ service: k })],
      ["server", "server", serverLabels],
    ];
  for (const [scope, key, labels] of scopes) {
    const rows = [...t.tcpTotals(key)].sort(([a], [b]) => a.localeCompare(b));
    const prefix = `l4p_tcp_${scope}`;
    const family = (
      name: string,
      type: "counter" | "gauge",
      help: string,
      value: (v: Totals) => number,
    ) =>
      e.family(
        `${prefix}_${name}`,
        type,
        `${help}, by ${scope}.`,
        rows.map(([k, v]) => [labels(k), value(v)]),
      );
    family("connections_opened_total", "counter", "TCP connections opened", (v) => v.opened);
    family("connections_closed_total", "counter", "TCP connections closed", (v) => v.closed);
    family("connections_open", "gauge", "TCP connections open now", (v) => v.opened - v.closed);
    family("received_bytes_total", "counter", "Bytes received from TCP clients", (v) => v.bytesIn);
    family("sent_bytes_total", "counter", "Bytes sent to TCP clients", (v) => v.bytesOut);
    if (scope === "service" || scope === "server") {
      family("dial_errors_total", "counter", "Failed dials to backends", (v) => v.dialErrors);
    }
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
    const rows = [...t.udpTotals(key)].sort(([a], [b]) => a.localeCompare(b));
    const prefix = `l4p_udp_${scope}`;
    const family = (
      name: string,
      type: "counter" | "gauge",
      help: string,
      value: (v: UdpTotals) => number,
    ) =>
      e.family(
        `${prefix}_${name}`,
        type,
        `${help}, by ${scope}.`,
        rows.map(([k, v]) => [labels(k), value(v)]),
      );
    family("sessions_created_total", "counter", "UDP sessions created", (v) => v.sessionsCreated);
    family(
      "sessions_expired_total",
      "counter",
      "UDP sessions ended by the idle timeout",
      (v) => v.sessionsExpired,
    );
    family(
      "sessions_evicted_total",
      "counter",
      "UDP sessions evicted from a full table",
      (v) => v.sessionsEvicted,
    );
    family(
      "sessions_active",
      "gauge",
      "UDP sessions alive now",
      (v) => v.sessionsCreated - v.sessionsExpired - v.sessionsEvicted - v.sessionsClosed,
    );
    family(
      "received_datagrams_total",
      "counter",
      "Datagrams received from UDP clients",
      (v) => v.datagramsIn,
    );
    family(
      "sent_datagrams_total",
      "counter",
      "Datagrams sent to UDP clients",
      (v) => v.datagramsOut,
    );
    family("received_bytes_total", "counter", "Bytes received from UDP clients", (v) => v.bytesIn);
    family("sent_bytes_total", "counter", "Bytes sent to UDP clients", (v) => v.bytesOut);
    if (scope === "entrypoint") {
      family(
        "dropped_datagrams_total",
        "counter",
        "Datagrams dropped (no server, full queue, failed send, a stranger's reply)",
        (v) => v.dropped,
      );
    }
  }

  const r = src.reloads;
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
  return e.text;
}

function serverLabels(key: string): Labels {
  const space = key.lastIndexOf(" "); // server addresses have no spaces; service names may
  return { service: key.slice(0, space), server: key.slice(space + 1) };
}
