/**
 * The ad-hoc commands (`l4p tcp :8080 host:80`, `l4p udp :53 host:53`) as a {@link Config}, so
 * both paths run the same code.
 */
import { parseCidr } from "../net/ip.ts";
import { type HostPort, parseHostPort } from "./address.ts";
import {
  type Config,
  DEFAULTS,
  emptyConfig,
  type EntryPointConfig,
  type HealthCheckConfig,
  type ServerConfig,
} from "./model.ts";
import type { StrategyName, UdpStrategyName } from "../balancer/candidate.ts";

/** Arguments of `l4p tcp`, already parsed. */
export interface AdHocTcp {
  listen: string;
  targets: string[];
  dialTimeout?: number;
  terminationDelay?: number;
  reusePort?: boolean;
  /** Send PROXY headers of this version to the targets. */
  proxyProtocol?: 1 | 2;
  /** Take PROXY headers from these sources (CIDR ranges). */
  acceptProxy?: string[];
  strategy?: StrategyName;
  healthCheck?: HealthCheckConfig;
}

/** Arguments of `l4p udp`, already parsed. */
export interface AdHocUdp {
  listen: string;
  targets: string[];
  /** Idle time after which a session ends, in ms. */
  timeout?: number;
  maxSessions?: number;
  strategy?: UdpStrategyName;
  healthCheck?: HealthCheckConfig;
}

/** A usage error: bad address or missing argument. The CLI prints it and exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

function entryPoint(listen: string, protocol: "tcp" | "udp"): EntryPointConfig {
  const address = parseHostPort(listen, true);
  if (typeof address === "string") throw new UsageError(`listen address ${address}`);
  return {
    address: protocol === "udp" ? { ...address, text: `${address.text}/udp` } : address,
    protocol,
    reusePort: false,
    udp: { timeout: DEFAULTS.udpTimeout, maxSessions: DEFAULTS.udpMaxSessions },
    helloTimeout: DEFAULTS.helloTimeout,
    silenceTimeout: DEFAULTS.silenceTimeout,
    keepAlive: DEFAULTS.keepAlive,
    requestAcceptGraceTimeout: 0,
  };
}

function servers(targets: string[]): ServerConfig[] {
  if (targets.length === 0) throw new UsageError("no TARGET given (host:port to forward to)");
  return targets.map((t) => {
    const address: HostPort | string = parseHostPort(t);
    if (typeof address === "string") throw new UsageError(`target ${address}`);
    return { address, weight: 1 };
  });
}

/** Translates `l4p tcp LISTEN TARGET...` into an entrypoint `tcp`, a router and a service. */
export function adHocTcpConfig(options: AdHocTcp): Config {
  const config = emptyConfig();
  config.entryPoints.tcp = {
    ...entryPoint(options.listen, "tcp"),
    reusePort: options.reusePort ?? false,
  };
  if (options.acceptProxy?.length) {
    for (const range of options.acceptProxy) {
      const c = parseCidr(range);
      if (typeof c === "string") throw new UsageError(`--accept-proxy ${c}`);
    }
    config.entryPoints.tcp.proxyProtocol = {
      trustedIPs: options.acceptProxy,
      insecure: false,
      headerTimeout: DEFAULTS.proxyProtocolHeaderTimeout,
    };
  }
  config.tcp.serversTransports.adhoc = {
    dialTimeout: options.dialTimeout ?? DEFAULTS.dialTimeout,
    terminationDelay: options.terminationDelay ?? DEFAULTS.terminationDelay,
    proxyProtocol: options.proxyProtocol ? { version: options.proxyProtocol } : undefined,
    dialKeepAlive: DEFAULTS.dialKeepAlive,
  };
  config.tcp.services.targets = {
    loadBalancer: {
      servers: servers(options.targets),
      serversTransport: "adhoc",
      strategy: options.strategy ?? "wrr",
      healthCheck: options.healthCheck,
    },
  };
  config.tcp.routers.tcp = {
    entryPoints: ["tcp"],
    rule: "HostSNI(`*`)",
    service: "targets",
    middlewares: [],
  };
  return config;
}

/** Translates `l4p udp LISTEN TARGET...` into an entrypoint `udp`, a router and a service. */
export function adHocUdpConfig(options: AdHocUdp): Config {
  const config = emptyConfig();
  const ep = entryPoint(options.listen, "udp");
  ep.udp = {
    timeout: options.timeout ?? DEFAULTS.udpTimeout,
    maxSessions: options.maxSessions ?? DEFAULTS.udpMaxSessions,
  };
  config.entryPoints.udp = ep;
  config.udp.services.targets = {
    loadBalancer: {
      servers: servers(options.targets),
      strategy: options.strategy ?? "wrr",
      healthCheck: options.healthCheck,
    },
  };
  config.udp.routers.udp = { entryPoints: ["udp"], service: "targets" };
  return config;
}
