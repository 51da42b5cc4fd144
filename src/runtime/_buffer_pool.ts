/** A bounded free list of equal-sized buffers, so bulk transfers reuse memory instead of
 * allocating per connection. */
export class BufferPool {
  #free: Uint8Array[] = [];

  constructor(readonly size: number, readonly maxFree: number) {}

  /** A buffer of `size` bytes, from the free list when it has one. */
  take(): Uint8Array {
    return this.#free.pop() ?? new Uint8Array(this.size);
  }

  /** Returns a buffer; beyond `maxFree` it is left to the garbage collector. */
  give(buf: Uint8Array): void {
    if (this.#free.length < this.maxFree) this.#free.push(buf);
  }
}
