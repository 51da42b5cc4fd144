import { test } from "node:test";
import assert from "node:assert/strict";
import { LiveRecords } from "../src/metrics/tracker.ts";

type Rec = { id: number; liveSlot: number };
const rec = (id: number): Rec => ({ id, liveSlot: -1 });
const ids = (live: LiveRecords<Rec>) => [...live].map((r) => r.id).sort((a, b) => a - b);

test("LiveRecords: adds and removes in any order, each record once", () => {
  const live = new LiveRecords<Rec>();
  const rs = [1, 2, 3, 4, 5].map(rec);
  for (const r of rs) live.add(r);
  assert.equal(live.size, 5);
  assert.equal(live.delete(rs[1]), true);
  assert.equal(live.delete(rs[1]), false, "a second delete finds nothing");
  assert.equal(live.delete(rs[4]), true, "the last one");
  assert.equal(live.delete(rs[0]), true, "the first one");
  assert.deepEqual(ids(live), [3, 4]);
  assert.equal(rs[1].liveSlot, -1);
  live.add(rs[1]);
  assert.deepEqual(ids(live), [2, 3, 4]);
});

test("LiveRecords: does not remove a record it does not hold", () => {
  const a = new LiveRecords<Rec>();
  const b = new LiveRecords<Rec>();
  const x = rec(1);
  const y = rec(2);
  a.add(x);
  b.add(y);
  // Both sit in slot 0 of their own list.
  assert.equal(a.delete(y), false);
  assert.equal(a.size, 1);
  assert.equal(b.size, 1);
});

test("LiveRecords: iterates a copy, so records may close while it runs (a drain's forced close)", () => {
  const live = new LiveRecords<Rec>();
  for (let i = 1; i <= 4; i++) live.add(rec(i));
  const seen: number[] = [];
  for (const r of live) {
    seen.push(r.id);
    live.delete(r);
  }
  assert.deepEqual(seen.sort(), [1, 2, 3, 4]);
  assert.equal(live.size, 0);
});

test("LiveRecords: keeps exactly the records added and not removed, over a long churn", () => {
  const live = new LiveRecords<Rec>();
  const open: Rec[] = [];
  let next = 0;
  // A window of open connections that moves on, as under a steady load, with some closing
  // out of order.
  for (let i = 0; i < 5_000; i++) {
    const r = rec(next++);
    live.add(r);
    open.push(r);
    if (open.length > 40) {
      const at = (i * 7919) % open.length;
      assert.equal(live.delete(open[at]), true);
      open.splice(at, 1);
    }
  }
  assert.equal(live.size, open.length);
  assert.deepEqual(ids(live), open.map((r) => r.id).sort((a, b) => a - b));
});
