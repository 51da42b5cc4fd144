import assert from "node:assert/strict";
import { test } from "node:test";
import { parseIp } from "../src/net/ip.ts";
import {
  type MatchInfo,
  matchRule,
  needsClientHello,
  parseRule,
  RuleError,
  v2HostTemplate,
} from "../src/tcp/rule.ts";
import { priorityOf, routerOrder } from "../src/tcp/router_order.ts";
import { neverMatches } from "../src/tcp/rule_sense.ts";

const info = (over: Partial<MatchInfo> = {}): MatchInfo => ({
  tls: true,
  sni: undefined,
  alpn: [],
  clientIp: parseIp("192.0.2.1"),
  ...over,
});
const matches = (rule: string, over: Partial<MatchInfo> = {}) =>
  matchRule(parseRule(rule), info(over));

test("rule: HostSNI matches names case-insensitively; * matches every connection", () => {
  assert.ok(matches("HostSNI(`a.example.com`)", { sni: "a.example.com" }));
  assert.ok(matches("HostSNI(`A.Example.COM`)", { sni: "a.example.com" }));
  assert.ok(!matches("HostSNI(`a.example.com`)", { sni: "b.example.com" }));
  assert.ok(!matches("HostSNI(`a.example.com`)", { tls: false }));
  assert.ok(matches("HostSNI(`*`)", { tls: false }));
  assert.ok(matches("HostSNI(`a.test`, `b.test`)", { sni: "b.test" }));
  assert.ok(matches("HostSNI(`*.example.com`)", { sni: "x.example.com" }));
  assert.ok(!matches("HostSNI(`*.example.com`)", { sni: "x.y.example.com" }));
});

test("rule: HostSNIRegexp, ALPN and ClientIP", () => {
  assert.ok(matches("HostSNIRegexp(`^.+\\.example\\.com$`)", { sni: "deep.a.example.com" }));
  assert.ok(!matches("HostSNIRegexp(`^.+\\.example\\.com$`)", { sni: "example.com" }));
  assert.ok(matches("ALPN(`h2`)", { alpn: ["h2", "http/1.1"] }));
  assert.ok(!matches("ALPN(`h2`)", { alpn: ["http/1.1"] }));
  assert.ok(matches("ClientIP(`192.0.2.0/24`)"));
  assert.ok(matches("ClientIP(`10.0.0.0/8`, `192.0.2.1`)"));
  assert.ok(!matches("ClientIP(`10.0.0.0/8`)"));
  assert.ok(matches("ClientIP(`2001:db8::/32`)", { clientIp: parseIp("2001:db8::5") }));
});

test("rule: && binds tighter than ||; ! and parentheses", () => {
  // a || b && c  is  a || (b && c)
  const r = "HostSNI(`a.test`) || HostSNI(`b.test`) && ALPN(`h2`)";
  assert.ok(matches(r, { sni: "a.test" }));
  assert.ok(!matches(r, { sni: "b.test" }));
  assert.ok(matches(r, { sni: "b.test", alpn: ["h2"] }));
  const p = "(HostSNI(`a.test`) || HostSNI(`b.test`)) && ALPN(`h2`)";
  assert.ok(!matches(p, { sni: "a.test" }));
  assert.ok(matches("!ClientIP(`10.0.0.0/8`) && HostSNI(`*`)"));
  assert.ok(!matches("!!ClientIP(`10.0.0.0/8`)"));
});

test("rule: only SNI and ALPN matchers need the ClientHello", () => {
  assert.equal(needsClientHello(parseRule("HostSNI(`*`)")), false);
  assert.equal(needsClientHello(parseRule("ClientIP(`10.0.0.0/8`) || HostSNI(`*`)")), false);
  assert.equal(needsClientHello(parseRule("HostSNI(`*`) && !ALPN(`h2`)")), true);
  assert.equal(needsClientHello(parseRule("HostSNIRegexp(`.`)")), true);
});

