/**
 * Balancing strategies: pure modules that pick one of a service's servers (or a weighted
 * service's children). Each honours weights (a weight of 0 is never picked) and a `skip`
 * predicate, through which the caller leaves out servers that are down or already tried.
 */
import { SmoothWeightedRoundRobin } from "./wrr.ts";
import { HighestRandomWeight } from "./hrw.ts";
import { LeastConn } from "./least_conn.ts";
import { PowerOfTwoChoices } from "./p2c.ts";
import type { Candidate, Strategy, StrategyName } from "./candidate.ts";

export type { Candidate, Strategy, StrategyName } from "./candidate.ts";

/** The strategy `name` over `items`; `random` drives the shuffle of `wrr` and the draws of `p2c`. */
export function strategyFor<T extends Candidate>(
  name: StrategyName,
  items: readonly T[],
  random: (() => number) | null,
): Strategy<T> {
  switch (name) {
    case "wrr": {
      const wrr = new SmoothWeightedRoundRobin(
        items.map((item) => ({ item, weight: item.weight })),
        random,
      );
      return { pick: (skip) => wrr.next(skip), usesLive: false, usesKey: false };
    }
    case "p2c":
      return new PowerOfTwoChoices(items, random ?? Math.random);
    case "leastConn":
      return new LeastConn(items);
    case "hrw":
      return new HighestRandomWeight(items);
  }
}
