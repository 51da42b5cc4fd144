/**
 * Reads a configuration file (YAML or TOML) into a {@link Config}, or into a list of problems,
 * each located by file, line, column and key path.
 */
import { readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { z } from "zod";
import type { Config } from "./model.ts";
import {
  checkRuntime,
  checkTls,
  crossCheck,
  issueProblems,
  type LoadOptions,
  type Report,
  schemaOnce,
} from "./check.ts";
import { itemOf, mergeParts, removeAt } from "./merge.ts";
import { toModel } from "./to_model.ts";
import {
  type Document,
  type OffThreadRead,
  type Path,
  type Position,
  readDocument,
  readDocumentOffThread,
  ReadError,
} from "./readers.ts";
import { type ConfigPart, formatPath, problemIn } from "./parts.ts";
import {
  ConfigError,
  type ConfigProblem,
  didYouMean,
  formatProblem,
  sortProblems,
} from "./problems.ts";

export { ConfigError, type ConfigProblem, didYouMean, formatProblem };
export type { LoadOptions };
import { fileSchema, largeSections } from "./schema.ts";
import { canonicalKeys, fromTraefikDynamic, fromTraefikStatic } from "./traefik.ts";
import { readTlsFiles, type TlsMaterial } from "./tls_files.ts";

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
 * (2 000 routers and services: 25–50 ms) then holds the loop for one step at a time. A large
 * YAML text is read on a worker thread (`observe` hears how).
 */
export async function parseConfigInSteps(
  text: string,
  file: string,
  options: LoadOptions,
  parts: readonly ConfigPart[],
  pause: () => Promise<void>,
  observe?: (read: OffThreadRead) => void,
): Promise<LoadedConfig> {
  let doc: Document;
  try {
    doc = await readDocumentOffThread(text, file, observe);
  } catch (error) {
    throw readFailure(error, file);
  }
  await pause();
  const steps = parseSteps(text, file, options, parts, doc);
  let loaded: LoadedConfig | undefined;
  let failure: unknown;
  try {
    for (;;) {
      const step = steps.next();
      if (step.done) {
        loaded = step.value;
        break;
      }
      await pause();
    }
  } catch (error) {
    failure = error;
  }
  // Documents read on a worker answered `locate` with stand-ins: the real places now.
  const places = new Map<string, Position[]>();
  for (const d of [doc, ...parts.map((p) => p.document)]) {
    if (d?.places) places.set(d.file, await d.places());
  }
  const placed = (p: ConfigProblem) => {
    const at = p.line < 0 ? places.get(p.file)?.[-p.line - 1] : undefined;
    if (at) Object.assign(p, at);
    return p;
  };
  if (failure !== undefined) {
    if (failure instanceof ConfigError && places.size) {
      throw new ConfigError(sortProblems(failure.problems.map(placed)));
    }
    throw failure;
  }
  if (places.size) {
    loaded!.notes.forEach(placed);
    for (const l of loaded!.leftOut) l.problems.forEach(placed);
    loaded!.config.leftOut = loaded!.leftOut.map((l) => ({
      item: l.item,
      errors: l.problems.map(formatProblem),
    }));
  }
  return loaded!;
}

/** Items of a large section checked between two pauses. */
const SHAPE_SLICE = 20_000;

/**
 * The schema's verdict on `data`, a large section (tcp or udp routers or services, over
 * {@link SHAPE_SLICE} items) checked a slice at a time: 100 000 routers at once hold the event
 * loop for about 200 ms. The same verdict as one `fileSchema.safeParse`, problems at the same
 * paths.
 */
function* shapesOf(
  data: Record<string, unknown>,
): Generator<void, ReturnType<typeof fileSchema.safeParse>> {
  const isTree = (v: unknown): v is Record<string, unknown> =>
    !!v && typeof v === "object" && !Array.isArray(v);
  const large: [
    Record<string, unknown>,
    "tcp" | "udp",
    "routers" | "services",
    Record<string, unknown>,
  ][] = [];
  for (const section of ["tcp", "udp"] as const) {
    const s = data[section];
    if (!isTree(s)) continue;
    for (const kind of ["routers", "services"] as const) {
      const items = s[kind];
      if (isTree(items) && Object.keys(items).length > SHAPE_SLICE) {
        large.push([s, section, kind, items]);
        s[kind] = {};
      }
    }
  }
  let whole: ReturnType<typeof fileSchema.safeParse>;
  try {
    whole = fileSchema.safeParse(data, { reportInput: true });
  } finally {
    for (const [s, , kind, items] of large) s[kind] = items;
  }
  if (large.length === 0) return whole;
  const issues = whole.success ? [] : [...whole.error.issues];
  for (const [, section, kind, items] of large) {
    const checked: Record<string, unknown> = {};
    const entries = Object.entries(items);
    for (let i = 0; i < entries.length; i += SHAPE_SLICE) {
      yield;
      const slice = Object.fromEntries(entries.slice(i, i + SHAPE_SLICE));
      const r = largeSections[section][kind].safeParse(slice, { reportInput: true });
      if (r.success) {
        Object.assign(checked, r.data);
      } else {
        for (const issue of r.error.issues) {
          issues.push({ ...issue, path: [section, kind, ...issue.path] });
        }
      }
    }
    if (whole.success) (whole.data[section] as Record<string, unknown>)[kind] = checked;
  }
  return issues.length
    ? { success: false, error: new z.ZodError(issues) } as ReturnType<typeof fileSchema.safeParse>
    : whole;
}

/** A text that does not read, as the configuration's one problem. */
function readFailure(error: unknown, file: string): unknown {
  if (!(error instanceof ReadError)) return error;
  return new ConfigError([{ file, ...error.position, path: "", message: error.detail }]);
}

/** The work of {@link parseConfig}, as steps: each `yield` is a place where it may pause. */
function* parseSteps(
  text: string,
  file: string,
  options: LoadOptions,
  parts: readonly ConfigPart[],
  read?: Document,
): Generator<void, LoadedConfig> {
  let doc: Document;
  if (read === undefined) {
    try {
      doc = readDocument(text, file);
    } catch (error) {
      throw readFailure(error, file);
    }
    // Reading a large document is the longest step: what follows is one of its own.
    yield;
  } else {
    doc = read;
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
  // Shaping a store's 100 000 routers, merging them and matching their keys: a step each.
  if (readable.length) yield;
  const merged = mergeParts(data, readable);
  if (readable.length) yield;
  canonicalKeys(data, schemaOnce());
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
    // A reload checks large sections in slices; `l4p check` and a start, at once.
    const result = read === undefined
      ? fileSchema.safeParse(data, { reportInput: true })
      : yield* shapesOf(data);
    let material: TlsMaterial | undefined;
    const roundNotes: ConfigProblem[] = [];
    yield;
    if (!result.success) {
      for (const issue of result.error.issues) {
        for (const p of issueProblems(issue, problem)) report(issue.path as Path, p);
      }
    } else {
      yield;
      const error: Report = (path, message) => report(path, problem(path, message));
      const note: Report = (path, message) => roundNotes.push(problem(path, message));
      yield* crossCheck(result.data, error, note);
      yield;
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
      for (const [item, part] of merged.origins) config.origins[item] = part.provider;
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
