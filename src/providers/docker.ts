/**
 * traefik's Docker provider: running containers announce their TCP and UDP routers and services
 * in labels (`traefik.tcp.routers.db.rule=HostSNI(...)`, `traefik.tcp.services.db.loadbalancer.server.port=5432`),
 * and l4p reads them from the Docker Engine API, as traefik does: the service a container
 * names gets the container's address, a router without a service uses the container's only
 * one, a container without services gets one named after it. The events stream says when to
 * read again. To the rest of l4p it is a read-only store (src/providers/source.ts), so a
 * container whose labels have problems loses only its own items, and a daemon that goes away
 * leaves the last good configuration in force.
 *
 * The Engine API is two GET requests over a unix socket (or TCP): node:http does that on both
 * runtimes, so no Docker client library is loaded.
 */
import { createHash } from "node:crypto";
import http from "node:http";
import https from "node:https";
import type { ProvidersConfig } from "../config/model.ts";
import { parseConstraint } from "./constraints.ts";
import { treeToKv } from "./kv.ts";
import type { KvStore } from "./store.ts";

type Tree = Record<string, unknown>;
type DockerOptions = NonNullable<ProvidersConfig["docker"]>;

/** The root its pairs are kept under, as a store's are under theirs. */
const ROOT = "docker";
/** The Engine API version asked for: every daemon since Docker 20.10 speaks it. */
const API = "/v1.41";
/** The most a listing may be (bytes): the daemon's answer is held whole while it is read. */
const MAX_LISTING = 32 * 1024 * 1024;

/** One container as `GET /containers/json` describes it (the fields l4p reads). */
export interface DockerContainer {
  Id: string;
  Names?: string[];
  Labels?: Record<string, string>;
  State?: string;
  /** "Up 5 minutes (healthy)", "(unhealthy)", "(health: starting)". */
  Status?: string;
  Ports?: { IP?: string; PrivatePort?: number; PublicPort?: number; Type?: string }[];
  HostConfig?: { NetworkMode?: string };
  NetworkSettings?: { Networks?: Record<string, { IPAddress?: string }> };
}

/** Label keys whose value is a comma-separated list, as traefik's label decoder reads them. */
const LIST_KEYS = new Set(["entrypoints", "middlewares", "sourcerange", "sans", "ips"]);

/**
 * The dynamic configuration (tcp and udp sections) the containers' labels describe, and the
 * containers left out with the reason. Pure, for tests.
 */
export function containersToTree(
  containers: readonly DockerContainer[],
  options: Pick<DockerOptions, "exposedByDefault" | "network" | "constraints"> & {
    useBindPortIP?: boolean;
    allowEmptyServices?: boolean;
  },
): { tree: Tree; problems: string[] } {
  const keep = options.constraints ? parseConstraint(options.constraints) : () => true;
  const tree: Tree = {};
  const problems: string[] = [];
  // In name order, as traefik merges them: a service two containers name gets both servers.
  const named = containers.map((c) => ({ c, name: containerName(c) }))
    .sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  for (const { c, name } of named) {
    const labels = c.Labels ?? {};
    const enable = label(labels, "traefik.enable");
    if (!(enable === undefined ? options.exposedByDefault : enable.toLowerCase() === "true")) {
      continue;
    }
    if (!keep(labels)) continue;
    if (c.State && c.State !== "running") continue;
    // traefik leaves out a container whose health check has not said healthy, unless
    // allowEmptyServices: then it is served whatever its health (l4p's own checks decide).
    const unhealthy = /\((unhealthy|health: starting)\)/.test(c.Status ?? "");
    if (unhealthy && !options.allowEmptyServices) continue;
    let conf: Tree;
    try {
      conf = decodeLabels(labels);
      for (const section of ["tcp", "udp"] as const) {
        const s = conf[section] as Tree | undefined;
        if (!s) continue;
        const network = label(labels, "traefik.docker.network") ?? options.network;
        completeSection(s, section, c, serviceName(c), network, options.useBindPortIP ?? false);
      }
    } catch (error) {
      problems.push(`container ${name}: ${(error as Error).message}; its labels are left out`);
      continue;
    }
    mergeInto(tree, conf);
  }
  return { tree, problems };
}

/** A label's value, its key in any case. */
function label(labels: Record<string, string>, key: string): string | undefined {
  if (key in labels) return labels[key];
  const k = Object.keys(labels).find((l) => l.toLowerCase() === key);
  return k === undefined ? undefined : labels[k];
}

