/**
 * The routing hooks a configuration names, loaded before its graph is built (building is
 * synchronous; importing a module is not). A hook file is imported once and again only when it
 * changes on disk (its mtime or size); a hook given in code (`L4pServer`'s `hooks`) is used as
 * it is.
 */
import { stat } from "node:fs/promises";
import type { Config, HookConfig } from "../config/model.ts";
import { ConfigError } from "../config/problems.ts";
import type { Path } from "../config/readers.ts";
import type { Runtime } from "../runtime/types.ts";
import type { Hook } from "../tcp/middlewares/hook.ts";

/** What names one loaded hook. */
export function hookKey(h: HookConfig): string {
  return `${h.file ?? ""}#${h.export}`;
}

/** Hooks that could not be loaded, each at its middleware's key. */
export class HookLoadError extends ConfigError {
  constructor(
    file: string,
    readonly failures: { path: Path; message: string }[],
    locate: (path: Path) => { line: number; column: number } = () => ({ line: 0, column: 0 }),
  ) {
    super(failures.map(({ path, message }) => ({
      file,
      ...locate(path),
      path: path.join("."),
      message,
    })));
    this.name = "HookLoadError";
  }
}

/** Loads and keeps the hooks of the configurations put in force. */
export class HookLoader {
  readonly #modules = new Map<string, { stamp: string; module: Record<string, unknown> }>();

  constructor(
    readonly runtime: Runtime,
    /** Hooks given in code, by name: what a hook without a file names as its `export`. */
    readonly given: Readonly<Record<string, Hook>> = {},
  ) {}

  /** The hook files in use. */
  get files(): string[] {
    return [...this.#modules.keys()];
  }

  /**
   * Every hook `config` names, by {@link hookKey}; throws a {@link HookLoadError} naming each
   * that cannot be had (`file` is the configuration's, for the message).
   */
  async load(config: Config, file = "configuration"): Promise<Map<string, Hook>> {
    const hooks = new Map<string, Hook>();
    const failures: { path: Path; message: string }[] = [];
    const used = new Set<string>();
    const named = [
      ...Object.entries(config.tcp.middlewares).map(([name, mc]) => ["tcp", name, mc] as const),
      ...Object.entries(config.udp.middlewares).map(([name, mc]) => ["udp", name, mc] as const),
    ];
    for (const [protocol, name, mc] of named) {
      if (!("hook" in mc)) continue;
      const key = hookKey(mc.hook);
      if (mc.hook.file) used.add(mc.hook.file);
      if (hooks.has(key)) continue;
      try {
        hooks.set(key, await this.#one(mc.hook));
      } catch (error) {
        failures.push({
          path: [protocol, "middlewares", name, "hook", mc.hook.file ? "file" : "export"],
          message: (error as Error).message,
        });
      }
    }
    // Files no hook names any more are forgotten: the table holds what is in use.
    for (const f of this.#modules.keys()) if (!used.has(f)) this.#modules.delete(f);
    if (failures.length) throw new HookLoadError(file, failures);
    return hooks;
  }

  async #one(h: HookConfig): Promise<Hook> {
    if (!h.file) {
      const fn = this.given[h.export];
      if (typeof fn !== "function") {
        throw new Error(`no hook "${h.export}" was given in code (L4pServer's hooks option)`);
      }
      return fn;
    }
    let stamp: string;
    try {
      const s = await stat(h.file);
      stamp = `${s.mtimeMs}-${s.size}`;
    } catch (error) {
      const code = (error as { code?: string }).code ?? (error as Error).message;
      throw new Error(`cannot read ${h.file}: ${code}`);
    }
    let entry = this.#modules.get(h.file);
    if (!entry || entry.stamp !== stamp) {
      try {
        entry = { stamp, module: await this.runtime.importFresh(h.file, stamp) };
      } catch (error) {
        const first = String((error as Error)?.message ?? error).split("\n")[0];
        throw new Error(`${h.file} does not load: ${first}`);
      }
      this.#modules.set(h.file, entry);
    }
    const fn = entry.module[h.export];
    if (typeof fn !== "function") {
      const exported = Object.keys(entry.module).filter((k) =>
        typeof entry!.module[k] === "function"
      );
      throw new Error(
        `${h.file} exports no function "${h.export}"${
          exported.length ? ` (it exports ${exported.join(", ")})` : ""
        }`,
      );
    }
    return fn as Hook;
  }
}
