/**
 * Reads a configuration file (YAML or TOML) into a {@link Config}, or into a list of problems,
 * each located by file, line, column and key path.
 */
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import type { z } from "zod";
import { formatAddr, isLoopback } from "./address.ts";
import { toHex } from "../health/probe.ts";
import {
  type Config,
  DEFAULTS,
  emptyConfig,
  type HealthCheckConfig,
  type ServerConfig,
} from "./model.ts";
import { type Document, type Path, readDocument, ReadError } from "./readers.ts";
import { type ConfigPart, formatPath, problemIn } from "./parts.ts";
import {
  ConfigError,
  type ConfigProblem,
  didYouMean,
  formatProblem,
  sortProblems,
} from "./problems.ts";

export { ConfigError, type ConfigProblem, didYouMean, formatProblem };
import { fileSchema, jsonSchema, type ParsedFile } from "./schema.ts";
import { canonicalKeys, fromTraefikDynamic, fromTraefikStatic } from "./traefik.ts";
import { readTlsFiles, type TlsMaterial } from "./tls_files.ts";
import { CIPHER_SUITES } from "../tls/options.ts";
import { hasSeveralArguments, literalHosts, type Rule, RuleError } from "../tcp/rule.ts";
import { priorityOf, ruleOf } from "../tcp/router_order.ts";

/** A valid configuration, with remarks that are not errors (traefik v2 forms, say). */
export interface LoadedConfig {
  config: Config;
  notes: ConfigProblem[];
  /** The text it was read from. */
  text: string;
  /**
   * Dynamic items (routers, services, middlewares, transports, TLS options and certificates, or
   * a whole dynamic file) left out with their problems, as traefik leaves them out: the rest is
   * served. Empty unless parsed with `isolate`.
   */
  leftOut: LeftOut[];
}

/** One dynamic item left out of the configuration, and why. */
export interface LeftOut {
  /** `tcp.routers.NAME`, `tls.certificates[2]`, or a file for a file that does not read. */
  item: string;
  problems: ConfigProblem[];
}

/** Reads and validates `file` alone; throws {@link ConfigError} listing every problem. */
export async function loadConfigFile(
  file: string,
  options: LoadOptions = {},
): Promise<LoadedConfig> {
  return parseConfig(await readConfigText(file), file, options);
}

/** The text of configuration `file`; a {@link ConfigError} (no position) when it cannot be read. */
export async function readConfigText(file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    const code = (error as { code?: string }).code;
    const why = code === "ENOENT" ? "no such file" : (error as Error).message;
    throw new ConfigError([{ file, line: 0, column: 0, path: "", message: `cannot read: ${why}` }]);
  }
}

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

/**
 * Validates configuration `text` (YAML) read from `file`; files it names (certificates) are
 * read relative to `file`'s folder.
 */
export function parseConfig(
  text: string,
  file: string,
  options: LoadOptions = {},
  /** Parts from the providers (files, etcd, Redis), merged with the file's before validation. */
  parts: readonly ConfigPart[] = [],
): LoadedConfig {
  const steps = parseSteps(text, file, options, parts);
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

/**
 * {@link parseConfig}, letting the event loop run (`pause`) between its steps (reading, checking
 * the shapes, checking across sections, building the model): a reload of a large configuration
 * (2 000 routers and services: 25–50 ms) then holds the loop for one step at a time.
 */
export async function parseConfigInSteps(
  text: string,
  file: string,
  options: LoadOptions,
  parts: readonly ConfigPart[],
  pause: () => Promise<void>,
): Promise<LoadedConfig> {
  const steps = parseSteps(text, file, options, parts);
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
    await pause();
  }
}

