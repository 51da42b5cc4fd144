/** Builds the data path from a {@link Config} and runs it. */
import { formatAddr } from "../config/address.ts";
import type { Config, EntryPointConfig } from "../config/model.ts";
import { acceptOptions, buildGraphInSteps, KeptState } from "../graph/build.ts";
import { inSteps } from "../providers/slices.ts";
import { describeRoutes } from "../graph/describe.ts";
import type { EntryPointSlots, SharedState } from "../graph/shared.ts";
import type { HealthChecker } from "../health/checker.ts";
import { HookLoader } from "../graph/hooks.ts";
import type { Hook } from "../tcp/middlewares/hook.ts";
import type { ServerState } from "../health/server_state.ts";
import { AcmeManager } from "../tls/acme.ts";
import type { Logger } from "../log/logger.ts";
import { TrafficTracker } from "../metrics/tracker.ts";
import type { NetAddr, Runtime } from "../runtime/types.ts";
import { TcpEntryPoint, type TcpEntryPointOptions } from "../tcp/entrypoint.ts";
import type { ProxyEnv } from "../tcp/handler.ts";
import { TcpRouter } from "../tcp/router.ts";
import { UdpEntryPoint } from "../udp/entrypoint.ts";
import type { UdpRouter } from "../udp/router.ts";

/** An entrypoint could not listen. */
export class ListenError extends Error {
  constructor(
    readonly entryPoint: string,
    readonly address: string,
    readonly code: string,
    cause: unknown,
  ) {
    const why = code === "EADDRINUSE"
      ? "the address is already in use"
      : code === "EACCES"
      ? "permission denied (ports below 1024 need privileges)"
      : code === "EADDRNOTAVAIL"
      ? "no interface has that address"
      : (cause as Error)?.message ?? code;
    super(`entrypoint "${entryPoint}" cannot listen on ${address}: ${why}`, { cause });
    this.name = "ListenError";
  }
}

/** Options for {@link L4pServer}. */
export interface ServerOptions {
  runtime: Runtime;
  logger: Logger;
  /** Random source for the balancers' shuffle; `null` keeps configuration order. */
  random?: (() => number) | null;
  /** `maxConnections` of every TCP entrypoint that sets none (`--max-connections`). */
  maxConnections?: number;
  /** In a group of workers: limits and health held as one (src/server/cluster.ts). */
  shared?: SharedState;
  /** In a group of workers: entrypoints' `maxConnections` places held by the others. */
  slots?: EntryPointSlots;
  /** A worker's: no health checks of its own; the first process tells it servers' states. */
  followHealth?: boolean;
  /**
   * Routing hooks given in code, by name: a middleware `hook: { export: NAME }` without a file
   * calls `hooks[NAME]`.
   */
  hooks?: Readonly<Record<string, Hook>>;
  /** The configuration file, for messages about what it names (hook files). */
  configFile?: string;
}

/** How configuration reloads went, for metrics and the status API. */
export class ReloadStats {
  successes = 0;
  failures = 0;
  /** When the configuration in force was applied (ms since the epoch). */
  lastSuccessAt = 0;
  lastFailureAt = 0;
  lastError = "";
}

/** A running l4p: entrypoints, routers and services built from one configuration. */
export class L4pServer {
  readonly tracker: TrafficTracker = new TrafficTracker();
  readonly env: ProxyEnv;
  /** Certificates from ACME resolvers, and their challenges. */
  readonly acme: AcmeManager;
  readonly reloads: ReloadStats = new ReloadStats();
  readonly startedAt: number = Date.now();
  readonly #tcp = new Map<string, TcpEntryPoint>();
  readonly #udp = new Map<string, UdpEntryPoint>();
  readonly #random: (() => number) | null;
  readonly #maxConnections: number | undefined;
  readonly #kept = new KeptState();
  readonly #shared: SharedState | undefined;
  readonly #hooks: HookLoader;
  readonly #configFile: string | undefined;
  readonly #followHealth: boolean;
  #checkers: HealthChecker[] = [];
  #servers: ServerState[] = [];
  #config: Config | undefined;

  constructor(options: ServerOptions) {
    this.acme = new AcmeManager(options.logger);
    this.env = {
      runtime: options.runtime,
      logger: options.logger,
      tracker: this.tracker,
      acme: this.acme,
      slots: options.slots,
    };
    this.#shared = options.shared;
    this.#hooks = new HookLoader(options.runtime, options.hooks);
    this.#configFile = options.configFile;
    this.#followHealth = options.followHealth ?? false;
    this.#random = options.random === undefined ? Math.random : options.random;
    this.#maxConnections = options.maxConnections;
  }

  /** Every server of every load balancer in force, with its health. */
  get servers(): readonly ServerState[] {
    return this.#servers;
  }

