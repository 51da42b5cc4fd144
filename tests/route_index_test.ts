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
const RANGES = [
  "127.0.0.0/8",
  "10.0.0.0/8",
  "10.1.0.0/16",
  "10.1.2.0/24",
  "10.1.2.3",
  "192.0.2.7",
  "192.0.2.0/25",
  "0.0.0.0/0",
  "2001:db8::/32",
  "2001:db8:1::/48",
  "::/0",
  "10.1.2.3/31",
];

/** A random rule of the kinds people write, indexable and not. */
function randomRule(r: () => number): string {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)];
  const host = () => r() < 0.7 ? pick(NAMES) : pick(WILDCARDS);
  const one = (): string => {
    switch (Math.floor(r() * 8)) {
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
        return r() < 0.7
          ? `ClientIP(\`${pick(RANGES)}\`)`
          : `ClientIP(\`${pick(RANGES)}\`, \`${pick(RANGES)}\`)`;
      case 6:
        return `ClientIP(\`${pick(RANGES)}\`) || ClientIP(\`${pick(RANGES)}\`)`;
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
    clientIp: parseIp(
      pick([
        "127.0.0.1",
        "10.1.2.3",
        "10.1.2.2",
        "10.1.9.9",
        "10.200.0.1",
        "192.0.2.7",
        "192.0.2.200",
        "203.0.113.9",
        "2001:db8:1::5",
        "2001:db8:2::5",
        "2001:db9::1",
        "::ffff:10.1.2.3",
      ]),
    ),
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

test("routing: 10 000 ClientIP networks cost a lookup per prefix length, not a scan", () => {
  const rules = [
    ...Array.from(
      { length: 10_000 },
      (_, i) => parseRule(`ClientIP(\`10.${i >> 8}.${i & 255}.0/24\`)`),
    ),
    parseRule("ClientIP(`10.0.0.0/8`)"),
  ];
  const index = new RouteIndex(rules);
  const tried: number[] = [];
  const route = (ip: string) => {
    tried.length = 0;
    return index.first({ tls: false, sni: undefined, alpn: [], clientIp: parseIp(ip) }, (i) => {
      tried.push(i);
      return true;
    });
  };
  assert.equal(route("10.39.15.77"), 39 * 256 + 15);
  assert.deepEqual(tried, [39 * 256 + 15], "one candidate tried, not ten thousand");
  assert.equal(route("10.250.0.1"), 10_000, "no /24 of its own: the /8");
  assert.equal(route("192.0.2.1"), -1);
  assert.deepEqual(tried, []);
});
