/**
 * Hot reload of `l4p run -c FILE`: on a change of the file (or SIGHUP) the new configuration is
 * validated as `l4p check` would and put in force; a broken one is refused with the same located
 * messages, and the running one stays.
 */
import { type FSWatcher, watch } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { ConfigError, parseConfigInSteps } from "../config/load.ts";
import type { OffThreadRead } from "../config/readers.ts";
import type { Config } from "../config/model.ts";
import type { Logger } from "../log/logger.ts";
import type { L4pServer } from "./server.ts";
import type { ConfigPart } from "../config/parts.ts";
import type { StorePart } from "../providers/kv.ts";
import { breather } from "../providers/slices.ts";
import { filePartsOffThread, FileProviderWatcher, fileSpecOf } from "../providers/file.ts";

/** What a configuration is made of: the file's text, and the parts of its providers. */
export interface ConfigInputs {
  text: string;
  parts: ConfigPart[];
}

/** traefik's default providersThrottleDuration. */
const DEFAULT_THROTTLE = 2000;

/** Reloads `file` into `server`, one reload at a time. */
export class ConfigReloader {
  #watcher: FSWatcher | undefined;
  /** The file provider's files (or folder), as the file in force names them. */
  readonly #provider = new FileProviderWatcher(
    () => void this.reload("provider file changed"),
    (error) =>
      this.logger.warn("cannot watch the file provider's files; reload with SIGHUP", {
        error: error.message,
      }),
  );
  #debounce: ReturnType<typeof setTimeout> | undefined;
  /** The routing hook files in use, each watched (its folder, for editors that rename). */
  readonly #hookWatchers = new Map<string, FSWatcher>();
  #queue: Promise<boolean> = Promise.resolve(true);
  #lastText: string | undefined;
  /** Large files read on a worker thread, for the reload's log line. */
  #offThread: OffThreadRead[] = [];
  readonly #observe = (read: OffThreadRead) => {
    this.#offThread.push(read);
    if (read.error) {
      this.logger.warn("cannot read a large file on a worker thread; read on the main thread", {
        file: read.file,
        error: read.error,
      });
    }
  };

  constructor(
    readonly server: L4pServer,
    readonly file: string,
    readonly logger: Logger,
    readonly hooks: {
      /**
       * Called with each configuration put in force (to apply log settings, say), and what it
       * was made of (a group's first process hands that to its workers).
       */
      onApplied?: (config: Config, inputs: ConfigInputs) => void;
      /** Turns the file's configuration into the one to run (a worker's share). */
      prepare?: (config: Config) => Config;
      /** Parts from stores (etcd, Redis), merged with the file's on every reload. */
      parts?: () => StorePart[];
    } = {},
  ) {}

  /** Remembers the text in force, so that a save without changes reloads nothing. */
  started(text: string): void {
    this.#lastText = text;
    this.#watchHooks();
    const throttle = this.server.config?.providers.throttle ?? DEFAULT_THROTTLE;
    this.#provider.follow(fileSpecOf(text, this.file), throttle);
  }

  /**
   * Watches the file's folder, not the file: editors and config management replace files by
   * rename, which a watch on the old file would miss.
   */
  watch(): void {
    const name = basename(this.file);
    try {
      this.#watcher = watch(dirname(this.file), (_event, changed) => {
        if (changed !== null && changed !== name) return;
        if (this.#debounce !== undefined) clearTimeout(this.#debounce);
        this.#debounce = setTimeout(() => this.reload("file changed"), 50);
      });
    } catch (error) {
      this.logger.warn("cannot watch the configuration file; reload with SIGHUP", {
        file: this.file,
        error: (error as Error).message,
      });
    }
  }

  /** Reloads now (queued behind a reload under way); resolves to whether it took effect. */
  reload(why: string): Promise<boolean> {
    this.#queue = this.#queue.then(() => this.#reload(why));
    return this.#queue;
  }

  /**
   * Puts in force the configuration made of `inputs`, read elsewhere (a worker's, from its
   * group's first process); queued like a reload.
   */
  put(inputs: ConfigInputs, why: string): Promise<boolean> {
    this.#queue = this.#queue.then(() => {
      this.#offThread = [];
      return this.#apply(inputs, why, Date.now());
    });
    return this.#queue;
  }

  async #reload(why: string): Promise<boolean> {
    const started = Date.now();
    this.#offThread = [];
    let text: string;
    try {
      text = await readFile(this.file, "utf8");
    } catch (error) {
      return this.#failed(why, `cannot read: ${(error as Error).message}`, []);
    }
    if (text === this.#lastText && why === "file changed") return true;
    const files = await filePartsOffThread(text, this.file, this.#observe);
    const parts = [...files.parts, ...this.hooks.parts?.() ?? []];
    await breather(); // reading the file provider's files, then the check: one step each
    if (!await this.#apply({ text, parts }, why, started)) return false;
    this.#watchHooks();
    // The file provider's files, as the configuration now in force names them.
    const throttle = this.server.config?.providers.throttle ?? DEFAULT_THROTTLE;
    this.#provider.follow(files.spec, throttle);
    return true;
  }

  async #apply({ text, parts }: ConfigInputs, why: string, started: number): Promise<boolean> {
    const stats = this.server.reloads;

    try {
      // In steps: a large configuration would hold the event loop for tens of ms in one piece.
      const { config } = await parseConfigInSteps(
        text,
        this.file,
        { ...this.server.env.runtime.capabilities, isolate: true },
        parts,
        breather,
        this.#observe,
      );
      // Parsing and applying each hold the event loop; connections waiting get served between.
      await breather();
      await this.server.apply(this.hooks.prepare ? this.hooks.prepare(config) : config);
      this.#lastText = text;
      stats.successes++;
      stats.lastSuccessAt = Date.now();
      stats.lastError = "";
      this.hooks.onApplied?.(config, { text, parts });
      const onWorker = this.#offThread.filter((r) => r.worker);
      this.logger.info("configuration reloaded", {
        file: this.file,
        why,
        durationMs: Date.now() - started,
        readOnWorkerMs: onWorker.length ? Math.max(...onWorker.map((r) => r.ms)) : undefined,
      });
      return true;
    } catch (error) {
      const lines = error instanceof ConfigError ? error.message.split("\n") : [];
      return this.#failed(why, (error as Error).message, lines);
    }
  }

  #failed(why: string, message: string, lines: string[]): boolean {
    const stats = this.server.reloads;
    stats.failures++;
    stats.lastFailureAt = Date.now();
    stats.lastError = message;
    this.logger.error("configuration refused; the running one stays in force", {
      file: this.file,
      why,
      problems: lines.length || undefined,
      error: lines.length ? undefined : message,
    });
    for (const line of lines) this.logger.error(line);
    return false;
  }

  /** Watches the hook files in use (and no other): a saved hook reloads the configuration. */
  #watchHooks(): void {
    const files = new Set(this.server.hookFiles);
    for (const [file, w] of this.#hookWatchers) {
      if (!files.has(file)) {
        w.close();
        this.#hookWatchers.delete(file);
      }
    }
    for (const file of files) {
      if (this.#hookWatchers.has(file)) continue;
      const name = basename(file);
      try {
        this.#hookWatchers.set(
          file,
          watch(dirname(file), (_event, changed) => {
            if (changed !== null && changed !== name) return;
            if (this.#debounce !== undefined) clearTimeout(this.#debounce);
            this.#debounce = setTimeout(() => this.reload("hook changed"), 50);
          }),
        );
      } catch (error) {
        this.logger.warn("cannot watch a hook file; reload with SIGHUP", {
          file,
          error: (error as Error).message,
        });
      }
    }
  }

  /** Stops watching. */
  close(): void {
    for (const w of this.#hookWatchers.values()) w.close();
    this.#hookWatchers.clear();
    if (this.#debounce !== undefined) clearTimeout(this.#debounce);
    this.#watcher?.close();
    this.#provider.close();
  }
}
