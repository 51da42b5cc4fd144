/**
 * Running l4p as a long-lived process: the server, the admin listener, the access log, hot
 * reload (file watch and SIGHUP) and graceful drain (SIGTERM/SIGINT; a second signal is final).
 */
import process from "node:process";
import { startAdmin } from "../admin/admin.ts";
import { type HostPort, isLoopback } from "../config/address.ts";
import type { Config } from "../config/model.ts";
import type { ConfigPart } from "../config/parts.ts";
import { AccessLog } from "../log/access_log.ts";
import type { Logger } from "../log/logger.ts";
import type { HttpServer, Runtime } from "../runtime/types.ts";
import { connectionsWithin, fdLimit } from "./limits.ts";
import type { TrafficTracker } from "../metrics/tracker.ts";
import { ClusterLead, ClusterMember } from "./cluster.ts";
import { ConfigReloader } from "./reloader.ts";
import type { StoreSource } from "../providers/source.ts";
import { L4pServer, ListenError } from "./server.ts";

/** What to run and how. */
export interface RunOptions {
  runtime: Runtime;
  config: Config;
  logger: Logger;
  version: string;
  /** The configuration file, watched and reloaded; absent for ad-hoc commands. */
  file?: string;
  /** The text of `file` as loaded, so an unchanged save reloads nothing. */
  fileText?: string;
  /** The parts of the file's providers (and stores) the configuration was made with. */
  fileParts?: ConfigPart[];
  /** The admin listener, overriding the configuration's `metrics.address`. */
  metrics?: HostPort;
  /** The admin listener's bearer token, overriding the configuration's. */
  adminToken?: string;
  /** The access log, overriding the configuration's `accessLog`. */
  accessLog?: { filePath?: string; format: "json" | "text"; minDuration?: number };
  /**
   * How long established connections may take to finish after a stop signal, in ms: every
   * entrypoint's, overriding `lifeCycle.graceTimeOut`. Absent: each entrypoint's graceTimeOut,
   * else {@link DEFAULT_DRAIN_TIMEOUT}.
   */
  drainTimeout?: number;
  /** `maxConnections` of every TCP entrypoint that sets none. */
  maxConnections?: number;
  /** Stores (etcd, Redis) whose parts are merged with the file's on every reload. */
  stores?: StoreSource;
  /** Called with every configuration put in force after the first (log settings, say). */
  onReload?: (config: Config) => void;
  /** Turns each configuration read from `file` into the one to run (a worker's share). */
  prepare?: (config: Config) => Config;
  /** Printed once everything listens. */
  banner?: (server: L4pServer) => string;
  out?: (text: string) => void;
  /** Called when l4p stops (the demo's backends). */
  onStop?: () => void;
  /** With `--workers`: the first process's shared state, or a worker's link to it. */
  cluster?: ClusterLead | ClusterMember;
}

/** How long established connections may take to finish after a stop signal, by default. */
export const DEFAULT_DRAIN_TIMEOUT = 30_000;

/**
 * Runs until stopped; resolves to the exit code: 0 after a drain, 1 after a second signal.
 * Throws {@link ListenError} when a listener cannot be opened at start.
 */
