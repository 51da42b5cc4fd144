/**
 * traefik's file provider: `providers.file.filename` (one file) or `.directory` (every `.yml`,
 * `.yaml` and `.toml` file in it, not below it, in name order), holding dynamic configuration
 * (tcp, udp, tls; http is accepted and set aside). Each file is a part of its own, so a problem
 * is located in its file; a file that does not read is left out whole and the rest is served.
 * With `watch` (the default) a change is applied as a reload.
 */
import { type FSWatcher, readdirSync, readFileSync, statSync, watch } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import process from "node:process";
import type { ConfigPart } from "../config/parts.ts";
import {
  type Document,
  type OffThreadRead,
  readDocument,
  readDocumentOffThread,
  ReadError,
} from "../config/readers.ts";

/** What `providers.file` says, its paths resolved. */
export interface FileProviderSpec {
  filename?: string;
  directory?: string;
  watch: boolean;
}

const isTree = (v: unknown): v is Record<string, unknown> =>
  !!v && typeof v === "object" && !Array.isArray(v);

/** The value of `key` in `tree`, the key matched in any case (as traefik matches it). */
function get(tree: Record<string, unknown>, key: string): unknown {
  const found = Object.keys(tree).find((k) => k.toLowerCase() === key.toLowerCase());
  return found === undefined ? undefined : tree[found];
}

/**
 * `providers.file` of a static configuration (read as the reader reads it), or undefined. Paths
 * are relative to the static file's folder.
 */
export function fileProviderOf(doc: Document): FileProviderSpec | undefined {
  const providers = get(doc.data, "providers");
  const file = isTree(providers) ? get(providers, "file") : undefined;
  if (!isTree(file)) return undefined;
  const base = dirname(doc.file);
  const filename = get(file, "filename");
  const directory = get(file, "directory");
  return {
    filename: typeof filename === "string" ? resolve(base, filename) : undefined,
    directory: typeof directory === "string" ? resolve(base, directory) : undefined,
    watch: get(file, "watch") !== false,
  };
}

/** The files the spec names, in the order traefik reads them. */
export function providerFiles(spec: FileProviderSpec): string[] {
  if (spec.filename) return [spec.filename];
  if (!spec.directory) return [];
  let names: string[];
  try {
    names = readdirSync(spec.directory);
  } catch {
    return [];
  }
  return names
    .filter((n) => /\.(ya?ml|toml)$/i.test(n) && !n.startsWith("."))
    .sort()
    .map((n) => join(spec.directory!, n))
    .filter((f) => {
      try {
        return statSync(f).isFile();
      } catch {
        return false; // gone meanwhile
      }
    });
}

/**
 * Reads each file the spec names into a part. `self` (the static file) is skipped: its dynamic
 * sections are already its own, as in traefik's fixtures that name themselves.
 */
export function readFileParts(spec: FileProviderSpec, self: string): ConfigPart[] {
  return fileTexts(spec, self).map((t) =>
    "text" in t ? partOf(t.file, () => readDocument(t.text, t.file)) : t
  );
}

/** {@link readFileParts}, a large YAML file read on a worker thread (see readers.ts). */
export async function readFilePartsOffThread(
  spec: FileProviderSpec,
  self: string,
  observe?: (read: OffThreadRead) => void,
): Promise<ConfigPart[]> {
  const parts: ConfigPart[] = [];
  for (const t of fileTexts(spec, self)) {
    if (!("text" in t)) {
      parts.push(t);
      continue;
    }
    let document: Document | ReadError;
    try {
      document = await readDocumentOffThread(t.text, t.file, observe);
    } catch (error) {
      if (!(error instanceof ReadError)) throw error;
      document = error;
    }
    parts.push(partOf(t.file, () => {
      if (document instanceof ReadError) throw document;
      return document;
    }));
  }
  return parts;
}

/** The text of each file the spec names (templates rendered), or its part when it does not read. */
function fileTexts(
  spec: FileProviderSpec,
  self: string,
): ({ file: string; text: string } | ConfigPart)[] {
  const out: ({ file: string; text: string } | ConfigPart)[] = [];
  if (spec.directory) {
    try {
      statSync(spec.directory);
    } catch (error) {
      const code = (error as { code?: string }).code ?? String(error);
      out.push(unreadable(spec.directory, code === "ENOENT" ? "no such folder" : code));
    }
  }
  for (const file of providerFiles(spec)) {
    if (resolve(file) === resolve(self)) continue;
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (error) {
      const code = (error as { code?: string }).code ?? String(error);
      out.push(unreadable(file, code === "ENOENT" ? "no such file" : code));
      continue;
    }
    const rendered = renderTemplates(text);
    if (typeof rendered !== "string") {
      out.push({
        provider: "file",
        tree: {},
        unreadable: { file, ...rendered.position, path: "", message: rendered.message },
      });
      continue;
    }
    out.push({ file, text: rendered });
  }
  return out;
}

