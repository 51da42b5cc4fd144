/**
 * The configuration as l4p runs it: every default filled in, every duration in milliseconds,
 * every address parsed. The YAML file and the ad-hoc `l4p tcp` command both produce this.
 * Names follow traefik's.
 */
import type { StrategyName, UdpStrategyName } from "../balancer/candidate.ts";
import type { LogFormat, LogLevel } from "../log/logger.ts";
import type { Certificate } from "../tls/certificates.ts";
import type { HostPort } from "./address.ts";

/** Defaults, as traefik has them. */
export const DEFAULTS = {
  dialTimeout: 5_000,
  terminationDelay: 100,
  proxyProtocolHeaderTimeout: 5_000,
  helloTimeout: 5_000,
  silenceTimeout: 2_000,
  udpTimeout: 3_000,
  udpMaxSessions: 10_000,
  /**
   * TCP keep-alive idle time on backend connections (traefik's `dialKeepAlive`), switched on once
   * a connection has lasted a second (`KEEPALIVE_AFTER`).
   */
  dialKeepAlive: 15_000,
  /**
   * TCP keep-alive on client connections: off, as in HAProxy and nginx (four system calls a
   * connection on Bun; measured). traefik (Go) switches it on; `keepAlive: 15s` does that.
   */
  keepAlive: -1,
  /** `connRateLimit`: the period `average` is counted over, and the burst (traefik's). */
  rateLimitPeriod: 1_000,
  rateLimitBurst: 1,
  hookTimeout: 1000,
  /** Health checks: traefik's timeout; HAProxy's fall and rise. */
  healthCheckTimeout: 5_000,
  failsThreshold: 3,
  passesThreshold: 2,
  /** Passive ejection (traefik's). */
  maxFailedAttempts: 1,
  failureWindow: 10_000,
} as const;

/** A whole configuration. */
export interface Config {
  entryPoints: Record<string, EntryPointConfig>;
  /**
   * Dynamic items left out with their problems (`tcp.routers.NAME`, a file), the rest being
   * served, as traefik disables them: shown by the status API, logged, counted.
   */
  leftOut: { item: string; errors: string[] }[];
  /**
   * Where dynamic items that the configuration file itself does not hold came from, by item
   * (`tcp.routers.NAME` → `docker`, `etcd`, `redis`, `http`, `file` for a file provider's file).
   */
  origins: Record<string, string>;
  tcp: TcpConfig;
  udp: UdpConfig;
  /** Command-line flags override these. */
  log: { level?: LogLevel; format?: LogFormat; filePath?: string };
  /** The admin listener (metrics, status API, dashboard); none when absent. */
  metrics?: {
    address: HostPort;
    /** Required of every request but /healthz (and /metrics when `publicMetrics`). */
    token?: string;
    publicMetrics: boolean;
    /** Without a token: Host names accepted besides IP literals and localhost. */
    allowedHosts: string[];
  };
  /** The access log; off when absent. */
  accessLog?: {
    filePath?: string;
    format: "json" | "text";
    /** Only lines for connections and sessions that lasted at least this long, in ms. */
    minDuration?: number;
  };
  /** Certificates and TLS options for routers that terminate TLS. */
  tls: TlsConfig;
  /** ACME resolvers, by name. */
  certificatesResolvers: Record<string, AcmeResolverConfig>;
  /** Stores that hold the shared dynamic part (traefik's KV providers). */
  providers: ProvidersConfig;
}

/** traefik's KV providers l4p reads. */
export interface ProvidersConfig {
  /** traefik's providersThrottleDuration: changes within this long are applied once (ms). */
  throttle?: number;
  etcd?: {
    endpoints: string[];
    rootKey: string;
    username?: string;
    password?: string;
    tls?: StoreTls;
  };
  redis?: {
    endpoints: string[];
    rootKey: string;
    db: number;
    username?: string;
    password?: string;
    tls?: StoreTls;
  };
  /** traefik's HTTP provider: a control plane serving the dynamic configuration. */
  http?: {
    endpoint: string;
    /** ms */
    pollInterval: number;
    /** ms */
    pollTimeout: number;
    headers: Record<string, string>;
  };
  /** traefik's Docker provider: containers' labels, from the Engine API. */
  docker?: {
    /** unix:///var/run/docker.sock, or tcp://host:port (2375; 2376 with tls) */
    endpoint: string;
    exposedByDefault: boolean;
    watch: boolean;
    /** The network whose address a container is reached at (`traefik.docker.network`). */
    network?: string;
    /** traefik's constraint expression over labels; absent: every container. */
    constraints?: string;
    /** Reach containers at their published host IP and port. */
    useBindPortIP: boolean;
    /** Serve containers whatever their Docker health check says. */
    allowEmptyServices: boolean;
    /** TLS to a remote engine (tcp://host:2376). */
    tls?: StoreTls;
  };
}

