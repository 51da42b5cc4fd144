/** Saying what a configuration sets up: router order, one line per entrypoint, for logs. */
import { formatDuration } from "../config/duration.ts";
import type { Config } from "../config/model.ts";
import { transportOf } from "./build.ts";
import type { TcpTransport } from "../tcp/load_balancer.ts";

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

function describeTransport(t: TcpTransport): string {
  const pp = t.proxyProtocol ? `, proxyProtocol v${t.proxyProtocol}` : "";
  const delay = formatDuration(t.terminationDelay);
  return `dialTimeout ${formatDuration(t.dialTimeout)}, terminationDelay ${delay}${pp}`;
}

export function describeRoutes(config: Config, entryPoint: string): string {
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