/** `traefik.tcp.…` and `traefik.udp.…` labels as a tree; HTTP labels are layer 7 and skipped. */
function decodeLabels(labels: Record<string, string>): Tree {
  const tree: Tree = {};
  for (const [key, value] of Object.entries(labels)) {
    const parts = key.split(".");
    if (parts[0].toLowerCase() !== "traefik" || parts.length < 3) continue;
    const section = parts[1].toLowerCase();
    if (section !== "tcp" && section !== "udp") continue;
    // `domains[0]` is `domains`, `0`.
    const path = [
      section,
      ...parts.slice(2).flatMap((p) => {
        const m = p.match(/^(.+)\[(\d+)\]$/);
        return m ? [m[1], m[2]] : [p];
      }),
    ];
    if (path.some((p) => p === "")) throw new Error(`label ${key}: an empty name`);
    let node = tree;
    for (const p of path.slice(0, -1)) {
      const next = node[p];
      if (next !== undefined && (typeof next !== "object" || next === null)) {
        throw new Error(`label ${key}: ${p} is both a value and a section`);
      }
      node = (next ?? (node[p] = {})) as Tree;
    }
    const last = path.at(-1)!;
    node[last] = LIST_KEYS.has(last.toLowerCase())
      ? value.split(",").map((v) => v.trim()).filter((v) => v !== "")
      : value;
  }
  return tree;
}

/** A key of `tree` in any case (labels are often all lower case). */
function keyOf(tree: Tree, name: string): string | undefined {
  return Object.keys(tree).find((k) => k.toLowerCase() === name.toLowerCase());
}

/**
 * traefik's defaults for one container's section: a service named after the container when it
 * names none, the container's address on each service, the only service on routers without one.
 */
function completeSection(
  section: Tree,
  protocol: "tcp" | "udp",
  c: DockerContainer,
  defaultService: string,
  network: string | undefined,
  useBindPortIP: boolean,
): void {
  const sk = keyOf(section, "services") ?? "services";
  const rk = keyOf(section, "routers");
  const services = (section[sk] ??= {}) as Tree;
  if (Object.keys(services).length === 0) services[defaultService] = { loadBalancer: {} };
  for (const [name, service] of Object.entries(services)) {
    if (typeof service !== "object" || service === null) {
      throw new Error(`service ${name}: expected its settings`);
    }
    const lbKey = keyOf(service as Tree, "loadBalancer") ?? "loadBalancer";
    const lb = ((service as Tree)[lbKey] ??= {}) as Tree;
    const serverKey = keyOf(lb, "server");
    const server = (serverKey ? lb[serverKey] : {}) as Tree;
    if (serverKey) delete lb[serverKey];
    const portKey = keyOf(server, "port");
    const port = portKey ? server[portKey] : onlyPort(c);
    if (portKey) delete server[portKey];
    if (port === undefined || !/^\d+$/.test(String(port))) {
      throw new Error(
        `service ${name}: no port (set traefik.<tcp|udp>.services.${name}.loadbalancer.server.port)`,
      );
    }
    let [ip, at] = [addressOf(c, network), Number(port)];
    if (useBindPortIP) {
      // The published port, where the engine bound one to a definite host address (traefik
      // falls back on the container's own address otherwise, and so does l4p).
      const bound = (c.Ports ?? []).find((p) =>
        p.PrivatePort === at && (p.Type ?? "tcp") === protocol && p.PublicPort && p.IP &&
        p.IP !== "0.0.0.0" && p.IP !== "::"
      );
      if (bound) [ip, at] = [bound.IP, bound.PublicPort!];
    }
    if (!ip) throw new Error(`service ${name}: the container has no IP address`);
    const host = ip.includes(":") ? `[${ip}]` : ip;
    lb.servers = [{ ...server, address: `${host}:${at}` }];
  }
  const routers = rk ? section[rk] as Tree : {};
  const only = Object.keys(services);
  for (const [name, router] of Object.entries(routers)) {
    if (typeof router !== "object" || router === null) continue;
    if (keyOf(router as Tree, "service")) continue;
    if (only.length !== 1) {
      throw new Error(`router ${name}: no service, and the container has ${only.length}`);
    }
    (router as Tree).service = only[0];
  }
}

/** The container's one exposed port of its protocol, if it has exactly one. */
function onlyPort(c: DockerContainer): number | undefined {
  const ports = [...new Set((c.Ports ?? []).map((p) => p.PrivatePort).filter((p) => p))];
  return ports.length === 1 ? ports[0] : undefined;
}

/** Where the container is reached: traefik's rules (host network: the host's loopback). */
function addressOf(c: DockerContainer, network: string | undefined): string | undefined {
  const mode = c.HostConfig?.NetworkMode ?? "";
  if (mode === "host") return "127.0.0.1";
  const networks = c.NetworkSettings?.Networks ?? {};
  if (network && networks[network]?.IPAddress) return networks[network].IPAddress;
  for (const n of Object.values(networks)) if (n.IPAddress) return n.IPAddress;
  return undefined;
}

/** The container's name as traefik names its default service: its compose service, else its name. */
function serviceName(c: DockerContainer): string {
  const compose = label(c.Labels ?? {}, "com.docker.compose.service");
  return (compose ?? containerName(c)).replace(/[^a-zA-Z0-9]+/g, "-");
}