test("rule: errors say where and what was expected", () => {
  const cases: [string, number, RegExp][] = [
    ["HostSNI(`a.test`", 16, /expected "\)" or ",", found the end of the rule/],
    ["HostSNI(`a.test`) && ", 21, /expected a matcher/],
    [
      "HostSNI(`a.test`) & ALPN(`h2`)",
      18,
      /expected "&&", "\|\|" or the end, found unexpected "&"/,
    ],
    [
      "Host(`a.test`)",
      0,
      /unknown matcher "Host" \(expected HostSNI, HostSNIRegexp, ALPN, ClientIP, Protocol, HTTPHost, HTTPHostRegexp\)/,
    ],
    ["HostSNI(a.test)", 8, /expected a string in backticks, found "a"/],
    ["HostSNI(`a.test)", 8, /unterminated string/],
    ["ClientIP(`10.0.0.0/99`)", 9, /bad prefix length/],
    ["HostSNIRegexp(`(`)", 14, /bad regular expression/],
    ["(HostSNI(`a`) || ALPN(`h2`)", 27, /expected "\)"/],
    ["HostSNI(`a`) HostSNI(`b`)", 13, /expected "&&", "\|\|" or the end/],
    ["HostSNI(`bad name!`)", 8, /is not a host name/],
  ];
  for (const [rule, offset, message] of cases) {
    try {
      parseRule(rule);
      assert.fail(`parsed: ${rule}`);
    } catch (e) {
      assert.ok(e instanceof RuleError, String(e));
      assert.equal(e.offset, offset, `${rule}: ${e.message}`);
      assert.match(e.detail, message);
      assert.ok(e.message.includes("⟨here⟩"));
    }
  }
});

test("rule: HostSNIRegexp runs in linear time: a backtracking pattern meets a hostile SNI", () => {
  // A backtracking engine takes exponential time here (126 labels froze Deno for over 90 s).
  const rule = parseRule("HostSNIRegexp(`^(.+\\.)+example\\.com$`)");
  for (let i = 0; i < 100; i++) {
    assert.equal(matchRule(rule, info({ sni: "a.".repeat(126) + "!" })), false);
  }
  assert.equal(matchRule(rule, info({ sni: "www.shop.example.com" })), true);
  // Go's MatchString: unanchored unless the pattern says otherwise.
  assert.ok(matches("HostSNIRegexp(`example`)", { sni: "www.example.com" }));
});

test("rule: what RE2 refuses (backreferences, lookaround) is a located error", () => {
  for (const pattern of ["(a)\\1", "a(?=b)", "(?<!x)y"]) {
    const text = `HostSNI(\`a.test\`) || HostSNIRegexp(\`${pattern}\`)`;
    assert.throws(() => parseRule(text), (e: unknown) => {
      assert.ok(e instanceof RuleError, String(e));
      assert.equal(e.offset, 35, e.message);
      assert.match(e.detail, /bad regular expression/);
      return true;
    });
  }
});

test("rule: nesting is bounded with a located error; a long chain of || parses and matches", () => {
  const deep = "(".repeat(5000) + "HostSNI(`a.test`)" + ")".repeat(5000);
  assert.throws(() => parseRule(deep), (e: unknown) => {
    assert.ok(e instanceof RuleError, String(e));
    assert.equal(e.offset, 64);
    assert.match(e.detail, /nested more than 64 deep/);
    return true;
  });
  assert.throws(() => parseRule("!".repeat(5000) + "HostSNI(`*`)"), /nested more than 64/);
  const names = Array.from({ length: 20_000 }, (_, i) => `HostSNI(\`h${i}.test\`)`);
  const long = parseRule(names.join(" || "));
  assert.ok(matchRule(long, info({ sni: "h19999.test" })));
  assert.ok(!matchRule(long, info({ sni: "h20000.test" })));
  const both = parseRule(names.join(" && "));
  assert.ok(!matchRule(both, info({ sni: "h1.test" })));
});

test("rule: traefik's default priorities: the lone catch-all is tried last", () => {
  const routers = {
    all: { rule: "HostSNI(`*`)", entryPoints: ["e"] },
    h2: { rule: "ALPN(`h2`)", entryPoints: ["e"] },
    mqtt: { rule: "ALPN(`mqtt`)", entryPoints: ["e"] },
    a: { rule: "HostSNI(`a.example`)", entryPoints: ["e"] },
  };
  // HostSNI(`*`) is 12 long like ALPN(`mqtt`), but gets -1: no tie, and it comes last.
  assert.deepEqual(routerOrder(routers, "e"), ["a", "mqtt", "h2", "all"]);
  assert.equal(priorityOf(routers.all), -1);
  assert.equal(priorityOf({ rule: "HostSNI(`*`) || ALPN(`h2`)" }), 26);
  assert.equal(priorityOf({ rule: "HostSNI(`*`)", priority: 5 }), 5);
});

