/**
 * Readers: configuration text (YAML or TOML, chosen by the file's extension, as traefik does) to
 * a tree, and a way back from a key path in that tree to where it is written. A syntax error is
 * a located {@link ReadError}, never a page of the file quoted back.
 */
import { CORE_SCHEMA, load as loadYaml } from "js-yaml";
import { parse as parseToml, TomlError } from "smol-toml";
import { URL as NodeURL } from "node:url";
import { Worker } from "node:worker_threads";
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from "yaml";

/** A key path: names and list indices. */
export type Path = (string | number)[];

/** A line and column, both from 1. */
export interface Position {
  line: number;
  column: number;
}

/** A configuration text read into a tree. */
export interface Document {
  file: string;
  format: "yaml" | "toml";
  data: Record<string, unknown>;
  /**
   * Where the value at `path` (or, given `key`, that key of it) is written; the nearest
   * ancestor's place when it is not. Keys match in any case, as traefik's decoder matches them.
   */
  locate(path: Path, key?: string): Position;
  /**
   * For a document read on a worker thread: `locate` answered stand-ins (`line` -N for the Nth
   * place asked), and this finds the real places, in the order asked.
   */
  places?(): Promise<Position[]>;
}

/** Text that is not valid YAML or TOML, at a place in it. */
export class ReadError extends Error {
  constructor(readonly file: string, readonly position: Position, readonly detail: string) {
    super(`${file}:${position.line}:${position.column}: ${detail}`);
    this.name = "ReadError";
  }
}

/** The format a file's name says: `.toml` is TOML, anything else YAML. */
export function formatOf(file: string): "yaml" | "toml" {
  return /\.toml$/i.test(file) ? "toml" : "yaml";
}

/** Reads `text` (from `file`) by its format; throws {@link ReadError}. */
export function readDocument(text: string, file: string): Document {
  return formatOf(file) === "toml" ? readToml(text, file) : readYaml(text, file);
}

/** How a large text was read: on a worker thread, or here after the worker failed (`error`). */
export interface OffThreadRead {
  file: string;
  worker: boolean;
  ms: number;
  error?: string;
}

/** From this size on, {@link readDocumentOffThread} reads YAML on a worker thread. */
export const OFF_THREAD_BYTES = 512 * 1024;

/**
 * {@link readDocument}, with a large YAML text read on a worker thread: reading 10 MB (100 000
 * routers) takes js-yaml about half a second, which on the main thread is half a second in which
 * no connection is accepted. The main thread then only takes the tree in (JSON.parse, about a
 * tenth of that). Positions are found on the worker too (`yaml` keeps them, at about 45 µs a
 * router, seconds for 100 000): the document's `locate` answers with a stand-in (`line` -N for
 * the Nth place asked) and {@link Document.places} then finds every place asked for at once. A
 * text that does not read is located on the worker too. Where a worker cannot start or the text
 * holds what JSON cannot carry (`.inf`, `.nan`), the text is read here as {@link readDocument}
 * reads it.
 */
export async function readDocumentOffThread(
  text: string,
  file: string,
  observe: (read: OffThreadRead) => void = () => {},
): Promise<Document> {
  if (formatOf(file) !== "yaml" || text.length < OFF_THREAD_BYTES) return readDocument(text, file);
  const started = Date.now();
  let answer: WorkerAnswer;
  try {
    answer = await onWorker({ text });
  } catch (error) {
    observe({ file, worker: false, ms: Date.now() - started, error: (error as Error).message });
    return readDocument(text, file);
  }
  // What JSON cannot carry (.inf, .nan), or what only `yaml` reads: read here, as ever.
  if (answer.here) return readDocument(text, file);
  observe({ file, worker: true, ms: Date.now() - started });
  if (answer.unreadable) {
    throw new ReadError(file, answer.unreadable.position, answer.unreadable.detail);
  }
  const asked: [Path, string | undefined][] = [];
  return {
    file,
    format: "yaml",
    data: asTree(JSON.parse(answer.json!)),
    locate(path, key) {
      asked.push([path, key]);
      return { line: -asked.length, column: 0 };
    },
    async places() {
      if (asked.length === 0) return [];
      try {
        return (await onWorker({ text, locate: asked })).places!;
      } catch {
        // No worker: found here, as readDocument would (the loop is held meanwhile).
        const here = readDocument(text, file);
        return asked.map(([path, key]) => here.locate(path, key));
      }
    },
  };
}

/** What the YAML worker is asked: to read `text`, or to find the places `locate` names in it. */
export interface WorkerQuestion {
  text: string;
  locate?: [Path, string | undefined][];
}

