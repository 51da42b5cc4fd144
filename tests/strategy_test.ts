import assert from "node:assert/strict";
import { test } from "node:test";
import { type Candidate, strategyFor } from "../src/balancer/strategy.ts";
import { ServerState } from "../src/health/server_state.ts";

/** Candidates named a, b, c… with these weights and open connections. */
function servers(weights: number[], live: number[] = weights.map(() => 0)) {
  return weights.map((weight, i) => ({
    id: String.fromCharCode(97 + i),
    weight,
    live: live[i],
  }));
}

/** A repeatable random source: the given values in turn. */
function sequence(values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length];
}

const ids = (picks: (Candidate | undefined)[]) => picks.map((c) => c?.id ?? "-").join("");

test("leastConn: fewest open connections for the weight; ties by weight, then in turn", () => {
  const s = servers([1, 1, 2], [2, 0, 1]);
  const lc = strategyFor("leastConn", s, null);
  // b has 0; c has 1 for weight 2 (0.5); a has 2.
  assert.equal(lc.pick(undefined, "")!.id, "b");
  s[1].live = 1; // b: 1, c: 0.5 → c
  assert.equal(lc.pick(undefined, "")!.id, "c");
  // All idle and equal: they take turns rather than the first taking everything.
  const idle = strategyFor("leastConn", servers([1, 1, 1]), null);
  assert.equal(ids(Array.from({ length: 6 }, () => idle.pick(undefined, ""))), "abcabc");
  // Equal load, different weights: the heavier wins the tie.
  const tie = strategyFor("leastConn", servers([1, 3]), null);
  assert.equal(tie.pick(undefined, "")!.id, "b");
  assert.equal(tie.pick((c) => c.id === "b", "")!.id, "a", "skip leaves b out");
  assert.equal(tie.pick(() => true, ""), undefined);
});

test("p2c: the less loaded of two weighted draws", () => {
  const s = servers([1, 1, 1, 1], [3, 0, 1, 2]);
  // Draws: 0.1 → a (of a,b,c,d); then 0.5 → of b,c,d the second, c. a has 3, c has 1: c.
  const p2c = strategyFor("p2c", s, sequence([0.1, 0.5]));
  assert.equal(p2c.pick(undefined, "")!.id, "c");
  // A server that holds connections loses to any idle one it is drawn with.
  const busy = servers([1, 1, 1], [5, 0, 0]);
  const p = strategyFor("p2c", busy, Math.random);
  for (let i = 0; i < 200; i++) assert.notEqual(p.pick(undefined, "")!.id, "a");
  // Weight 0 is never drawn; one candidate left is taken without a draw.
  const w0 = strategyFor("p2c", servers([0, 1]), Math.random);
  for (let i = 0; i < 20; i++) assert.equal(w0.pick(undefined, "")!.id, "b");
});

test("hrw: a key sticks to one server; removing a server moves only its keys", () => {
  const s = servers([1, 1, 1, 1, 1]);
  const hrw = strategyFor("hrw", s, null);
  const keys = Array.from({ length: 2000 }, (_, i) => `10.0.${i >> 8}.${i & 255}`);
  const before = new Map(keys.map((k) => [k, hrw.pick(undefined, k)!.id]));
  for (const k of keys.slice(0, 50)) assert.equal(hrw.pick(undefined, k)!.id, before.get(k));
  const counts: Record<string, number> = {};
  for (const v of before.values()) counts[v] = (counts[v] ?? 0) + 1;
  for (const id of "abcde") assert.ok(counts[id] > 300 && counts[id] < 500, JSON.stringify(counts));
  // c goes away (down, or removed): only c's keys move, and they spread over the others.
  let moved = 0;
  for (const k of keys) {
    const after = hrw.pick((x) => x.id === "c", k)!.id;
    if (before.get(k) === "c") moved++;
    else assert.equal(after, before.get(k), `key ${k} moved though its server stayed`);
  }
  assert.equal(moved, counts.c);
});

test("hrw honours weights: a server of weight 3 gets about three times the keys", () => {
  const hrw = strategyFor("hrw", servers([3, 1]), null);
  let a = 0;
  for (let i = 0; i < 4000; i++) if (hrw.pick(undefined, `k${i}`)!.id === "a") a++;
  assert.ok(a > 2800 && a < 3200, `${a} of 4000`);
});

test("wrr through strategyFor is smooth weighted round robin", () => {
  const wrr = strategyFor("wrr", servers([5, 1, 1]), null);
  assert.equal(ids(Array.from({ length: 7 }, () => wrr.pick(undefined, ""))), "aabacaa");
});

const server = () =>
  new ServerState("tcp", "app", { hostname: "10.0.0.1", port: 80 }, "10.0.0.1:80", 1);
const check = (ok: boolean) => ({ at: 0, ok, detail: ok ? "ok" : "ECONNREFUSED", durationMs: 1 });

test("server state: failsThreshold failures in a row put it down, passesThreshold passes bring it up", () => {
  const s = server();
  const changes: string[] = [];
  s.onChange = (x, why) => changes.push(`${x.up ? "up" : "down"}: ${why}`);
  const t = { failsThreshold: 3, passesThreshold: 2 };
  s.checked(check(false), t);
  s.checked(check(false), t);
  s.checked(check(true), t); // a pass resets the count
  s.checked(check(false), t);
  s.checked(check(false), t);
  assert.equal(s.up, true);
  s.checked(check(false), t);
  assert.equal(s.up, false);
  s.checked(check(true), t);
  assert.equal(s.up, false);
  s.checked(check(true), t);
  assert.equal(s.up, true);
  assert.deepEqual(changes, [
    "down: 3 health checks failed: ECONNREFUSED",
    "up: 2 health checks passed",
  ]);
  assert.equal(s.checksFailed, 5);
  assert.equal(s.checksPassed, 3);
});

test("server state: passive ejection counts dial failures within the window, not l4p's own", () => {
  const s = server();
  const policy = { maxFailedAttempts: 3, failureWindow: 1000 };
  assert.equal(s.dialFailed(0, "ECONNREFUSED", policy), false);
  assert.equal(s.dialFailed(100, "ETIMEDOUT", policy), false);
  // Out of descriptors, or the client gave up: not the server's doing.
  for (const code of ["EMFILE", "ENFILE", "EABORTED"]) {
    assert.equal(s.dialFailed(200, code, policy), false);
  }
  // The first failure has left the window: still two.
  assert.equal(s.dialFailed(1050, "ECONNREFUSED", policy), false);
  assert.equal(s.up, true);
  assert.equal(s.dialFailed(1060, "ECONNREFUSED", policy), true);
  assert.equal(s.up, false);
  assert.equal(s.ejectedPassively, true);
});
