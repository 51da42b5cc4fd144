/**
 * `hrw`, highest random weight (rendezvous hashing): each key (a client's address) goes to the
 * server that scores highest for it. Sticky without a table, and consistent: removing one of N
 * servers moves only the keys that server had.
 */
import type { Candidate, Strategy } from "./candidate.ts";

/**
 * Weighted rendezvous hashing: the score of a server for a key is `-weight / ln(u)`, where `u`
 * is a hash of key and server in (0, 1). A server's share of keys is its share of the weight.
 */
export class HighestRandomWeight<T extends Candidate> implements Strategy<T> {
  readonly usesLive = false;
  readonly usesKey = true;

  constructor(readonly items: readonly T[]) {}

  pick(skip: ((c: T) => boolean) | undefined, key: string): T | undefined {
    let best: T | undefined;
    let bestScore = -Infinity;
    for (const c of this.items) {
      if (c.weight <= 0 || (skip && skip(c))) continue;
      const s = score(key, c);
      if (s > bestScore) [best, bestScore] = [c, s];
    }
    return best;
  }
}

/** The score of candidate `c` for `key`. */
export function score(key: string, c: Candidate): number {
  const u = (hash32(`${key}\u0000${c.id}`) + 0.5) / 4294967296;
  return -c.weight / Math.log(u);
}

/** FNV-1a over the string, then murmur3's finalizer, so that near keys spread apart. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
