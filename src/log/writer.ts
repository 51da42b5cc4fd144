/**
 * A bounded, asynchronous line writer: what the logger and the access log write through. A slow
 * or blocked output (a stderr pipe nobody reads, a full disk) costs dropped lines, counted and
 * reported once the output takes lines again; it never blocks the event loop and never holds
 * more than its bound.
 */
import type { LogOutput } from "../runtime/types.ts";

/** Lines held while the output is busy, by default: 1 MiB (measured in UTF-16 units). */
export const DEFAULT_LOG_BUFFER = 1 << 20;

const encoder = new TextEncoder();

/** Queues whole lines and writes them in batches, one write at a time. */
export class BoundedWriter {
  /** Lines dropped because the queue was full or the output failed, since the start. */
  dropped = 0;
  #queue: string[] = [];
  #queued = 0;
  #writing = false;
  /** Dropped since the last report. */
  #unreported = 0;
  #idle: (() => void)[] = [];

  constructor(
    readonly output: LogOutput,
    /** How much may wait for the output. */
    readonly maxQueued: number = DEFAULT_LOG_BUFFER,
    /** Told, once the output has caught up, how many lines were lost meanwhile. */
    readonly onDropped?: (count: number) => void,
  ) {}

  /** Queues `line` (newline included); false when it was dropped instead. */
  write(line: string): boolean {
    if (this.#queued + line.length > this.maxQueued) {
      this.dropped++;
      this.#unreported++;
      return false;
    }
    this.#queue.push(line);
    this.#queued += line.length;
    if (!this.#writing) this.#pump();
    return true;
  }

  /** Resolves once everything queued so far has been written (or dropped). */
  flush(): Promise<void> {
    if (!this.#writing) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  async #pump(): Promise<void> {
    this.#writing = true;
    while (this.#queue.length > 0) {
      const lines = this.#queue;
      this.#queue = [];
      this.#queued = 0;
      try {
        await this.output.write(encoder.encode(lines.join("")));
      } catch {
        // The output is gone (stderr closed, the disk failed): these lines are lost, counted.
        this.dropped += lines.length;
        this.#unreported += lines.length;
        continue;
      }
      if (this.#unreported > 0 && this.#queue.length === 0) {
        const count = this.#unreported;
        this.#unreported = 0;
        this.onDropped?.(count);
      }
    }
    this.#writing = false;
    for (const resolve of this.#idle.splice(0)) resolve();
  }
}