/** The work of {@link parseConfig}, as steps: each `yield` is a place where it may pause. */
function* parseSteps(
  text: string,
  file: string,
  options: LoadOptions,
  parts: readonly ConfigPart[],
): Generator<void, LoadedConfig> {
  let doc: Document;
  try {
    doc = readDocument(text, file);
  } catch (error) {
    if (!(error instanceof ReadError)) throw error;
    throw new ConfigError([{ file, ...error.position, path: "", message: error.detail }]);
  }
  const data = doc.data;
  // traefik's shape to l4p's: what is mapped or set aside is said, at the key that says it.
  const notes: ConfigProblem[] = [];
  fromTraefikStatic(
    data,
    (path, message) => notes.push({ file, ...doc.locate(path), path: formatPath(path), message }),
  );
  const leftOut: LeftOut[] = [];
  const readable: ConfigPart[] = [];
  for (const part of parts) {
    if (part.unreadable) {
      leftOut.push({ item: part.unreadable.file, problems: [part.unreadable] });
      continue;
    }
    // A part's tree is brought to shape in place: the same each time, so a part read once and
    // merged at every reload is shaped once in effect.
    fromTraefikDynamic(part.tree, (path, message) => notes.push(problemIn(part, path, message)));
    readable.push(part);
  }
  const merged = mergeParts(data, readable);
  canonicalKeys(data, schemaCache ??= jsonSchema());
  /** Indices removed from lists (left-out certificates), so later problems find their place. */
  const removed = new Map<string, number[]>();
  const original = (path: Path): Path => {
    const gone = removed.get(path.slice(0, 2).join("."));
    if (!gone || typeof path[2] !== "number") return path;
    let i = path[2];
    for (const r of gone) if (r <= i) i++;
    return [path[0], path[1], i, ...path.slice(3)];
  };
  const problem = (at: Path, message: string, key?: string): ConfigProblem => {
    const path = original(at);
    const full = key === undefined ? path : [...path, key];
    const from = merged.origins.get(full.slice(0, 3).join("."));
    if (from) return problemIn(from, full, message);
    return { file, ...doc.locate(path, key), path: formatPath(full), message };
  };
  for (const c of merged.conflicts) {
    // The name stays the first source's (the file's before a store's): the other is left out.
    leftOut.push({
      item: `${formatPath(c.path)} from ${c.part.provider}`,
      problems: [
        problem(
          c.path,
          `also defined in ${c.part.provider} at ${c.part.root ?? c.part.document?.file}/${
            c.path.join("/")
          }`,
        ),
      ],
    });
  }
  yield;

  // Each round checks what is left; a dynamic item with a problem is taken out, and the next
  // round finds what depended on it. Static problems end it: the static part is all or nothing.
  // A refusal (check, or a static problem) names each cause once, not what follows from it.
  const consequences = new WeakSet<ConfigProblem>();
  const causes = (all: ConfigProblem[]) => sortProblems(all.filter((p) => !consequences.has(p)));
  for (let round = 0;; round++) {
    const problems: ConfigProblem[] = [];
    const paths: Path[] = [];
    const report = (path: Path, p: ConfigProblem) => {
      problems.push(p);
      paths.push(path);
    };
    const result = fileSchema.safeParse(data, { reportInput: true });
    let material: TlsMaterial | undefined;
    const roundNotes: ConfigProblem[] = [];
    if (!result.success) {
      for (const issue of result.error.issues) {
        for (const p of issueProblems(issue, problem)) report(issue.path as Path, p);
      }
    } else {
      yield;
      const error: Report = (path, message) => report(path, problem(path, message));
      const note: Report = (path, message) => roundNotes.push(problem(path, message));
      crossCheck(result.data, error, note);
      checkTls(result.data, error, options);
      checkRuntime(result.data, error, options);
      material = readTlsFiles(result.data, dirname(file), error, note);
    }
    // A reference to an item left out in an earlier round says so, not "not defined".
    const gone = new Set(leftOut.map((l) => l.item));
    const leftOutRefs = (p: ConfigProblem): ConfigProblem => {
      const m = p.message.match(/^(tcp|udp) (service|middleware) "([^"]+)" is not defined/);
      const kind = m && `${m[1]}.${m[2]}s.${m[3]}`;
      if (!kind || !gone.has(kind)) return p;
      const follows = {
        ...p,
        message: `${m![1]} ${m![2]} "${m![3]}" is left out for its own problem`,
      };
      consequences.add(follows);
      return follows;
    };
    const items = paths.map(itemOf);
    const fatal = problems.filter((_, i) => !items[i]);
    if (problems.length === 0) {
      notes.push(...roundNotes);
      if (leftOut.length && !options.isolate) {
        throw new ConfigError(causes(leftOut.flatMap((l) => l.problems)));
      }
      yield;
      const config = toModel(result.data!, material!, dirname(file));
      config.leftOut = leftOut.map((l) => ({
        item: l.item,
        errors: l.problems.map(formatProblem),
      }));
      return { config, notes, text, leftOut };
    }
    if (fatal.length || round > MAX_ROUNDS) {
      throw new ConfigError(
        causes([...leftOut.flatMap((l) => l.problems), ...problems.map(leftOutRefs)]),
      );
    }
    // Take each item with a problem out; lists from the back, so indices stay right.
    const byItem = new Map<string, { path: Path; problems: ConfigProblem[] }>();
    items.forEach((item, i) => {
      const key = JSON.stringify(item);
      const entry = byItem.get(key) ?? byItem.set(key, { path: item!, problems: [] }).get(key)!;
      entry.problems.push(problems[i]);
    });
    const entries = [...byItem.values()].sort((a, b) =>
      typeof b.path[2] === "number" && typeof a.path[2] === "number" ? b.path[2] - a.path[2] : 0
    );
    for (const { path, problems } of entries) {
      leftOut.push({ item: formatPath(original(path)), problems: problems.map(leftOutRefs) });
      removeAt(data, path, removed);
    }
    yield;
  }
}

