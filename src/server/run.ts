/**
 * Running l4p as a long-lived process: the server, the admin listener, the access log, hot
 * reload (file watch and SIGHUP) and graceful drain (SIGTERM/SIGINT; a second signal is final).
 */
import process from "node:process";
import { startAdmin } from "../admin/admin.ts";
import type { HostPort } from "../config/address.ts";
import type { Config } from "../config/model.ts";
import { AccessLog } from "../log/access_log.ts";
import type { Logger } from "../log/logger.ts";
import type { HttpServer, Runtime } from "../runtime/types.ts";
import { ConfigReloader } from "./reloader.ts";
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
  /** The admin listener, overriding the configuration's `metrics.address`. */
  metrics?: HostPort;
  /** The access log, overriding the configuration's `accessLog`. */
  accessLog?: { filePath?: string; format: "json" | "text" };
  /** How long established connections may take to finish after a stop signal, in ms. */
  drainTimeout: number;
  /** Called with every configuration put in force after the first (log settings, say). */
  onReload?: (config: Config) => void;
  /** Turns each configuration read from `file` into the one to run (a worker's share). */
  prepare?: (config: Config) => Config;
  /** Printed once everything listens. */
  banner?: (server: L4pServer) => string;
  out?: (text: string) => void;
  /** Called when l4p stops (the demo's backends). */
  onStop?: () => void;
}

/**
 * Runs until stopped; resolves to the exit code: 0 after a drain, 1 after a second signal.
 * Throws {@link ListenError} when a listener cannot be opened at start.
 */
export async function run(options: RunOptions): Promise<number> {
  const { logger, config } = options;
  const server = new L4pServer({ runtime: options.runtime, logger });
  // Signal handlers go in before the first "listening" line, so that whoever waits for that
  // line can stop l4p cleanly at once.
  let signalled = 0;
  let onSignal: (signal: string) => void = () => {};
  const done = new Promise<number>((resolve) => {
    onSignal = (signal) => {
      if (++signalled > 1) {
        logger.warn("second signal; closing every connection now", { signal });
        for (const conn of [...server.tracker.live]) conn.end("forced stop");
        return resolve(1);
      }
      // Listeners are closed (their ports refuse) before the line is written, so whoever reads
      // it can rely on it.
      server.close().then(() => {
        logger.info("stopping: no new connections; draining", {
          signal,
          connections: server.tracker.live.size,
          drainTimeoutMs: options.drainTimeout,
        });
        return server.drain(options.drainTimeout);
      }).then((forced) => {
        if (forced > 0) logger.warn("drain timeout; connections closed", { connections: forced });
        else logger.info("drained");
        resolve(0);
      });
    };
  });
  const handlers: [string, () => void][] = [
    ["SIGINT", () => onSignal("SIGINT")],
    ["SIGTERM", () => onSignal("SIGTERM")],
  ];
  for (const [s, h] of handlers) process.on(s, h);
  // A safety net, not a way of working: a bug on one connection's path must not take every
  // other connection down with the process. It is logged loudly, for a fix.
  const onUnexpected = (error: unknown) =>
    logger.error("unexpected failure; l4p keeps running", {
      error: (error as Error)?.stack ?? String(error),
    });
  process.on("unhandledRejection", onUnexpected);
  process.on("uncaughtException", onUnexpected);

  let admin: HttpServer | undefined;
  let accessLog: AccessLog | undefined;
  let reloader: ConfigReloader | undefined;
  const cleanup = () => {
    for (const [s, h] of handlers) process.off(s, h);
    process.off("unhandledRejection", onUnexpected);
    process.off("uncaughtException", onUnexpected);
    reloader?.close();
    admin?.close();
    accessLog?.close();
    options.onStop?.();
  };
  try {
    await server.start(config);
    const adminAddress = options.metrics ?? config.metrics?.address;
    if (adminAddress) {
      try {
        admin = startAdmin(server, adminAddress, { version: options.version });
      } catch (error) {
        const code = (error as { code?: string }).code ?? "EIO";
        throw new ListenError("metrics", adminAddress.text, code, error);
      }
      logger.info("admin listening", {
        address: `${admin.addr.hostname}:${admin.addr.port}`,
        paths: "/metrics /api/status /api/connections /healthz",
      });
    }
  } catch (error) {
    await server.close();
    cleanup();
    throw error;
  }
  const access = options.accessLog ?? config.accessLog;
  if (access) {
    accessLog = new AccessLog(server.tracker, {
      ...access,
      active: () => logger.enabled("info"),
    });
  }
  if (options.file) {
    reloader = new ConfigReloader(server, options.file, logger, {
      onApplied: (c) => options.onReload?.(c),
      prepare: options.prepare,
    });
    if (options.fileText !== undefined) reloader.started(options.fileText);
    reloader.watch();
    // A change made between loading the file and watching it would otherwise go unseen.
    reloader.reload("file changed");
    const onHup = () => reloader!.reload("SIGHUP");
    process.on("SIGHUP", onHup);
    handlers.push(["SIGHUP", onHup]);
  }
  if (options.banner) (options.out ?? ((t) => process.stdout.write(t)))(options.banner(server));
  const code = await done;
  cleanup();
  return code;
}
