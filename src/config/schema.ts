/**
 * The configuration file's schema (zod 4), in traefik's names. It checks shapes and values;
 * {@link crossCheck} then checks what spans the file (references, cycles, shared addresses).
 * `schema/l4p.schema.json` is generated from it for editors (`scripts/schema.ts`).
 */
import { parseConstraint } from "../providers/constraints.ts";
import { isIP } from "node:net";
import { z } from "zod";
import { parseCidr } from "../net/ip.ts";
import { type HostPort, parseHostPort } from "./address.ts";
import { CLIENT_AUTH_TYPES, TLS_VERSIONS } from "./model.ts";
import { DURATION_RANGES, type DurationRange, outOfRange, parseDuration } from "./duration.ts";
import { LOG_LEVELS, type LogLevel } from "../log/logger.ts";
import { STRATEGIES, UDP_STRATEGIES } from "../balancer/candidate.ts";

const durationText = "a duration: 100ms, 5s, 1m30s; a bare number means seconds";

/** A duration, to milliseconds. */
const duration = z.union([z.string(), z.number()], {
  error: "expected a duration like 100ms or 5s",
}).transform((value, ctx) => {
  const ms = typeof value === "number" ? value * 1000 : parseDuration(value);
  if (typeof ms === "string") {
    ctx.addIssue({ code: "custom", message: ms });
    return z.NEVER;
  }
  return ms;
}).meta({ description: durationText });

