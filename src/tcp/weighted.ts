/** A `weighted` service: a balancer whose children are services, as in traefik. */
import { SmoothWeightedRoundRobin, type Weighted } from "../balancer/wrr.ts";
import type { TcpContext, TcpHandler } from "./handler.ts";

/** Hands each connection to one child service, in proportion to the weights (smooth WRR). */
export class TcpWeighted implements TcpHandler {
  readonly #wrr: SmoothWeightedRoundRobin<TcpHandler>;

  constructor(
    readonly name: string,
    children: readonly Weighted<TcpHandler>[],
    random: (() => number) | null = Math.random,
  ) {
    this.#wrr = new SmoothWeightedRoundRobin(children, random);
  }

  serve(ctx: TcpContext): void {
    const child = this.#wrr.next();
    if (!child) {
      ctx.env.logger.warn("weighted service has no child with a weight", { service: this.name });
      ctx.end("no service");
      return;
    }
    child.serve(ctx);
  }
}
