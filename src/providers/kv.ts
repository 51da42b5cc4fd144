/**
 * traefik's key/value layout: the dynamic configuration as keys that mirror the file, under a
 * root key (`l4p/tcp/routers/web/rule`, `l4p/tcp/services/app/loadBalancer/servers/0/address`).
 * Pure: pairs to a configuration tree, a tree to pairs.
 */

/** The sections a store may hold: the shared dynamic part. The rest is per box (the file's). */
export const STORE_SECTIONS = ["tcp", "udp", "tls"] as const;

/** A configuration part read from a store, and where it came from. */
export interface StorePart {
  /** "etcd" or "redis". */
  provider: string;
  /** The root key, without a trailing slash. */
  root: string;
  /** The part, shaped as the file is. */
  tree: Record<string, unknown>;
  /** Keys outside the sections a store may hold (`l4p/entryPoints/…`), ignored and reported. */
  stray: string[];
}

/**
 * A value as text, read as the file would have it: whole and decimal numbers as numbers,
 * `true` and `false` as booleans, the rest as text (traefik reads KV values by the field's type;
 * l4p's schema then checks them like the file's).
 */
export function coerce(value: string): string | number | boolean {
  if (/^-?\d+(\.\d+)?$/.test(value)) return Number(value);
  if (value === "true" || value === "false") return value === "true";
  return value;
}

/** Builds the tree from `pairs` under `root`; numbered children (`servers/0`) become lists. */
export function kvToTree(
  pairs: readonly [string, string][],
  root: string,
  provider: string,
): StorePart {
  const tree = new TreeBuilder(root);
  tree.add(pairs);
  return tree.finish(provider);
}

/**
 * {@link kvToTree} a slice of pairs at a time, letting the event loop run between slices
 * (`pause`): 10 000 keys take it tens of ms, time connections would otherwise wait.
 */
export async function kvToTreeInSlices(
  pairs: readonly [string, string][],
  root: string,
  provider: string,
  pause: () => Promise<void>,
  slice = 1000,
): Promise<StorePart> {
  const tree = new TreeBuilder(root);
  for (let i = 0; i < pairs.length; i += slice) {
    if (i > 0) await pause();
    tree.add(pairs.slice(i, i + slice));
  }
  return tree.finish(provider);
}

/** A configuration tree being built from pairs. */
class TreeBuilder {
  readonly tree: Record<string, unknown> = {};
  readonly stray: string[] = [];
  readonly #prefix: string;

  constructor(readonly root: string) {
    this.#prefix = `${root}/`;
  }

  add(pairs: readonly [string, string][]): void {
    const prefix = this.#prefix;
    for (const [key, value] of pairs) {
      if (!key.startsWith(prefix)) continue;
      const parts = key.slice(prefix.length).split("/").filter((p) => p !== "");
      if (parts.length === 0) continue;
      if (!(STORE_SECTIONS as readonly string[]).includes(parts[0])) {
        this.stray.push(key);
        continue;
      }
      let node = this.tree;
      for (const p of parts.slice(0, -1)) {
        const next = node[p];
        node = (next && typeof next === "object" ? next : (node[p] = {})) as Record<
          string,
          unknown
        >;
      }
      node[parts.at(-1)!] = coerce(value);
    }
  }

  finish(provider: string): StorePart {
    return {
      provider,
      root: this.root,
      tree: listsOf(this.tree) as Record<string, unknown>,
      stray: this.stray,
    };
  }
}

/** Objects whose keys are all 0, 1, 2… become lists, in order. */
function listsOf(node: unknown): unknown {
  if (!node || typeof node !== "object") return node;
  const entries = Object.entries(node as Record<string, unknown>);
  const numbered = entries.length > 0 && entries.every(([k]) => /^\d+$/.test(k));
  if (numbered) {
    return entries.sort(([a], [b]) => Number(a) - Number(b)).map(([, v]) => listsOf(v));
  }
  return Object.fromEntries(entries.map(([k, v]) => [k, listsOf(v)]));
}

/** The pairs that hold `tree` (the store sections of a parsed YAML file) under `root`. */
export function treeToKv(tree: Record<string, unknown>, root: string): [string, string][] {
  const out: [string, string][] = [];
  const walk = (node: unknown, path: string) => {
    if (Array.isArray(node)) node.forEach((v, i) => walk(v, `${path}/${i}`));
    else if (node && typeof node === "object") {
      for (const [k, v] of Object.entries(node)) walk(v, `${path}/${k}`);
    } else if (node !== undefined && node !== null) out.push([path, String(node)]);
  };
  for (const section of STORE_SECTIONS) {
    if (tree[section] !== undefined) walk(tree[section], `${root}/${section}`);
  }
  return out;
}
