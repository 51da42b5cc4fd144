import assert from "node:assert/strict";
import { test } from "node:test";
import { parseIp } from "../src/net/ip.ts";
import { RouteIndex } from "../src/tcp/route_index.ts";
import { routerOrder } from "../src/tcp/router_order.ts";
import { type MatchInfo, matchRule, parseRule } from "../src/tcp/rule.ts";

/** A small deterministic generator, so a failure names its seed. */
function prng(seed: number) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

const NAMES = ["a.test", "b.test", "x.a.test", "y.a.test", "deep.x.a.test", "c.example", "10::10"];
const WILDCARDS = ["*.a.test", "*.x.a.test", "*.example"];

/** A random rule of the kinds people write, indexable and not. */
function randomRule(r: () => number): string {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)];
  const host = () => r() < 0.7 ? pick(NAMES) : pick(WILDCARDS);
  const one = (): string => {
    switch (Math.floor(r() * 7)) {
      case 0:
      case 1:
        return `HostSNI(\`${host()}\`)`;
      case 2:
        return `HostSNI(\`${host()}\`, \`${host()}\`)`;
      case 3:
        return "HostSNI(`*`)";
      case 4:
        return `ALPN(\`${pick(["h2", "http/1.1"])}\`)`;
      case 5:
        return `ClientIP(\`${pick(["127.0.0.0/8", "10.0.0.0/8", "192.0.2.7"])}\`)`;
      default:
        return `HostSNIRegexp(\`${pick(["^x\\.", "test$", "example"])}\`)`;
    }
  };
  const roll = r();
  if (roll < 0.55) return one();
  if (roll < 0.75) return `${one()} || ${one()}`;
  if (roll < 0.9) return `${one()} && ${one()}`;
  return `!${one()}`;
}

function randomInfo(r: () => number): MatchInfo {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)];
  const tls = r() < 0.8;
  return {
    tls,
    sni: tls && r() < 0.9 ? pick([...NAMES, "z.a.test", "other.test", "q.example"]) : undefined,
    alpn: tls ? pick([[], ["h2"], ["http/1.1"], ["h2", "http/1.1"]]) : [],
    clientIp: parseIp(pick(["127.0.0.1", "10.1.2.3", "192.0.2.7", "203.0.113.9"])),
  };
}

test("routing: the index chooses exactly what a scan in order chooses, on 2 000 random rule sets", () => {
  for (let seed = 1; seed <= 2000; seed++) {
    const r = prng(seed);
    const routers: Record<string, { rule: string; priority?: number; entryPoints: string[] }> = {};
    const n = 1 + Math.floor(r() * 12);
    for (let i = 0; i < n; i++) {
      routers[`r${i}`] = {
        rule: randomRule(r),
        priority: r() < 0.3 ? Math.floor(r() * 4) : undefined,
        entryPoints: ["e"],
      };
    }
    const order = routerOrder(routers, "e");
    const rules = order.map((name) => parseRule(routers[name].rule));
    // Some routers terminate TLS: they take only TLS connections.
    const terminates = order.map(() => r() < 0.3);
    const index = new RouteIndex(rules);
    for (let k = 0; k < 20; k++) {
      const info = randomInfo(r);
      const accept = (at: number) => info.tls || !terminates[at];
      const scanned = rules.findIndex((rule, at) => accept(at) && matchRule(rule, info));
      assert.equal(
        index.first(info, accept),
        scanned,
        `seed ${seed}: ${
          JSON.stringify({ order, rules: order.map((o) => routers[o].rule), info })
        }`,
      );
    }
  }
});

test("routing: 10 000 exact names cost two lookups; a wildcard covers one label", () => {
  const names = Array.from({ length: 10_000 }, (_, i) => `customer${i}.example`);
  const rules = [
    ...names.map((n) => parseRule(`HostSNI(\`${n}\`)`)),
    parseRule("HostSNI(`*.saas.test`)"),
  ];
  const index = new RouteIndex(rules);
  const tried: number[] = [];
  const at = index.first(
    { tls: true, sni: "customer9999.example", alpn: [], clientIp: undefined },
    (i) => {
      tried.push(i);
      return true;
    },
  );
  assert.equal(at, 9999);
  assert.deepEqual(tried, [9999], "one candidate tried, not ten thousand");
  const wild = (sni: string) =>
    index.first({ tls: true, sni, alpn: [], clientIp: undefined }, () => true);
  assert.equal(wild("shop.saas.test"), 10_000);
  assert.equal(wild("a.b.saas.test"), -1);
  assert.equal(wild("nobody.example"), -1);
});
