/**
 * TCP router rules in traefik's syntax: `HostSNI`, `HostSNIRegexp`, `ALPN` and `ClientIP`,
 * combined with `&&`, `||`, `!` and parentheses. Parsing gives located errors; matching is pure.
 *
 * @example
 * const rule = parseRule("HostSNI(`a.example.com`) || (ALPN(`h2`) && !ClientIP(`10.0.0.0/8`))");
 */
import { type Cidr, cidrContains, type IpBytes, parseCidr, parseIp } from "../net/ip.ts";
import { compilePattern, type Pattern } from "../net/pattern.ts";
import { PROTOCOLS } from "./protocols.ts";

/** What a rule is matched against. */
export interface MatchInfo {
  /** Whether the connection starts with a TLS ClientHello. */
  tls: boolean;
  /** The SNI, lower case; absent without TLS or without the extension. */
  sni: string | undefined;
  /** The ALPN protocols offered. */
  alpn: readonly string[];
  /** The client address (from a trusted PROXY header when there was one). */
  clientIp: IpBytes | undefined;
  /** The protocols the first bytes were found to speak (`Protocol` matchers), when read. */
  protocols?: ReadonlySet<string>;
  /** The Host of an HTTP/1.x request, lower case without a port, when read. */
  httpHost?: string;
}

/**
 * traefik v2's HostSNIRegexp argument, a host template (`{sub:[a-z]+}.example.com`), as the RE2
 * pattern it stands for: the whole name, any case; literal text as written; `{name:re}` is `re`
 * and `{name}` one label. Throws on braces that do not pair or an empty name or pattern.
 */
export function v2HostTemplate(template: string): string {
  const quote = (s: string) => s.replace(/[\\.+*?()|[\]{}^$]/g, "\\$&");
  let out = "(?i)^";
  let at = 0;
  while (at < template.length) {
    const open = template.indexOf("{", at);
    if (open < 0) break;
    // The matching brace, counting nested ones (a pattern may hold {2,3}).
    let depth = 0;
    let close = -1;
    for (let i = open; i < template.length; i++) {
      if (template[i] === "{") depth++;
      else if (template[i] === "}" && --depth === 0) {
        close = i;
        break;
      }
    }
    if (close < 0) throw new Error(`unbalanced braces in "${template}"`);
    const inner = template.slice(open + 1, close);
    const colon = inner.indexOf(":");
    const name = colon < 0 ? inner : inner.slice(0, colon);
    const pattern = colon < 0 ? "[^.]+" : inner.slice(colon + 1);
    if (!name || !pattern) throw new Error(`missing name or pattern in "{${inner}}"`);
    out += `${quote(template.slice(at, open))}(?:${pattern})`;
    at = close + 1;
  }
  return `${out}${quote(template.slice(at))}$`;
}

/** How deep parentheses and `!` may nest in a rule; deeper is an error, not a stack overflow. */
export const MAX_RULE_DEPTH = 64;

/** A parsed rule. `and` and `or` hold every operand of a chain, so a long chain nests nothing. */
export type Rule =
  | { op: "and" | "or"; rules: Rule[] }
  | { op: "not"; rule: Rule }
  | { op: "HostSNI"; names: string[] }
  | { op: "HostSNIRegexp"; patterns: Pattern[] }
  | { op: "ALPN"; protocols: string[] }
  | { op: "ClientIP"; ranges: Cidr[] }
  | { op: "Protocol"; names: string[] }
  | { op: "HTTPHost"; names: string[] }
  | { op: "HTTPHostRegexp"; patterns: Pattern[] };

/** A rule that does not parse: where (0-based offset in the rule) and what was expected. */
export class RuleError extends Error {
  constructor(readonly rule: string, readonly offset: number, readonly detail: string) {
    super(
      `${detail} at character ${offset + 1}: ${rule.slice(0, offset)}⟨here⟩${rule.slice(offset)}`,
    );
    this.name = "RuleError";
  }
}

const MATCHERS = [
  "HostSNI",
  "HostSNIRegexp",
  "ALPN",
  "ClientIP",
  "Protocol",
  "HTTPHost",
  "HTTPHostRegexp",
] as const;

