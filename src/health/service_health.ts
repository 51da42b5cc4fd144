/**
 * The health of a service: up while any of its servers is up. It hears its servers' changes,
 * logs them once each, and tells its parents (weighted services) when it goes down or up, as
 * traefik's status updaters do. Balancers ask it which servers may be picked.
 */
import { setTimeout as timeout } from "node:timers";
import type { Logger } from "../log/logger.ts";
import type { SharedState } from "../graph/shared.ts";
import type { PassivePolicy, ServerState } from "./server_state.ts";

/** Something whose health its parents follow: a service. */
export interface HealthSource {
  readonly up: boolean;
  /** Calls `listener` whenever `up` changes. */
  onChange(listener: () => void): void;
}

/** What a service's servers' health means for picking them. */
export class ServiceHealth implements HealthSource {
  #upCount: number;
  #listeners: (() => void)[] = [];

  constructor(
    readonly name: string,
    readonly servers: readonly ServerState[],
    readonly logger: Logger,
    /** Passive ejection, if configured. */
    readonly passive: PassivePolicy | undefined,
    /** Whether active checks bring servers back (else passive ejection ends with its window). */
    readonly activeChecks: boolean,
    /** In a group of workers: where changes are told, and where dial failures count. */
    readonly shared?: SharedState,
  ) {
    this.#upCount = servers.filter((s) => s.up).length;
  }

  /**
   * Takes over its servers' change callbacks (each server tells one service: the newest). Done
   * when the graph it belongs to is put in force, never while building one: a graph that fails
   * to apply must leave the running one hearing its servers.
   */
  attach(): void {
    for (const s of this.servers) {
      s.onChange = (server, reason) => this.#changed(server, reason);
      s.passiveFailure = (code) => this.#passiveFailure(s, code);
    }
    const wasUp = this.up;
    this.#upCount = this.servers.filter((s) => s.up).length;
    // The servers may have changed since this was built: parents hear of it now.
    if (wasUp !== this.up) { for (const listener of this.#listeners) listener(); }
  }

  get up(): boolean {
    return this.#upCount > 0;
  }

  /** Servers up now. */
  get upCount(): number {
    return this.#upCount;
  }

  onChange(listener: () => void): void {
    this.#listeners.push(listener);
  }

  /** A dial to `server` failed with `code`: passive ejection may put it down. */
  dialFailed(server: ServerState, code: string): void {
    if (this.shared?.dialFailed) return this.shared.dialFailed(server, code);
    this.#passiveFailure(server, code);
  }

  #passiveFailure(server: ServerState, code: string): void {
    const passive = this.passive;
    if (!passive || !server.dialFailed(Date.now(), code, passive) || this.activeChecks) return;
    // No active check will bring it back: the window does.
    const revive = timeout(() => {
      if (!server.up) server.setUp(true, "passive ejection window over");
    }, passive.failureWindow);
    revive.unref();
  }

  #changed(server: ServerState, reason: string): void {
    this.shared?.serverChanged?.(server);
    const wasUp = this.up;
    this.#upCount = this.servers.filter((s) => s.up).length;
    const fields = { protocol: server.protocol, service: this.name, server: server.label, reason };
    if (server.up) this.logger.info("server up", fields);
    else this.logger.warn("server down", fields);
    if (wasUp === this.up) return;
    if (this.up) this.logger.info("service up", { protocol: server.protocol, service: this.name });
    else {
      this.logger.warn("every server of the service is down; trying them anyway", {
        protocol: server.protocol,
        service: this.name,
      });
    }
    for (const listener of this.#listeners) listener();
  }
}

/** A parent's health: up while any child is (a weighted service over services). */
export class ChildrenHealth implements HealthSource {
  #listeners: (() => void)[] = [];
  #up: boolean;

  constructor(readonly children: readonly HealthSource[]) {
    this.#up = children.some((c) => c.up);
    for (const c of children) c.onChange(() => this.#recount());
  }

  get up(): boolean {
    return this.#up;
  }

  onChange(listener: () => void): void {
    this.#listeners.push(listener);
  }

  #recount(): void {
    const up = this.children.some((c) => c.up);
    if (up === this.#up) return;
    this.#up = up;
    for (const listener of this.#listeners) listener();
  }
}
