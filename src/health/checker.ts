/**
 * Active health checks of one service's servers: each server on a timer of its own (jittered,
 * so that checks of many servers and many l4p processes spread out), never on the data path.
 */
import { setTimeout as timeout } from "node:timers";
import type { Runtime } from "../runtime/types.ts";
import { probeTcp, probeUdp } from "./probe.ts";
import type { ServerState, Thresholds } from "./server_state.ts";

/** A service's health check, as configured (durations in ms). */
export interface HealthCheckSettings extends Thresholds {
  interval: number;
  /** Between checks of a server that is down. */
  unhealthyInterval: number;
  timeout: number;
  send?: Uint8Array;
  expect?: Uint8Array;
  /** Check this port instead of the server's. */
  port?: number;
}

/** Runs one service's checks until stopped. */
export class HealthChecker {
  #timers = new Map<ServerState, ReturnType<typeof timeout>>();
  #runtime: Runtime | undefined;

  constructor(
    readonly protocol: "tcp" | "udp",
    readonly service: string,
    readonly servers: readonly ServerState[],
    readonly settings: HealthCheckSettings,
    readonly random: () => number = Math.random,
  ) {}

  /** Starts checking; the first check of each server comes within one interval. */
  start(runtime: Runtime): void {
    this.#runtime = runtime;
    for (const s of this.servers) this.#schedule(s, this.random() * this.settings.interval);
  }

  /** Stops; a check under way is let finish and its result dropped. */
  stop(): void {
    this.#runtime = undefined;
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
  }

  #schedule(server: ServerState, delay: number): void {
    const t = timeout(() => this.#check(server), delay);
    t.unref();
    this.#timers.set(server, t);
  }

  async #check(server: ServerState): Promise<void> {
    const runtime = this.#runtime;
    if (!runtime) return;
    const { settings } = this;
    const target = {
      hostname: server.address.hostname,
      port: settings.port ?? server.address.port,
    };
    const started = Date.now();
    const failure = this.protocol === "tcp"
      ? await probeTcp(runtime, target, settings)
      : await probeUdp(runtime, target, { ...settings, send: settings.send! });
    if (this.#runtime !== runtime) return; // stopped meanwhile (a reload)
    const at = Date.now();
    server.checked(
      { at, ok: failure === undefined, detail: failure ?? "ok", durationMs: at - started },
      settings,
    );
    const every = server.up ? settings.interval : settings.unhealthyInterval;
    this.#schedule(server, every * (0.9 + 0.2 * this.random()));
  }
}
