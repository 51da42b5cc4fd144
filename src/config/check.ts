/**
 * Checking a configuration tree: the schema's issues as located problems, then what a schema
 * cannot say (references, cycles, addresses, TLS, rules and their ties, what the runtime can
 * do). Each problem is reported at its key path; the caller decides what it leaves out.
 */
import type { z } from "zod";
import { formatAddr, isLoopback } from "./address.ts";
import { type ConfigProblem, didYouMean } from "./problems.ts";
import type { Path } from "./readers.ts";
import { jsonSchema, type ParsedFile } from "./schema.ts";
import { CIPHER_SUITES } from "../tls/options.ts";
import {
  hasSeveralArguments,
  literalHosts,
  needsHttpHost,
  protocolsOf,
  type Rule,
  RuleError,
} from "../tcp/rule.ts";
import { priorityOf, ruleOf } from "../tcp/router_order.ts";
import { neverMatches } from "../tcp/rule_sense.ts";
import { hostKeys } from "../tcp/route_index.ts";

/** What the runtime that will run a configuration can do, where it matters to validation. */
export interface LoadOptions {
  /**
   * Leave out a dynamic item with a problem (and what depends on it) and serve the rest, as
   * traefik does (run, reload); without it any problem refuses the whole (check).
   */
  isolate?: boolean;
  /** Whether TLS-ALPN-01 can be answered (not on Deno); assumed when absent. */
  tlsAlpnChallenge?: boolean;
  /** Whether a UDP socket's receive buffer can be set (not on Deno); assumed when absent. */
  udpReceiveBuffer?: boolean;
}

export function issueProblems(
  issue: z.core.$ZodIssue,
  problem: (path: Path, message: string, key?: string) => ConfigProblem,
): ConfigProblem[] {
  const path = issue.path as Path;
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((key) => {
      const hint = didYouMean(key, knownKeys(path));
      return problem(path, `unknown key${hint ? `; did you mean "${hint}"?` : ""}`, key);
    });
  }
  if (issue.code === "invalid_type") {
    if (issue.input === undefined) return [problem(path, `missing (expected ${issue.expected})`)];
    return [problem(path, `expected ${issue.expected}, got ${describe(issue.input)}`)];
  }
  if (issue.code === "invalid_union") {
    // A union says what it expects in its own message (a duration, say); else its branches do.
    const expected = issue.message.startsWith("expected ")
      ? issue.message.slice("expected ".length)
      : [...new Set(issue.errors.flat().map((e) => (e as { expected?: string }).expected))]
        .filter(Boolean).join(" or ") || "something else";
    return [problem(path, `expected ${expected}, got ${describe(issue.input)}`)];
  }
  if (issue.code === "invalid_value") {
    const allowed = issue.values.map((v) => JSON.stringify(v)).join(", ");
    const hint = typeof issue.input === "string"
      ? suggest(issue.input, issue.values.map(String))
      : "";
    return [problem(path, `expected one of ${allowed}, got ${describe(issue.input)}${hint}`)];
  }
  return [problem(path, issue.message)];
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return `${typeof value} ${JSON.stringify(value)}`;
}

let schemaCache: Record<string, unknown> | undefined;

/** The JSON Schema of the file, made once. */
export function schemaOnce(): Record<string, unknown> {
  return schemaCache ??= jsonSchema();
}

/** The keys the schema allows at `path`, read from the JSON Schema so the two cannot drift. */
function knownKeys(path: Path): string[] {
  // deno-lint-ignore no-explicit-any
  let node: any = schemaOnce();
  for (const seg of path) {
    if (!node) return [];
    if (typeof seg === "number") node = node.items;
    else node = node.properties?.[seg] ?? node.additionalProperties;
  }
  return Object.keys(node?.properties ?? {});
}

/** Says a problem (or a note) at a key path. */
export type Report = (path: Path, message: string) => void;

/** Problems of what this runtime cannot do. */
export function checkRuntime(file: ParsedFile, error: Report, options: LoadOptions): void {
  if (options.udpReceiveBuffer !== false) return;
  for (const [name, ep] of Object.entries(file.entryPoints ?? {})) {
    if (ep.udp?.receiveBuffer !== undefined) {
      error(
        ["entryPoints", name, "udp", "receiveBuffer"],
        "this runtime cannot set a UDP socket's receive buffer (Deno's node:dgram accepts the size and does not apply it); raise net.core.rmem_default instead, or run l4p on Bun",
      );
    }
  }
}