/** TLS to a store, its files read (PEM). */
export interface StoreTls {
  ca?: string;
  cert?: string;
  key?: string;
  insecureSkipVerify: boolean;
}

/** traefik's `tls` section, its files read and checked. */
export interface TlsConfig {
  certificates: Certificate[];
  defaultCertificate?: Certificate;
  /** By name; `default` is always there (traefik's defaults, unless the file sets it). */
  options: Record<string, TlsOptionsConfig>;
}

/** One `tls.options` entry. */
export interface TlsOptionsConfig {
  minVersion: TlsVersion;
  maxVersion?: TlsVersion;
  /** Go names, validated. */
  cipherSuites?: string[];
  alpnProtocols: string[];
  clientAuth: { cas: string[]; clientAuthType: ClientAuthType };
  sniStrict: boolean;
}

/** TLS versions by traefik's names: the one list the schema and the TLS layer read. */
export const TLS_VERSIONS = [
  "VersionTLS10",
  "VersionTLS11",
  "VersionTLS12",
  "VersionTLS13",
] as const;
export type TlsVersion = typeof TLS_VERSIONS[number];

/** traefik's (Go's) client-auth types: the one list. */
export const CLIENT_AUTH_TYPES = [
  "NoClientCert",
  "RequestClientCert",
  "RequireAnyClientCert",
  "VerifyClientCertIfGiven",
  "RequireAndVerifyClientCert",
] as const;
export type ClientAuthType = typeof CLIENT_AUTH_TYPES[number];

/** A router's TLS: passed through, or terminated with these options and certificates. */
export interface RouterTlsConfig {
  passthrough: boolean;
  options: string;
  certResolver?: string;
  domains: { main: string; sans: string[] }[];
}

/** An ACME certificate resolver (traefik's `certificatesResolvers.NAME.acme`). */
export interface AcmeResolverConfig {
  email?: string;
  storage: string;
  caServer: string;
  /** PEM roots for the ACME server's own certificate (a private CA). */
  caCertificates: string[];
  challenge: "tls-alpn-01" | "http-01";
  /** The entrypoint that answers HTTP-01 challenges. */
  httpEntryPoint?: string;
  keyType: "EC256" | "EC384" | "RSA2048" | "RSA4096";
}

/** Where l4p listens. */
export interface EntryPointConfig {
  address: HostPort;
  protocol: "tcp" | "udp";
  /** Share the port with other processes (SO_REUSEPORT). */
  reusePort: boolean;
  udp: { timeout: number; maxSessions: number; receiveBuffer?: number };
  /** How long a client may take to send its TLS ClientHello when a rule needs SNI or ALPN, in ms. */
  helloTimeout: number;
  /** How long a client may send nothing before `Protocol(\`silent\`)` matches it, in ms. */
  silenceTimeout: number;
  /** Take PROXY headers from these sources; absent: no PROXY protocol on this entrypoint. */
  proxyProtocol?: EntryPointProxyProtocol;
  /** TCP keep-alive idle time on accepted connections, in ms; ≤ 0: off. */
  keepAlive: number;
  /** Most connections open at once; beyond it new ones are closed at once. Absent: no limit. */
  maxConnections?: number;
  /** On a stop signal, how long this entrypoint goes on accepting, in ms (traefik's lifeCycle). */
  requestAcceptGraceTimeout: number;
  /** Then how long its connections may take to finish, in ms; absent: `--drain-timeout`. */
  graceTimeOut?: number;
}

/** Who may send PROXY headers to an entrypoint. */
export interface EntryPointProxyProtocol {
  /** CIDR ranges or addresses whose headers are believed. */
  trustedIPs: string[];
  /** Believe everyone (traefik's `insecure`). */
  insecure: boolean;
  /** How long a trusted source may take to send its header, in ms. */
  headerTimeout: number;
}

/** TCP routers, services, transports and middlewares. */
export interface TcpConfig {
  routers: Record<string, TcpRouterConfig>;
  services: Record<string, TcpServiceConfig>;
  serversTransports: Record<string, TcpServersTransportConfig>;
  middlewares: Record<string, TcpMiddlewareConfig>;
  /** traefik v3's static `tcpServersTransport`: for services that name no transport. */
  defaultTransport?: TcpServersTransportConfig;
}

/** A TCP middleware: exactly one kind (traefik's `ipWhiteList` is read as `ipAllowList`). */
export type TcpMiddlewareConfig =
  | { ipAllowList: { sourceRange: string[] } }
  | { inFlightConn: { amount: number } }
  | { connRateLimit: { average: number; period: number; burst: number } }
  | { hook: HookConfig };

/**
 * A routing hook (l4p's own): `export` of the module at `file` (an absolute path), or of the
 * hooks given in code when there is no file; `timeout` in ms.
 */
export interface HookConfig {
  file?: string;
  export: string;
  timeout: number;
}

