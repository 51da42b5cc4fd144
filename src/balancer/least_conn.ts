/** `leastConn`: the server with the fewest open connections for its weight. */
import { type Candidate, load, type Strategy } from "./candidate.ts";

/**
 * Picks the candidate with the lowest load (open connections divided by weight); ties go to the
 * higher weight, then round robin, so that servers equally idle share sequential connections
 * instead of the first taking them all.
 */
export class LeastConn<T extends Candidate> implements Strategy<T> {
  readonly usesLive = true;
  readonly usesKey = false;
  #start = 0;

  constructor(readonly items: readonly T[]) {}

  pick(skip: ((c: T) => boolean) | undefined): T | undefined {
    const n = this.items.length;
    let best: T | undefined;
    let bestIndex = 0;
    for (let k = 0; k < n; k++) {
      const i = (this.#start + k) % n;
      const c = this.items[i];
      if (c.weight <= 0 || (skip && skip(c))) continue;
      if (
        !best || load(c) < load(best) || (load(c) === load(best) && c.weight > best.weight)
      ) {
        best = c;
        bestIndex = i;
      }
    }
    if (best) this.#start = (bestIndex + 1) % n;
    return best;
  }
}
