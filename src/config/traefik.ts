/**
 * traefik's configuration as traefik reads it, brought to l4p's shape before it is checked:
 * keys in any case (traefik's decoder matches field names case-insensitively), traefik's static
 * sections mapped onto what l4p serves by its own means (`api`, `ping`, `metrics.prometheus`,
 * `log`, `accessLog`), and what only concerns HTTP accepted and set aside with one note a
 * section, never silently dropped and never fatal. Keys traefik itself would refuse stay for
 * the schema to refuse, with a did-you-mean.
 */
import type { Path } from "./readers.ts";

/** Says something about the key at `path`: what l4p does with it. */
export type Note = (path: Path, message: string) => void;

type Tree = Record<string, unknown>;

const isTree = (v: unknown): v is Tree => !!v && typeof v === "object" && !Array.isArray(v);

/** What {@link canonicalKeys} needs of one schema node, worked out once per node. */
interface Shape {
  /** Each property's schema, by its spelling. */
  properties: Record<string, unknown>;
  /** Each spelling, by its lower case. */
  spelled: Map<string, string>;
  /** The schema of keys that are not properties (names of routers, …), if any. */
  additional: unknown;
}

const shapes = new WeakMap<object, Shape>();

function shapeOf(s: object): Shape {
  let shape = shapes.get(s);
  if (shape) return shape;
  // deno-lint-ignore no-explicit-any
  const node = s as any;
  const branches = [node, ...(node.anyOf ?? []), ...(node.oneOf ?? []), ...(node.allOf ?? [])];
  const properties: Record<string, unknown> = Object.assign(
    {},
    ...branches.map((b) => b?.properties ?? {}),
  );
  shape = {
    properties,
    spelled: new Map(Object.keys(properties).map((k) => [k.toLowerCase(), k])),
    additional: branches.map((b) => b?.additionalProperties).find((a) =>
      a && typeof a === "object"
    ),
  };
  shapes.set(s, shape);
  return shape;
}

/** Renames the keys of `tree` written in another case to the spelling in `known`. */
function canonical(tree: Tree, known: readonly string[]): void {
  for (const key of Object.keys(tree)) {
    if (known.includes(key)) continue;
    const spelled = known.find((k) => k.toLowerCase() === key.toLowerCase());
    if (spelled && !(spelled in tree)) {
      tree[spelled] = tree[key];
      delete tree[key];
    }
  }
}

/** {@link canonical}, the spellings those of a schema node. */
function canonicalIn(tree: Tree, shape: Shape): void {
  for (const key of Object.keys(tree)) {
    if (Object.hasOwn(shape.properties, key)) continue;
    const spelled = shape.spelled.get(key.toLowerCase());
    if (spelled && !(spelled in tree)) {
      tree[spelled] = tree[key];
      delete tree[key];
    }
  }
}

/**
 * Keys in any case, as the JSON Schema spells them, below `tree` (which `schema` describes).
 * Names (of routers, services, …) are map keys and keep their case.
 */
export function canonicalKeys(tree: unknown, schema: unknown): void {
  if (!schema || typeof schema !== "object") return;
  if (Array.isArray(tree)) {
    const items = (schema as { items?: unknown }).items;
    for (const item of tree) canonicalKeys(item, items);
    return;
  }
  if (!isTree(tree)) return;
  const shape = shapeOf(schema);
  canonicalIn(tree, shape);
  for (const key in tree) {
    canonicalKeys(
      tree[key],
      Object.hasOwn(shape.properties, key) ? shape.properties[key] : shape.additional,
    );
  }
}

/** Root sections traefik has that l4p does not serve, and why. */
const NOT_SERVED: Record<string, string> = {
  global: "not used: l4p never checks for new versions nor sends usage data",
  experimental: "traefik's experimental features (plugins, …) are not served by l4p",
  tracing: "tracing follows HTTP requests; not served by l4p (a layer-4 proxy)",
  hub: "traefik Hub is not served by l4p",
  pilot: "traefik Pilot is not served by l4p",
  spiffe: "SPIFFE workload identities are not supported by l4p",
  ocsp: "OCSP stapling is not served by l4p",
  core: "traefik's core settings (defaultRuleSyntax) have no effect: l4p reads v3 rules",
  serversTransport: "the static transport of HTTP services; not served (layer 7)",
};

/** Root keys of a traefik static file, as traefik spells them. */
const TRAEFIK_ROOT = [
  ...Object.keys(NOT_SERVED),
  "api",
  "ping",
  "http",
  "entryPoints",
  "providers",
  "certificatesResolvers",
  "log",
  "accessLog",
  "metrics",
  "tcp",
  "udp",
  "tls",
  "tcpServersTransport",
];

