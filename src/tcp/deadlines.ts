/**
 * Deadlines shared by every connection: one runtime timer per delay instead of one per dial and
 * per half-closed connection. All deadlines of a queue have the same delay, so each new one is
 * due after every earlier one: a list in arrival order is already sorted, adding is a push and
 * cancelling is a flag. Cancelled deadlines are dropped as they reach the front; dials and
 * half-closes end in about the order they began, so the list holds little more than the ones
 * still pending, and never more than a delay's worth of arrivals.
 */

import { setTimeout } from "node:timers";

/** A pending deadline. */
export interface Deadline {
  /** It will not fire; does nothing once it has. */
  cancel(): void;
}

class Entry implements Deadline {
  constructor(
    readonly at: number,
    public fire: (() => void) | undefined,
    readonly queue: DeadlineQueue,
  ) {}

  cancel(): void {
    if (this.fire === undefined) return;
    this.fire = undefined;
    this.queue.trim();
  }
}

/** Deadlines of one delay, in the order they were set. */
export class DeadlineQueue {
  #entries: Entry[] = [];
  #head = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running = false;

  constructor(readonly delay: number) {}

  /** Deadlines set and not yet fired, cancelled ones not yet dropped included. */
  get size(): number {
    return this.#entries.length - this.#head;
  }

  /** Calls `fire` once `delay` ms have passed, unless cancelled first. */
  add(fire: () => void): Deadline {
    const entry = new Entry(Date.now() + this.delay, fire, this);
    this.#entries.push(entry);
    if (this.#timer === undefined && !this.#running) this.#arm(this.delay);
    return entry;
  }

  /** Drops cancelled deadlines from the front. */
  trim(): void {
    const entries = this.#entries;
    let head = this.#head;
    while (head < entries.length && entries[head].fire === undefined) head++;
    this.#head = head;
    if (head === entries.length) {
      this.#entries = [];
      this.#head = 0;
    } else if (head > 1024 && head * 2 > entries.length) {
      this.#entries = entries.slice(head);
      this.#head = 0;
    }
  }

  #arm(ms: number): void {
    // Unreferenced: a deadline alone must not keep the process alive (its connection does while
    // it matters), and the timer may outlive every deadline it was set for.
    this.#timer = setTimeout(this.#run, Math.max(0, ms));
    this.#timer.unref();
  }

  #run = (): void => {
    this.#timer = undefined;
    this.#running = true;
    const now = Date.now();
    try {
      for (;;) {
        this.trim();
        const entry = this.#entries[this.#head];
        if (!entry || entry.at > now) break;
        this.#head++;
        const fire = entry.fire!;
        entry.fire = undefined;
        fire();
      }
    } finally {
      this.#running = false;
      const next = this.#entries[this.#head];
      if (next && this.#timer === undefined) this.#arm(next.at - now);
    }
  };
}

const queues = new Map<number, DeadlineQueue>();

/** The shared queue of deadlines `delay` ms away (one per distinct delay the configuration names). */
export function deadlines(delay: number): DeadlineQueue {
  let queue = queues.get(delay);
  if (!queue) queues.set(delay, queue = new DeadlineQueue(delay));
  return queue;
}
