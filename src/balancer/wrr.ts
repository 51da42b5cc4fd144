/** Smooth weighted round robin, nginx's algorithm, as traefik's balancers use it. */

/** One candidate with its weight. */
export interface Weighted<T> {
  item: T;
  weight: number;
}

interface Entry<T> extends Weighted<T> {
  current: number;
}

/**
 * Picks items in proportion to their weights without bursts: with weights 5,1,1 the order is
 * a a b a c a a, not a a a a a b c. Over every run of `sum(weights)` picks each item is chosen
 * exactly `weight` times. Items with weight 0 are never picked.
 *
 * @example
 * const wrr = new SmoothWeightedRoundRobin([{ item: "a", weight: 3 }, { item: "b", weight: 1 }]);
 * wrr.next(); // "a", "a", "b", "a", then again
 */
export class SmoothWeightedRoundRobin<T> {
  readonly #entries: Entry<T>[];

  /** `random` shuffles the order once, as traefik does, so that equal weights across many
   * instances do not all start on the same server; pass `null` to keep the given order. */
  constructor(items: readonly Weighted<T>[], random: (() => number) | null = Math.random) {
    this.#entries = items.map((w) => ({ item: w.item, weight: w.weight, current: 0 }));
    if (random) shuffle(this.#entries, random);
  }

  /** The items in their (shuffled) order. */
  get items(): T[] {
    return this.#entries.map((e) => e.item);
  }

  /**
   * The next item, or `undefined` when none is eligible. Items for which `skip` returns true
   * sit this pick out, as a dead server or one already tried for this connection does.
   */
  next(skip?: (item: T) => boolean): T | undefined {
    let total = 0;
    let best: Entry<T> | undefined;
    for (const e of this.#entries) {
      if (e.weight <= 0 || (skip && skip(e.item))) continue;
      e.current += e.weight;
      total += e.weight;
      if (!best || e.current > best.current) best = e;
    }
    if (!best) return undefined;
    best.current -= total;
    return best.item;
  }
}

function shuffle<T>(a: T[], random: () => number): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
}
