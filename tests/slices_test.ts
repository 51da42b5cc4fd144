import assert from "node:assert/strict";
import { test } from "node:test";
import { sortInSlices } from "../src/providers/slices.ts";

test("sortInSlices sorts as Array.prototype.sort does, with pauses between slices", async () => {
  const alphabet = ["a", "b", "/", "0", "9", "é", "😀", "Z", ""];
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (const size of [0, 1, 2, 99, 100, 101, 1_000, 5_003]) {
    const items = Array.from({ length: size }, () => {
      let s = "l4p/tcp/routers/";
      for (let n = Math.floor(random() * 6); n > 0; n--) {
        s += alphabet[Math.floor(random() * alphabet.length)];
      }
      return s;
    });
    let pauses = 0;
    const sorted = await sortInSlices(items, () => {
      pauses++;
      return Promise.resolve();
    }, 100);
    assert.deepEqual(sorted, [...items].sort(), `${size} items`);
    // One pause between runs of 100, and at least one in each merge of more than 400 items.
    if (size > 100) assert.ok(pauses >= Math.ceil(size / 100) - 1, `${pauses} pauses`);
  }
});
