/**
 * traefik's HTTP provider: a control plane serves the dynamic configuration (tcp, udp, tls) as
 * JSON or YAML at `endpoint`, and l4p polls it every `pollInterval`. It is a store like etcd and
 * Redis to the rest of l4p (src/providers/source.ts): the last good configuration stays while
 * the endpoint fails or serves something that does not read, items with problems are left out,
 * and an unchanged answer (`304 Not Modified` to `If-None-Match`, or the same body) applies
 * nothing.
 */
import { createHash } from "node:crypto";
import { parse as parseYaml } from "yaml";
import type { ProvidersConfig } from "../config/model.ts";
import { treeToKv } from "./kv.ts";
import type { KvStore } from "./store.ts";

/** The root its pairs are kept under, as a store's are under theirs. */
const ROOT = "http";

/** The HTTP provider, seen as a read-only store. */
export class HttpStore implements KvStore {
  readonly name = "http";
  readonly root = ROOT;
  #etag: string | undefined;
  #last: { pairs: [string, string][]; revision: string } | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  /** Answers `304 Not Modified` so far: what ETags saved. */
  notModified = 0;

  constructor(readonly options: NonNullable<ProvidersConfig["http"]>) {}

  async list(): Promise<{ pairs: [string, string][]; revision: string }> {
    const headers: Record<string, string> = {
      accept: "application/json, application/yaml;q=0.9, */*;q=0.5",
      ...this.options.headers,
    };
    if (this.#etag && this.#last) headers["if-none-match"] = this.#etag;
    const response = await fetch(this.options.endpoint, {
      headers,
      signal: AbortSignal.timeout(this.options.pollTimeout),
    });
    if (response.status === 304 && this.#last) {
      this.notModified++;
      await response.body?.cancel();
      return this.#last;
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new Error(`${this.options.endpoint} answered ${response.status}`);
    }
    const body = await response.text();
    let tree: unknown;
    try {
      // JSON is YAML: one reader takes both, as traefik's provider takes either.
      tree = parseYaml(body);
    } catch (error) {
      throw new Error(
        `${this.options.endpoint} served what is neither JSON nor YAML: ${
          (error as Error).message.split("\n")[0]
        }`,
      );
    }
    if (!tree || typeof tree !== "object" || Array.isArray(tree)) {
      throw new Error(`${this.options.endpoint} served no configuration (expected an object)`);
    }
    // HTTP routers and services are layer 7: not served, and not a stray key each.
    delete (tree as Record<string, unknown>).http;
    const revision = response.headers.get("etag") ??
      createHash("sha256").update(body).digest("hex").slice(0, 16);
    this.#etag = response.headers.get("etag") ?? undefined;
    this.#last = { pairs: treeToKv(tree as Record<string, unknown>, ROOT), revision };
    return this.#last;
  }

  /** Polls: each tick asks the source to read again (an unchanged answer applies nothing). */
  watch(onChange: () => void): Promise<void> {
    this.#timer ??= setInterval(onChange, this.options.pollInterval);
    return Promise.resolve();
  }

  replace(): Promise<"atomic" | "steps"> {
    return Promise.reject(new Error("the HTTP provider is read-only: write to its control plane"));
  }

  close(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    return Promise.resolve();
  }
}
