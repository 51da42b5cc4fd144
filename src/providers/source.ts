/**
 * Keeping the stores' parts of the configuration current: each store is read at start (within a
 * time limit: l4p starts with its file when a store is unreachable), watched, re-read in full
 * every 30 s as a safety net, and retried with capped exponential backoff while unreachable. A
 * burst of key writes is read once (100 ms debounce). Whoever owns the configuration (the
 * reloader) is told to apply; the last good configuration stays while a store is down or bad.
 */
import { setTimeout as timeout } from "node:timers";
import type { Logger } from "../log/logger.ts";
import { kvToTreeInSlices, type StorePart } from "./kv.ts";
import { breather } from "./slices.ts";
import type { KvStore } from "./store.ts";

/** Writes within this much of each other are read once. */
export const DEBOUNCE = 100;
/** A full read this often, whatever the watches say. */
export const FULL_READ = 30_000;
const RETRY_MIN = 1000;
const RETRY_MAX = 30_000;
/** How long a read may take before the store counts as unreachable. */
const READ_TIMEOUT = 2000;

/** What `/api/status` and `/metrics` show of a store. */
export interface ProviderStatus {
  provider: string;
  rootKey: string;
  connected: boolean;
  /** The revision of the part last read. */
  revision: string | null;
  /** The revision of the part in force (behind `revision` while a read part is refused). */
  appliedRevision: string | null;
  /** When the last read succeeded (ms since the epoch). */
  lastReadAt: number;
  lastError: string | null;
  /** What the provider itself left out at its last read, and why (a container's labels). */
  leftOut?: string[];
}

/** The stores' parts and how the stores are doing. */
export class StoreSource {
  readonly #parts = new Map<KvStore, StorePart>();
  readonly #status = new Map<KvStore, ProviderStatus>();
  readonly #retry = new Map<KvStore, number>();
  readonly #timers = new Set<ReturnType<typeof timeout>>();
  /** Each store's revision in the parts last handed out. */
  #handedOut = new Map<KvStore, string | null>();
  #closed = false;
  /** Told when a part changed: apply the configuration again. */
  onChange: () => void = () => {};

  constructor(readonly stores: readonly KvStore[], readonly logger: Logger) {
    for (const s of stores) {
      this.#status.set(s, {
        provider: s.name,
        rootKey: s.root,
        connected: false,
        revision: null,
        appliedRevision: null,
        lastReadAt: 0,
        lastError: null,
      });
    }
  }

  /** The parts read so far (a store never read has none). */
  parts(): StorePart[] {
    this.#handedOut = new Map(
      [...this.#parts.keys()].map((s) => [s, this.#status.get(s)!.revision]),
    );
    return [...this.#parts.values()];
  }

  /** The configuration made from the parts last handed out is in force. */
  applied(): void {
    for (const [store, revision] of this.#handedOut) {
      this.#status.get(store)!.appliedRevision = revision;
    }
  }

  /** How each store is doing. */
  status(): ProviderStatus[] {
    return [...this.#status.values()];
  }

  /** Reads every store once (a store that fails is retried in the background), then watches. */
  async start(): Promise<void> {
    await Promise.all(this.stores.map((s) => this.#read(s, "start")));
    for (const s of this.stores) this.#watch(s);
    const every = () => {
      const t = timeout(() => {
        this.#timers.delete(t);
        if (this.#closed) return;
        for (const s of this.stores) void this.#read(s, "periodic read");
        every();
      }, FULL_READ);
      t.unref();
      this.#timers.add(t);
    };
    every();
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    await Promise.all(this.stores.map((s) => s.close()));
  }

  /** Reads `store`; true when its part changed. Failures are logged once per outage and retried. */
  async #read(store: KvStore, why: string): Promise<boolean> {
    const st = this.#status.get(store)!;
    const started = Date.now();
    try {
      const { pairs, revision } = await withTimeout(store.list(), READ_TIMEOUT);
      if (store.problems) st.leftOut = [...store.problems];
      for (const problem of store.takeProblems?.() ?? []) {
        this.logger.warn("provider items left out", { provider: store.name, problem });
      }
      const back = !st.connected && st.lastReadAt > 0;
      st.connected = true;
      st.lastReadAt = Date.now();
      st.lastError = null;
      this.#retry.delete(store);
      if (back) this.logger.info("store reachable again", { provider: store.name });
      if (revision === st.revision) return false;
      st.revision = revision;
      // Reading, building the tree and applying each hold the event loop (tens of ms for 10 000
      // keys): connections are served between them, and between slices of the tree.
      await breather();
      const part = await kvToTreeInSlices(pairs, store.root, store.name, breather);
      this.logger.info("store read", {
        provider: store.name,
        keys: pairs.length,
        revision,
        why,
        durationMs: Date.now() - started,
      });
      for (const key of part.stray) {
        this.logger.warn("store key ignored: only tcp, udp and tls come from a store", {
          provider: store.name,
          key,
        });
      }
      this.#parts.set(store, part);
      if (why !== "start") this.onChange();
      return true;
    } catch (error) {
      const message = (error as Error).message ?? String(error);
      if (st.connected || st.lastError === null) {
        this.logger.warn(
          why === "start"
            ? "store unreachable; starting with what the file holds, retrying"
            : "store unreachable; the last good configuration stays, retrying",
          { provider: store.name, error: message },
        );
      }
      st.connected = false;
      st.lastError = message;
      this.#scheduleRetry(store);
      return false;
    }
  }

  #scheduleRetry(store: KvStore): void {
    if (this.#closed) return;
    const delay = this.#retry.get(store) ?? RETRY_MIN;
    this.#retry.set(store, Math.min(delay * 2, RETRY_MAX));
    const t = timeout(() => {
      this.#timers.delete(t);
      if (!this.#closed) void this.#read(store, "retry");
    }, delay);
    t.unref();
    this.#timers.add(t);
  }

  #watch(store: KvStore): void {
    let pending: ReturnType<typeof timeout> | undefined;
    store.watch(() => {
      if (pending || this.#closed) return;
      pending = timeout(() => {
        pending = undefined;
        void this.#read(store, "store changed");
      }, DEBOUNCE);
    }).catch((error) => {
      this.logger.warn("cannot watch the store; the periodic read will see changes", {
        provider: store.name,
        error: (error as Error).message,
      });
    });
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
