/** `p2c`, power of two choices (traefik's name): the less loaded of two drawn at random. */
import { type Candidate, load, type Strategy } from "./candidate.ts";

/**
 * Draws two different candidates at random, each in proportion to its weight, and picks the one
 * with the lower load (open connections per weight); a tie goes to the first drawn. Nearly as
 * even as `leastConn`, without every balancer herding onto the same idle server.
 */
export class PowerOfTwoChoices<T extends Candidate> implements Strategy<T> {
  readonly usesLive = true;
  readonly usesKey = false;

  constructor(readonly items: readonly T[], readonly random: () => number) {}

  pick(skip: ((c: T) => boolean) | undefined): T | undefined {
    const eligible = this.items.filter((c) => c.weight > 0 && !(skip && skip(c)));
    if (eligible.length <= 1) return eligible[0];
    const a = this.#draw(eligible, undefined);
    const b = this.#draw(eligible, a);
    return load(b) < load(a) ? b : a;
  }

  /** One candidate in proportion to weight, other than `not`. */
  #draw(from: T[], not: T | undefined): T {
    let total = 0;
    for (const c of from) if (c !== not) total += c.weight;
    let r = this.random() * total;
    for (const c of from) {
      if (c === not) continue;
      r -= c.weight;
      if (r < 0) return c;
    }
    return from.findLast((c) => c !== not)!;
  }
}
