/**
 * What strategies pick from and how they are asked: a leaf the strategies and their dispatcher
 * (strategy.ts) both import, so that no module imports its own importer.
 */

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

/** The strategies a UDP service takes: a session is placed once, so no load-based ones. */
export const UDP_STRATEGIES = ["wrr", "hrw"] as const;
export type UdpStrategyName = typeof UDP_STRATEGIES[number];

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

/** A candidate's load: open connections per unit of weight. */
export function load(c: Candidate): number {
  return c.live / c.weight;
}
