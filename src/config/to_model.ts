/** The model l4p runs, from a checked tree: traefik's defaults filled in, files' contents in. */
import { resolve } from "node:path";
import { defaultEntryPoints } from "./check.ts";
import { configPath } from "./paths.ts";
import {
  type Config,
  DEFAULTS,
  emptyConfig,
  type HealthCheckConfig,
  type ServerConfig,
} from "./model.ts";
import type { ParsedFile } from "./schema.ts";
import type { TlsMaterial } from "./tls_files.ts";
import { toHex } from "../health/probe.ts";

type HealthCheckInput = NonNullable<
  NonNullable<NonNullable<ParsedFile["tcp"]>["services"]>[string]["loadBalancer"]
>["healthCheck"];

/** A health check with its defaults, its bytes as hex. */
function healthCheckOf(h: HealthCheckInput): HealthCheckConfig | undefined {
  if (!h) return undefined;
  const hexOf = (text: string | undefined, hex: string | undefined) =>
    hex?.toLowerCase() ?? (text === undefined ? undefined : toHex(new TextEncoder().encode(text)));
  return {
    interval: h.interval,
    unhealthyInterval: h.unhealthyInterval ?? h.interval,
    timeout: h.timeout ?? DEFAULTS.healthCheckTimeout,
    send: hexOf(h.send, h.sendHex),
    expect: hexOf(h.expect, h.expectHex),
    port: h.port,
    failsThreshold: h.failsThreshold ?? DEFAULTS.failsThreshold,
    passesThreshold: h.passesThreshold ?? DEFAULTS.passesThreshold,
  };
}

/** traefik's keep-alive reading: absent or zero is the default, negative is off (as -1). */
function keepAliveOf(ms: number | undefined, fallback: number): number {
  return ms === undefined || ms === 0 ? fallback : ms < 0 ? -1 : ms;
}