/** Which connections go to which service. */
export interface TcpRouterConfig {
  entryPoints: string[];
  rule: string;
  /** traefik's rule syntax; v2 reads HostSNIRegexp as its host templates. */
  ruleSyntax?: "v2" | "v3";
  service: string;
  priority?: number;
  /** Middlewares a connection passes, in order, before the service. */
  middlewares: string[];
  /** Absent: TLS (if any) passes through untouched, as with `passthrough: true`. */
  tls?: RouterTlsConfig;
}

/** A service: servers behind a balancer, or other services by weight. */
export type TcpServiceConfig =
  | { loadBalancer: TcpLoadBalancerConfig; weighted?: undefined }
  | { weighted: WeightedConfig; loadBalancer?: undefined };

/** An active health check (durations in ms; bytes as hex). */
export interface HealthCheckConfig {
  interval: number;
  /** Between checks of a server that is down. */
  unhealthyInterval: number;
  timeout: number;
  /** Bytes to send (TCP) or the datagram (UDP), as hex. */
  send?: string;
  /** Bytes the reply must contain, as hex. */
  expect?: string;
  /** Check this port instead of the server's. */
  port?: number;
  failsThreshold: number;
  passesThreshold: number;
}

/** Passive ejection (traefik v3's names; `failureWindow` in ms). */
export interface PassiveHealthCheckConfig {
  maxFailedAttempts: number;
  failureWindow: number;
}

/** Servers and how to reach them. */
export interface TcpLoadBalancerConfig {
  servers: ServerConfig[];
  strategy: StrategyName;
  healthCheck?: HealthCheckConfig;
  passiveHealthCheck?: PassiveHealthCheckConfig;
  serversTransport?: string;
  /** traefik v2's place for it, in ms; more specific than the `serversTransport`, so it wins. */
  terminationDelay?: number;
  /** traefik v2's place for it; wins over the `serversTransport`'s. */
  proxyProtocol?: { version: 1 | 2 };
}

/** One backend. */
export interface ServerConfig {
  address: HostPort;
  weight: number;
  /** TCP: dial it over TLS. */
  tls?: boolean;
}

/** Child services by weight. */
export interface WeightedConfig {
  services: { name: string; weight: number }[];
}

/** How to dial servers (traefik v3's `serversTransports`). */
export interface TcpServersTransportConfig {
  dialTimeout: number;
  terminationDelay: number;
  /** Send a PROXY header of this version to the servers. */
  proxyProtocol?: { version: 1 | 2 };
  /** TCP keep-alive idle time on backend connections, in ms; ≤ 0: off. */
  dialKeepAlive: number;
  /** How servers marked `tls: true` are dialled. */
  tls?: TransportTlsConfig;
}

/** TLS to servers (traefik's `serversTransports.NAME.tls`), its files read. */
export interface TransportTlsConfig {
  serverName?: string;
  /** PEM roots; the system's when empty. */
  rootCAs: string[];
  insecureSkipVerify: boolean;
  certificate?: Certificate;
  peerCertURI?: string;
}

/** UDP routers and services. */
export interface UdpConfig {
  routers: Record<string, UdpRouterConfig>;
  services: Record<string, UdpServiceConfig>;
  /** l4p's own: hooks a UDP router asks once per new session. */
  middlewares: Record<string, { hook: HookConfig }>;
}

/** Which entrypoints feed which service. */
export interface UdpRouterConfig {
  entryPoints: string[];
  service: string;
  /** l4p's own: which new sessions it takes (QUIC SNI/ALPN, ClientIP); absent: every one. */
  rule?: string;
  priority?: number;
  /** l4p's own: `udp.middlewares` asked in order, once per new session. */
  middlewares?: string[];
}

/** A UDP service. */
export type UdpServiceConfig =
  | { loadBalancer: UdpLoadBalancerConfig; weighted?: undefined }
  | { weighted: WeightedConfig; loadBalancer?: undefined };

/** UDP servers: `wrr` or `hrw` (on the client IP), and a datagram health check. */
export interface UdpLoadBalancerConfig {
  servers: ServerConfig[];
  strategy: UdpStrategyName;
  healthCheck?: HealthCheckConfig;
}

/** An empty configuration to build on. */
export function emptyConfig(): Config {
  return {
    entryPoints: {},
    leftOut: [],
    origins: {},
    tcp: { routers: {}, services: {}, serversTransports: {}, middlewares: {} },
    udp: { routers: {}, services: {}, middlewares: {} },
    log: {},
    tls: { certificates: [], options: { default: defaultTlsOptions() } },
    certificatesResolvers: {},
    providers: {},
  };
}

/** traefik's `default` TLS options: TLS 1.2 and up, no client certificates. */
export function defaultTlsOptions(): TlsOptionsConfig {
  return {
    minVersion: "VersionTLS12",
    alpnProtocols: [],
    clientAuth: { cas: [], clientAuthType: "NoClientCert" },
    sniStrict: false,
  };
}