/** A dialable `host:port`. */
const serverAddress = z.string().transform((value, ctx): HostPort => {
  const a = parseHostPort(value);
  if (typeof a === "string") {
    ctx.addIssue({ code: "custom", message: a.replace(/^"[^"]*" /, "") });
    return z.NEVER;
  }
  return a;
}).meta({ description: "host:port of a backend server", examples: ["127.0.0.1:9001"] });

/** `[host]:port` to listen on, without a protocol suffix. */
function serverAddressListen() {
  return z.string().transform((value, ctx): HostPort => {
    const a = parseHostPort(value, true);
    if (typeof a === "string") {
      ctx.addIssue({ code: "custom", message: a.replace(/^"[^"]*" /, "") });
      return z.NEVER;
    }
    return a;
  }).meta({ description: "[host]:port to listen on", examples: ["127.0.0.1:9100"] });
}

/** `[host]:port`, with an optional `/tcp` or `/udp` suffix. */
const entryPointAddress = z.string().transform((value, ctx) => {
  const m = value.match(/^(.*?)(?:\/(tcp|udp))?$/)!;
  const a = parseHostPort(m[1], true);
  if (typeof a === "string") {
    ctx.addIssue({ code: "custom", message: a.replace(/^"[^"]*" /, "") });
    return z.NEVER;
  }
  return { address: { ...a, text: value }, protocol: (m[2] ?? "tcp") as "tcp" | "udp" };
}).meta({
  description: "[host]:port to listen on; a /udp suffix makes a UDP entrypoint",
  examples: ["127.0.0.1:8080", ":8053/udp"],
});

const weight = z.number().int().min(0).meta({ description: "share of the traffic; default 1" });
const names = z.array(z.string().min(1));

const proxyProtocolVersion = z.strictObject({
  version: z.literal([1, 2]).meta({
    description: "PROXY protocol version: 1 (text) or 2 (binary)",
  }),
});

const cidr = z.string().superRefine((value, ctx) => {
  const c = parseCidr(value);
  if (typeof c === "string") ctx.addIssue({ code: "custom", message: c.replace(/^"[^"]*" /, "") });
}).meta({
  description: "an address or CIDR range",
  examples: ["127.0.0.1/32", "10.0.0.0/8", "::1"],
});

/** A duration within the range l4p gives that key (every one fits in a timer). */
function durationIn(range: DurationRange) {
  return duration.superRefine((ms, ctx) => {
    const wrong = outOfRange(ms, range);
    if (wrong) ctx.addIssue({ code: "custom", message: wrong });
  });
}
const R = DURATION_RANGES;

const entryPoint = z.strictObject({
  address: entryPointAddress,
  keepAlive: durationIn(R.keepAlive).optional().meta({
    description:
      "l4p's own: TCP keep-alive idle time on client connections; default off; zero means 15s",
  }),
  maxConnections: z.number().int().min(1, { message: "must be at least 1" }).optional().meta({
    description:
      "l4p's own: most connections open at once; beyond it new ones are closed at once and counted",
  }),
  reusePort: z.boolean().optional().meta({
    description: "SO_REUSEPORT, so several l4p processes can share the port",
  }),
  asDefault: z.boolean().optional().meta({
    description:
      "routers that name no entryPoints use the entrypoints marked asDefault (all, when none is)",
  }),
  helloTimeout: durationIn(R.helloTimeout).optional().meta({
    description:
      "l4p's own: how long a client may take to send its TLS ClientHello when a router needs SNI or ALPN; default 5s",
  }),
  silenceTimeout: durationIn(R.silenceTimeout).optional().meta({
    description:
      "l4p's own: how long a client may send nothing before Protocol(`silent`) matches it (a server speaks first: SMTP, MySQL, FTP); shorter than helloTimeout; default 2s",
  }),
  udp: z.strictObject({
    timeout: durationIn(R.udpTimeout).optional().meta({
      description: "idle time before a UDP session ends; default 3s",
    }),
    maxSessions: z.number().int().min(1).optional().meta({
      description:
        "most UDP sessions at once; the least recently used idle one is evicted; default 10000",
    }),
    receiveBuffer: z.number().int().min(4096, { message: "must be at least 4096 (bytes)" })
      .max(256 * 1024 * 1024, { message: "must be at most 268435456 (256 MiB)" }).optional()
      .meta({
        description:
          "l4p's own: the kernel receive buffer (SO_RCVBUF, bytes) of the listening and session sockets; default the system's (net.core.rmem_default), capped by net.core.rmem_max",
      }),
  }).optional(),
  transport: z.strictObject({
    lifeCycle: z.strictObject({
      requestAcceptGraceTimeout: durationIn(R.drainTimeout).optional().meta({
        description:
          "on SIGTERM, how long this entrypoint goes on accepting before it stops listening; default 0",
      }),
      graceTimeOut: durationIn(R.drainTimeout).optional().meta({
        description:
          "once it stops listening, how long its established connections may take to finish before they are closed; default --drain-timeout (30s)",
      }),
    }).optional(),
  }).optional().meta({
    description: "of traefik's transport, only lifeCycle: the rest concerns HTTP",
  }),
  proxyProtocol: z.strictObject({
    trustedIPs: z.array(cidr).optional().meta({
      description:
        "sources whose PROXY headers are believed; from others a header closes the connection",
    }),
    insecure: z.boolean().optional().meta({ description: "believe PROXY headers from everyone" }),
    headerTimeout: durationIn(R.headerTimeout).optional().meta({
      description: "l4p's own: how long a trusted source may take to send its header; default 5s",
    }),
  }).optional(),
});

const server = z.strictObject({ address: serverAddress, weight: weight.optional() });

const tcpServer = z.strictObject({
  address: serverAddress,
  weight: weight.optional(),
  tls: z.boolean().optional().meta({
    description: "dial this server over TLS (its serversTransport's tls settings)",
  }),
});

const file = z.string().min(1);
const certificateFiles = z.strictObject({
  certFile: file.meta({ description: "PEM certificate, chain included" }),
  keyFile: file.meta({ description: "PEM private key" }),
});

/** traefik's `providers.etcd.tls` / `providers.redis.tls` / `providers.docker.tls`. */
const storeTls = z.strictObject({
  ca: file.optional().meta({
    description: "PEM CA bundle the store's certificate is checked with",
  }),
  cert: file.optional().meta({ description: "PEM client certificate (with key)" }),
  key: file.optional().meta({ description: "PEM client key (with cert)" }),
  insecureSkipVerify: z.boolean().optional().meta({
    description: "do not check the store's certificate (Redis only)",
  }),
}).superRefine((t, ctx) => {
  if (!t.cert !== !t.key) {
    ctx.addIssue({
      code: "custom",
      path: [t.cert ? "key" : "cert"],
      message: "cert and key go together",
    });
  }
});

const tlsOptions = z.strictObject({
  minVersion: z.enum(TLS_VERSIONS).optional().meta({ description: "default VersionTLS12" }),
  maxVersion: z.enum(TLS_VERSIONS).optional(),
  cipherSuites: z.array(z.string().min(1)).optional().meta({
    description: "Go names, as traefik: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, …",
  }),
  alpnProtocols: z.array(z.string().min(1)).optional().meta({
    description: "protocols offered by ALPN on terminated connections; default none",
  }),
  clientAuth: z.strictObject({
    caFiles: z.array(file).optional(),
    clientAuthType: z.enum(CLIENT_AUTH_TYPES).optional().meta({
      description: "default NoClientCert",
    }),
  }).optional(),
  sniStrict: z.boolean().optional().meta({
    description: "refuse a server name no certificate names, even with a default certificate",
  }),
});

/** traefik's dynamic `tls` section. */
const tlsSection = z.strictObject({
  certificates: z.array(certificateFiles.extend({ stores: names.optional() })).optional(),
  options: z.record(z.string(), tlsOptions).optional(),
  stores: z.record(
    z.string(),
    z.strictObject({ defaultCertificate: certificateFiles.optional() }),
  ).optional(),
});

const routerTls = z.strictObject({
  passthrough: z.boolean().optional().meta({
    description: "pass TLS through untouched (no certificate here); default false: terminate",
  }),
  options: z.string().min(1).optional().meta({
    description: "a tls.options name; default: default",
  }),
  certResolver: z.string().min(1).optional().meta({
    description: "a certificatesResolvers name: certificates for this router's names, by ACME",
  }),
  domains: z.array(z.strictObject({
    main: z.string().min(1),
    sans: z.array(z.string().min(1)).optional(),
  })).optional(),
});

const transportTls = z.strictObject({
  serverName: z.string().min(1).optional().meta({
    description: "SNI sent, and the name the server certificate must carry; default: the host",
  }),
  rootCAs: z.array(file).optional().meta({ description: "PEM files of trusted roots" }),
  insecureSkipVerify: z.boolean().optional(),
  certificates: z.array(certificateFiles).optional().meta({
    description: "a client certificate, for servers that ask",
  }),
  peerCertURI: z.string().min(1).optional().meta({
    description: "the server certificate must carry this URI SAN",
  }),
  spiffe: z.unknown().optional().superRefine((v, ctx) => {
    if (v !== undefined) {
      ctx.addIssue({
        code: "custom",
        message:
          "SPIFFE identities are not supported by l4p: verify the server with rootCAs and peerCertURI",
      });
    }
  }).meta({ description: "traefik's SPIFFE identities: not supported (an error)" }),
});

const acmeResolver = z.strictObject({
  email: z.string().min(1).optional(),
  storage: file.meta({ description: "a JSON file (0600) for the account and certificates" }),
  caServer: z.string().url().optional().meta({
    description: "the ACME directory; default Let's Encrypt's",
  }),
  caCertificates: z.array(file).optional().meta({
    description: "l4p's own: PEM roots the ACME server's own certificate is checked with",
  }),
  tlsChallenge: z.strictObject({}).optional(),
  httpChallenge: z.strictObject({ entryPoint: z.string().min(1) }).optional(),
  keyType: z.enum(["EC256", "EC384", "RSA2048", "RSA4096"]).optional().meta({
    description: "default EC256",
  }),
});

const hex = z.string().regex(/^([0-9a-fA-F]{2})+$/, {
  message: "expected hex bytes, two digits each (0a1b2c…)",
});
const threshold = z.number().int().min(1, { message: "must be at least 1" });

/** Fields of a health check, TCP and UDP alike (traefik v3's TCP names; `sendHex` l4p's). */
const healthCheckFields = {
  interval: durationIn(R.healthInterval).meta({ description: "between checks of a server" }),
  unhealthyInterval: durationIn(R.healthInterval).optional().meta({
    description: "between checks of a server that is down; default: interval",
  }),
  timeout: durationIn(R.healthTimeout).optional().meta({
    description: "for one check; default 5s",
  }),
  send: z.string().min(1).optional().meta({ description: "text to send" }),
  sendHex: hex.optional().meta({ description: "l4p's own: bytes to send, in hex" }),
  expect: z.string().min(1).optional().meta({ description: "text the reply must contain" }),
  expectHex: hex.optional().meta({
    description: "l4p's own: bytes the reply must contain, in hex",
  }),
  port: z.number().int().min(1).max(65535).optional().meta({
    description: "check this port instead of the server's",
  }),
  failsThreshold: threshold.optional().meta({
    description: "failed checks in a row that put a server down; default 3",
  }),
  passesThreshold: threshold.optional().meta({
    description: "passed checks in a row that bring a server back; default 2",
  }),
};

type HealthCheckInput = { send?: string; sendHex?: string; expect?: string; expectHex?: string };

/** Text or hex, not both. */
function oneForm(h: HealthCheckInput, ctx: z.RefinementCtx): void {
  for (const [text, bytes] of [["send", "sendHex"], ["expect", "expectHex"]] as const) {
    if (h[text] !== undefined && h[bytes] !== undefined) {
      ctx.addIssue({ code: "custom", message: `give ${text} or ${bytes}, not both` });
    }
  }
}

const tcpHealthCheck = z.strictObject(healthCheckFields).superRefine(oneForm);

const udpHealthCheck = z.strictObject(healthCheckFields).superRefine((h, ctx) => {
  oneForm(h, ctx);
  if (h.send === undefined && h.sendHex === undefined) {
    ctx.addIssue({
      code: "custom",
      message: h.expect !== undefined || h.expectHex !== undefined
        ? "expect without send: a UDP check sends a datagram (send or sendHex) and expects its reply"
        : "a UDP check sends a datagram: give send or sendHex",
    });
  }
});

const passiveHealthCheck = z.strictObject({
  maxFailedAttempts: threshold.optional().meta({
    description: "dial failures within failureWindow that put a server down; default 1",
  }),
  failureWindow: durationIn(R.failureWindow).optional().meta({ description: "default 10s" }),
});

const weighted = z.strictObject({
  services: z.array(z.strictObject({ name: z.string().min(1), weight: weight.optional() })).min(1, {
    message: "a weighted service needs at least one service",
  }),
  healthCheck: z.strictObject({}).optional().meta({
    description:
      "traefik's switch for health propagation: in l4p a weighted service always follows its children's health",
  }),
});

const tcpLoadBalancer = z.strictObject({
  servers: z.array(tcpServer).min(1, { message: "the server list is empty" }),
  strategy: z.enum(STRATEGIES).optional().meta({
    description:
      "wrr (smooth weighted round robin, the default), p2c, leastConn or hrw (sticky on the client IP)",
  }),
  healthCheck: tcpHealthCheck.optional(),
  passiveHealthCheck: passiveHealthCheck.optional(),
  serversTransport: z.string().min(1).optional(),
  terminationDelay: z.number().int().superRefine((ms, ctx) => {
    const wrong = outOfRange(ms, R.terminationDelay);
    if (wrong) ctx.addIssue({ code: "custom", message: `${wrong} (in milliseconds)` });
  }).optional().meta({
    description: "traefik v2 form: milliseconds; prefer serversTransports.NAME.terminationDelay",
  }),
  proxyProtocol: proxyProtocolVersion.optional().meta({
    description: "traefik v2 form; prefer serversTransports.NAME.proxyProtocol",
  }),
});

/** A service: exactly one of a load balancer (of the protocol's shape) or weighted services. */
function service<T extends z.ZodType>(loadBalancer: T) {
  return z.strictObject({
    loadBalancer: loadBalancer.optional(),
    weighted: weighted.optional(),
  }).superRefine((s, ctx) => {
    if (!s.loadBalancer === !s.weighted) {
      ctx.addIssue({
        code: "custom",
        message: "a service needs exactly one of loadBalancer or weighted",
      });
    }
  });
}

const tcpService = service(tcpLoadBalancer);

const tcpRouter = z.strictObject({
  ruleSyntax: z.enum(["v2", "v3"]).optional().meta({
    description: "traefik's rule syntax; l4p reads both alike for TCP (v3's matchers)",
  }),
  entryPoints: names.optional().meta({ description: "default: every TCP entrypoint" }),
  rule: z.string().min(1),
  service: z.string().min(1),
  priority: z.number().int().optional(),
  middlewares: names.optional().meta({
    description: "tcp.middlewares a connection passes, in order, before the service",
  }),
  tls: routerTls.optional(),
});

const serversTransport = z.strictObject({
  dialTimeout: durationIn(R.dialTimeout).optional().meta({ description: "default 5s" }),
  terminationDelay: durationIn(R.terminationDelay).optional().meta({
    description:
      "once one direction has ended, close when the other is silent this long; default 100ms; negative: never",
  }),
  proxyProtocol: proxyProtocolVersion.optional().meta({
    description: "send a PROXY header to the servers",
  }),
  tls: transportTls.optional(),
  dialKeepAlive: durationIn(R.dialKeepAlive).optional().meta({
    description:
      "TCP keep-alive idle time on backend connections; default (and zero) 15s; negative: off",
  }),
});

const ipAllowList = z.strictObject({
  sourceRange: z.array(cidr).min(1, { message: "sourceRange is empty: no client would pass" }),
});

/** A routing hook (l4p's own), for TCP connections and UDP sessions. */
const hook = z.strictObject({
  file: z.string().min(1).optional().meta({
    description:
      "a TypeScript or JavaScript module, relative to this file's folder; absent: a hook given in code (L4pServer's hooks)",
  }),
  export: z.string().min(1).optional().meta({
    description: "the function it exports to call; default: default",
  }),
  timeout: durationIn(R.hookTimeout).optional().meta({
    description: "a connection or session not decided on by then is refused; default 1s",
  }),
});

/** A UDP middleware (l4p's own: traefik has none): a hook, decided once per new session. */
const udpMiddleware = z.strictObject({
  hook: hook.meta({ description: "a TypeScript function decides (go on, a service, or refuse)" }),
});

/** A TCP middleware, traefik's kinds (and `connRateLimit`); exactly one kind each. */
const tcpMiddleware = z.strictObject({
  ipAllowList: ipAllowList.optional().meta({
    description: "only clients from these addresses or CIDR ranges get through",
  }),
  ipWhiteList: ipAllowList.optional().meta({
    description: "traefik's older name for ipAllowList",
  }),
  inFlightConn: z.strictObject({
    amount: z.number().int().min(1, { message: "must be at least 1" }).meta({
      description: "most connections open at once per client IP",
    }),
  }).optional(),
  connRateLimit: z.strictObject({
    average: z.number().min(1, { message: "must be at least 1" }).meta({
      description: "new connections allowed per period, per client IP",
    }),
    period: durationIn(R.ratePeriod).optional().meta({ description: "default 1s" }),
    burst: z.number().int().min(1, { message: "must be at least 1" }).optional().meta({
      description: "most connections let through at once; default 1",
    }),
  }).optional(),
  hook: hook.optional().meta({
    description: "l4p's own: a TypeScript function decides (go on, a service, or refuse)",
  }),
}).superRefine((m, ctx) => {
  const kinds = Object.keys(m).filter((k) => m[k as keyof typeof m] !== undefined);
  if (kinds.length !== 1) {
    ctx.addIssue({
      code: "custom",
      message: kinds.length === 0
        ? "a middleware needs one of ipAllowList, inFlightConn, connRateLimit or hook"
        : `a middleware is one kind; this one has ${kinds.join(" and ")}`,
    });
  }
});

const udpService = service(z.strictObject({
  servers: z.array(server).min(1, { message: "the server list is empty" }),
  strategy: z.enum(UDP_STRATEGIES).optional().meta({
    description: "wrr (the default) or hrw (sticky on the client IP)",
  }),
  healthCheck: udpHealthCheck.optional(),
}));

const udpRouter = z.strictObject({
  entryPoints: names.optional().meta({ description: "default: every UDP entrypoint" }),
  service: z.string().min(1),
  rule: z.string().min(1).optional().meta({
    description:
      "l4p's own: HostSNI, HostSNIRegexp and ALPN of a QUIC client's ClientHello, ClientIP; decided once per session. Default: every session",
  }),
  priority: z.number().int().optional().meta({
    description: "routers with a higher priority are tried first; default: the rule's length",
  }),
  middlewares: names.optional().meta({
    description: "l4p's own: udp.middlewares (hooks) asked in order, once per new session",
  }),
});

const record = <T extends z.ZodType>(value: T) => z.record(z.string(), value);

/**
 * The sections that may hold tens of thousands of items (a hosting provider's routers), each a
 * record of its items: a large one is checked in slices (src/config/load.ts).
 */
export const largeSections = {
  tcp: { routers: record(tcpRouter), services: record(tcpService) },
  udp: { routers: record(udpRouter), services: record(udpService) },
};

/** The whole file. */
export const fileSchema = z.strictObject({
  entryPoints: record(entryPoint).optional(),
  tcp: z.strictObject({
    routers: largeSections.tcp.routers.optional(),
    services: largeSections.tcp.services.optional(),
    serversTransports: record(serversTransport).optional(),
    middlewares: record(tcpMiddleware).optional(),
  }).optional(),
  udp: z.strictObject({
    routers: largeSections.udp.routers.optional(),
    services: largeSections.udp.services.optional(),
    middlewares: record(udpMiddleware).optional(),
  }).optional(),
  tls: tlsSection.optional(),
  providers: z.strictObject({
    etcd: z.strictObject({
      endpoints: z.array(z.string().min(1)).min(1).meta({
        description: "etcd endpoints: http://127.0.0.1:2379",
      }),
      rootKey: z.string().min(1).optional().meta({ description: "default l4p" }),
      username: z.string().min(1).optional(),
      password: z.string().min(1).optional(),
      tls: storeTls.optional(),
    }).superRefine((e, ctx) => {
      if (e.tls?.insecureSkipVerify) {
        ctx.addIssue({
          code: "custom",
          path: ["tls", "insecureSkipVerify"],
          message: "not available for etcd (its client always checks); name the CA in tls.ca",
        });
      }
      e.endpoints.forEach((endpoint, i) => {
        const secure = e.tls || endpoint.startsWith("https://");
        const host = /^[a-z]+:\/\/\[?([^\]/]+?)\]?(:\d+)?(\/|$)/i.exec(endpoint)?.[1] ?? "";
        if (secure && isIP(host)) {
          ctx.addIssue({
            code: "custom",
            path: ["endpoints", i],
            message:
              "over TLS, write the etcd endpoint with a host name, not an IP address (Deno's and " +
              "Bun's TLS refuse an IP address as the server name the etcd client sends)",
          });
        }
      });
    }).optional(),
    redis: z.strictObject({
      endpoints: z.array(z.string().min(1)).min(1).meta({ description: "host:port" }),
      rootKey: z.string().min(1).optional().meta({ description: "default l4p" }),
      db: z.number().int().min(0).optional(),
      username: z.string().min(1).optional(),
      password: z.string().min(1).optional(),
      tls: storeTls.optional(),
    }).optional(),
    file: z.strictObject({
      filename: z.string().min(1).optional().meta({
        description: "a file of dynamic configuration (tcp, udp, tls), YAML or TOML",
      }),
      directory: z.string().min(1).optional().meta({
        description: "every .yml, .yaml and .toml file in this folder, as traefik reads them",
      }),
      watch: z.boolean().optional().meta({ description: "follow changes; default true" }),
    }).superRefine((f, ctx) => {
      if ((f.filename === undefined) === (f.directory === undefined)) {
        ctx.addIssue({ code: "custom", message: "give filename or directory, one of them" });
      }
    }).optional(),
    http: z.strictObject({
      endpoint: z.url({ protocol: /^https?$/, error: "expected an http:// or https:// URL" })
        .meta({ description: "where the dynamic configuration is served (JSON or YAML)" }),
      pollInterval: durationIn(R.pollInterval).optional().meta({ description: "default 5s" }),
      pollTimeout: durationIn(R.pollTimeout).optional().meta({ description: "default 5s" }),
      headers: z.record(z.string(), z.string()).optional().meta({
        description: "sent with every request (an Authorization, say)",
      }),
    }).optional(),
    docker: z.strictObject({
      endpoint: z.string().regex(/^(unix:\/\/\/.+|(tcp|http):\/\/[^/]+\/?)$/, {
        message: "expected unix:///path/to/docker.sock or tcp://host:port",
      }).optional().meta({
        description: "the Docker Engine API; default unix:///var/run/docker.sock",
      }),
      exposedByDefault: z.boolean().optional().meta({
        description: "containers without traefik.enable=true are served too; default true",
      }),
      watch: z.boolean().optional().meta({
        description: "follow the daemon's container events; default true",
      }),
      network: z.string().min(1).optional().meta({
        description: "the network whose address containers are reached at (traefik.docker.network)",
      }),
      constraints: z.string().superRefine((expr, ctx) => {
        try {
          parseConstraint(expr);
        } catch (error) {
          ctx.addIssue({ code: "custom", message: (error as Error).message });
        }
      }).optional().meta({
        description:
          "keep only containers whose labels satisfy this: Label(`k`, `v`), LabelRegex(`k`, `re`), &&, ||, !",
        examples: ["Label(`team`, `edge`) && !LabelRegex(`env`, `^dev`)"],
      }),
      useBindPortIP: z.boolean().optional().meta({
        description:
          "reach containers at their published host IP and port rather than their own; default false",
      }),
      allowEmptyServices: z.boolean().optional().meta({
        description:
          "serve containers whose Docker health check is starting or unhealthy too (traefik's name); default false",
      }),
      tls: storeTls.optional().meta({
        description: "TLS to a remote engine (tcp://host:2376): its CA, a client certificate",
      }),
    }).optional(),
    providersThrottleDuration: durationIn(R.throttle).optional().meta({
      description: "changes from a provider within this long are applied once; default 2s",
    }),
  }).optional().meta({
    description:
      "where the dynamic part (tcp, udp, tls) also comes from: files, and stores under traefik's key layout",
  }),
  certificatesResolvers: z.record(z.string(), z.strictObject({ acme: acmeResolver }))
    .optional(),
  metrics: z.strictObject({
    address: serverAddressListen(),
    token: z.string().min(16, { message: "a token needs at least 16 characters" }).optional()
      .meta({
        description:
          "l4p's own: a bearer token the API, the dashboard and its event stream require",
      }),
    tokenFile: file.optional().meta({ description: "l4p's own: read the token from this file" }),
    publicMetrics: z.boolean().optional().meta({
      description: "l4p's own: /metrics without the token (for a Prometheus without one)",
    }),
    allowedHosts: z.array(z.string().min(1)).optional().meta({
      description:
        "l4p's own: without a token, Host names a request may carry besides IP addresses and localhost (a guard against DNS rebinding)",
    }),
  }).superRefine((m, ctx) => {
    if (m.token !== undefined && m.tokenFile !== undefined) {
      ctx.addIssue({ code: "custom", message: "give token or tokenFile, not both" });
    }
  }).optional().meta({
    description: "the admin listener: /metrics, /api/status, /api/connections, /healthz",
  }),
  accessLog: z.strictObject({
    filePath: z.string().min(1).optional().meta({ description: "append here; stderr when absent" }),
    format: z.enum(["json", "text"]).optional().meta({ description: "default json" }),
    filters: z.strictObject({
      minDuration: durationIn(R.minDuration).optional().meta({
        description: "only connections and sessions that lasted at least this long; default 0",
      }),
    }).optional().meta({ description: "of traefik's filters, only minDuration: the rest is HTTP" }),
  }).optional().meta({ description: "one line per closed connection or ended UDP session" }),
  log: z.strictObject({
    level: z.enum(LOG_LEVELS as [LogLevel, ...LogLevel[]]).optional(),
    format: z.enum(["text", "json"]).optional(),
    filePath: z.string().min(1).optional().meta({
      description: "append the log here; stderr when absent",
    }),
  }).optional(),
  tcpServersTransport: serversTransport.optional().meta({
    description:
      "traefik v3's static default for every TCP service that names no serversTransports entry",
  }),
}).meta({
  title: "l4p configuration",
  description: "entrypoints, routers, services and transports, in traefik's names",
});

/** The file after the schema: types checked, addresses and durations parsed. */
export type ParsedFile = z.output<typeof fileSchema>;

/** The JSON Schema of the file, for editors. */
export function jsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(fileSchema, { io: "input", unrepresentable: "any" }) as Record<
    string,
    unknown
  >;
}
