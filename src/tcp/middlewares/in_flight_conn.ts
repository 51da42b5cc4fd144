/** traefik's `inFlightConn` TCP middleware: at most `amount` open connections per client IP. */
import type { InFlightPlaces } from "../../graph/shared.ts";
import { canonicalIp } from "../../net/ip.ts";
import type { TcpContext, TcpHandler } from "../handler.ts";
import { type MiddlewareInfo, refuse } from "./refuse.ts";

/**
 * Open connections per client IP. An IP leaves the table when its last connection closes, so
 * the table never holds more entries than there are open connections.
 */
export class InFlightCounts implements InFlightPlaces {
  readonly #open = new Map<string, number>();

  /** Takes a place for `ip` if fewer than `amount` are taken; false when full. */
  take(ip: string, amount: number): boolean {
    const n = this.#open.get(ip) ?? 0;
    if (n >= amount) return false;
    this.#open.set(ip, n + 1);
    return true;
  }

  /** Gives back a place taken for `ip`. */
  give(ip: string): void {
    const n = this.#open.get(ip) ?? 0;
    if (n <= 1) this.#open.delete(ip);
    else this.#open.set(ip, n - 1);
  }

  /** Client IPs with open connections. */
  get size(): number {
    return this.#open.size;
  }
}

/** Refuses a client's connection while it already has `amount` open through this middleware. */
export class InFlightConn implements TcpHandler, MiddlewareInfo {
  readonly kind = "inFlightConn";

  constructor(
    readonly router: string,
    readonly name: string,
    readonly amount: number,
    /**
     * Kept across reloads while the middleware is unchanged, so open connections still count;
     * in a group of workers, the first process's.
     */
    readonly counts: InFlightPlaces,
    readonly next: TcpHandler,
  ) {}

  serve(ctx: TcpContext): void {
    const ip = canonicalIp(ctx.client.hostname);
    const taken = this.counts.take(ip, this.amount);
    if (taken === true || taken === false) return this.#taken(ctx, ip, taken);
    taken.then((ok) => this.#taken(ctx, ip, ok));
  }

  #taken(ctx: TcpContext, ip: string, ok: boolean): void {
    if (!ok) return refuse(ctx, this, `${this.amount} connections already open from this IP`);
    const counts = this.counts;
    // At once if the client left while the first process was asked.
    ctx.onEnd({ contextEnded: () => counts.give(ip) });
    if (!ctx.ended) this.next.serve(ctx);
  }
}