export async function run(options: RunOptions): Promise<number> {
  const { logger, config, cluster } = options;
  const server = new L4pServer({
    runtime: options.runtime,
    logger,
    maxConnections: options.maxConnections,
    shared: cluster?.shared,
    slots: cluster?.slots,
    followHealth: cluster instanceof ClusterMember,
    configFile: options.file,
  });
  const lead = cluster instanceof ClusterLead ? cluster : undefined;
  const member = cluster instanceof ClusterMember ? cluster : undefined;
  // The first process answers its workers from the start; a worker says hello once it serves.
  lead?.attach(server);
  // The group's counts as last asked, for the dashboard's stream (readers of /metrics and the
  // status API ask afresh).
  let groupView: TrafficTracker | undefined;
  const refreshView = lead &&
    setInterval(() => void lead.view().then((v) => groupView = v), 1000);
  (refreshView as { unref?: () => void } | undefined)?.unref?.();
  // Signal handlers go in before the first "listening" line, so that whoever waits for that
  // line can stop l4p cleanly at once.
  let signalled = 0;
  let onSignal: (signal: string) => void = () => {};
  let admin: HttpServer | undefined;
  let accessLog: AccessLog | undefined;
  let reloader: ConfigReloader | undefined;
  const accepting = new Set<ReturnType<typeof setTimeout>>();
  const done = new Promise<number>((resolve) => {
    onSignal = (signal) => {
      if (++signalled > 1) {
        logger.warn("second signal; closing every connection now", { signal });
        for (const timer of accepting) clearTimeout(timer);
        for (const conn of [...server.tracker.live]) conn.end("forced stop");
        return resolve(1);
      }
      // What is in force now decides how each entrypoint stops; no reload comes in between.
      reloader?.close();
      const entryPoints = server.config?.entryPoints ?? {};
      const grace = (name: string) =>
        options.drainTimeout ?? entryPoints[name]?.graceTimeOut ?? DEFAULT_DRAIN_TIMEOUT;
      // traefik's lifeCycle, per entrypoint: it goes on accepting for requestAcceptGraceTimeout
      // (behind a load balancer that has yet to see this instance go), then its connections
      // have graceTimeOut to finish.
      const start = Date.now();
      const late = Object.entries(entryPoints).filter(([, ep]) => ep.requestAcceptGraceTimeout > 0);
      const deadline = (name: string) =>
        start + (entryPoints[name]?.requestAcceptGraceTimeout ?? 0) + grace(name);
      // The others stop at once. Their ports refuse before the line is written, so whoever
      // reads it can rely on it.
      const now = Object.keys(entryPoints).filter((name) => !late.some(([n]) => n === name));
      const lateStopped = Promise.all(late.map(([name, ep]) =>
        new Promise<void>((r) => {
          const timer = setTimeout(() => {
            accepting.delete(timer);
            server.stopAccepting(name).then(r);
          }, ep.requestAcceptGraceTimeout);
          accepting.add(timer);
        })
      )).then(() => server.close());
      Promise.all(now.map((name) => server.stopAccepting(name))).then(() => {
        if (late.length) {
          logger.info("stopping: still accepting (lifeCycle.requestAcceptGraceTimeout)", {
            signal,
            entryPoints: late.map(([name, ep]) => `${name}:${ep.requestAcceptGraceTimeout}ms`)
              .join(","),
          });
        }
        // The drain begins now: a stopped entrypoint's connections are held to their deadline
        // while a late one still accepts.
        lateStopped.then(() =>
          logger.info("stopping: no new connections; draining", {
            signal,
            connections: server.tracker.live.size,
            drainTimeoutMs: options.drainTimeout ??
              Math.max(0, ...Object.keys(entryPoints).map(grace)),
          })
        );
        return server.drain(deadline, lateStopped);
      }).then((forced) => {
        if (forced > 0) logger.warn("drain timeout; connections closed", { connections: forced });
        else logger.info("drained");
        resolve(0);
      });
    };
  });
  // SIGHUP too, from the start: its default action would end the process, and a reload asked
  // for before l4p can reload (systemd's, right after the start) is done once it can.
  let hupEarly = false;
  let onHup: () => void = () => void (hupEarly = true);
  const handlers: [string, () => void][] = [
    ["SIGINT", () => onSignal("SIGINT")],
    ["SIGTERM", () => onSignal("SIGTERM")],
    ["SIGHUP", () => onHup()],
  ];
  for (const [s, h] of handlers) process.on(s, h);
  // A safety net, not a way of working: a bug on one connection's path must not take every
  // other connection down with the process. It is logged loudly, for a fix.
  const onUnexpected = (error: unknown) => {
    const stack = (error as Error)?.stack ?? String(error);
    // Deno 2.9's node:tls throws this from its own code after a handshake it refused (a TLS 1.1
    // client, say); the connection is already failed and closed, and nothing else is affected.
    if (/_flushEncOut/.test(stack) && /_tls_wrap/.test(stack)) {
      return logger.repeated(
        "debug",
        "deno tls",
        "Deno's node:tls failed after a refused handshake",
        {
          error: (error as Error).message,
        },
      );
    }
    logger.error("unexpected failure; l4p keeps running", { error: stack });
  };
  process.on("unhandledRejection", onUnexpected);
  process.on("uncaughtException", onUnexpected);

  const cleanup = async () => {
    for (const [s, h] of handlers) process.off(s, h);
    process.off("unhandledRejection", onUnexpected);
    process.off("uncaughtException", onUnexpected);
    reloader?.close();
    admin?.close();
    if (refreshView) clearInterval(refreshView);
    // The first process's socket stays until its workers have drained (the caller closes it).
    member?.close();
    options.onStop?.();
    await accessLog?.close();
    await options.stores?.close();
    await logger.flush();
  };
  const access = options.accessLog ?? config.accessLog;
  const adminToken = options.adminToken ?? config.metrics?.token;
  try {
    if (access) {
      accessLog = new AccessLog(server.tracker, {
        format: access.format,
        minDuration: access.minDuration,
        output: access.filePath ? await openAccessLog(options.runtime, access.filePath) : undefined,
        writer: logger.writer,
        onDropped: (dropped) =>
          logger.warn("access log lines were dropped: its output was too slow", { dropped }),
        active: () => logger.enabled("info"),
      });
    }
    await server.start(config);
    member?.attach(server);
    const adminAddress = options.metrics ?? config.metrics?.address;
    if (adminAddress) {
      try {
        admin = startAdmin(server, adminAddress, {
          version: options.version,
          accessLogDropped: () => accessLog?.dropped ?? 0,
          token: adminToken,
          publicMetrics: config.metrics?.publicMetrics,
          allowedHosts: config.metrics?.allowedHosts,
          providers: options.stores ? () => options.stores!.status() : undefined,
          view: lead && {
            fresh: async () => groupView = await lead.view(),
            current: () => groupView ?? server.tracker,
          },
          workers: lead && (() => lead.workers()),
        });
      } catch (error) {
        const code = (error as { code?: string }).code ?? "EIO";
        throw new ListenError("metrics", adminAddress.text, code, error);
      }
      if (!adminToken && !isLoopback(adminAddress.hostname)) {
        logger.warn(
          "the admin listener answers anyone who can reach it: set metrics.token or tokenFile (--token-file), or listen on 127.0.0.1",
          { address: adminAddress.text },
        );
      }
      logger.info("admin listening", {
        address: `${admin.addr.hostname}:${admin.addr.port}`,
        paths: "/dashboard/ /metrics /api/status /api/connections /api/events /healthz",
        token: adminToken ? "required" : "none",
      });
    }
  } catch (error) {
    await server.close();
    await cleanup();
    throw error;
  }
  if (options.file) {
    const stores = options.stores;
    const r = reloader = new ConfigReloader(server, options.file, logger, {
      onApplied: (c, inputs) => {
        stores?.applied();
        lead?.published(inputs);
        options.onReload?.(c);
      },
      prepare: options.prepare,
      parts: stores ? () => stores.parts() : undefined,
    });
    if (member) {
      // A worker reads nothing itself: the first process reads the file and the stores once,
      // and every worker puts in force what it did.
      member.onConfig = (inputs, revision) =>
        void r.put(inputs, "the first process reloaded").then((ok) =>
          ok && member.applied(revision)
        );
    } else {
      if (stores) stores.onChange = () => void r.reload("store changed");
      if (options.fileText !== undefined) r.started(options.fileText);
      lead?.published({ text: options.fileText ?? "", parts: options.fileParts ?? [] });
      r.watch();
      // A change made between loading the file and watching it would otherwise go unseen.
      r.reload("file changed");
    }
  }
  // SIGHUP reloads the file; a worker's first process reloads for it; with no file (l4p tcp)
  // there is nothing to reload.
  onHup = reloader && !member ? () => void reloader!.reload("SIGHUP") : () =>
    logger.info(
      member
        ? "SIGHUP: the first process reloads for the group"
        : "SIGHUP: no configuration file to reload",
    );
  if (hupEarly) onHup();
  reportFdLimit(logger, config, options.maxConnections);
  if (options.banner) (options.out ?? ((t) => process.stdout.write(t)))(options.banner(server));
  const code = await done;
  await cleanup();
  return code;
}