/** What the YAML worker answers (src/config/yaml_worker.ts). */
export interface WorkerAnswer {
  /** The tree, as JSON. */
  json?: string;
  /** The text does not read: where and why. */
  unreadable?: { position: Position; detail: string };
  /** The text holds what JSON cannot carry, or what only `yaml` reads: read it on the main thread. */
  here?: boolean;
  /** The places asked for, in order. */
  places?: Position[];
}

/**
 * Where the worker's module is: beside this one in the sources and in the npm package's bundle
 * (JavaScript there); in a Bun-compiled binary, under the path it was built from
 * (scripts/build.ts makes it an entrypoint). The first that answers is used from then on.
 */
const WORKER_MODULES: (() => string | NodeURL)[] = [
  () =>
    new NodeURL(
      import.meta.url.endsWith(".js") ? "./yaml_worker.js" : "./yaml_worker.ts",
      import.meta.url,
    ),
  () => "./src/config/yaml_worker.ts",
];
let workerModule: number | undefined;

/** The YAML worker's answer to `question`, from a worker started for it. */
async function onWorker(question: WorkerQuestion): Promise<WorkerAnswer> {
  let failure: unknown;
  for (const [i, where] of WORKER_MODULES.entries()) {
    if (workerModule !== undefined && workerModule !== i) continue;
    try {
      const answer = await ask(where(), question);
      workerModule = i;
      return answer;
    } catch (error) {
      failure = error;
    }
  }
  throw failure;
}

function ask(module: string | NodeURL, question: WorkerQuestion): Promise<WorkerAnswer> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(module);
    const done = (settle: () => void) => {
      worker.removeAllListeners();
      void worker.terminate();
      settle();
    };
    worker.once("message", (answer: WorkerAnswer) => done(() => resolve(answer)));
    worker.once("error", (e) => done(() => reject(e)));
    worker.once("exit", () => done(() => reject(new Error("the YAML worker ended"))));
    worker.postMessage(question);
  });
}

function asTree(value: unknown): Record<string, unknown> {
  return value && typeof value === "object" && !Array.isArray(value)
    ? value as Record<string, unknown>
    : {};
}

/**
 * YAML through two readers: js-yaml reads a valid file 10 to 20 times faster (a 2 000-router
 * file in 15-60 ms against 200-390 ms, time a reload holds the event loop), and `yaml` keeps
 * every node's position, for located problems. The second runs only when there is something to
 * locate.
 */
function readYaml(text: string, file: string): Document {
  const lineCounter = new LineCounter();
  let doc: ReturnType<typeof parseDocument> | undefined;
  const located = () =>
    // uniqueKeys off: `yaml` checks each key against every key before it in its map, which is
    // quadratic (100 000 routers: minutes); duplicates are found below, in linear time.
    doc ??= parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: false });
  const at = (offset: number): Position => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  let data: Record<string, unknown>;
  try {
    data = asTree(loadYaml(text, { schema: CORE_SCHEMA }));
  } catch {
    // js-yaml refuses some texts the YAML spec allows (an empty one): `yaml` decides.
    const first = located().errors[0];
    const twice = duplicateKey(located().contents as Node | null);
    if (twice !== undefined && (!first || twice < first.pos[0])) {
      throw new ReadError(file, at(twice), "YAML: Map keys must be unique");
    }
    if (first) throw new ReadError(file, at(first.pos[0]), `YAML: ${first.message.split("\n")[0]}`);
    data = asTree(located().toJS());
  }
  return {
    file,
    format: "yaml",
    data,
    locate: (path, key) => at(locateYaml(located().contents as Node | null, path, key)),
  };
}

/** The offset of the first key given twice in one mapping, if any (in linear time). */
function duplicateKey(root: Node | null): number | undefined {
  let found: number | undefined;
  const todo: unknown[] = [root];
  while (todo.length) {
    const node = todo.pop();
    if (isMap(node)) {
      const seen = new Set<string>();
      for (const pair of node.items) {
        if (isScalar(pair.key)) {
          const key = String(pair.key.value);
          const at = pair.key.range?.[0];
          if (seen.has(key) && at !== undefined && (found === undefined || at < found)) found = at;
          seen.add(key);
        }
        todo.push(pair.value);
      }
    } else if (isSeq(node)) {
      todo.push(...node.items);
    }
  }
  return found;
}

