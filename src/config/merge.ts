/**
 * Merging: the parts of the providers (files, stores) joined to the static file's tree, name by
 * name, each added name remembering its part; and taking a dynamic item out of the tree when it
 * is left out for a problem.
 */
import type { ConfigPart } from "./parts.ts";
import type { Path } from "./readers.ts";

/** Sections whose items are dynamic: left out one by one, the rest served. */
const DYNAMIC = new Set(["tcp", "udp", "tls"]);

/**
 * The dynamic item a problem at `path` belongs to (`[tcp, routers, NAME]`, `[tls, certificates,
 * 2]`, a key of a dynamic section), or undefined for a static problem.
 */
export function itemOf(path: Path): Path | undefined {
  if (!DYNAMIC.has(String(path[0]))) return undefined;
  return path.slice(0, Math.min(path.length, 3));
}

/** Takes the item at `path` out of `data`, recording removed list indices in `removed`. */
export function removeAt(
  data: Record<string, unknown>,
  path: Path,
  removed: Map<string, number[]>,
): void {
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

/**
 * Adds store parts to the file's data, name by name (routers, services, …; certificates are
 * appended), as traefik merges providers; a name both define is a conflict. Returns where each
 * added name came from.
 */
export function mergeParts(
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
