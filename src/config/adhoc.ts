/** The ad-hoc commands (`l4p tcp :8080 host:80`) as a {@link Config}, so both paths run one code. */
import { parseHostPort } from "./address.ts";
import { type Config, DEFAULTS, emptyConfig } from "./model.ts";

/** Flags of the ad-hoc TCP command, already parsed. */
export interface AdHocTcp {
  listen: string;
  targets: string[];
  dialTimeout?: number;
  terminationDelay?: number;
  reusePort?: boolean;
}

/** A usage error: bad address or missing argument. The CLI prints it and exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Translates `l4p tcp LISTEN TARGET...` into an entrypoint `tcp`, a router and a service. */
export function adHocTcpConfig(options: AdHocTcp): Config {
  const listen = parseHostPort(options.listen, true);
  if (typeof listen === "string") throw new UsageError(`listen address ${listen}`);
  if (options.targets.length === 0) {
    throw new UsageError("no TARGET given (host:port to forward to)");
  }
  const servers = options.targets.map((t) => {
    const address = parseHostPort(t);
    if (typeof address === "string") throw new UsageError(`target ${address}`);
    return { address, weight: 1 };
  });
  const config = emptyConfig();
  config.entryPoints.tcp = {
    address: listen,
    protocol: "tcp",
    reusePort: options.reusePort ?? false,
    udp: { timeout: DEFAULTS.udpTimeout, maxSessions: DEFAULTS.udpMaxSessions },
  };
  config.tcp.serversTransports.adhoc = {
    dialTimeout: options.dialTimeout ?? DEFAULTS.dialTimeout,
    terminationDelay: options.terminationDelay ?? DEFAULTS.terminationDelay,
  };
  config.tcp.services.targets = { loadBalancer: { servers, serversTransport: "adhoc" } };
  config.tcp.routers.tcp = { entryPoints: ["tcp"], rule: "HostSNI(`*`)", service: "targets" };
  return config;
}