/** Rounds of taking items out before giving up (each round follows one more dependency). */
const MAX_ROUNDS = 16;

/** Sections whose items are dynamic: left out one by one, the rest served. */
const DYNAMIC = new Set(["tcp", "udp", "tls"]);

/**
 * The dynamic item a problem at `path` belongs to (`[tcp, routers, NAME]`, `[tls, certificates,
 * 2]`, a key of a dynamic section), or undefined for a static problem.
 */
function itemOf(path: Path): Path | undefined {
  if (!DYNAMIC.has(String(path[0]))) return undefined;
  return path.slice(0, Math.min(path.length, 3));
}

/** Takes the item at `path` out of `data`, recording removed list indices in `removed`. */
function removeAt(data: Record<string, unknown>, path: Path, removed: Map<string, number[]>): void {
  if (path.length === 0) return;
  let parent: unknown = data;
  for (const seg of path.slice(0, -1)) {
    parent = (parent as Record<string | number, unknown> | undefined)?.[seg];
  }
  const last = path[path.length - 1];
  if (Array.isArray(parent) && typeof last === "number") {
    parent.splice(last, 1);
    const key = path.slice(0, -1).join(".");
    const gone = removed.get(key) ?? [];
    // Indices as the original list had them, in order.
    let i = last;
    for (const r of gone) if (r <= i) i++;
    gone.push(i);
    gone.sort((a, b) => a - b);
    removed.set(key, gone);
  } else if (parent && typeof parent === "object") {
    delete (parent as Record<string, unknown>)[String(last)];
  }
}

/** Problems of what this runtime cannot do. */
function checkRuntime(file: ParsedFile, error: Report, options: LoadOptions): void {
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
 * Adds store parts to the file's data, name by name (routers, services, …; certificates are
 * appended), as traefik merges providers; a name both define is a conflict. Returns where each
 * added name came from.
 */
function mergeParts(
  data: Record<string, unknown>,
  parts: readonly ConfigPart[],
): {
  origins: Map<string, ConfigPart>;
  conflicts: { path: Path; part: ConfigPart }[];
} {
  const origins = new Map<string, ConfigPart>();
  const conflicts: { path: Path; part: ConfigPart }[] = [];
  const obj = (
    v: unknown,
  ) => (v && typeof v === "object" && !Array.isArray(v) ? v as Record<string, unknown> : undefined);
  for (const part of parts) {
    for (const [section, kinds] of Object.entries(part.tree)) {
      const into = obj(data[section]) ?? (data[section] = {}) as Record<string, unknown>;
      for (const [kind, named] of Object.entries(obj(kinds) ?? {})) {
        if (Array.isArray(named)) {
          const list = Array.isArray(into[kind]) ? into[kind] as unknown[] : (into[kind] = []);
          for (const item of named) {
            origins.set([section, kind, list.length].join("."), part);
            (list as unknown[]).push(item);
          }
          continue;
        }
        const target = obj(into[kind]) ?? (into[kind] = {}) as Record<string, unknown>;
        for (const [name, value] of Object.entries(obj(named) ?? {})) {
          if (name in target) conflicts.push({ path: [section, kind, name], part });
          else {
            target[name] = value;
            origins.set([section, kind, name].join("."), part);
          }
        }
      }
    }
  }
  return { origins, conflicts };
}

