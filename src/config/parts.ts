/**
 * Parts: the dynamic configuration each source contributes (a file of `providers.file`, a store),
 * merged with the static file's by name, each value knowing where it came from.
 */
import type { ConfigProblem } from "./problems.ts";
import type { Document, Path } from "./readers.ts";

/** What one source contributes, shaped as the file is (`tcp`, `udp`, `tls`). */
export interface ConfigPart {
  /** Which kind of source: "file", "etcd", "redis", … */
  provider: string;
  tree: Record<string, unknown>;
  /** For a store: the root key; its problems are located by key (`l4p/tcp/…`). */
  root?: string;
  /** For a file: its document, which locates its problems by line and column. */
  document?: Document;
  /** Set when the source could not be read (a file that does not parse): left out whole. */
  unreadable?: ConfigProblem;
}

/** `a.b[2].c`, as problems name a key. */
export function formatPath(path: Path): string {
  let s = "";
  for (const seg of path) s += typeof seg === "number" ? `[${seg}]` : s ? `.${seg}` : String(seg);
  return s;
}

/** A problem at `path` of `part`, located as that part is. */
export function problemIn(part: ConfigPart, path: Path, message: string): ConfigProblem {
  if (part.document) {
    return {
      file: part.document.file,
      ...part.document.locate(path),
      path: formatPath(path),
      message,
    };
  }
  return {
    file: part.provider,
    line: 0,
    column: 0,
    path: formatPath(path),
    message,
    key: `${part.root ?? part.provider}/${path.join("/")}`,
  };
}