/**
 * The entrypoints a router that names none listens on: those marked `asDefault`, or every one
 * of its protocol when none is (traefik's rule).
 */
export function defaultEntryPoints(file: ParsedFile, protocol: "tcp" | "udp"): string[] {
  const all = Object.entries(file.entryPoints ?? {})
    .filter(([, ep]) => ep.address.protocol === protocol);
  const marked = all.filter(([, ep]) => ep.asDefault);
  return (marked.length ? marked : all).map(([name]) => name);
}

/** Checks what the schema cannot: references, cycles, addresses shared by entrypoints. */
export function* crossCheck(file: ParsedFile, error: Report, note: Report): Generator<void> {
  const entryPoints = file.entryPoints ?? {};
  // Nothing to listen on is a mistake, and on a reload usually a file read while being written
  // (truncated, so empty): taking it would close every listener.
  if (Object.keys(entryPoints).length === 0) {
    error(["entryPoints"], "no entrypoint is defined; l4p would listen on nothing");
  }
  const seen: { name: string; protocol: string; hostname: string; port: number }[] = [];
  for (const [name, ep] of Object.entries(entryPoints)) {
    const { address, protocol } = ep.address;
    const clash = seen.find((s) =>
      s.protocol === protocol && s.port === address.port && address.port !== 0 &&
      (s.hostname === address.hostname || isWildcard(s.hostname) || isWildcard(address.hostname))
    );
    if (clash) {
      error(
        ["entryPoints", name, "address"],
        `entrypoint "${clash.name}" already listens on ${protocol} ${formatAddr(address)}`,
      );
    }
    seen.push({ name, protocol, hostname: address.hostname, port: address.port });
  }
  const epOf = (protocol: "tcp" | "udp") => defaultEntryPoints(file, protocol);

  for (const protocol of ["tcp", "udp"] as const) {
    const section = file[protocol];
    const services = section?.services ?? {};
    for (const [name, router] of Object.entries(section?.routers ?? {})) {
      const base = [protocol, "routers", name];
      (router.entryPoints ?? []).forEach((ep, i) => {
        if (!entryPoints[ep]) {
          error(
            [...base, "entryPoints", i],
            `entrypoint "${ep}" is not defined${suggest(ep, Object.keys(entryPoints))}`,
          );
        } else if (entryPoints[ep].address.protocol !== protocol) {
          error([...base, "entryPoints", i], `entrypoint "${ep}" is not a ${protocol} entrypoint`);
        }
      });
      if (!router.entryPoints && epOf(protocol).length === 0) {
        error([...base], `there is no ${protocol} entrypoint for this router`);
      }
      if (!services[router.service]) {
        error(
          [...base, "service"],
          `${protocol} service "${router.service}" is not defined${
            suggest(router.service, Object.keys(services))
          }`,
        );
      }
    }
    for (const [name, service] of Object.entries(services)) {
      service.weighted?.services.forEach((child: { name: string }, i: number) => {
        if (!services[child.name]) {
          error(
            [protocol, "services", name, "weighted", "services", i, "name"],
            `${protocol} service "${child.name}" is not defined${
              suggest(child.name, Object.keys(services))
            }`,
          );
        }
      });
    }
    // A service no router reaches (directly or through weighted services) is likely a mistake.
    const used = new Set<string>();
    const reach = (name: string) => {
      if (used.has(name) || !services[name]) return;
      used.add(name);
      for (const c of services[name].weighted?.services ?? []) reach(c.name);
    };
    for (const router of Object.values(section?.routers ?? {})) reach(router.service);
    for (const name of Object.keys(services)) {
      if (!used.has(name)) {
        note([protocol, "services", name], `no ${protocol} router uses this service`);
      }
    }
    const cycle = findCycle(services);
    if (cycle) {
      error(
        [protocol, "services", cycle[0], "weighted"],
        `weighted services form a cycle: ${cycle.join(" → ")}`,
      );
    }
  }

  // A UDP entrypoint takes one router without a rule (every session) beside routers with rules.
  const udpRouterOf = new Map<string, string>();
  for (const [name, router] of Object.entries(file.udp?.routers ?? {})) {
    if (router.rule !== undefined) {
      try {
        const rule = ruleOf(router.rule);
        const never = neverMatches(rule);
        if (never) note(["udp", "routers", name, "rule"], `this rule can never match: ${never}`);
        if (protocolsOf(rule).length || needsHttpHost(rule)) {
          error(
            ["udp", "routers", name, "rule"],
            "a UDP rule takes HostSNI, HostSNIRegexp and ALPN (of a QUIC ClientHello) and ClientIP",
          );
        }
      } catch (e) {
        if (!(e instanceof RuleError)) throw e;
        error(["udp", "routers", name, "rule"], `bad rule: ${e.message}`);
      }
      continue;
    }
    const eps = router.entryPoints ?? epOf("udp");
    eps.forEach((ep, i) => {
      const other = udpRouterOf.get(ep);
      if (other) {
        error(
          router.entryPoints
            ? ["udp", "routers", name, "entryPoints", i]
            : ["udp", "routers", name],
          `entrypoint "${ep}" already has UDP router "${other}" without a rule; give one of them a rule`,
        );
      }
      udpRouterOf.set(ep, name);
    });
  }

  const udpMiddlewares = file.udp?.middlewares ?? {};
  for (const [name, router] of Object.entries(file.udp?.routers ?? {})) {
    (router.middlewares ?? []).forEach((mw, i) => {
      if (!udpMiddlewares[mw]) {
        error(
          ["udp", "routers", name, "middlewares", i],
          `udp middleware "${mw}" is not defined${suggest(mw, Object.keys(udpMiddlewares))}`,
        );
      }
    });
  }

  const middlewares = file.tcp?.middlewares ?? {};
  for (const [name, router] of Object.entries(file.tcp?.routers ?? {})) {
    (router.middlewares ?? []).forEach((mw, i) => {
      if (!middlewares[mw]) {
        error(
          ["tcp", "routers", name, "middlewares", i],
          `tcp middleware "${mw}" is not defined${suggest(mw, Object.keys(middlewares))}`,
        );
      }
    });
  }
  for (const [name, mw] of Object.entries(middlewares)) {
    if (mw.ipWhiteList) {
      note(
        ["tcp", "middlewares", name, "ipWhiteList"],
        "traefik's older name, accepted as ipAllowList; traefik v3 calls it ipAllowList",
      );
    }
  }

  const transports = file.tcp?.serversTransports ?? {};
  for (const [name, service] of Object.entries(file.tcp?.services ?? {})) {
    const lb = service.loadBalancer;
    if (!lb) continue;
    if (lb.serversTransport && !transports[lb.serversTransport]) {
      error(
        ["tcp", "services", name, "loadBalancer", "serversTransport"],
        `serversTransport "${lb.serversTransport}" is not defined${
          suggest(lb.serversTransport, Object.keys(transports))
        }`,
      );
    }
    if (lb.terminationDelay !== undefined) {
      note(
        ["tcp", "services", name, "loadBalancer", "terminationDelay"],
        "traefik v2 form (milliseconds), accepted; v3 puts it in serversTransports, and this one wins",
      );
    }
    if (lb.proxyProtocol !== undefined) {
      note(
        ["tcp", "services", name, "loadBalancer", "proxyProtocol"],
        "traefik v2 form, accepted; v3 puts it in serversTransports, and this one wins",
      );
    }
  }
  // The rules are most of the work with many routers: a step of their own.
  yield;
  yield* checkRules(file, epOf("tcp"), error, note);
  const admin = file.metrics;
  if (admin && !admin.token && !admin.tokenFile && !isLoopback(admin.address.hostname)) {
    note(
      ["metrics", "address"],
      `the admin listener on ${admin.address.text} answers anyone who can reach it (the API lists every client): set token or tokenFile, or listen on 127.0.0.1`,
    );
  }
}