/** The offset of the YAML node at `path` (or of its key `key`), else of its nearest ancestor. */
function locateYaml(root: Node | null, path: Path, key?: string): number {
  const same = (a: unknown, b: string | number) =>
    String(a) === String(b) || String(a).toLowerCase() === String(b).toLowerCase();
  let node: Node | null = root;
  let offset = node?.range?.[0] ?? 0;
  for (const seg of path) {
    let next: Node | null = null;
    let keyOffset: number | undefined;
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && same(p.key.value, seg));
      if (pair) {
        next = pair.value as Node | null;
        keyOffset = (pair.key as Node).range?.[0];
      }
    } else if (isSeq(node) && typeof seg === "number") {
      next = node.items[seg] as Node | null;
    }
    if (!next && keyOffset === undefined) return offset;
    // A block mapping or list is pointed at by its key; a scalar or flow value by itself.
    const block = (isMap(next) || isSeq(next)) && !next.flow;
    offset = (block ? keyOffset : undefined) ?? next?.range?.[0] ?? keyOffset ?? offset;
    node = next;
  }
  if (key !== undefined && isMap(node)) {
    const pair = node.items.find((p) => isScalar(p.key) && same(p.key.value, key));
    if (pair) return (pair.key as Node).range?.[0] ?? offset;
  }
  return offset;
}

/**
 * TOML through smol-toml (maintained, no dependencies, runs on both runtimes, and says where a
 * syntax error is). It keeps no positions, so a scan of the text finds where each table and key
 * is written: table headers, arrays of tables (counted), dotted keys and one level of inline
 * tables, which is how configuration files are written.
 */
function readToml(text: string, file: string): Document {
  let data: Record<string, unknown>;
  try {
    data = asTree(parseToml(text));
  } catch (error) {
    if (error instanceof TomlError) {
      throw new ReadError(
        file,
        { line: error.line, column: error.column },
        `TOML: ${error.message.split("\n")[0]}`,
      );
    }
    throw error;
  }
  let places: Map<string, Position> | undefined;
  return {
    file,
    format: "toml",
    data,
    locate(path, key) {
      places ??= tomlPlaces(text);
      const full = key === undefined ? path : [...path, key];
      for (let n = full.length; n > 0; n--) {
        const found = places.get(pathKey(full.slice(0, n)));
        if (found) return found;
      }
      return { line: 1, column: 1 };
    },
  };
}

function pathKey(path: Path): string {
  return path.map((p) => String(p).toLowerCase()).join("\u0000");
}

/** Splits a TOML key (`a."b.c".d`) into its parts. */
function keyParts(key: string): string[] {
  const parts: string[] = [];
  const re = /\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*(?:\.|$)/y;
  let m: RegExpExecArray | null;
  while (re.lastIndex < key.length && (m = re.exec(key)) !== null) {
    parts.push(m[1] ?? m[2] ?? m[3]);
    if (m[0].length === 0) break;
  }
  return parts;
}

/** Where each table and key of a TOML text is written. */
function tomlPlaces(text: string): Map<string, Position> {
  const places = new Map<string, Position>();
  const arrays = new Map<string, number>();
  const put = (path: Path, line: number, column: number) => {
    const k = pathKey(path);
    if (!places.has(k)) places.set(k, { line, column });
  };
  let table: Path = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const indent = line.length - line.trimStart().length;
    const header = line.match(/^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$/);
    if (header) {
      const parts = keyParts(header[2]);
      if (header[1] === "[[") {
        const k = pathKey(parts);
        const n = arrays.get(k) ?? 0;
        arrays.set(k, n + 1);
        table = [...parts, n];
      } else {
        table = parts;
      }
      for (let n = 1; n <= table.length; n++) put(table.slice(0, n), i + 1, indent + 1);
      continue;
    }
    const assign = line.match(
      /^(\s*)((?:"(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_.\s-])+?)\s*=\s*(.*)$/,
    );
    if (!assign) continue;
    const keyPath = [...table, ...keyParts(assign[2])];
    for (let n = table.length + 1; n <= keyPath.length; n++) {
      put(keyPath.slice(0, n), i + 1, assign[1].length + 1);
    }
    // One level of inline table: `servers = [{ address = "…" }]` or `tls = { a = 1 }`.
    const value = assign[3];
    const inline = /([A-Za-z0-9_-]+)\s*=/g;
    const brace = value.indexOf("{");
    if (brace >= 0) {
      const start = line.length - value.length;
      let m: RegExpExecArray | null;
      inline.lastIndex = brace;
      while ((m = inline.exec(value)) !== null) {
        put([...keyPath, m[1]], i + 1, start + m.index + 1);
      }
    }
  }
  return places;
}
