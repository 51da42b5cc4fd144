/** A `weighted` service: a balancer whose children are services, as in traefik. */
import { SmoothWeightedRoundRobin, type Weighted } from "../balancer/wrr.ts";
import { ChildrenHealth } from "../health/service_health.ts";
import type { TcpContext } from "./handler.ts";
import type { TcpService } from "./load_balancer.ts";

/**
 * Hands each connection to one child service, in proportion to the weights (smooth WRR),
 * skipping children whose servers are all down while another child is up (traefik's status
 * propagation). It is down itself when every child is, and tells its own parents so.
 */
export class TcpWeighted implements TcpService {
  readonly #wrr: SmoothWeightedRoundRobin<TcpService>;
  readonly health: ChildrenHealth;

  constructor(
    readonly name: string,
    children: readonly Weighted<TcpService>[],
    random: (() => number) | null = Math.random,
  ) {
    this.#wrr = new SmoothWeightedRoundRobin(children, random);
    this.health = new ChildrenHealth(children.map((c) => c.item.health));
  }

  serve(ctx: TcpContext): void {
    const up = this.health.up;
    const child = this.#wrr.next(up ? (c) => !c.health.up : undefined);
    if (!child) {
      ctx.env.logger.warn("weighted service has no child with a weight", { service: this.name });
      ctx.end("no service");
      return;
    }
    child.serve(ctx);
  }
}