/** traefik's log levels, and l4p's for each. */
const LOG_LEVEL: Record<string, string> = {
  trace: "debug",
  debug: "debug",
  info: "info",
  warn: "warn",
  warning: "warn",
  error: "error",
  fatal: "error",
  panic: "error",
};

/** Entrypoint keys that concern HTTP only. */
const HTTP_ENTRYPOINT_KEYS = [
  "http",
  "http2",
  "http3",
  "forwardedHeaders",
  "observability",
  "allowACMEByPass",
];

/** Providers l4p has; the others are set aside with a note. */
const PROVIDERS = ["etcd", "redis", "file", "http", "docker", "providersThrottleDuration"];
/** Docker provider settings l4p reads; the rest are noted (HTTP defaults, swarm, TLS to it). */
const DOCKER_KEYS = [
  "endpoint",
  "exposedByDefault",
  "watch",
  "network",
  "constraints",
  "useBindPortIP",
  "allowEmptyServices",
  "tls",
];

/** The entrypoint traefik serves its own API, ping and metrics on when none is named. */
const TRAEFIK_ENTRYPOINT = "traefik";

/** What an `http` section holds, in a few words: `4 routers, 3 services`. */
function countOf(section: Tree): string {
  const parts = Object.entries(section)
    .filter(([, v]) => isTree(v))
    .map(([kind, v]) => `${Object.keys(v as Tree).length} ${kind}`);
  return parts.length ? parts.join(", ") : "nothing";
}

/**
 * A traefik static file (or l4p's one-file form) to l4p's shape. Mutates `data`; says what it
 * mapped or set aside through `note`.
 */
export function fromTraefikStatic(data: Tree, note: Note): void {
  canonical(data, TRAEFIK_ROOT);
  for (const [key, why] of Object.entries(NOT_SERVED)) {
    if (key in data) {
      note([key], why);
      delete data[key];
    }
  }
  if (isTree(data.log)) {
    const log = data.log;
    canonical(log, [
      "level",
      "format",
      "filePath",
      "noColor",
      "maxSize",
      "maxAge",
      "maxBackups",
      "compress",
    ]);
    if (typeof log.level === "string") log.level = LOG_LEVEL[log.level.toLowerCase()] ?? log.level;
    if (log.format === "common") log.format = "text";
    for (const key of ["noColor", "maxSize", "maxAge", "maxBackups", "compress"]) {
      if (key in log) {
        if (key !== "noColor") note(["log", key], "log rotation is left to the system (logrotate)");
        delete log[key];
      }
    }
  }
  if (isTree(data.accessLog)) {
    const a = data.accessLog;
    canonical(a, ["filePath", "format", "bufferingSize", "filters", "fields", "addInternals"]);
    if (a.format === "common" || a.format === "genericCLF") a.format = "text";
    for (const key of ["bufferingSize", "fields", "addInternals"]) {
      if (key in a) {
        note(["accessLog", key], "not applied: l4p writes one line per connection, unbuffered");
        delete a[key];
      }
    }
    if (isTree(a.filters)) {
      // minDuration is a connection's as much as a request's; status codes and retries are HTTP.
      const f = a.filters;
      canonical(f, ["minDuration", "statusCodes", "retryAttempts"]);
      const http = Object.keys(f).filter((k) => k !== "minDuration");
      for (const k of http) delete f[k];
      if (http.length) {
        note(["accessLog", "filters", http[0]], `${http.join(", ")}: HTTP only; not applied`);
      }
      if (Object.keys(f).length === 0) delete a.filters;
    }
  }
  if (isTree(data.entryPoints)) {
    for (const [name, ep] of Object.entries(data.entryPoints)) {
      if (!isTree(ep)) continue;
      canonical(ep, [...HTTP_ENTRYPOINT_KEYS, "transport", "address", "udp", "asDefault"]);
      const http = HTTP_ENTRYPOINT_KEYS.filter((k) => k in ep);
      for (const k of http) delete ep[k];
      if (http.length) {
        note(["entryPoints", name, http[0]], `${http.join(", ")}: HTTP only; not served (layer 7)`);
      }
      if (isTree(ep.transport)) {
        // lifeCycle is how an entrypoint stops, served as traefik serves it; the rest is HTTP.
        const t = ep.transport;
        canonical(t, ["lifeCycle"]);
        const http = Object.keys(t).filter((k) => k !== "lifeCycle");
        for (const k of http) delete t[k];
        if (http.length) {
          note(
            ["entryPoints", name, "transport", http[0]],
            `${http.join(", ")}: HTTP timeouts and keep-alive limits; not served (layer 7)`,
          );
        }
        if (isTree(t.lifeCycle)) {
          canonical(t.lifeCycle, ["requestAcceptGraceTimeout", "graceTimeOut"]);
        }
        if (Object.keys(t).length === 0) delete ep.transport;
      }
    }
  }
  if (isTree(data.providers)) {
    const p = data.providers;
    canonical(p, [...PROVIDERS]);
    for (const key of Object.keys(p)) {
      if (PROVIDERS.includes(key)) continue;
      note(
        ["providers", key],
        `the ${key} provider is not supported by l4p (file, http, docker, etcd and redis are)`,
      );
      delete p[key];
    }
    if (isTree(p.docker)) {
      const d = p.docker;
      canonical(d, DOCKER_KEYS);
      const other = Object.keys(d).filter((k) => !DOCKER_KEYS.includes(k));
      for (const k of other) delete d[k];
      if (other.length) {
        note(
          ["providers", "docker", other[0]],
          `${other.join(", ")}: not applied (l4p reads ${DOCKER_KEYS.join(", ")})`,
        );
      }
    }
  }
  adminFromTraefik(data, note);
  if (isTree(data.http)) {
    note(["http"], `${countOf(data.http)} not served (l4p is a layer-4 proxy)`);
    delete data.http;
  }
  fromTraefikDynamic(data, note);
}