/** What the TLS settings name exists and fits together. */
export function checkTls(file: ParsedFile, error: Report, options: LoadOptions): void {
  const tlsOptions = file.tls?.options ?? {};
  const resolvers = file.certificatesResolvers ?? {};
  for (const [name, router] of Object.entries(file.tcp?.routers ?? {})) {
    const t = router.tls;
    if (!t) continue;
    const path = ["tcp", "routers", name, "tls"];
    if (t.options && t.options !== "default" && !tlsOptions[t.options]) {
      error(
        [...path, "options"],
        `tls options "${t.options}" are not defined${suggest(t.options, Object.keys(tlsOptions))}`,
      );
    }
    if (t.certResolver && !resolvers[t.certResolver]) {
      error(
        [...path, "certResolver"],
        `certificate resolver "${t.certResolver}" is not defined${
          suggest(t.certResolver, Object.keys(resolvers))
        }`,
      );
    }
    if (t.certResolver && !t.domains?.length) {
      let hosts: string[] | undefined;
      try {
        hosts = literalHosts(ruleOf(router.rule, router.ruleSyntax));
      } catch {
        hosts = undefined; // the rule's own error is reported by checkRules
      }
      if (!hosts?.some((h) => h !== "*")) {
        error(
          [...path, "certResolver"],
          "a certificate resolver needs names: give tls.domains, or plain host names in HostSNI",
        );
      }
    }
  }
  for (const [name, o] of Object.entries(tlsOptions)) {
    (o.cipherSuites ?? []).forEach((suite, i) => {
      if (!CIPHER_SUITES[suite]) {
        error(
          ["tls", "options", name, "cipherSuites", i],
          `unknown cipher suite "${suite}"${suggest(suite, Object.keys(CIPHER_SUITES))}`,
        );
      }
    });
  }
  (file.tls?.certificates ?? []).forEach((c, i) => {
    c.stores?.forEach((s, j) => {
      if (s !== "default") {
        error(["tls", "certificates", i, "stores", j], `only the default store exists, not "${s}"`);
      }
    });
  });
  for (const name of Object.keys(file.tls?.stores ?? {})) {
    if (name !== "default") error(["tls", "stores", name], `only the default store exists`);
  }
  const entryPoints = file.entryPoints ?? {};
  for (const [name, r] of Object.entries(resolvers)) {
    const path = ["certificatesResolvers", name, "acme"];
    const a = r.acme;
    if (!a.tlsChallenge === !a.httpChallenge) {
      error(path, "an ACME resolver needs one challenge: tlsChallenge or httpChallenge");
    }
    if (a.tlsChallenge && options.tlsAlpnChallenge === false) {
      error(
        [...path, "tlsChallenge"],
        "this runtime cannot answer TLS-ALPN-01 (Deno's TLS refuses the challenge certificate's critical acmeIdentifier extension); use httpChallenge, or run l4p on Bun",
      );
    }
    const ep = a.httpChallenge?.entryPoint;
    if (ep !== undefined) {
      if (!entryPoints[ep]) {
        error(
          [...path, "httpChallenge", "entryPoint"],
          `entrypoint "${ep}" is not defined${suggest(ep, Object.keys(entryPoints))}`,
        );
      } else if (entryPoints[ep].address.protocol !== "tcp") {
        error(
          [...path, "httpChallenge", "entryPoint"],
          `entrypoint "${ep}" is not a tcp entrypoint`,
        );
      }
    }
  }
}