type Token = {
  kind: "name" | "string" | "(" | ")" | "," | "&&" | "||" | "!" | "bad" | "end";
  text: string;
  at: number;
};

function tokenize(rule: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < rule.length) {
    const c = rule[i];
    if (/\s/.test(c)) {
      i++;
    } else if (c === "(" || c === ")" || c === "," || c === "!") {
      tokens.push({ kind: c, text: c, at: i++ });
    } else if (rule.startsWith("&&", i) || rule.startsWith("||", i)) {
      tokens.push({ kind: rule.slice(i, i + 2) as "&&", text: rule.slice(i, i + 2), at: i });
      i += 2;
    } else if (c === "`" || c === '"') {
      const end = rule.indexOf(c, i + 1);
      if (end < 0) throw new RuleError(rule, i, `unterminated string (expected a closing ${c})`);
      tokens.push({ kind: "string", text: rule.slice(i + 1, end), at: i });
      i = end + 1;
    } else if (/[A-Za-z]/.test(c)) {
      const m = rule.slice(i).match(/^[A-Za-z][A-Za-z0-9]*/)!;
      tokens.push({ kind: "name", text: m[0], at: i });
      i += m[0].length;
    } else {
      // Reported by the parser, so that an earlier mistake is the one named.
      tokens.push({ kind: "bad", text: c, at: i++ });
    }
  }
  tokens.push({ kind: "end", text: "", at: rule.length });
  return tokens;
}

/**
 * Parses a rule in traefik's `syntax` (v3 by default; v2 reads HostSNIRegexp as v2's host
 * templates); throws {@link RuleError}.
 */
export function parseRule(rule: string, syntax: "v2" | "v3" = "v3"): Rule {
  const tokens = tokenize(rule);
  let pos = 0;
  const peek = () => tokens[pos];
  const expect = (kind: Token["kind"], what: string): Token => {
    const t = tokens[pos];
    if (t.kind !== kind) throw new RuleError(rule, t.at, `expected ${what}, found ${describe(t)}`);
    pos++;
    return t;
  };
  let depth = 0;
  /** One level deeper, at the `(` or `!` being read. */
  const deeper = () => {
    if (++depth > MAX_RULE_DEPTH) {
      throw new RuleError(rule, peek().at, `nested more than ${MAX_RULE_DEPTH} deep`);
    }
    pos++;
  };
  const or = (): Rule => {
    const rules = [and()];
    while (peek().kind === "||") {
      pos++;
      rules.push(and());
    }
    return rules.length === 1 ? rules[0] : { op: "or", rules };
  };
  const and = (): Rule => {
    const rules = [unary()];
    while (peek().kind === "&&") {
      pos++;
      rules.push(unary());
    }
    return rules.length === 1 ? rules[0] : { op: "and", rules };
  };
  const unary = (): Rule => {
    if (peek().kind === "!") {
      deeper();
      const inner: Rule = { op: "not", rule: unary() };
      depth--;
      return inner;
    }
    if (peek().kind === "(") {
      deeper();
      const inner = or();
      expect(")", '")"');
      depth--;
      return inner;
    }
    return matcher();
  };
  const matcher = (): Rule => {
    const name = expect("name", `a matcher (${MATCHERS.join(", ")}), "(" or "!"`);
    // traefik's parser takes matcher names in any case (hostsni, HOSTSNI).
    const known = MATCHERS.find((m) => m.toLowerCase() === name.text.toLowerCase());
    if (!known) {
      throw new RuleError(
        rule,
        name.at,
        `unknown matcher "${name.text}" (expected ${MATCHERS.join(", ")})`,
      );
    }
    expect("(", '"("');
    const args: Token[] = [expect("string", "a string in backticks")];
    while (peek().kind === ",") {
      pos++;
      args.push(expect("string", "a string in backticks"));
    }
    expect(")", '")" or ","');
    return build(rule, known, args, syntax);
  };
  const result = or();
  if (peek().kind !== "end") {
    throw new RuleError(
      rule,
      peek().at,
      `expected "&&", "||" or the end, found ${describe(peek())}`,
    );
  }
  return result;
}

