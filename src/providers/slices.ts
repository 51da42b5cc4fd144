/**
 * Long work done a slice at a time, the event loop free between slices: with 100 000 routers a
 * store holds some 300 000 keys, and work over all of them in one piece would make every
 * connection arriving meanwhile wait.
 */
import { setTimeout as timeout } from "node:timers";

/**
 * Lets the event loop serve what is waiting before going on: a couple of ms, so that a request
 * in flight through l4p (a read, a write to the backend, its answer back: several turns of the
 * loop) gets through, not just one turn's worth of it.
 */
export function breather(): Promise<void> {
  return new Promise((resolve) => timeout(resolve, 2));
}

/** Runs `steps` to its end, `pause` between steps; resolves to what it returns. */
export async function inSteps<T>(
  steps: Generator<void, T>,
  pause: () => Promise<void> = breather,
): Promise<T> {
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
    await pause();
  }
}

/**
 * `items` sorted as `Array.prototype.sort` sorts strings (by UTF-16 code units), in slices:
 * runs of `slice` sorted one by one, then merged, `pause` between each piece of work. 300 000
 * keys sorted at once hold Deno's event loop for about 300 ms, Bun's for about 100 ms.
 */
export async function sortInSlices(
  items: readonly string[],
  pause: () => Promise<void> = breather,
  slice = 16_384,
): Promise<string[]> {
  let runs: string[][] = [];
  for (let i = 0; i < items.length; i += slice) {
    if (i > 0) await pause();
    runs.push(items.slice(i, i + slice).sort());
  }
  while (runs.length > 1) {
    const merged: string[][] = [];
    for (let i = 0; i < runs.length; i += 2) {
      merged.push(
        i + 1 < runs.length ? await merge(runs[i], runs[i + 1], pause, slice * 4) : runs[i],
      );
    }
    runs = merged;
  }
  return runs[0] ?? [];
}

/** Two sorted runs as one, pausing after every `every` items. */
async function merge(
  a: string[],
  b: string[],
  pause: () => Promise<void>,
  every: number,
): Promise<string[]> {
  const out = new Array<string>(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  let budget = every;
  while (i < a.length && j < b.length) {
    out[k++] = a[i] <= b[j] ? a[i++] : b[j++];
    if (--budget === 0) {
      budget = every;
      await pause();
    }
  }
  while (i < a.length) out[k++] = a[i++];
  while (j < b.length) out[k++] = b[j++];
  return out;
}