test("rule: matcher names in any case, IPv6 literals in HostSNI, as traefik takes them", () => {
  assert.ok(matches("hostsni(`a.example`)", { sni: "a.example" }));
  assert.ok(matches("HOSTSNI(`a.example`) && alpn(`h2`)", { sni: "a.example", alpn: ["h2"] }));
  assert.ok(matches("HostSNI(`10::10`)", { sni: "10::10" }));
  assert.ok(matches("clientip(`192.0.2.0/24`)"));
});

test("rule: what traefik refuses is refused, located", () => {
  for (
    const [rule, message] of [
      ["HostSNI(`*.*.example.com`)", /is not a host name/],
      ["HostSNIRegexp(``)", /is not empty and is ASCII/],
      ["HostSNIRegexp(`^bücher\\.example$`)", /punycode/],
      ["ALPN(`acme-tls/1`)", /ACME TLS-ALPN-01/],
    ] as const
  ) {
    assert.throws(() => parseRule(rule), (e: unknown) => {
      assert.ok(e instanceof RuleError, String(e));
      assert.match(e.detail, message);
      return true;
    });
  }
});

test("rule: ruleSyntax v2 reads HostSNIRegexp as v2's host templates", () => {
  assert.equal(v2HostTemplate("{sub:[a-z]+}.example.com"), "(?i)^(?:[a-z]+)\\.example\\.com$");
  assert.equal(v2HostTemplate("{sub}.example.com"), "(?i)^(?:[^.]+)\\.example\\.com$");
  const v2 = parseRule("HostSNIRegexp(`{sub:[a-z]+}.example.com`)", "v2");
  assert.ok(matchRule(v2, info({ sni: "shop.example.com" })));
  assert.ok(!matchRule(v2, info({ sni: "shop.example.com.evil" })), "anchored");
  assert.ok(!matchRule(v2, info({ sni: "s1.example.com" })));
  assert.ok(!matchRule(v2, info({ sni: "shopXexample.com" })), "the dot is literal");
  assert.throws(
    () => parseRule("HostSNIRegexp(`{sub:[a-z]+.example.com`)", "v2"),
    /bad regular expression: unbalanced/,
  );
  // v3 reads the same text as a regular expression (the braces literal): not what v2 meant.
  const v3 = parseRule("HostSNIRegexp(`{sub:[a-z]+}.example.com`)");
  assert.ok(!matchRule(v3, info({ sni: "shop.example.com" })));
});

test("a rule whose matchers exclude each other is said never to match; others are left alone", () => {
  const never = (rule: string) => neverMatches(parseRule(rule));
  const cases: [string, RegExp | undefined][] = [
    ["HostSNI(`a.example`) && HostSNI(`b.example`)", /name different servers/],
    ["HostSNI(`a.example`) && HostSNI(`A.example`)", undefined],
    ["HostSNI(`*.example`) && HostSNI(`b.example`)", undefined],
    ["Protocol(`ssh`) && Protocol(`http`)", /exclude each other/],
    [
      "Protocol(`ssh`) && HostSNI(`a.example`)",
      /needs a TLS ClientHello, which Protocol\(`ssh`\) is not/,
    ],
    ["Protocol(`tls`) && HostSNI(`a.example`) && ALPN(`h2`)", undefined],
    ["Protocol(`http`) && HTTPHost(`a.example`)", undefined],
    ["Protocol(`silent`) && HTTPHost(`a.example`)", /needs an HTTP request/],
    ["ALPN(`h2`) && HTTPHost(`a.example`)", /needs a TLS ClientHello, HTTPHost/],
    ["ClientIP(`10.0.0.0/8`) && ClientIP(`192.168.0.0/16`)", /share no address/],
    ["ClientIP(`10.0.0.0/8`) && ClientIP(`10.1.0.0/16`)", undefined],
    ["ClientIP(`10.0.0.0/8`) && ClientIP(`::1`)", /share no address/],
    ["(HostSNI(`a`) && HostSNI(`b`)) || HostSNI(`c`)", undefined],
    ["(HostSNI(`a`) && HostSNI(`b`)) || (Protocol(`ssh`) && ALPN(`h2`))", /name different servers/],
    ["!HostSNI(`a`) && HostSNI(`a`)", undefined], // not judged: ! is taken as able to match
    ["HostSNI(`*`) && Protocol(`ssh`)", undefined],
  ];
  for (const [rule, expected] of cases) {
    const why = never(rule);
    if (expected) assert.match(why ?? "(none)", expected, rule);
    else assert.equal(why, undefined, rule);
  }
});