/**
 * Every rule parses; routers that tie (one priority, and could take the same connection) are
 * accepted, ordered by name as traefik orders them somehow, and noted; rules beyond traefik v3's
 * syntax are noted.
 */
/** Routers looked at for ties between two pauses. */
const TIE_SLICE = 20_000;

function* checkRules(
  file: ParsedFile,
  tcpEntryPoints: string[],
  error: Report,
  note: Report,
): Generator<void> {
  const parsed = new Map<string, Rule>();
  for (const [name, router] of Object.entries(file.tcp?.routers ?? {})) {
    try {
      const rule = ruleOf(router.rule, router.ruleSyntax);
      parsed.set(name, rule);
      const never = neverMatches(rule);
      if (never) note(["tcp", "routers", name, "rule"], `this rule can never match: ${never}`);
      if (hasSeveralArguments(rule) && router.ruleSyntax !== "v2") {
        note(
          ["tcp", "routers", name, "rule"],
          "a matcher with several arguments is traefik v2's syntax (v3 takes one, joined by ||); l4p reads both",
        );
      }
    } catch (e) {
      if (!(e instanceof RuleError)) throw e;
      error(["tcp", "routers", name, "rule"], `bad rule: ${e.message}`);
    }
  }
  // Parsing the rules, then finding the ties: a step each.
  yield;
  const byEntryPoint = new Map<string, string[]>();
  for (const [name, router] of Object.entries(file.tcp?.routers ?? {})) {
    if (!parsed.has(name)) continue;
    for (const ep of router.entryPoints ?? tcpEntryPoints) {
      const list = byEntryPoint.get(ep);
      if (list) list.push(name);
      else byEntryPoint.set(ep, [name]);
    }
  }
  const routers = file.tcp?.routers ?? {};
  const priority = (n: string) => priorityOf(routers[n]);
  // Names as the router's index keys them: plain ones, and the domain of `*.domain` ones (which
  // take one label more).
  const hosts = new Map<string, ReturnType<typeof hostKeys>>();
  for (const [name, rule] of parsed) hosts.set(name, hostKeys(rule));
  yield;
  const reported = new Set<string>();
  for (const [ep, names] of byEntryPoint) {
    // Only routers of one priority can tie. Two whose rules name hosts tie only when a name of
    // one can be a name of the other, so those are found through indexes of names (2 000
    // routers on one entrypoint, a fleet's, would be 2 million pairs; 100 000 of a hosting
    // provider's, 5 billion); the rest tie with every router before.
    const groups = new Map<number, string[]>();
    for (const n of names) {
      const g = groups.get(priority(n));
      if (g) g.push(n);
      else groups.set(priority(n), [n]);
    }
    for (const group of groups.values()) {
      const exact = new Map<string, number>(); // a plain name: the first router with it
      const under = new Map<string, number>(); // a plain name's domain: the first such router
      const wild = new Map<string, number>(); // a wildcard's domain: the first router with it
      let firstOther = Infinity;
      const domainOf = (h: string) => h.slice(h.indexOf(".") + 1);
      for (let i = 0; i < group.length; i++) {
        // 100 000 routers of one priority take this loop hundreds of ms: in slices.
        if (i > 0 && i % TIE_SLICE === 0) yield;
        const b = group[i];
        const k = hosts.get(b);
        let a = k ? firstOther : i > 0 ? 0 : Infinity;
        const meet = (at: number | undefined) => {
          if (at !== undefined && at < a) a = at;
        };
        for (const h of k?.exact ?? []) {
          meet(exact.get(h.toLowerCase()));
          if (h.includes(".")) meet(wild.get(domainOf(h.toLowerCase())));
        }
        for (const d of k?.wildcard ?? []) {
          meet(wild.get(d.toLowerCase()));
          meet(under.get(d.toLowerCase()));
        }
        if (a !== Infinity && !reported.has(b)) {
          reported.add(b);
          const first = [group[a], b].sort()[0];
          note(
            ["tcp", "routers", b, routers[b].priority === undefined ? "rule" : "priority"],
            `routers "${group[a]}" and "${b}" on entrypoint "${ep}" have the same priority (${
              priority(b)
            }) and could match the same connection: "${first}" is tried first (by name); set priority to choose`,
          );
        }
        if (!k) firstOther = Math.min(firstOther, i);
        for (const h of k?.exact ?? []) {
          const n = h.toLowerCase();
          if (!exact.has(n)) exact.set(n, i);
          if (n.includes(".") && !under.has(domainOf(n))) under.set(domainOf(n), i);
        }
        for (const d of k?.wildcard ?? []) {
          if (!wild.has(d.toLowerCase())) wild.set(d.toLowerCase(), i);
        }
      }
    }
  }
}

function suggest(name: string, known: string[]): string {
  const hint = didYouMean(name, known);
  return hint ? `; did you mean "${hint}"?` : "";
}

function isWildcard(hostname: string): boolean {
  return hostname === "0.0.0.0" || hostname === "::";
}

function findCycle(
  services: Record<string, { weighted?: { services: { name: string }[] } }>,
): string[] | undefined {
  const state = new Map<string, "visiting" | "done">();
  const visit = (name: string, path: string[]): string[] | undefined => {
    if (state.get(name) === "visiting") return [...path.slice(path.indexOf(name)), name];
    if (state.get(name) === "done" || !services[name]) return undefined;
    state.set(name, "visiting");
    for (const child of services[name].weighted?.services ?? []) {
      const found = visit(child.name, [...path, name]);
      if (found) return found;
    }
    state.set(name, "done");
    return undefined;
  };
  for (const name of Object.keys(services)) {
    const found = visit(name, []);
    if (found) return found;
  }
  return undefined;
}