/** Fills in defaults: the model l4p runs. */
export function toModel(file: ParsedFile, tls: TlsMaterial, base: string): Config {
  const config = emptyConfig();
  const hookOf = (h: { file?: string; export?: string; timeout?: number }) => ({
    file: h.file === undefined ? undefined : configPath(h.file, base),
    export: h.export ?? "default",
    timeout: h.timeout ?? DEFAULTS.hookTimeout,
  });
  const servers = (
    list: { address: ServerConfig["address"]; weight?: number; tls?: boolean }[],
  ) => list.map((s) => ({ address: s.address, weight: s.weight ?? 1, tls: s.tls || undefined }));
  const weightedOf = (w: { services: { name: string; weight?: number }[] }) => ({
    services: w.services.map((c) => ({ name: c.name, weight: c.weight ?? 1 })),
  });
  config.log = {
    level: file.log?.level,
    format: file.log?.format,
    filePath: file.log?.filePath && resolve(base, file.log.filePath),
  };
  if (file.metrics) {
    config.metrics = {
      address: file.metrics.address,
      token: file.metrics.token ?? tls.metricsToken,
      publicMetrics: file.metrics.publicMetrics ?? false,
      allowedHosts: (file.metrics.allowedHosts ?? []).map((h) => h.toLowerCase()),
    };
  }
  if (file.accessLog) {
    config.accessLog = {
      filePath: file.accessLog.filePath,
      format: file.accessLog.format ?? "json",
      minDuration: file.accessLog.filters?.minDuration,
    };
  }
  for (const [name, ep] of Object.entries(file.entryPoints ?? {})) {
    config.entryPoints[name] = {
      address: ep.address.address,
      protocol: ep.address.protocol,
      reusePort: ep.reusePort ?? false,
      helloTimeout: ep.helloTimeout ?? DEFAULTS.helloTimeout,
      silenceTimeout: ep.silenceTimeout ?? DEFAULTS.silenceTimeout,
      udp: {
        timeout: ep.udp?.timeout ?? DEFAULTS.udpTimeout,
        maxSessions: ep.udp?.maxSessions ?? DEFAULTS.udpMaxSessions,
        receiveBuffer: ep.udp?.receiveBuffer,
      },
      keepAlive: ep.keepAlive === undefined
        ? DEFAULTS.keepAlive
        : keepAliveOf(ep.keepAlive, 15_000),
      maxConnections: ep.maxConnections,
      requestAcceptGraceTimeout: ep.transport?.lifeCycle?.requestAcceptGraceTimeout ?? 0,
      graceTimeOut: ep.transport?.lifeCycle?.graceTimeOut,
      proxyProtocol: ep.proxyProtocol && {
        trustedIPs: ep.proxyProtocol.trustedIPs ?? [],
        insecure: ep.proxyProtocol.insecure ?? false,
        headerTimeout: ep.proxyProtocol.headerTimeout ?? DEFAULTS.proxyProtocolHeaderTimeout,
      },
    };
  }
  const all = (protocol: "tcp" | "udp") => defaultEntryPoints(file, protocol);
  const transport = (name: string, t: NonNullable<ParsedFile["tcpServersTransport"]>) => ({
    dialTimeout: t.dialTimeout ?? DEFAULTS.dialTimeout,
    terminationDelay: t.terminationDelay ?? DEFAULTS.terminationDelay,
    proxyProtocol: t.proxyProtocol,
    dialKeepAlive: keepAliveOf(t.dialKeepAlive, DEFAULTS.dialKeepAlive),
    tls: t.tls && {
      serverName: t.tls.serverName,
      rootCAs: tls.transports[name]?.rootCAs ?? [],
      insecureSkipVerify: t.tls.insecureSkipVerify ?? false,
      certificate: tls.transports[name]?.certificate,
      peerCertURI: t.tls.peerCertURI,
    },
  });
  for (const [name, t] of Object.entries(file.tcp?.serversTransports ?? {})) {
    config.tcp.serversTransports[name] = transport(name, t);
  }
  if (file.tcpServersTransport) {
    config.tcp.defaultTransport = transport("", file.tcpServersTransport);
  }
  const pv = file.providers;
  config.providers.throttle = pv?.providersThrottleDuration;
  if (pv?.http) {
    config.providers.http = {
      endpoint: pv.http.endpoint,
      pollInterval: pv.http.pollInterval ?? 5000,
      pollTimeout: pv.http.pollTimeout ?? 5000,
      headers: pv.http.headers ?? {},
    };
  }
  if (pv?.docker) {
    config.providers.docker = {
      endpoint: pv.docker.endpoint ?? "unix:///var/run/docker.sock",
      exposedByDefault: pv.docker.exposedByDefault ?? true,
      watch: pv.docker.watch ?? true,
      network: pv.docker.network,
      constraints: pv.docker.constraints,
      useBindPortIP: pv.docker.useBindPortIP ?? false,
      allowEmptyServices: pv.docker.allowEmptyServices ?? false,
      tls: tls.stores.docker,
    };
  }
  if (pv?.etcd) {
    config.providers.etcd = {
      ...pv.etcd,
      rootKey: pv.etcd.rootKey ?? "l4p",
      tls: tls.stores.etcd,
    };
  }
  if (pv?.redis) {
    config.providers.redis = {
      ...pv.redis,
      rootKey: pv.redis.rootKey ?? "l4p",
      db: pv.redis.db ?? 0,
      tls: tls.stores.redis,
    };
  }
  config.tls.certificates = tls.certificates;
  config.tls.defaultCertificate = tls.defaultCertificate;
  for (const [name, o] of Object.entries(file.tls?.options ?? {})) {
    config.tls.options[name] = {
      minVersion: o.minVersion ?? "VersionTLS12",
      maxVersion: o.maxVersion,
      cipherSuites: o.cipherSuites,
      alpnProtocols: o.alpnProtocols ?? [],
      clientAuth: {
        cas: tls.clientCas[name] ?? [],
        clientAuthType: o.clientAuth?.clientAuthType ?? "NoClientCert",
      },
      sniStrict: o.sniStrict ?? false,
    };
  }
  for (const [name, r] of Object.entries(file.certificatesResolvers ?? {})) {
    config.certificatesResolvers[name] = {
      email: r.acme.email,
      storage: resolve(base, r.acme.storage),
      caServer: r.acme.caServer ?? "https://acme-v02.api.letsencrypt.org/directory",
      caCertificates: tls.acmeCas[name] ?? [],
      challenge: r.acme.tlsChallenge ? "tls-alpn-01" : "http-01",
      httpEntryPoint: r.acme.httpChallenge?.entryPoint,
      keyType: r.acme.keyType ?? "EC256",
    };
  }
  for (const [name, m] of Object.entries(file.tcp?.middlewares ?? {})) {
    const allow = m.ipAllowList ?? m.ipWhiteList;
    config.tcp.middlewares[name] = allow
      ? { ipAllowList: { sourceRange: allow.sourceRange } }
      : m.inFlightConn
      ? { inFlightConn: { amount: m.inFlightConn.amount } }
      : m.hook
      ? { hook: hookOf(m.hook) }
      : {
        connRateLimit: {
          average: m.connRateLimit!.average,
          period: m.connRateLimit!.period ?? DEFAULTS.rateLimitPeriod,
          burst: m.connRateLimit!.burst ?? DEFAULTS.rateLimitBurst,
        },
      };
  }
  for (const [name, s] of Object.entries(file.tcp?.services ?? {})) {
    config.tcp.services[name] = s.loadBalancer
      ? {
        loadBalancer: {
          servers: servers(s.loadBalancer.servers),
          strategy: s.loadBalancer.strategy ?? "wrr",
          healthCheck: healthCheckOf(s.loadBalancer.healthCheck),
          passiveHealthCheck: s.loadBalancer.passiveHealthCheck && {
            maxFailedAttempts: s.loadBalancer.passiveHealthCheck.maxFailedAttempts ??
              DEFAULTS.maxFailedAttempts,
            failureWindow: s.loadBalancer.passiveHealthCheck.failureWindow ??
              DEFAULTS.failureWindow,
          },
          serversTransport: s.loadBalancer.serversTransport,
          terminationDelay: s.loadBalancer.terminationDelay,
          proxyProtocol: s.loadBalancer.proxyProtocol,
        },
      }
      : { weighted: weightedOf(s.weighted!) };
  }
  for (const [name, r] of Object.entries(file.tcp?.routers ?? {})) {
    config.tcp.routers[name] = {
      entryPoints: r.entryPoints ?? all("tcp"),
      rule: r.rule,
      ruleSyntax: r.ruleSyntax,
      service: r.service,
      priority: r.priority,
      middlewares: r.middlewares ?? [],
      tls: r.tls && {
        passthrough: r.tls.passthrough ?? false,
        options: r.tls.options ?? "default",
        certResolver: r.tls.certResolver,
        domains: (r.tls.domains ?? []).map((d) => ({ main: d.main, sans: d.sans ?? [] })),
      },
    };
  }
  for (const [name, s] of Object.entries(file.udp?.services ?? {})) {
    config.udp.services[name] = s.loadBalancer
      ? {
        loadBalancer: {
          servers: servers(s.loadBalancer.servers),
          strategy: s.loadBalancer.strategy ?? "wrr",
          healthCheck: healthCheckOf(s.loadBalancer.healthCheck),
        },
      }
      : { weighted: weightedOf(s.weighted!) };
  }
  for (const [name, m] of Object.entries(file.udp?.middlewares ?? {})) {
    config.udp.middlewares[name] = { hook: hookOf(m.hook) };
  }
  for (const [name, r] of Object.entries(file.udp?.routers ?? {})) {
    config.udp.routers[name] = {
      entryPoints: r.entryPoints ?? all("udp"),
      service: r.service,
      ...(r.rule !== undefined ? { rule: r.rule } : {}),
      ...(r.priority !== undefined ? { priority: r.priority } : {}),
      ...(r.middlewares?.length ? { middlewares: r.middlewares } : {}),
    };
  }
  return config;
}
