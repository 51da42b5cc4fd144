/** Saying what a configuration sets up: router order, one line per entrypoint, for logs. */
import { formatDuration } from "../config/duration.ts";
import type { Config, HealthCheckConfig, PassiveHealthCheckConfig } from "../config/model.ts";
import { fromHex } from "../health/probe.ts";
import { transportOf } from "./build.ts";
import type { TcpTransport } from "../tcp/load_balancer.ts";
import { routerOrder as orderRouters } from "../tcp/router_order.ts";

/** The TCP routers of an entrypoint in match order (traefik's, see src/tcp/router_order.ts). */
export function routerOrder(config: Config, entryPoint: string): string[] {
  return orderRouters(config.tcp.routers, entryPoint);
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
  for (const protocol of ["tcp", "udp"] as const) {
    for (const [name, s] of Object.entries(config[protocol].services)) {
      if (!s.loadBalancer) {
        const children = s.weighted?.services ?? [];
        out += `${protocol} service ${name}: weighted over ${
          children.map((c: { name: string; weight: number }) => `${c.name} (${c.weight})`)
            .join(", ")
        }\n`;
        continue;
      }
      const lb: LoadBalancerShape = s.loadBalancer;
      out += `${protocol} service ${name}: ${lb.strategy} over ${lb.servers.length} server${
        lb.servers.length === 1 ? "" : "s"
      }; ${describeHealth(lb.healthCheck)}`;
      if (lb.passiveHealthCheck) {
        const p = lb.passiveHealthCheck;
        out += `; passive: down after ${p.maxFailedAttempts} failed dial${
          p.maxFailedAttempts === 1 ? "" : "s"
        } within ${formatDuration(p.failureWindow)}`;
      }
      out += "\n";
    }
  }
  return out;
}

type LoadBalancerShape = {
  servers: unknown[];
  strategy: string;
  healthCheck?: HealthCheckConfig;
  passiveHealthCheck?: PassiveHealthCheckConfig;
};

/** A health check in words, its bytes as text when printable. */
export function describeHealth(h: HealthCheckConfig | undefined): string {
  if (!h) return "no health check";
  let out = `health check every ${formatDuration(h.interval)}`;
  if (h.unhealthyInterval !== h.interval) {
    out += ` (${formatDuration(h.unhealthyInterval)} while down)`;
  }
  out += `, timeout ${
    formatDuration(h.timeout)
  }, down after ${h.failsThreshold} failed, up after ${h.passesThreshold} passed`;
  if (h.port) out += `, on port ${h.port}`;
  if (h.send) out += `, send ${bytesText(h.send)}`;
  if (h.expect) out += `, expect ${bytesText(h.expect)}`;
  return out;
}

function bytesText(hex: string): string {
  const bytes = fromHex(hex);
  const printable = bytes.every((b) => (b >= 0x20 && b < 0x7f) || b === 0x0d || b === 0x0a);
  return printable ? JSON.stringify(new TextDecoder().decode(bytes)) : `0x${hex}`;
}

function describeTransport(t: TcpTransport): string {
  const pp = t.proxyProtocol ? `, proxyProtocol v${t.proxyProtocol}` : "";
  const delay = formatDuration(t.terminationDelay);
  return `dialTimeout ${formatDuration(t.dialTimeout)}, terminationDelay ${delay}${pp}`;
}

/** Routers an entrypoint's start line names; the rest are counted (l4p check lists them all). */
const ROUTES_NAMED = 20;

/** What an entrypoint forwards to, for its start line: the first routers, and how many more. */
export function describeRoutes(config: Config, entryPoint: string): string {
  const parts: string[] = [];
  let more = 0;
  const servers = (lb?: { servers: { address: { text: string } }[] }) =>
    lb?.servers.map((s) => s.address.text).join(",");
  for (const [name, rc] of Object.entries(config.tcp.routers)) {
    if (!rc.entryPoints.includes(entryPoint)) continue;
    if (parts.length >= ROUTES_NAMED) {
      more++;
      continue;
    }
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
  if (more) parts.push(`and ${more} more routers`);
  return parts.join("; ") || "nothing (no router)";
}
