/**
 * Whether a rule can match at all: `l4p check` says so of a rule whose matchers exclude each
 * other (two server names, a protocol and a ClientHello, two client ranges that do not meet).
 * Pure and conservative: it says "never" only when it is sure; `!` and regexps are taken as
 * able to match.
 */
import type { Cidr } from "../net/ip.ts";
import type { Rule } from "./rule.ts";

/** What a rule says of the first bytes. */
type Needs = "tls" | "http" | "nothing";

/** Why `rule` can never match, or undefined when it may. */
export function neverMatches(rule: Rule): string | undefined {
  switch (rule.op) {
    case "or": {
      const reasons = rule.rules.map(neverMatches);
      return reasons.every((r) => r !== undefined) ? reasons[0] : undefined;
    }
    case "and":
      return conflicts(flatten(rule.rules));
    default:
      return undefined;
  }
}

/** The operands of nested `&&`s as one list. */
function flatten(rules: Rule[]): Rule[] {
  return rules.flatMap((r) => r.op === "and" ? flatten(r.rules) : [r]);
}

function conflicts(all: Rule[]): string | undefined {
  // An operand that can never match makes the whole never match.
  for (const r of all) {
    const why = neverMatches(r);
    if (why) return why;
  }
  let names: { set: Set<string>; text: string } | undefined;
  let protocols: { set: Set<string>; text: string } | undefined;
  const needs: { need: Needs; text: string }[] = [];
  const ranges: { list: Cidr[]; text: string }[] = [];
  for (const r of all) {
    const text = describe(r);
    switch (r.op) {
      case "HostSNI": {
        if (r.names.includes("*")) break;
        needs.push({ need: "tls", text });
        // Wildcard names meet many names: only plain ones are compared.
        if (r.names.some((n) => n.includes("*"))) break;
        const set = new Set(r.names.map((n) => n.toLowerCase()));
        if (names) {
          const both = [...set].filter((n) => names!.set.has(n));
          if (both.length === 0) return `${names.text} and ${text} name different servers`;
          names = { set: new Set(both), text: `${names.text} && ${text}` };
        } else names = { set, text };
        break;
      }
      case "HostSNIRegexp":
      case "ALPN":
        needs.push({ need: "tls", text });
        break;
      case "HTTPHost":
      case "HTTPHostRegexp":
        needs.push({ need: "http", text });
        break;
      case "Protocol": {
        const set = new Set(r.names);
        if (protocols) {
          const both = [...set].filter((n) => protocols!.set.has(n));
          if (both.length === 0) return `${protocols.text} and ${text} exclude each other`;
          protocols = { set: new Set(both), text: `${protocols.text} && ${text}` };
        } else protocols = { set, text };
        break;
      }
      case "ClientIP":
        ranges.push({ list: r.ranges, text });
        break;
    }
  }
  // What the first bytes must be: a ClientHello, an HTTP request, or nothing at all.
  const kinds = new Set(needs.map((n) => n.need));
  if (kinds.has("tls") && kinds.has("http")) {
    const [t, h] = ["tls", "http"].map((k) => needs.find((n) => n.need === k)!.text);
    return `${t} needs a TLS ClientHello, ${h} a plain HTTP request`;
  }
  if (protocols) {
    const bytes = (p: string) => p === "tls" ? "tls" : p === "http" ? "http" : p;
    for (const n of needs) {
      const ok = [...protocols.set].some((p) => bytes(p) === n.need);
      if (!ok) {
        return `${n.text} needs ${
          n.need === "tls" ? "a TLS ClientHello" : "an HTTP request"
        }, which ${protocols.text} is not`;
      }
    }
  }
  for (let i = 1; i < ranges.length; i++) {
    for (let j = 0; j < i; j++) {
      const meet = ranges[i].list.some((a) => ranges[j].list.some((b) => overlap(a, b)));
      if (!meet) return `${ranges[j].text} and ${ranges[i].text} share no address`;
    }
  }
  return undefined;
}

/** Whether two ranges share an address: the shorter prefix holds the other's network. */
function overlap(a: Cidr, b: Cidr): boolean {
  if (a.bytes.length !== b.bytes.length) return false;
  const bits = Math.min(a.prefix, b.prefix);
  for (let i = 0, left = bits; left > 0; i++, left -= 8) {
    const mask = left >= 8 ? 0xff : (0xff << (8 - left)) & 0xff;
    if ((a.bytes[i] & mask) !== (b.bytes[i] & mask)) return false;
  }
  return true;
}

/** A matcher as a rule writes it. */
function describe(r: Rule): string {
  const args = (xs: string[]) => xs.map((x) => `\`${x}\``).join(", ");
  switch (r.op) {
    case "HostSNI":
    case "HTTPHost":
    case "Protocol":
      return `${r.op}(${args(r.names)})`;
    case "ALPN":
      return `ALPN(${args(r.protocols)})`;
    case "ClientIP":
      return `ClientIP(${args(r.ranges.map((c) => c.text))})`;
    default:
      return r.op;
  }
}