  /** The routing hook files the configuration in force names (watched for changes). */
  get hookFiles(): string[] {
    return this.#hooks.files;
  }

  /** State kept across reloads under `key` (a limit's table), if the graph in force has it. */
  kept(key: string): unknown {
    return this.#kept.get(key);
  }

  /** The configuration in force. */
  get config(): Config | undefined {
    return this.#config;
  }

  /** Opens every entrypoint of `config`; on failure nothing is left open. */
  async start(config: Config): Promise<void> {
    await this.apply(config);
    this.reloads.lastSuccessAt = Date.now();
  }

  /**
   * Puts `config` in force. Entrypoints whose listening settings are unchanged keep their
   * sockets (no connection is refused meanwhile) and only take the new routers and services;
   * new ones are opened, and removed or changed ones closed once their replacements listen.
   * Established connections keep the backend they have. If any listener cannot be opened,
   * nothing changes and the error is thrown.
   */
  async apply(config: Config): Promise<void> {
    // Hooks load first (a hook that does not load refuses the configuration: nothing changes).
    const hooks = await this.#hooks.load(config, this.#configFile);
    // In steps: a build of many routers would hold the event loop in one piece.
    const graph = await inSteps(buildGraphInSteps(config, {
      hooks,
      random: this.#random,
      kept: this.#kept,
      logger: this.env.logger,
      obtained: this.acme.certificates,
      shared: this.#shared,
    }));
    const routers = graph.tcp;
    const udpRoutes = graph.udp;
    // Running entrypoints by what they listen on: a new entrypoint with the same settings
    // (under its old name or, renamed, under another) takes over the socket.
    const running = new Map<string, TcpEntryPoint | UdpEntryPoint>();
    for (const [name, ep] of Object.entries(this.#config?.entryPoints ?? {})) {
      const live = ep.protocol === "tcp" ? this.#tcp.get(name) : this.#udp.get(name);
      if (live) running.set(listenKey(ep), live);
    }
    const kept = new Map<string, TcpEntryPoint | UdpEntryPoint>();
    const opened: (TcpEntryPoint | UdpEntryPoint)[] = [];
    try {
      for (const [name, ep] of Object.entries(config.entryPoints)) {
        const key = listenKey(ep);
        const live = running.get(key);
        if (live) {
          running.delete(key);
          kept.set(name, live);
        } else {
          opened.push(await this.#open(name, ep, routers, udpRoutes, config));
        }
      }
    } catch (error) {
      this.#kept.discard();
      await Promise.all(opened.map((ep) => ep.close()));
      throw error;
    }
    this.#kept.commit();
    graph.commit();
    // Checks move to the new graph; servers kept from the old one keep their state.
    for (const c of this.#checkers) c.stop();
    this.#checkers = graph.checkers;
    if (!this.#followHealth) { for (const c of this.#checkers) c.start(this.env.runtime); }
    this.#servers = graph.servers;
    this.acme.configure(config);
    // Everything listens: switch over, then close what is no longer configured (and wait until
    // its ports refuse, so that "reloaded" means done).
    await Promise.all([...running.values()].map((ep) => ep.close()));
    this.#tcp.clear();
    this.#udp.clear();
    for (const [name, ep] of kept) {
      const epc = config.entryPoints[name];
      ep.name = name;
      if (ep instanceof TcpEntryPoint) {
        ep.handler = routers.get(name) ?? new TcpRouter(name, [], epc.helloTimeout);
        Object.assign(ep.options, this.#tcpOptions(epc));
        this.#tcp.set(name, ep);
      } else {
        ep.router = udpRoutes.get(name);
        ep.configure(epc.udp);
        this.#udp.set(name, ep);
      }
    }
    for (const ep of opened) {
      if (ep instanceof TcpEntryPoint) this.#tcp.set(ep.name, ep);
      else this.#udp.set(ep.name, ep);
    }
    this.#reportLeftOut(this.#config, config);
    this.#config = config;
  }

  /** Says, once, each dynamic item the new configuration leaves out that the last did not. */
  #reportLeftOut(before: Config | undefined, after: Config): void {
    const key = (l: Config["leftOut"][number]) => `${l.item}\n${l.errors.join("\n")}`;
    const known = new Set((before?.leftOut ?? []).map(key));
    for (const l of after.leftOut) {
      if (known.has(key(l))) continue;
      this.env.logger.error("left out of the configuration; the rest is served", {
        item: l.item,
        error: l.errors.join("; "),
      });
    }
  }

  async #open(
    name: string,
    ep: EntryPointConfig,
    routers: Map<string, TcpRouter>,
    udpRoutes: Map<string, UdpRouter>,
    config: Config,
  ): Promise<TcpEntryPoint | UdpEntryPoint> {
    let entryPoint: TcpEntryPoint | UdpEntryPoint;
    try {
      if (ep.protocol === "tcp") {
        const handler = routers.get(name) ?? new TcpRouter(name, [], ep.helloTimeout);
        entryPoint = new TcpEntryPoint(name, ep.address, this.env, handler, this.#tcpOptions(ep));
        entryPoint.start();
      } else {
        entryPoint = new UdpEntryPoint(
          name,
          ep.address,
          this.env,
          udpRoutes.get(name),
          ep.udp,
          ep.reusePort,
        );
        await entryPoint.start();
      }
    } catch (error) {
      const code = (error as { code?: string }).code ?? "EIO";
      throw new ListenError(name, ep.address.text, code, error);
    }
    this.env.logger.info("listening", {
      entryPoint: name,
      protocol: ep.protocol,
      address: formatAddr(entryPoint.addr!),
      forwardsTo: describeRoutes(config, name),
    });
    return entryPoint;
  }

  /** What a TCP entrypoint does with what it accepts (a reload may change it in place). */
  #tcpOptions(ep: EntryPointConfig): TcpEntryPointOptions {
    return {
      reusePort: ep.reusePort,
      keepAlive: ep.keepAlive,
      maxConnections: ep.maxConnections ?? this.#maxConnections,
      proxyProtocol: acceptOptions(ep.proxyProtocol),
    };
  }

  /** The connection limit in force on a TCP entrypoint, if any. */
  maxConnectionsOf(entryPoint: string): number | undefined {
    return this.#tcp.get(entryPoint)?.options.maxConnections;
  }

  /** The bound address of an entrypoint (the real port when 0 was asked for). */
  addressOf(entryPoint: string): NetAddr | undefined {
    return this.#tcp.get(entryPoint)?.addr ?? this.#udp.get(entryPoint)?.addr;
  }

  /** The number of live UDP sessions of an entrypoint. */
  /** Brings each UDP entrypoint's dropped count up to what the kernel dropped on its socket. */
  async countKernelDrops(): Promise<void> {
    await Promise.all([...this.#udp.values()].map((ep) => ep.countKernelDrops()));
  }

  udpSessions(entryPoint: string): number {
    return this.#udp.get(entryPoint)?.sessions ?? 0;
  }

  /**
   * Stops every listener; established TCP connections go on, UDP sessions end. Resolves once
   * every TCP port refuses new connections.
   */
  close(): Promise<void> {
    this.acme.stop();
    for (const c of this.#checkers) c.stop();
    this.#checkers = [];
    const names = new Set([...this.#tcp.keys(), ...this.#udp.keys()]);
    return Promise.all([...names].map((name) => this.stopAccepting(name))).then(() => {});
  }

  /**
   * Stops one entrypoint's listener (its port refuses from then on; a UDP entrypoint's sessions
   * end); its established TCP connections go on. Resolves once the port refuses.
   */
  async stopAccepting(entryPoint: string): Promise<void> {
    const tcp = this.#tcp.get(entryPoint);
    this.#tcp.delete(entryPoint);
    const udp = this.#udp.get(entryPoint);
    this.#udp.delete(entryPoint);
    udp?.close();
    await tcp?.close();
  }

  /**
   * Waits for established TCP connections to finish, closing each one still open at its
   * entrypoint's deadline (`deadlineOf`, in epoch ms); new ones are waited for too until
   * `accepting` settles (listeners still open). Resolves to how many had to be closed.
   */
  async drain(
    deadlineOf: (entryPoint: string) => number,
    accepting: Promise<unknown> = Promise.resolve(),
  ): Promise<number> {
    let open = true;
    accepting.finally(() => open = false);
    await Promise.resolve();
    const live = this.tracker.live;
    const forced = new Set<unknown>();
    const overdue = () => {
      const now = Date.now();
      for (const conn of [...live]) {
        if (!forced.has(conn) && deadlineOf(conn.entryPoint) <= now) {
          forced.add(conn);
          conn.end("drain timeout");
        }
      }
    };
    // A connection told to end is not waited for again (its close may take a moment).
    const waiting = () => open || [...live].some((conn) => !forced.has(conn));
    for (overdue(); waiting(); overdue()) {
      await new Promise((r) => setTimeout(r, 50));
    }
    return forced.size;
  }
}

/** What must stay the same for an entrypoint to keep its listening socket across a reload. */
/**
 * What makes a listening socket: entrypoints alike in these share it across a reload, which
 * applies their other settings (keep-alive, UDP timeout and session bound, …) to it in place.
 */
function listenKey(ep: EntryPointConfig): string {
  const { protocol, address, reusePort } = ep;
  // A socket bound with a receive buffer can change it in place; one without cannot get one.
  const sized = protocol === "udp" && ep.udp.receiveBuffer !== undefined;
  return JSON.stringify([protocol, address.hostname, address.port, reusePort, sized]);
}
