/**
 * The bookkeeping of UDP sessions, without sockets or clocks: a bounded map from client address
 * to session, kept in least-recently-used order at the granularity of a tick. Time is given as
 * whole ticks by the caller, so a packet costs a field read and, at most once a tick, a move to
 * the back of the order.
 */

interface Entry<S> {
  value: S;
  tick: number;
}

/** A bounded LRU table of sessions with tick-based idle expiry. */
export class SessionTable<S> {
  readonly #map = new Map<string, Entry<S>>();
  #maxSessions: number;

  constructor(maxSessions: number) {
    if (maxSessions < 1) throw new RangeError("maxSessions must be at least 1");
    this.#maxSessions = maxSessions;
  }

  get maxSessions(): number {
    return this.#maxSessions;
  }

  /** Changes the bound; removes and returns the least recently used sessions over it. */
  resize(maxSessions: number): S[] {
    if (maxSessions < 1) throw new RangeError("maxSessions must be at least 1");
    this.#maxSessions = maxSessions;
    const over: S[] = [];
    for (const [key, entry] of this.#map) {
      if (this.#map.size <= maxSessions) break;
      this.#map.delete(key);
      over.push(entry.value);
    }
    return over;
  }

  get size(): number {
    return this.#map.size;
  }

  /** The session for `key`, marked as used at `tick`. */
  get(key: string, tick: number): S | undefined {
    const entry = this.#map.get(key);
    if (!entry) return undefined;
    if (entry.tick !== tick) {
      // Move to the back: the order stays least recently used first.
      this.#map.delete(key);
      entry.tick = tick;
      this.#map.set(key, entry);
    }
    return entry.value;
  }

  /** Marks `key` as used at `tick` (traffic from the backend side). */
  touch(key: string, tick: number): void {
    this.get(key, tick);
  }

  /**
   * Adds a session. When the table is full, the least recently used session is removed to make
   * room and returned, for the caller to close.
   */
  add(key: string, value: S, tick: number): S | undefined {
    let evicted: S | undefined;
    if (this.#map.size >= this.#maxSessions && !this.#map.has(key)) {
      const [oldKey, oldest] = this.#map.entries().next().value!;
      this.#map.delete(oldKey);
      evicted = oldest.value;
    }
    this.#map.set(key, { value, tick });
    return evicted;
  }

  /** Removes `key`, if present. */
  delete(key: string): void {
    this.#map.delete(key);
  }

  /** Removes and returns every session last used before `tick`. */
  expire(beforeTick: number): S[] {
    const expired: S[] = [];
    for (const [key, entry] of this.#map) {
      if (entry.tick >= beforeTick) break; // the rest were used later
      this.#map.delete(key);
      expired.push(entry.value);
    }
    return expired;
  }

  /** Every session, least recently used first. */
  *values(): IterableIterator<S> {
    for (const entry of this.#map.values()) yield entry.value;
  }
}
