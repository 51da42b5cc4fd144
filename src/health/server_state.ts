/**
 * The health of one server of one service: up or down, why, the last check, and the counts a
 * strategy and the metrics read. It outlives a reload while the server stays in its service.
 */
import type { Candidate } from "../balancer/candidate.ts";
import type { NetAddr } from "../runtime/types.ts";

/** What one active check found. */
export interface CheckResult {
  /** When it ended, in ms since the epoch. */
  at: number;
  ok: boolean;
  /** "ok", or why it failed ("ECONNREFUSED", "timed out", "reply did not contain …"). */
  detail: string;
  durationMs: number;
}

/** How many checks flip a server (traefik's names; HAProxy's `fall` and `rise`). */
export interface Thresholds {
  failsThreshold: number;
  passesThreshold: number;
}

/** Passive ejection: this many dial failures within the window mark a server down. */
export interface PassivePolicy {
  maxFailedAttempts: number;
  /** In ms. */
  failureWindow: number;
}

/**
 * Dial failures that say nothing about the server: l4p's own lack of descriptors or memory, or
 * a dial abandoned because the client left.
 */
const NOT_THE_SERVERS = new Set(["EMFILE", "ENFILE", "ENOBUFS", "ENOMEM", "EABORTED"]);

/** One server's state. */
export class ServerState implements Candidate {
  readonly id: string;
  /** Connections (or sessions) open to it now, kept by strategies that read it. */
  live = 0;
  up = true;
  /** Why it is in its state, for logs and the status API. */
  reason = "not checked yet";
  /** When it entered its state, in ms since the epoch. */
  since: number = Date.now();
  lastCheck: CheckResult | undefined;
  checksPassed = 0;
  checksFailed = 0;
  /** How often it went down or up. */
  changes = 0;
  /** Down by passive ejection (its window, or an active check, brings it back). */
  ejectedPassively = false;
  /** Told of every change: the service this server belongs to (the newest one, after reloads). */
  onChange: (server: ServerState, reason: string) => void = () => {};
  /** Counts a failed dial of it with its service's passive policy (set by that service). */
  passiveFailure: (code: string) => void = () => {};
  #passes = 0;
  #fails = 0;
  /** When recent dial failures happened (at most `maxFailedAttempts` kept). */
  #failures: number[] = [];

  constructor(
    readonly protocol: "tcp" | "udp",
    readonly service: string,
    readonly address: NetAddr,
    /** `host:port`, as in logs and metrics. */
    readonly label: string,
    public weight: number,
    /** Dialled over TLS. */
    readonly tls = false,
    /** What it is kept under across reloads: the same in every process of a group. */
    readonly key: string = label,
  ) {
    this.id = label;
  }

  /** Puts the server up or down, saying why; nothing happens if it is so already. */
  setUp(up: boolean, reason: string): void {
    if (this.up === up) return;
    this.up = up;
    this.reason = reason;
    this.since = Date.now();
    this.changes++;
    this.#passes = 0;
    this.#fails = 0;
    this.ejectedPassively = false;
    if (up) this.#failures = [];
    this.onChange(this, reason);
  }

  /** Records an active check; enough failures (or passes) in a row flip the state. */
  checked(result: CheckResult, thresholds: Thresholds): void {
    this.lastCheck = result;
    if (result.ok) {
      this.checksPassed++;
      this.#fails = 0;
      this.#passes++;
      if (this.up) this.reason = "health check passed";
      else if (this.#passes >= thresholds.passesThreshold) {
        this.setUp(true, `${this.#passes} health checks passed`);
      }
    } else {
      this.checksFailed++;
      this.#passes = 0;
      this.#fails++;
      if (this.up && this.#fails >= thresholds.failsThreshold) {
        this.setUp(false, `${this.#fails} health checks failed: ${result.detail}`);
      }
    }
  }

  /**
   * Records a failed dial at `at` (ms); true when it put the server down. Failures that are
   * l4p's own (out of descriptors) or a client's (it left) do not count.
   */
  dialFailed(at: number, code: string, policy: PassivePolicy): boolean {
    if (!this.up || NOT_THE_SERVERS.has(code)) return false;
    const recent = this.#failures.filter((t) => at - t < policy.failureWindow);
    recent.push(at);
    if (recent.length > policy.maxFailedAttempts) recent.shift();
    this.#failures = recent;
    if (recent.length < policy.maxFailedAttempts) return false;
    this.setUp(false, `${recent.length} dial failures within ${policy.failureWindow} ms: ${code}`);
    this.ejectedPassively = true;
    return true;
  }
}