function describe(t: Token): string {
  if (t.kind === "end") return "the end of the rule";
  if (t.kind === "string") return `string "${t.text}"`;
  return t.kind === "bad" ? `unexpected "${t.text}"` : `"${t.text}"`;
}

function build(
  rule: string,
  name: typeof MATCHERS[number],
  args: Token[],
  syntax: "v2" | "v3" = "v3",
): Rule {
  switch (name) {
    case "HostSNI": {
      const names = args.map((a) => {
        const host = a.text.toLowerCase().replace(/\.$/, "");
        // A name, a wildcard for one leading label (as traefik: `*.*.example.com` is refused),
        // or an IP address (an IPv6 literal too, as traefik takes it).
        const name = /^(\*\.)?[a-z0-9]([a-z0-9._-]*[a-z0-9])?$/.test(host);
        if (host !== "*" && !name && parseIp(host) === undefined) {
          throw new RuleError(rule, a.at, `"${a.text}" is not a host name`);
        }
        return host;
      });
      return { op: "HostSNI", names };
    }
    case "HostSNIRegexp":
      return {
        op: "HostSNIRegexp",
        patterns: args.map((a) => {
          // traefik refuses these: a server name is ASCII (punycode for the rest).
          if (a.text === "" || [...a.text].some((c) => c.charCodeAt(0) > 0x7f)) {
            throw new RuleError(
              rule,
              a.at,
              "a HostSNIRegexp pattern is not empty and is ASCII (write international names in punycode)",
            );
          }
          try {
            return compilePattern(syntax === "v2" ? v2HostTemplate(a.text) : a.text);
          } catch (e) {
            throw new RuleError(rule, a.at, `bad regular expression: ${(e as Error).message}`);
          }
        }),
      };
    case "Protocol":
      return {
        op: "Protocol",
        names: args.map((a) => {
          const name = a.text.toLowerCase();
          if (!(name in PROTOCOLS)) {
            throw new RuleError(
              rule,
              a.at,
              `unknown protocol "${a.text}" (known: ${Object.keys(PROTOCOLS).join(", ")})`,
            );
          }
          return name;
        }),
      };
    case "HTTPHost": {
      const host = build(rule, "HostSNI", args) as { names: string[] };
      return { op: "HTTPHost", names: host.names };
    }
    case "HTTPHostRegexp": {
      const re = build(rule, "HostSNIRegexp", args) as { patterns: Pattern[] };
      return { op: "HTTPHostRegexp", patterns: re.patterns };
    }
    case "ALPN":
      return {
        op: "ALPN",
        protocols: args.map((a) => {
          if (a.text === "" || a.text.length > 255) {
            throw new RuleError(rule, a.at, "an ALPN protocol is 1 to 255 bytes");
          }
          // traefik keeps acme-tls/1 to itself: the TLS-ALPN-01 challenge is answered before routing.
          if (a.text === "acme-tls/1") {
            throw new RuleError(
              rule,
              a.at,
              "acme-tls/1 is the ACME TLS-ALPN-01 challenge's; it cannot be routed",
            );
          }
          return a.text;
        }),
      };
    case "ClientIP":
      return {
        op: "ClientIP",
        ranges: args.map((a) => {
          const c = parseCidr(a.text);
          if (typeof c === "string") throw new RuleError(rule, a.at, c);
          return c;
        }),
      };
  }
}

/** Whether `rule` takes the connection described by `info`. */
export function matchRule(rule: Rule, info: MatchInfo): boolean {
  switch (rule.op) {
    case "and":
      return rule.rules.every((r) => matchRule(r, info));
    case "or":
      return rule.rules.some((r) => matchRule(r, info));
    case "not":
      return !matchRule(rule.rule, info);
    case "HostSNI":
      return rule.names.some((n) =>
        n === "*" || (info.sni !== undefined && hostMatches(n, info.sni))
      );
    case "HostSNIRegexp":
      return info.sni !== undefined && rule.patterns.some((p) => p.test(info.sni!));
    case "ALPN":
      return rule.protocols.some((p) => info.alpn.includes(p));
    case "ClientIP":
      return info.clientIp !== undefined &&
        rule.ranges.some((r) => cidrContains(r, info.clientIp!));
    case "Protocol":
      return rule.names.some((n) => info.protocols?.has(n) ?? false);
    case "HTTPHost":
      return info.httpHost !== undefined &&
        rule.names.some((n) => n === "*" || hostMatches(n, info.httpHost!));
    case "HTTPHostRegexp":
      return info.httpHost !== undefined && rule.patterns.some((p) => p.test(info.httpHost!));
  }
}