/** The part `read` makes of `file`, or the part that says where it does not read. */
function partOf(file: string, read: () => Document): ConfigPart {
  try {
    const document = read();
    return { provider: "file", tree: document.data, document };
  } catch (error) {
    if (!(error instanceof ReadError)) throw error;
    return {
      provider: "file",
      tree: {},
      unreadable: { file, ...error.position, path: "", message: error.detail },
    };
  }
}

/**
 * traefik renders its dynamic files as Go templates. l4p renders what they are used for in
 * configuration, ``{{ env "NAME" }}`` (the variable's value, "" when unset); any other action is
 * refused, located, rather than read as YAML or TOML.
 */
export function renderTemplates(
  text: string,
): string | { position: { line: number; column: number }; message: string } {
  if (!text.includes("{{")) return text;
  const action = /\{\{-?\s*(.*?)\s*-?\}\}/g;
  let out = "";
  let last = 0;
  for (let m: RegExpExecArray | null; (m = action.exec(text)) !== null;) {
    const env = m[1].match(/^env\s+"([A-Za-z_][A-Za-z0-9_]*)"$/);
    if (!env) {
      const before = text.slice(0, m.index).split("\n");
      return {
        position: { line: before.length, column: before[before.length - 1].length + 1 },
        message: `Go template action "${m[0]}": l4p renders {{ env "NAME" }} only in dynamic files`,
      };
    }
    out += text.slice(last, m.index) + (process.env[env[1]] ?? "");
    last = m.index + m[0].length;
  }
  return out + text.slice(last);
}

function unreadable(file: string, why: string): ConfigPart {
  return {
    provider: "file",
    tree: {},
    unreadable: { file, line: 0, column: 0, path: "", message: `cannot read: ${why}` },
  };
}

/**
 * Follows the spec's file (through its folder: editors replace files by rename) or directory,
 * calling `onChange` after a burst of changes has settled for `throttleMs`.
 */
export class FileProviderWatcher {
  #watcher: FSWatcher | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #key = "";

  constructor(readonly onChange: () => void, readonly onError: (error: Error) => void) {}

  /** Watches what `spec` names (again, if it changed); nothing when it does not watch. */
  follow(spec: FileProviderSpec | undefined, throttleMs: number): void {
    const key = spec?.watch ? JSON.stringify([spec.filename, spec.directory]) : "";
    if (key === this.#key) return;
    this.close();
    this.#key = key;
    if (!spec?.watch) return;
    const folder = spec.directory ?? dirname(spec.filename!);
    const only = spec.filename ? basename(spec.filename) : undefined;
    try {
      this.#watcher = watch(folder, (_event, changed) => {
        if (only !== undefined && changed !== null && changed !== only) return;
        if (this.#timer !== undefined) clearTimeout(this.#timer);
        this.#timer = setTimeout(() => {
          this.#timer = undefined;
          this.onChange();
        }, throttleMs);
      });
    } catch (error) {
      this.onError(error as Error);
    }
  }

  close(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#watcher?.close();
    this.#watcher = undefined;
    this.#key = "";
  }
}

/**
 * The parts the file provider of static configuration `text` (read from `file`) names, and
 * what it said; none when the text does not read (the configuration's own check says why).
 */
export function filePartsOf(
  text: string,
  file: string,
): { spec: FileProviderSpec | undefined; parts: ConfigPart[] } {
  const spec = fileSpecOf(text, file);
  return { spec, parts: spec ? readFileParts(spec, file) : [] };
}

/** {@link filePartsOf}, large YAML files read on a worker thread. */
export async function filePartsOffThread(
  text: string,
  file: string,
  observe?: (read: OffThreadRead) => void,
): Promise<{ spec: FileProviderSpec | undefined; parts: ConfigPart[] }> {
  const spec = fileSpecOf(text, file);
  return { spec, parts: spec ? await readFilePartsOffThread(spec, file, observe) : [] };
}

/** `providers.file` of static configuration `text`; undefined when none or it does not read. */
export function fileSpecOf(text: string, file: string): FileProviderSpec | undefined {
  // Without a `file` key anywhere, there is no file provider: a large file is not read twice.
  // (`includes` first: the expression over 10 MB holds the event loop for tens of ms.)
  if (!text.includes("file") || !/\bfile"?\s*[:=]|providers\.file\b/.test(text)) return undefined;
  try {
    return fileProviderOf(readDocument(text, file));
  } catch (error) {
    if (error instanceof ReadError) return undefined;
    throw error;
  }
}
