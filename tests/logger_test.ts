import assert from "node:assert/strict";
import { test } from "node:test";
import { Logger } from "../src/log/logger.ts";
import { BoundedWriter } from "../src/log/writer.ts";
import type { LogOutput } from "../src/runtime/types.ts";
import { waitFor } from "./_helpers.ts";

/** An output whose writes wait until the test lets them through, like a pipe nobody reads. */
function stuckOutput() {
  const written: string[] = [];
  let open: () => void = () => {};
  let gate = new Promise<void>((resolve) => open = resolve);
  const output: LogOutput = {
    async write(data) {
      await gate;
      written.push(new TextDecoder().decode(data));
    },
    close() {},
  };
  return {
    output,
    written: () => written.join(""),
    release() {
      open();
      gate = Promise.resolve();
    },
  };
}

test("log writer: a stuck output costs dropped lines, never more than the bound, reported after", async () => {
  const out = stuckOutput();
  const reports: number[] = [];
  const writer = new BoundedWriter(out.output, 100, (n) => reports.push(n));
  const line = "0123456789012345678\n"; // 20 characters
  const taken = Array.from({ length: 12 }, () => writer.write(line));
  // The first line went straight to the (stuck) write; five more fill the 100-character queue.
  assert.deepEqual(taken, [
    true,
    true,
    true,
    true,
    true,
    true,
    false,
    false,
    false,
    false,
    false,
    false,
  ]);
  assert.equal(writer.dropped, 6);
  out.release();
  await writer.flush();
  assert.equal(out.written(), line.repeat(6));
  assert.deepEqual(reports, [6]);
});

test("log writer: a failing output loses lines, counts them, and does not loop", async () => {
  const reports: number[] = [];
  const writer = new BoundedWriter(
    {
      write: () => Promise.reject(new Error("EPIPE")),
      close() {},
    },
    1000,
    (n) => reports.push(n),
  );
  writer.write("a\n");
  writer.write("b\n");
  await writer.flush();
  assert.equal(writer.dropped, 2);
  assert.deepEqual(reports, [], "nothing could be written, so no report either");
});

test("logger: a storm of one event is the first line, then one line a window with the count", async () => {
  const lines: string[] = [];
  const logger = new Logger({
    write: (l) => lines.push(l),
    now: () => new Date(0),
    repeatWindow: 50,
  });
  for (let i = 0; i < 100; i++) {
    logger.repeated("warn", "dial a", "dial failed", { server: "a", n: i });
  }
  logger.repeated("warn", "dial b", "dial failed", { server: "b" });
  assert.equal(lines.length, 2, "the first of each kind at once");
  await waitFor(() => lines.length === 3, 2000, "the summary");
  assert.equal(
    lines[2],
    "1970-01-01T00:00:00.000Z WARN  dial failed (repeated) server=a n=99 repeated=99\n",
  );
  // A quiet window forgets the event: the next one is logged at once again.
  await new Promise((r) => setTimeout(r, 150));
  logger.repeated("warn", "dial a", "dial failed", { server: "a" });
  assert.equal(lines.length, 4);
  assert.match(lines[3], /dial failed server=a\n$/);
});

test("logger: repeated events below the level cost nothing and say nothing", () => {
  const lines: string[] = [];
  const logger = new Logger({ level: "error", write: (l) => lines.push(l) });
  logger.repeated("warn", "k", "dial failed");
  assert.deepEqual(lines, []);
});
