/**
 * Balancing strategies: pure modules that pick one of a service's servers (or a weighted
 * service's children). Each honours weights (a weight of 0 is never picked) and a `skip`
 * predicate, through which the caller leaves out servers that are down or already tried.
 */
import { SmoothWeightedRoundRobin } from "./wrr.ts";
import { HighestRandomWeight } from "./hrw.ts";
import { LeastConn } from "./least_conn.ts";
import { PowerOfTwoChoices } from "./p2c.ts";

/** What a strategy picks from. */
export interface Candidate {
  /** Stable and unique within its service (the server's address): what `hrw` hashes. */
  readonly id: string;
  readonly weight: number;
  /** Connections open to it now (`leastConn` and `p2c` read it). */
  readonly live: number;
}

/** The strategies, by their configuration names (traefik's where it has them). */
export const STRATEGIES = ["wrr", "p2c", "leastConn", "hrw"] as const;
export type StrategyName = typeof STRATEGIES[number];

/** Picks candidates. */
export interface Strategy<T extends Candidate> {
  /**
   * The next candidate that `skip` does not leave out, or undefined when none is left. `key`
   * is what `hrw` keeps sticky (the client's address); the others ignore it.
   */
  pick(skip: ((c: T) => boolean) | undefined, key: string): T | undefined;
  /** Whether the strategy reads `live` (so the caller must keep it up to date). */
  readonly usesLive: boolean;
  /** Whether the strategy reads `key`. */
  readonly usesKey: boolean;
}

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

/** A candidate's load: open connections per unit of weight. */
export function load(c: Candidate): number {
  return c.live / c.weight;
}
