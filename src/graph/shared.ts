/**
 * State a group of workers (`--workers N`) holds as one: limits' places, servers' health. The
 * first process keeps it; the others ask it (src/server/cluster.ts). A process on its own has
 * none of this: its limits and health are its own, checked without a promise in sight.
 */
import type { ServerState } from "../health/server_state.ts";

/** Where an `inFlightConn` middleware's places are taken: here, or in the first process. */
export interface InFlightPlaces {
  /** Takes a place for `ip` if fewer than `amount` are taken; false when full. */
  take(ip: string, amount: number): boolean | Promise<boolean>;
  /** Gives back a place taken for `ip`. */
  give(ip: string): void;
}

/** Where a `connRateLimit` middleware's tokens are taken: here, or in the first process. */
export interface RatePlaces {
  /** Takes a token for `ip` at `now` (ms); false when its bucket is empty. */
  take(ip: string, now: number): boolean | Promise<boolean>;
}

/** Places of an entrypoint's `maxConnections` held by other processes of the group. */
export interface EntryPointSlots {
  /**
   * Takes a place on `entryPoint`, which this process holds `here` of, when fewer than `max`
   * are held in all; false when full. Given back by {@link give} (a worker's) or by the
   * connection's close (the first process's own, which its tracker counts).
   */
  take(entryPoint: string, max: number, here: number): boolean | Promise<boolean>;
  give(entryPoint: string): void;
}

/** What a graph built in a group of workers shares with the others. */
export interface SharedState {
  /** A worker's: the places of the `inFlightConn` middleware kept under `key`. */
  inFlight?(key: string): InFlightPlaces;
  /** A worker's: the buckets of the `connRateLimit` middleware kept under `key`. */
  rate?(key: string, average: number, period: number, burst: number): RatePlaces;
  /** Told of every change of a server's state (the first process tells the workers). */
  serverChanged?(server: ServerState): void;
  /** Counts a dial failure where the group's passive checks are (a worker's go to the first). */
  dialFailed?(server: ServerState, code: string): void;
}
