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

/** A worker that died this soon after it started counts as failing to start (ms). */
const QUICK_DEATH = 10_000;
/** The longest wait before a worker that keeps dying is started again (ms). */
const RESTART_MAX_DELAY = 30_000;

/**
 * Workers 1..count, started with the same command-line `args` (less `--workers`). Stop signals
 * given to this process are passed on to them. A worker that dies otherwise (killed,
 * crashed) is started again, at once the first time and with a doubling delay while it keeps
 * dying within {@link QUICK_DEATH} of its start: the port goes on being served by the others.
 */
export class WorkerGroup {
  readonly #children = new Map<number, ChildProcess>();
  readonly #waiters: (() => void)[] = [];
  #stopping = false;
  #highest = 0;
  /** Workers started again after they died. */
  restarts = 0;

  constructor(
    readonly runtime: Runtime,
    readonly args: string[],
    readonly count: number,
    readonly logger: Logger,
    /** More environment for the workers (the first process's control socket). */
    readonly env: Record<string, string> = {},
  ) {
    for (let i = 1; i <= count; i++) this.#start(i, 0);
    // SIGHUP is not passed on: the first process reloads for the group.
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      process.on(signal, () => {
        this.#stopping = true;
        for (const c of this.#children.values()) {
          if (c.exitCode === null && c.pid) process.kill(c.pid, signal);
        }
      });
    }
  }

  #start(i: number, quickDeaths: number): void {
    const self = this.runtime.selfCommand();
    const startedAt = Date.now();
    const child = spawn(self.command, [...self.args, ...this.args], {
      stdio: ["ignore", "inherit", "inherit"],
      env: { ...process.env, ...this.env, [WORKER_ENV]: String(i) },
    });
    this.#children.set(i, child);
    child.on("exit", (code, signal) => {
      const fields = { worker: i, code: code ?? undefined, signal: signal ?? undefined };
      if (this.#stopping) {
        this.logger.info("worker exited", fields);
        this.#highest = Math.max(this.#highest, code ?? 1);
        this.#children.delete(i);
        if (this.#children.size === 0) { for (const w of this.#waiters.splice(0)) w(); }
        return;
      }
      const quick = Date.now() - startedAt < QUICK_DEATH ? quickDeaths + 1 : 0;
      const delay = quick <= 1 ? 0 : Math.min(RESTART_MAX_DELAY, 500 * 2 ** quick);
      this.restarts++;
      this.logger.warn("worker died; its connections were lost; starting it again", {
        ...fields,
        inMs: delay,
      });
      setTimeout(() => {
        if (!this.#stopping) this.#start(i, quick);
        else {
          this.#children.delete(i);
          if (this.#children.size === 0) { for (const w of this.#waiters.splice(0)) w(); }
        }
      }, delay);
    });
  }

  /** Resolves once stopping and every worker has exited, to the highest exit code. */
  exited(): Promise<number> {
    this.#stopping = true;
    if (this.#children.size === 0) return Promise.resolve(this.#highest);
    return new Promise((resolve) => this.#waiters.push(() => resolve(this.#highest)));
  }

  /** Stops every worker at once (the first process could not start). */
  kill(): void {
    this.#stopping = true;
    for (const c of this.#children.values()) c.kill("SIGKILL");
  }
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

/** `args` without `--workers N` / `--workers=N`. */
export function withoutWorkersFlag(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--workers") i++;
    else if (!args[i].startsWith("--workers=")) out.push(args[i]);
  }
  return out;
}
