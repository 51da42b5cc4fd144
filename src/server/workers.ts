/**
 * `--workers N`: N processes serve the same listeners, which the kernel balances through
 * SO_REUSEPORT (a UDP client's datagrams all reach one process, so its session stays whole).
 * Where the runtime cannot share a UDP port (Deno: its reuseAddress takes the port over
 * instead), UDP entrypoints stay with the first process.
 */
import { type ChildProcess, spawn } from "node:child_process";
import process from "node:process";
import type { Config } from "../config/model.ts";
import type { Logger } from "../log/logger.ts";
import type { Runtime } from "../runtime/types.ts";

/** The environment variable that marks a worker process (its number, from 1). */
export const WORKER_ENV = "L4P_WORKER";

/** This process's worker number: 0 for the first (or only) process. */
export function workerNumber(): number {
  return Number(process.env[WORKER_ENV] ?? 0);
}

/**
 * The configuration a process of a group of workers runs: entrypoints share their port (UDP
 * ones only where `udpShared`, else they stay with the first process); workers after the first
 * leave out the admin listener and the access log's file (they log access lines to stderr).
 */
export function configForWorker(config: Config, worker: number, udpShared: boolean): Config {
  const entryPoints: Config["entryPoints"] = {};
  for (const [name, ep] of Object.entries(config.entryPoints)) {
    if (ep.protocol === "udp" && !udpShared) {
      if (worker === 0) entryPoints[name] = ep;
      continue;
    }
    entryPoints[name] = { ...ep, reusePort: true };
  }
  return {
    ...config,
    entryPoints,
    metrics: worker > 0 ? undefined : config.metrics,
    accessLog: worker > 0 && config.accessLog
      ? { format: config.accessLog.format }
      : config.accessLog,
  };
}

/**
 * Starts workers 1..count with the same command-line `args` (less `--workers`). Stop signals
 * and SIGHUP given to this process are passed on to them.
 */
export function spawnWorkers(
  runtime: Runtime,
  args: string[],
  count: number,
  logger: Logger,
): ChildProcess[] {
  const self = runtime.selfCommand();
  const children: ChildProcess[] = [];
  for (let i = 1; i <= count; i++) {
    const child = spawn(self.command, [...self.args, ...args], {
      stdio: ["ignore", "inherit", "inherit"],
      env: { ...process.env, [WORKER_ENV]: String(i) },
    });
    child.on("exit", (code, signal) => {
      logger.info("worker exited", {
        worker: i,
        code: code ?? undefined,
        signal: signal ?? undefined,
      });
    });
    children.push(child);
  }
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    process.on(signal, () => {
      for (const c of children) if (c.exitCode === null && c.pid) process.kill(c.pid, signal);
    });
  }
  return children;
}

/**
 * In a worker: when the first process dies without passing a signal on (SIGKILL, a crash),
 * this worker is orphaned and would hold the port alone; it notices and stops itself.
 */
export function stopWithParent(): void {
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    process.kill(process.pid, "SIGTERM");
  }, 500);
  // Watching must not keep a worker alive that is otherwise done.
  (timer as { unref?: () => void }).unref?.();
}

/** Resolves once every worker has exited, to the highest exit code. */
export function workersExited(children: ChildProcess[]): Promise<number> {
  return Promise.all(
    children.map((c) =>
      c.exitCode !== null
        ? c.exitCode
        : new Promise<number>((r) => c.once("exit", (code) => r(code ?? 1)))
    ),
  ).then((codes) => Math.max(0, ...codes));
}

/** `args` without `--workers N` / `--workers=N`. */
export function withoutWorkersFlag(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--workers") i++;
    else if (!args[i].startsWith("--workers=")) out.push(args[i]);
  }
  return out;
}