/** Says how many connections the descriptor limit allows, and warns when limits exceed it. */
function reportFdLimit(logger: Logger, config: Config, defaultMax: number | undefined): void {
  const limit = fdLimit();
  if (!limit) return;
  const within = connectionsWithin(limit);
  logger.info("file descriptor limit", {
    soft: limit.soft,
    hard: limit.hard,
    tcpConnections: within,
  });
  // Only a limit someone set can be wrong; without one, the line above says what to expect.
  let total = 0;
  for (const ep of Object.values(config.entryPoints)) {
    if (ep.protocol === "tcp") total += ep.maxConnections ?? defaultMax ?? 0;
  }
  if (total > within) {
    logger.warn(
      "maxConnections lets in more TCP connections than the file descriptor limit allows; past it, accepts fail until connections close",
      { tcpConnections: within, maxConnections: total },
    );
  }
}

/** l4p could not start for a reason other than a listener (an access log it cannot open). */
export class StartError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StartError";
  }
}

async function openAccessLog(runtime: Runtime, path: string) {
  try {
    return await runtime.openOutput(path);
  } catch (error) {
    const e = error as { code?: string; message?: string };
    throw new StartError(`access log ${path} cannot be opened: ${e.code ?? e.message}`, {
      cause: error,
    });
  }
}
