import assert from "node:assert/strict";
import { test } from "node:test";
import { DeadlineQueue } from "../src/tcp/deadlines.ts";

/**
 * Runs `body` with a referenced timer: the queue's own timer is unreferenced (a deadline alone
 * keeps no process alive; in l4p its connection does), so a test waiting on one needs its own.
 */
async function alive<T>(body: () => Promise<T>): Promise<T> {
  const keep = setInterval(() => {}, 1000);
  try {
    return await body();
  } finally {
    clearInterval(keep);
  }
}

test("deadlines fire in the order they were set; cancelled ones never fire", async () => {
  const queue = new DeadlineQueue(20);
  const fired: string[] = [];
  queue.add(() => fired.push("a"));
  const b = queue.add(() => fired.push("b"));
  await alive(() =>
    new Promise<void>((done) => {
      queue.add(() => {
        fired.push("c");
        done();
      });
      b.cancel();
    })
  );
  assert.deepEqual(fired, ["a", "c"]);
  assert.equal(queue.size, 0);
});

test("a deadline set while others fire (a re-armed idle check) fires a delay later", async () => {
  const queue = new DeadlineQueue(10);
  const fired: number[] = [];
  await alive(() =>
    new Promise<void>((done) => {
      queue.add(() => {
        fired.push(1);
        queue.add(() => {
          fired.push(3);
          done();
        });
      });
      queue.add(() => fired.push(2));
    })
  );
  assert.deepEqual(fired, [1, 2, 3]);
});

test("cancelled deadlines do not pile up: what ends in order leaves nothing behind", () => {
  const queue = new DeadlineQueue(60_000);
  for (let i = 0; i < 10_000; i++) queue.add(() => assert.fail("cancelled")).cancel();
  assert.equal(queue.size, 0);
  // One that stays pending holds back the ones behind it until it ends, then all go at once.
  const first = queue.add(() => assert.fail("cancelled"));
  const rest = Array.from({ length: 3000 }, () => queue.add(() => assert.fail("cancelled")));
  for (const d of rest) d.cancel();
  assert.equal(queue.size, 3001);
  first.cancel();
  assert.equal(queue.size, 0);
});