function issueProblems(
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

/** The keys the schema allows at `path`, read from the JSON Schema so the two cannot drift. */
function knownKeys(path: Path): string[] {
  // deno-lint-ignore no-explicit-any
  let node: any = schemaCache ??= jsonSchema();
  for (const seg of path) {
    if (!node) return [];
    if (typeof seg === "number") node = node.items;
    else node = node.properties?.[seg] ?? node.additionalProperties;
  }
  return Object.keys(node?.properties ?? {});
}

type Report = (path: Path, message: string) => void;

/**
 * The entrypoints a router that names none listens on: those marked `asDefault`, or every one
 * of its protocol when none is (traefik's rule).
 */
function defaultEntryPoints(file: ParsedFile, protocol: "tcp" | "udp"): string[] {
  const all = Object.entries(file.entryPoints ?? {})
    .filter(([, ep]) => ep.address.protocol === protocol);
  const marked = all.filter(([, ep]) => ep.asDefault);
  return (marked.length ? marked : all).map(([name]) => name);
}

/** Checks what the schema cannot: references, cycles, addresses shared by entrypoints. */
function crossCheck(file: ParsedFile, error: Report, note: Report): void {
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

  const udpRouterOf = new Map<string, string>();
  for (const [name, router] of Object.entries(file.udp?.routers ?? {})) {
    const eps = router.entryPoints ?? epOf("udp");
    eps.forEach((ep, i) => {
      const other = udpRouterOf.get(ep);
      if (other) {
        error(
          router.entryPoints
            ? ["udp", "routers", name, "entryPoints", i]
            : ["udp", "routers", name],
          `entrypoint "${ep}" already has UDP router "${other}"; a UDP entrypoint takes one router`,
        );
      }
      udpRouterOf.set(ep, name);
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
  checkRules(file, epOf("tcp"), error, note);
  const admin = file.metrics;
  if (admin && !admin.token && !admin.tokenFile && !isLoopback(admin.address.hostname)) {
    note(
      ["metrics", "address"],
      `the admin listener on ${admin.address.text} answers anyone who can reach it (the API lists every client): set token or tokenFile, or listen on 127.0.0.1`,
    );
  }
}

/** What the TLS settings name exists and fits together. */
function checkTls(file: ParsedFile, error: Report, options: LoadOptions): void {
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
function checkRules(
  file: ParsedFile,
  tcpEntryPoints: string[],
  error: Report,
  note: Report,
): void {
  const parsed = new Map<string, Rule>();
  for (const [name, router] of Object.entries(file.tcp?.routers ?? {})) {
    try {
      const rule = ruleOf(router.rule, router.ruleSyntax);
      parsed.set(name, rule);
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
  const hosts = new Map<string, string[] | undefined>();
  for (const [name, rule] of parsed) hosts.set(name, literalHosts(rule));
  const reported = new Set<string>();
  for (const [ep, names] of byEntryPoint) {
    // Only routers of one priority can tie. Two whose rules name plain hosts tie only when they
    // share one, so those are found through an index of host names (2 000 routers on one
    // entrypoint, a fleet's, would be 2 million pairs); the rest tie with every router before.
    const groups = new Map<number, string[]>();
    for (const n of names) {
      const g = groups.get(priority(n));
      if (g) g.push(n);
      else groups.set(priority(n), [n]);
    }
    for (const group of groups.values()) {
      const firstWithHost = new Map<string, number>();
      let firstOther = Infinity;
      group.forEach((b, i) => {
        const hb = hosts.get(b);
        let a = hb ? firstOther : i > 0 ? 0 : Infinity;
        for (const h of hb ?? []) a = Math.min(a, firstWithHost.get(h) ?? Infinity);
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
        if (!hb) firstOther = Math.min(firstOther, i);
        for (const h of hb ?? []) if (!firstWithHost.has(h)) firstWithHost.set(h, i);
      });
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

type HealthCheckInput = NonNullable<
  NonNullable<NonNullable<ParsedFile["tcp"]>["services"]>[string]["loadBalancer"]
>["healthCheck"];

/** A health check with its defaults, its bytes as hex. */
function healthCheckOf(h: HealthCheckInput): HealthCheckConfig | undefined {
  if (!h) return undefined;
  const hexOf = (text: string | undefined, hex: string | undefined) =>
    hex?.toLowerCase() ?? (text === undefined ? undefined : toHex(new TextEncoder().encode(text)));
  return {
    interval: h.interval,
    unhealthyInterval: h.unhealthyInterval ?? h.interval,
    timeout: h.timeout ?? DEFAULTS.healthCheckTimeout,
    send: hexOf(h.send, h.sendHex),
    expect: hexOf(h.expect, h.expectHex),
    port: h.port,
    failsThreshold: h.failsThreshold ?? DEFAULTS.failsThreshold,
    passesThreshold: h.passesThreshold ?? DEFAULTS.passesThreshold,
  };
}

/** traefik's keep-alive reading: absent or zero is the default, negative is off (as -1). */
function keepAliveOf(ms: number | undefined, fallback: number): number {
  return ms === undefined || ms === 0 ? fallback : ms < 0 ? -1 : ms;
}

/** Fills in defaults: the model l4p runs. */
function toModel(file: ParsedFile, tls: TlsMaterial, base: string): Config {
  const config = emptyConfig();
  const servers = (
    list: { address: ServerConfig["address"]; weight?: number; tls?: boolean }[],
  ) => list.map((s) => ({ address: s.address, weight: s.weight ?? 1, tls: s.tls || undefined }));
  const weightedOf = (w: { services: { name: string; weight?: number }[] }) => ({
    services: w.services.map((c) => ({ name: c.name, weight: c.weight ?? 1 })),
  });
  config.log = {
    level: file.log?.level,
    format: file.log?.format,
    filePath: file.log?.filePath && resolve(base, file.log.filePath),
  };
  if (file.metrics) {
    config.metrics = {
      address: file.metrics.address,
      token: file.metrics.token ?? tls.metricsToken,
      publicMetrics: file.metrics.publicMetrics ?? false,
      allowedHosts: (file.metrics.allowedHosts ?? []).map((h) => h.toLowerCase()),
    };
  }
  if (file.accessLog) {
    config.accessLog = {
      filePath: file.accessLog.filePath,
      format: file.accessLog.format ?? "json",
    };
  }
  for (const [name, ep] of Object.entries(file.entryPoints ?? {})) {
    config.entryPoints[name] = {
      address: ep.address.address,
      protocol: ep.address.protocol,
      reusePort: ep.reusePort ?? false,
      helloTimeout: ep.helloTimeout ?? DEFAULTS.helloTimeout,
      udp: {
        timeout: ep.udp?.timeout ?? DEFAULTS.udpTimeout,
        maxSessions: ep.udp?.maxSessions ?? DEFAULTS.udpMaxSessions,
        receiveBuffer: ep.udp?.receiveBuffer,
      },
      keepAlive: ep.keepAlive === undefined
        ? DEFAULTS.keepAlive
        : keepAliveOf(ep.keepAlive, 15_000),
      maxConnections: ep.maxConnections,
      proxyProtocol: ep.proxyProtocol && {
        trustedIPs: ep.proxyProtocol.trustedIPs ?? [],
        insecure: ep.proxyProtocol.insecure ?? false,
        headerTimeout: ep.proxyProtocol.headerTimeout ?? DEFAULTS.proxyProtocolHeaderTimeout,
      },
    };
  }
  const all = (protocol: "tcp" | "udp") => defaultEntryPoints(file, protocol);
  const transport = (name: string, t: NonNullable<ParsedFile["tcpServersTransport"]>) => ({
    dialTimeout: t.dialTimeout ?? DEFAULTS.dialTimeout,
    terminationDelay: t.terminationDelay ?? DEFAULTS.terminationDelay,
    proxyProtocol: t.proxyProtocol,
    dialKeepAlive: keepAliveOf(t.dialKeepAlive, DEFAULTS.dialKeepAlive),
    tls: t.tls && {
      serverName: t.tls.serverName,
      rootCAs: tls.transports[name]?.rootCAs ?? [],
      insecureSkipVerify: t.tls.insecureSkipVerify ?? false,
      certificate: tls.transports[name]?.certificate,
      peerCertURI: t.tls.peerCertURI,
    },
  });
  for (const [name, t] of Object.entries(file.tcp?.serversTransports ?? {})) {
    config.tcp.serversTransports[name] = transport(name, t);
  }
  if (file.tcpServersTransport) {
    config.tcp.defaultTransport = transport("", file.tcpServersTransport);
  }
  const pv = file.providers;
  config.providers.throttle = pv?.providersThrottleDuration;
  if (pv?.http) {
    config.providers.http = {
      endpoint: pv.http.endpoint,
      pollInterval: pv.http.pollInterval ?? 5000,
      pollTimeout: pv.http.pollTimeout ?? 5000,
      headers: pv.http.headers ?? {},
    };
  }
  if (pv?.etcd) {
    config.providers.etcd = {
      ...pv.etcd,
      rootKey: pv.etcd.rootKey ?? "l4p",
      tls: tls.stores.etcd,
    };
  }
  if (pv?.redis) {
    config.providers.redis = {
      ...pv.redis,
      rootKey: pv.redis.rootKey ?? "l4p",
      db: pv.redis.db ?? 0,
      tls: tls.stores.redis,
    };
  }
  config.tls.certificates = tls.certificates;
  config.tls.defaultCertificate = tls.defaultCertificate;
  for (const [name, o] of Object.entries(file.tls?.options ?? {})) {
    config.tls.options[name] = {
      minVersion: o.minVersion ?? "VersionTLS12",
      maxVersion: o.maxVersion,
      cipherSuites: o.cipherSuites,
      alpnProtocols: o.alpnProtocols ?? [],
      clientAuth: {
        cas: tls.clientCas[name] ?? [],
        clientAuthType: o.clientAuth?.clientAuthType ?? "NoClientCert",
      },
      sniStrict: o.sniStrict ?? false,
    };
  }
  for (const [name, r] of Object.entries(file.certificatesResolvers ?? {})) {
    config.certificatesResolvers[name] = {
      email: r.acme.email,
      storage: resolve(base, r.acme.storage),
      caServer: r.acme.caServer ?? "https://acme-v02.api.letsencrypt.org/directory",
      caCertificates: tls.acmeCas[name] ?? [],
      challenge: r.acme.tlsChallenge ? "tls-alpn-01" : "http-01",
      httpEntryPoint: r.acme.httpChallenge?.entryPoint,
      keyType: r.acme.keyType ?? "EC256",
    };
  }
  for (const [name, m] of Object.entries(file.tcp?.middlewares ?? {})) {
    const allow = m.ipAllowList ?? m.ipWhiteList;
    config.tcp.middlewares[name] = allow
      ? { ipAllowList: { sourceRange: allow.sourceRange } }
      : m.inFlightConn
      ? { inFlightConn: { amount: m.inFlightConn.amount } }
      : {
        connRateLimit: {
          average: m.connRateLimit!.average,
          period: m.connRateLimit!.period ?? DEFAULTS.rateLimitPeriod,
          burst: m.connRateLimit!.burst ?? DEFAULTS.rateLimitBurst,
        },
      };
  }
  for (const [name, s] of Object.entries(file.tcp?.services ?? {})) {
    config.tcp.services[name] = s.loadBalancer
      ? {
        loadBalancer: {
          servers: servers(s.loadBalancer.servers),
          strategy: s.loadBalancer.strategy ?? "wrr",
          healthCheck: healthCheckOf(s.loadBalancer.healthCheck),
          passiveHealthCheck: s.loadBalancer.passiveHealthCheck && {
            maxFailedAttempts: s.loadBalancer.passiveHealthCheck.maxFailedAttempts ??
              DEFAULTS.maxFailedAttempts,
            failureWindow: s.loadBalancer.passiveHealthCheck.failureWindow ??
              DEFAULTS.failureWindow,
          },
          serversTransport: s.loadBalancer.serversTransport,
          terminationDelay: s.loadBalancer.terminationDelay,
          proxyProtocol: s.loadBalancer.proxyProtocol,
        },
      }
      : { weighted: weightedOf(s.weighted!) };
  }
  for (const [name, r] of Object.entries(file.tcp?.routers ?? {})) {
    config.tcp.routers[name] = {
      entryPoints: r.entryPoints ?? all("tcp"),
      rule: r.rule,
      ruleSyntax: r.ruleSyntax,
      service: r.service,
      priority: r.priority,
      middlewares: r.middlewares ?? [],
      tls: r.tls && {
        passthrough: r.tls.passthrough ?? false,
        options: r.tls.options ?? "default",
        certResolver: r.tls.certResolver,
        domains: (r.tls.domains ?? []).map((d) => ({ main: d.main, sans: d.sans ?? [] })),
      },
    };
  }
  for (const [name, s] of Object.entries(file.udp?.services ?? {})) {
    config.udp.services[name] = s.loadBalancer
      ? {
        loadBalancer: {
          servers: servers(s.loadBalancer.servers),
          strategy: s.loadBalancer.strategy ?? "wrr",
          healthCheck: healthCheckOf(s.loadBalancer.healthCheck),
        },
      }
      : { weighted: weightedOf(s.weighted!) };
  }
  for (const [name, r] of Object.entries(file.udp?.routers ?? {})) {
    config.udp.routers[name] = { entryPoints: r.entryPoints ?? all("udp"), service: r.service };
  }
  return config;
}