function containerName(c: DockerContainer): string {
  return (c.Names?.[0] ?? c.Id.slice(0, 12)).replace(/^\//, "");
}

/** Merges one container's tree into all of them: a service already there gains its servers. */
function mergeInto(into: Tree, from: Tree): void {
  for (const [section, s] of Object.entries(from)) {
    const target = (into[section] ??= {}) as Tree;
    for (const [kind, items] of Object.entries(s as Tree)) {
      const k = keyOf(target, kind) ?? kind;
      const have = (target[k] ??= {}) as Tree;
      for (const [name, item] of Object.entries(items as Tree)) {
        const existing = have[name] as Tree | undefined;
        const lbOf = (t: Tree) => t[keyOf(t, "loadBalancer") ?? "loadBalancer"] as Tree | undefined;
        const lb = existing && lbOf(existing);
        const more = lbOf(item as Tree);
        if (lb && more && Array.isArray(lb.servers) && Array.isArray(more.servers)) {
          lb.servers.push(...more.servers);
        } else if (!existing) have[name] = item;
      }
    }
  }
}

/** The Docker provider, seen as a read-only store. */
export class DockerStore implements KvStore {
  readonly name = "docker";
  readonly root = ROOT;
  #events: http.ClientRequest | undefined;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  /** The containers left out at the last reading, and why. */
  problems: string[] = [];
  #unreported: string[] = [];

  constructor(readonly options: DockerOptions) {}

  /** Problems not reported yet (each is reported once, while it lasts). */
  takeProblems(): string[] {
    const out = this.#unreported;
    this.#unreported = [];
    return out;
  }

  async list(): Promise<{ pairs: [string, string][]; revision: string }> {
    const body = await this.#get(`${API}/containers/json`);
    let containers: DockerContainer[];
    try {
      containers = JSON.parse(body);
    } catch {
      throw new Error(`${this.options.endpoint} answered what is not JSON`);
    }
    if (!Array.isArray(containers)) throw new Error(`${this.options.endpoint}: not a list`);
    const { tree, problems } = containersToTree(containers, this.options);
    for (const p of problems) if (!this.problems.includes(p)) this.#unreported.push(p);
    this.problems = problems;
    const pairs = treeToKv(tree, ROOT).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0);
    const revision = createHash("sha256").update(JSON.stringify(pairs)).digest("hex").slice(0, 16);
    return { pairs, revision };
  }

  /** Follows the daemon's container events; reconnects after a second when the stream ends. */
  watch(onChange: () => void): Promise<void> {
    if (!this.options.watch || this.#events || this.#closed) return Promise.resolve();
    const follow = () => {
      if (this.#closed) return;
      const again = () => {
        this.#events = undefined;
        if (this.#closed) return;
        this.#retry = setTimeout(() => {
          onChange(); // what changed while the stream was down
          follow();
        }, 1000);
      };
      const filters = encodeURIComponent(JSON.stringify({ type: ["container"] }));
      const req = this.#request(
        { path: `${API}/events?filters=${filters}` },
        (res) => {
          if (res.statusCode !== 200) {
            res.resume();
            return again();
          }
          // Each event is one JSON line; l4p reads the list again on any (the source throttles).
          res.on("data", () => onChange());
          res.on("end", again);
          res.on("error", again);
        },
      );
      req.on("error", again);
      this.#events = req;
    };
    follow();
    return Promise.resolve();
  }

  replace(): Promise<"atomic" | "steps"> {
    return Promise.reject(new Error("the Docker provider is read-only: set container labels"));
  }

  close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retry);
    this.#events?.destroy();
    this.#events = undefined;
    return Promise.resolve();
  }

  /**
   * A GET to the engine: over its unix socket, or to a host and port (2375; with `tls`, over
   * TLS to 2376, its certificate checked against `tls.ca` unless insecureSkipVerify, with the
   * client certificate an engine run with --tlsverify asks for).
   */
  #request(
    options: http.RequestOptions,
    onResponse: (res: http.IncomingMessage) => void,
  ): http.ClientRequest {
    const e = this.options.endpoint;
    if (e.startsWith("unix://")) {
      return http.get({ ...options, socketPath: e.slice("unix://".length) }, onResponse);
    }
    const url = new URL(e.replace(/^tcp:\/\//, "http://"));
    const tls = this.options.tls;
    if (!tls) {
      return http.get(
        { ...options, host: url.hostname, port: Number(url.port || 2375) },
        onResponse,
      );
    }
    return https.get({
      ...options,
      host: url.hostname,
      port: Number(url.port || 2376),
      ca: tls.ca,
      cert: tls.cert,
      key: tls.key,
      rejectUnauthorized: !tls.insecureSkipVerify,
    }, onResponse);
  }

  #get(path: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = this.#request({ path, timeout: 10_000 }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size > MAX_LISTING) {
            req.destroy();
            reject(new Error(`${this.options.endpoint}: the container list is over 32 MiB`));
          } else chunks.push(c);
        });
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          if (res.statusCode !== 200) {
            reject(
              new Error(`${this.options.endpoint} answered ${res.statusCode}: ${text.trim()}`),
            );
          } else resolve(text);
        });
        res.on("error", reject);
      });
      req.on("timeout", () => req.destroy(new Error(`${this.options.endpoint}: no answer in 10s`)));
      req.on("error", (e) => {
        const code = (e as { code?: string }).code;
        reject(new Error(`${this.options.endpoint}: ${code ?? e.message}`));
      });
    });
  }
}