/**
 * traefik's own services (`api`, `ping`, `metrics.prometheus`) on its `traefik` entrypoint
 * become l4p's admin listener there: the API and dashboard, `/ping`, `/metrics`. l4p's own
 * `metrics: { address }` wins when given.
 */
function adminFromTraefik(data: Tree, note: Note): void {
  const metrics = isTree(data.metrics) ? data.metrics : undefined;
  if (metrics) canonical(metrics, ["prometheus", "address"]);
  const prometheus = metrics && isTree(metrics.prometheus) ? metrics.prometheus : undefined;
  const api = isTree(data.api) ? data.api : data.api === true ? {} : undefined;
  const ping = isTree(data.ping) ? data.ping : data.ping === true ? {} : undefined;
  if (metrics && "prometheus" in metrics) {
    for (const key of Object.keys(metrics)) if (key !== "prometheus") delete metrics[key];
  } else if (metrics) {
    // l4p's own admin listener; traefik's api and ping are served on it as they are.
    for (const key of ["api", "ping"] as const) {
      if (key in data) {
        note([key], `served by l4p's admin listener (metrics.address)`);
        delete data[key];
      }
    }
    return;
  }
  const wanted: { key: string; path: Path; entryPoint: string }[] = [];
  if (api) {
    canonical(api, ["insecure", "dashboard", "debug", "basePath", "disableDashboardAd"]);
    if (api.insecure === true) {
      wanted.push({ key: "api", path: ["api"], entryPoint: TRAEFIK_ENTRYPOINT });
    } else {note(
        ["api"],
        "traefik serves its API through an HTTP router (api@internal), not served; with insecure: true l4p serves its own API and dashboard on the traefik entrypoint",
      );}
  }
  if (ping) {
    canonical(ping, ["entryPoint", "manualRouting", "terminatingStatusCode"]);
    wanted.push({
      key: "ping",
      path: ["ping"],
      entryPoint: String(ping.entryPoint ?? TRAEFIK_ENTRYPOINT),
    });
  }
  if (prometheus) {
    canonical(prometheus, [
      "entryPoint",
      "buckets",
      "addEntryPointsLabels",
      "addRoutersLabels",
      "addServicesLabels",
      "manualRouting",
      "headerLabels",
    ]);
    wanted.push({
      key: "metrics.prometheus",
      path: ["metrics", "prometheus"],
      entryPoint: String(prometheus.entryPoint ?? TRAEFIK_ENTRYPOINT),
    });
    const options = Object.keys(prometheus).filter((k) => k !== "entryPoint");
    if (options.length) {
      note(
        ["metrics", "prometheus"],
        `${options.join(", ")}: l4p's metrics have their own labels and buckets`,
      );
    }
  }
  delete data.api;
  delete data.ping;
  delete data.metrics;
  if (wanted.length === 0) return;
  const entryPoints = isTree(data.entryPoints) ? data.entryPoints : (data.entryPoints = {}) as Tree;
  const names = [...new Set(wanted.map((w) => w.entryPoint))];
  const name = names[0];
  const ep = isTree(entryPoints[name]) ? entryPoints[name] as Tree : undefined;
  // traefik's default for its own entrypoint.
  const address = typeof ep?.address === "string" ? ep.address : ":8080";
  if (ep) delete entryPoints[name];
  data.metrics = { address, publicMetrics: true };
  note(
    wanted[0].path,
    `${
      wanted.map((w) => w.key).join(", ")
    }: served by l4p's admin listener on ${address} (entrypoint ${name}): /api, /dashboard/, /ping, /metrics`,
  );
  for (const other of names.slice(1)) {
    const w = wanted.find((x) => x.entryPoint === other)!;
    note(w.path, `l4p serves its admin on one entrypoint (${name}), not on ${other}`);
  }
}

