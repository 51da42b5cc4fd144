/**
 * Finding the first matching router without trying them all. Rules written by the thousand are
 * `HostSNI` of plain names (a SaaS's custom domains) or of `*.domain` wildcards, and `ClientIP`
 * ranges (a router per customer network): those routers are indexed by name, by the wildcard's
 * domain and by network, so a connection's candidates are found by two map lookups and one per
 * distinct prefix length in use (at most 33 for IPv4, 129 for IPv6, however many routers).
 * Every other rule (regexps, ALPN, `!`, mixed `||`, the catch-all) stays a candidate for every
 * connection. Candidates are tried in the routers' own order, so the router chosen is exactly
 * the one a scan of all of them would choose.
 */
import type { Cidr, IpBytes } from "../net/ip.ts";
import { type MatchInfo, matchRule, type Rule } from "./rule.ts";

/** The names a rule made only of `HostSNI` (joined by `||`) matches: plain and `*.` ones. */
export function hostKeys(rule: Rule): { exact: string[]; wildcard: string[] } | undefined {
  if (rule.op === "HostSNI") {
    const exact: string[] = [];
    const wildcard: string[] = [];
    for (const n of rule.names) {
      if (n === "*") return undefined; // the catch-all takes everything: a candidate always
      if (n.startsWith("*.")) wildcard.push(n.slice(2));
      else exact.push(n);
    }
    return { exact, wildcard };
  }
  if (rule.op === "or") {
    const all = { exact: [] as string[], wildcard: [] as string[] };
    for (const r of rule.rules) {
      const keys = hostKeys(r);
      if (!keys) return undefined;
      all.exact.push(...keys.exact);
      all.wildcard.push(...keys.wildcard);
    }
    return all;
  }
  return undefined;
}

/** The ranges a rule made only of `ClientIP` (joined by `||`) takes. */
function ipKeys(rule: Rule): Cidr[] | undefined {
  if (rule.op === "ClientIP") return rule.ranges;
  if (rule.op === "or") {
    const all: Cidr[] = [];
    for (const r of rule.rules) {
      const keys = ipKeys(r);
      if (!keys) return undefined;
      all.push(...keys);
    }
    return all;
  }
  return undefined;
}

/** The network `bytes` lie in with `prefix` bits, as a map key (the family is in the length). */
function networkKey(bytes: IpBytes, prefix: number): string {
  let key = `${bytes.length}/${prefix}`;
  let bits = prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    key += `.${bits >= 8 ? bytes[i] : bytes[i] & (0xff << (8 - bits)) & 0xff}`;
  }
  return key;
}

function add(map: Map<string, number[]>, key: string, at: number): void {
  const list = map.get(key);
  if (!list) map.set(key, [at]);
  else if (list[list.length - 1] !== at) list.push(at);
}

/** The routes of one entrypoint (in match order), indexed by the names their rules take. */
export class RouteIndex {
  readonly #exact = new Map<string, number[]>();
  readonly #wildcard = new Map<string, number[]>();
  /** ClientIP routes by network key, and the prefix lengths in use per address length. */
  readonly #networks = new Map<string, number[]>();
  readonly #prefixes = new Map<number, number[]>();
  /** Routes that are candidates for every connection, in order. */
  readonly #always: number[] = [];

  constructor(readonly rules: readonly Rule[]) {
    rules.forEach((rule, at) => {
      const ranges = ipKeys(rule);
      if (ranges) {
        for (const r of ranges) {
          add(this.#networks, networkKey(r.bytes, r.prefix), at);
          const lengths = this.#prefixes.get(r.bytes.length) ?? [];
          if (!lengths.includes(r.prefix)) lengths.push(r.prefix);
          this.#prefixes.set(r.bytes.length, lengths);
        }
        return;
      }
      const keys = hostKeys(rule);
      if (!keys) return this.#always.push(at);
      for (const name of keys.exact) add(this.#exact, name, at);
      for (const domain of keys.wildcard) add(this.#wildcard, domain, at);
    });
  }

  /**
   * The position of the first route whose rule matches `info` and that `accept` takes (a router
   * that terminates TLS takes only TLS connections), or -1.
   */
  first(info: MatchInfo, accept: (at: number) => boolean): number {
    const sni = info.sni;
    const exact = sni === undefined ? undefined : this.#exact.get(sni);
    // `*.example.com` covers one label in front of example.com.
    const dot = sni === undefined ? -1 : sni.indexOf(".");
    const wildcard = dot > 0 ? this.#wildcard.get(sni!.slice(dot + 1)) : undefined;
    const always = this.#always;
    const ip = info.clientIp;
    const lengths = ip === undefined ? undefined : this.#prefixes.get(ip.length);
    if (lengths) {
      // The ClientIP routes of the client's networks join the other candidates.
      const lists: number[][] = [];
      for (const prefix of lengths) {
        const list = this.#networks.get(networkKey(ip!, prefix));
        if (list) lists.push(list);
      }
      if (lists.length > 0) {
        if (exact) lists.push(exact);
        if (wildcard) lists.push(wildcard);
        lists.push(always);
        return this.#merged(lists, info, accept);
      }
    }
    let e = 0, w = 0, a = 0;
    for (;;) {
      // The next candidate in route order, of the three lists.
      const ne = exact && e < exact.length ? exact[e] : Infinity;
      const nw = wildcard && w < wildcard.length ? wildcard[w] : Infinity;
      const na = a < always.length ? always[a] : Infinity;
      const at = Math.min(ne, nw, na);
      if (at === Infinity) return -1;
      if (at === ne) e++;
      if (at === nw) w++;
      if (at === na) a++;
      if (accept(at) && matchRule(this.rules[at], info)) return at;
    }
  }

  /** {@link first} over candidates from several lists, each in route order. */
  #merged(lists: number[][], info: MatchInfo, accept: (at: number) => boolean): number {
    const pos = new Array<number>(lists.length).fill(0);
    for (;;) {
      let at = Infinity;
      for (let i = 0; i < lists.length; i++) {
        if (pos[i] < lists[i].length && lists[i][pos[i]] < at) at = lists[i][pos[i]];
      }
      if (at === Infinity) return -1;
      for (let i = 0; i < lists.length; i++) if (lists[i][pos[i]] === at) pos[i]++;
      if (accept(at) && matchRule(this.rules[at], info)) return at;
    }
  }
}
