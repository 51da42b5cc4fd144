import assert from "node:assert/strict";
import { test } from "node:test";
import { SessionTable } from "../src/udp/session_table.ts";

test("session table: lookups find sessions and refresh their place", () => {
  const t = new SessionTable<string>(3);
  t.add("a", "A", 0);
  t.add("b", "B", 0);
  t.add("c", "C", 0);
  assert.equal(t.get("a", 1), "A"); // a is now the most recent
  assert.equal(t.get("zz", 1), undefined);
  assert.deepEqual([...t.values()], ["B", "C", "A"]);
});

test("session table: when full, the least recently used session is evicted", () => {
  const t = new SessionTable<string>(2);
  assert.equal(t.add("a", "A", 0), undefined);
  assert.equal(t.add("b", "B", 1), undefined);
  t.get("a", 2);
  assert.equal(t.add("c", "C", 3), "B");
  assert.equal(t.size, 2);
  assert.deepEqual([...t.values()], ["A", "C"]);
});

test("session table: expiry removes exactly the sessions idle since before the tick", () => {
  const t = new SessionTable<string>(10);
  t.add("a", "A", 1);
  t.add("b", "B", 2);
  t.add("c", "C", 3);
  t.touch("a", 5);
  assert.deepEqual(t.expire(3), ["B"]);
  assert.deepEqual(t.expire(3), []);
  assert.deepEqual(t.expire(6), ["C", "A"]);
  assert.equal(t.size, 0);
});

test("session table: the bound holds under a flood of new keys", () => {
  const t = new SessionTable<number>(100);
  let evicted = 0;
  for (let i = 0; i < 10_000; i++) if (t.add(`k${i}`, i, i) !== undefined) evicted++;
  assert.equal(t.size, 100);
  assert.equal(evicted, 9_900);
  assert.deepEqual([...t.values()].slice(0, 2), [9_900, 9_901]);
});