/** Provider suffixes traefik puts on names (`svc@file`): l4p's names are one namespace. */
const PROVIDER_SUFFIX = /@(file|etcd|redis|docker|http|internal)$/;

/**
 * traefik's dynamic configuration (a file of `providers.file`, a store) to l4p's shape. Mutates
 * `data`.
 */
export function fromTraefikDynamic(data: Tree, note: Note): void {
  canonical(data, ["tcp", "udp", "tls", "http"]);
  if (isTree(data.http)) {
    note(["http"], `${countOf(data.http)} not served (l4p is a layer-4 proxy)`);
    delete data.http;
  }
  const tcp = isTree(data.tcp) ? data.tcp : undefined;
  const routers = tcp && isTree(tcp.routers) ? tcp.routers : {};
  for (const [name, r] of Object.entries(routers)) {
    if (!isTree(r)) continue;
    canonical(r, [
      "entryPoints",
      "rule",
      "ruleSyntax",
      "service",
      "priority",
      "middlewares",
      "tls",
    ]);
    if (typeof r.service === "string") r.service = r.service.replace(PROVIDER_SUFFIX, "");
    if (Array.isArray(r.middlewares)) {
      r.middlewares = r.middlewares.map((m) =>
        typeof m === "string" ? m.replace(PROVIDER_SUFFIX, "") : m
      );
    }
    if (isTree(r.tls)) {
      canonical(r.tls, ["passthrough", "options", "certResolver", "domains"]);
      if (r.tls.passthrough === true) {
        const ignored = ["options", "certResolver", "domains"].filter((k) => k in (r.tls as Tree));
        for (const k of ignored) delete (r.tls as Tree)[k];
        if (ignored.length) {
          note(
            ["tcp", "routers", name, "tls"],
            `${ignored.join(", ")}: ignored under passthrough, as traefik ignores them`,
          );
        }
      }
    }
  }
  for (const section of ["tcp", "udp"]) {
    const services = isTree(data[section]) && isTree((data[section] as Tree).services)
      ? (data[section] as Tree).services as Tree
      : {};
    for (const s of Object.values(services)) {
      const weighted = isTree(s) && isTree(s.weighted) ? s.weighted : undefined;
      if (!weighted || !Array.isArray(weighted.services)) continue;
      for (const child of weighted.services) {
        if (isTree(child) && typeof child.name === "string") {
          child.name = child.name.replace(PROVIDER_SUFFIX, "");
        }
      }
    }
  }
  const tls = isTree(data.tls) ? data.tls : undefined;
  if (tls) {
    canonical(tls, ["certificates", "options", "stores"]);
    for (const [name, o] of Object.entries(isTree(tls.options) ? tls.options : {})) {
      if (!isTree(o)) continue;
      canonical(o, ["curvePreferences", "preferServerCipherSuites"]);
      for (const key of ["curvePreferences", "preferServerCipherSuites"]) {
        if (key in o) {
          note(
            ["tls", "options", name, key],
            key === "curvePreferences"
              ? "accepted; the runtime's TLS chooses the curves (X25519, P-256, P-384)"
              : "accepted; it has no effect (as in Go since 1.17)",
          );
          delete o[key];
        }
      }
    }
    for (const [name, store] of Object.entries(isTree(tls.stores) ? tls.stores : {})) {
      if (!isTree(store)) continue;
      canonical(store, ["defaultCertificate", "defaultGeneratedCert"]);
      if ("defaultGeneratedCert" in store) {
        note(
          ["tls", "stores", name, "defaultGeneratedCert"],
          "not supported: certificates by ACME come from a router's certResolver",
        );
        delete store.defaultGeneratedCert;
      }
    }
  }
}