/** `*.example.com` matches one label in front of example.com, as traefik's HostSNI does. */
function hostMatches(pattern: string, sni: string): boolean {
  if (!pattern.startsWith("*.")) return pattern === sni;
  const rest = pattern.slice(1);
  return sni.endsWith(rest) && !sni.slice(0, -rest.length).includes(".") &&
    sni.length > rest.length;
}

/** One matcher of a rule: what `&&`, `||` and `!` combine. */
type Matcher = Exclude<Rule, { op: "and" | "or" } | { op: "not" }>;

/** Whether any matcher in `rule` passes `test`. */
function anyMatcher(rule: Rule, test: (matcher: Matcher) => boolean): boolean {
  switch (rule.op) {
    case "and":
    case "or":
      return rule.rules.some((r) => anyMatcher(r, test));
    case "not":
      return anyMatcher(rule.rule, test);
    default:
      return test(rule);
  }
}

/** Whether matching needs the ClientHello (SNI or ALPN), so the router must peek for it. */
export function needsClientHello(rule: Rule): boolean {
  return anyMatcher(
    rule,
    (m) =>
      m.op === "HostSNI"
        ? m.names.some((n) => n !== "*")
        : m.op === "HostSNIRegexp" || m.op === "ALPN",
  );
}

/** The protocols a rule's `Protocol` matchers name (`HTTPHost` names http). */
export function protocolsOf(rule: Rule): string[] {
  const out = new Set<string>();
  anyMatcher(rule, (m) => {
    if (m.op === "Protocol") { for (const n of m.names) out.add(n); }
    if (m.op === "HTTPHost" || m.op === "HTTPHostRegexp") out.add("http");
    return false;
  });
  return [...out];
}

/** Whether a rule reads an HTTP request's Host. */
export function needsHttpHost(rule: Rule): boolean {
  return anyMatcher(rule, (m) => m.op === "HTTPHost" || m.op === "HTTPHostRegexp");
}

/** Whether matching needs the client's address (a `ClientIP` matcher anywhere in it). */
export function needsClientIp(rule: Rule): boolean {
  return anyMatcher(rule, (m) => m.op === "ClientIP");
}

/** The literal host names a rule can match, when it is nothing but `HostSNI` of names. */
export function literalHosts(rule: Rule): string[] | undefined {
  if (rule.op === "HostSNI" && rule.names.every((n) => n !== "*" && !n.includes("*"))) {
    return rule.names;
  }
  if (rule.op === "or") {
    const all: string[] = [];
    for (const r of rule.rules) {
      const hosts = literalHosts(r);
      if (!hosts) return undefined;
      all.push(...hosts);
    }
    return all;
  }
  return undefined;
}

/**
 * A rule's default priority, as traefik gives it: its length, except the lone catch-all
 * ``HostSNI(`*`)``, which gets -1 so that it is tried last.
 */
export function rulePriority(text: string, rule: Rule): number {
  return rule.op === "HostSNI" && rule.names.length === 1 && rule.names[0] === "*"
    ? -1
    : text.length;
}

/** Whether a matcher of `rule` takes several arguments: l4p's extension, not traefik v3. */
export function hasSeveralArguments(rule: Rule): boolean {
  return anyMatcher(rule, (m) => {
    switch (m.op) {
      case "HostSNI":
        return m.names.length > 1;
      case "HostSNIRegexp":
        return m.patterns.length > 1;
      case "ALPN":
        return m.protocols.length > 1;
      case "ClientIP":
        return m.ranges.length > 1;
      case "Protocol":
      case "HTTPHost":
        return m.names.length > 1;
      case "HTTPHostRegexp":
        return m.patterns.length > 1;
    }
  });
}
