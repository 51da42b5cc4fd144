import assert from "node:assert/strict";
import { test } from "node:test";
import { SmoothWeightedRoundRobin } from "../src/balancer/wrr.ts";

test("smooth WRR interleaves instead of bursting (nginx's 5,1,1 example)", () => {
  const wrr = new SmoothWeightedRoundRobin(
    [{ item: "a", weight: 5 }, { item: "b", weight: 1 }, { item: "c", weight: 1 }],
    null,
  );
  const seq = Array.from({ length: 7 }, () => wrr.next());
  assert.deepEqual(seq, ["a", "a", "b", "a", "c", "a", "a"]);
});

test("smooth WRR gives each item exactly its weight over every full cycle", () => {
  const wrr = new SmoothWeightedRoundRobin(
    [{ item: "x", weight: 3 }, { item: "y", weight: 1 }, { item: "z", weight: 2 }],
  );
  for (let cycle = 0; cycle < 50; cycle++) {
    const counts: Record<string, number> = { x: 0, y: 0, z: 0 };
    for (let i = 0; i < 6; i++) counts[wrr.next()!]++;
    assert.deepEqual(counts, { x: 3, y: 1, z: 2 });
  }
});

test("smooth WRR skips what it is told to skip and never picks weight 0", () => {
  const wrr = new SmoothWeightedRoundRobin(
    [{ item: "a", weight: 1 }, { item: "b", weight: 1 }, { item: "off", weight: 0 }],
    null,
  );
  assert.equal(wrr.next((s) => s === "a"), "b");
  assert.equal(wrr.next((s) => s !== "off"), undefined);
  const seen = new Set(Array.from({ length: 10 }, () => wrr.next()));
  assert.deepEqual([...seen].sort(), ["a", "b"]);
});

test("the shuffle changes the order but not the shares", () => {
  let seed = 42;
  const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
  const wrr = new SmoothWeightedRoundRobin(
    ["s1", "s2", "s3", "s4"].map((item) => ({ item, weight: 1 })),
    random,
  );
  assert.deepEqual([...wrr.items].sort(), ["s1", "s2", "s3", "s4"]);
  const firstCycle = Array.from({ length: 4 }, () => wrr.next());
  assert.deepEqual([...firstCycle].sort(), ["s1", "s2", "s3", "s4"]);
});
