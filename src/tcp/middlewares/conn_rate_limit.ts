/**
 * `connRateLimit`: new connections per client IP, by token bucket (traefik's `rateLimit` names:
 * `average` per `period`, bursts of up to `burst`).
 */
import type { RatePlaces } from "../../graph/shared.ts";
import { canonicalIp } from "../../net/ip.ts";
import type { TcpContext, TcpHandler } from "../handler.ts";
import { type MiddlewareInfo, refuse } from "./refuse.ts";

/** Client IPs tracked at once; beyond it the least recently seen is forgotten. */
export const MAX_RATE_SOURCES = 65_536;

interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date, in ms. */
  at: number;
}

/**
 * One token bucket per client IP: it holds up to `burst` tokens, refills at `average` per
 * `period`, and a connection takes one. The table is bounded: an IP not seen for a while may be
 * forgotten, which only gives it a full bucket again.
 */
export class RateBuckets implements RatePlaces {
  readonly #buckets = new Map<string, Bucket>();

  constructor(
    readonly average: number,
    readonly period: number,
    readonly burst: number,
    readonly maxSources: number = MAX_RATE_SOURCES,
  ) {}

  /** Takes a token for `ip` at time `now` (ms); false when its bucket is empty. */
  take(ip: string, now: number): boolean {
    const perMs = this.average / this.period;
    let b = this.#buckets.get(ip);
    if (b) {
      this.#buckets.delete(ip); // re-inserted below: the map's order is last seen
      b.tokens = Math.min(this.burst, b.tokens + (now - b.at) * perMs);
      b.at = now;
    } else {
      if (this.#buckets.size >= this.maxSources) {
        this.#buckets.delete(this.#buckets.keys().next().value!);
      }
      b = { tokens: this.burst, at: now };
    }
    this.#buckets.set(ip, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Client IPs tracked now. */
  get size(): number {
    return this.#buckets.size;
  }
}

/** Refuses a client's new connection when it comes faster than its bucket allows. */
export class ConnRateLimit implements TcpHandler, MiddlewareInfo {
  readonly kind = "connRateLimit";

  constructor(
    readonly router: string,
    readonly name: string,
    /** In a group of workers, the first process's. */
    readonly buckets: RatePlaces,
    readonly next: TcpHandler,
    readonly now: () => number = Date.now,
  ) {}

  serve(ctx: TcpContext): void {
    const taken = this.buckets.take(canonicalIp(ctx.client.hostname), this.now());
    if (taken === true || taken === false) return this.#taken(ctx, taken);
    taken.then((ok) => this.#taken(ctx, ok));
  }

  #taken(ctx: TcpContext, ok: boolean): void {
    if (!ok) return refuse(ctx, this, "connection rate above the limit for this IP");
    if (!ctx.ended) this.next.serve(ctx);
  }
}
