/**
 * The stores l4p reads its shared configuration from: etcd (through `etcd3`) and Redis (through
 * `ioredis`), well-kept clients. Each lists the pairs under a root key and tells when they change.
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import type { Etcd3, IOptions as EtcdOptions } from "etcd3";
import type { Redis } from "ioredis";
import type { ConnectionOptions } from "node:tls";
import type { ProvidersConfig, StoreTls } from "../config/model.ts";
import { DockerStore } from "./docker.ts";
import { HttpStore } from "./http.ts";
import { sortInSlices } from "./slices.ts";

/** A key/value store holding configuration under a root key. */
export interface KvStore {
  /** "etcd" or "redis". */
  readonly name: string;
  readonly root: string;
  /** Every pair under the root, and the store's revision (a content hash for Redis). */
  list(): Promise<{ pairs: [string, string][]; revision: string }>;
  /** Calls `onChange` when a key under the root changes (the caller reads again). */
  watch(onChange: () => void): Promise<void>;
  /**
   * Replaces everything under the root with `pairs`: atomically, unless the store cannot take
   * that many operations at once (then in steps; resolves to "steps").
   */
  replace(pairs: [string, string][]): Promise<"atomic" | "steps">;
  close(): Promise<void>;
  /** What the last reading left out and why (the Docker provider's: containers' labels). */
  readonly problems?: readonly string[];
  /** Those of {@link problems} not reported before. */
  takeProblems?(): string[];
}

/**
 * etcd v3: a prefix read, a prefix watch, a transaction to replace. The client (and its gRPC
 * stack) is loaded when first used: loading it costs every process about 40 MB and 0.15 s, and
 * most processes never talk to etcd.
 */
export class EtcdStore implements KvStore {
  readonly name = "etcd";
  readonly #options: EtcdOptions;
  #client: Promise<Etcd3> | undefined;

  constructor(readonly endpoints: string[], readonly root: string, auth?: {
    username?: string;
    password?: string;
    tls?: StoreTls;
  }) {
    const tls = auth?.tls;
    // With `tls`, every endpoint is dialled over TLS, checked against `ca` (else the system's
    // roots), with the client certificate when there is one.
    const credentials = tls && {
      rootCertificate: tls.ca ? Buffer.from(tls.ca) : (undefined as unknown as Buffer),
      privateKey: tls.key ? Buffer.from(tls.key) : undefined,
      certChain: tls.cert ? Buffer.from(tls.cert) : undefined,
    };
    this.#options = {
      hosts: endpoints,
      auth: auth?.username ? { username: auth.username, password: auth.password ?? "" } : undefined,
      credentials,
      dialTimeout: 2000,
    };
  }

  #etcd(): Promise<Etcd3> {
    return this.#client ??= import("etcd3").then(({ Etcd3 }) => new Etcd3(this.#options));
  }

  /**
   * Reads a page of {@link ETCD_PAGE} keys at a time, every page at the first one's revision (one
   * consistent snapshot): the client decodes each answer at once on the event loop, and 10 000
   * keys in one answer held it for 25–55 ms on Deno.
   */
  async list(): Promise<{ pairs: [string, string][]; revision: string }> {
    const client = await this.#etcd();
    const end = prefixEnd(`${this.root}/`);
    const pairs: [string, string][] = [];
    let start: string | Buffer = `${this.root}/`;
    let revision: string | undefined;
    for (;;) {
      const page = client.getAll().inRange({ start, end }).limit(ETCD_PAGE);
      if (revision !== undefined) page.revision(revision);
      const res = await page.exec();
      revision ??= String(res.header.revision);
      for (const kv of res.kvs) pairs.push([kv.key.toString(), kv.value.toString()]);
      if (!res.more || res.kvs.length === 0) break;
      start = Buffer.concat([res.kvs[res.kvs.length - 1].key, Buffer.from([0])]);
    }
    return { pairs, revision };
  }

  async watch(onChange: () => void): Promise<void> {
    const client = await this.#etcd();
    const watcher = await client.watch().prefix(`${this.root}/`).create();
    watcher.on("put", onChange);
    watcher.on("delete", onChange);
    // A lost connection is seen at once (the read fails, the store shows as unreachable and is
    // retried); once the watcher resumes by itself, a read catches up on what passed.
    watcher.on("disconnected", onChange);
    watcher.on("connected", onChange);
    watcher.on("error", () => {});
  }

  async replace(pairs: [string, string][]): Promise<"atomic" | "steps"> {
    // One transaction: keys the new tree lacks go and its keys are written, at once for every
    // reader (etcd refuses a prefix delete over keys the same transaction puts).
    const client = await this.#etcd();
    const keep = new Set(pairs.map(([k]) => k));
    const old = await client.getAll().prefix(`${this.root}/`).keys();
    const ops = [
      ...old.filter((k) => !keep.has(k)).map((k) => () => client.delete().key(k)),
      ...pairs.map(([k, v]) => () => client.put(k).value(v)),
    ];
    const txn = (batch: (() => unknown)[]) =>
      client.if(`${this.root}/`, "Version", ">", -1)
        // deno-lint-ignore no-explicit-any
        .then(...batch.map((op) => op() as any))
        .commit();
    try {
      await txn(ops);
      return "atomic";
    } catch (error) {
      // etcd takes at most --max-txn-ops (128 by default) operations a transaction.
      if (!/too many operations/.test((error as Error).message)) throw error;
    }
    for (let i = 0; i < ops.length; i += 128) await txn(ops.slice(i, i + 128));
    return "steps";
  }

  async close(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    if (client) (await client).close();
  }
}

/** Redis: SCAN and MGET, keyspace notifications, MULTI to replace. `ioredis` is loaded when first used. */
export class RedisStore implements KvStore {
  readonly name = "redis";
  #client: Promise<Redis> | undefined;
  #subscriber: Redis | undefined;

  constructor(
    readonly endpoint: string,
    readonly root: string,
    readonly db: number,
    readonly auth?: { username?: string; password?: string; tls?: StoreTls },
  ) {}

  /** The client, connected. */
  async #redis(): Promise<Redis> {
    const client = await (this.#client ??= this.#connect());
    await this.#ready(client);
    return client;
  }

  async #connect(): Promise<Redis> {
    const { Redis } = await import("ioredis");
    const [host, port] = splitHostPort(this.endpoint, 6379);
    const client = new Redis({
      host,
      port,
      db: this.db,
      username: this.auth?.username,
      password: this.auth?.password,
      tls: this.#tls(),
      lazyConnect: true,
      connectTimeout: 2000,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      // Reconnects are the provider's (with its backoff), not the client's on every command.
      retryStrategy: (times) => Math.min(times * 500, 5000),
    });
    // A failed connection is the command's error, said by its caller; without a listener
    // ioredis prints "Unhandled error event" and a stack of its own.
    client.on("error", () => {});
    return client;
  }

  #tls(): ConnectionOptions | undefined {
    const t = this.auth?.tls;
    if (!t) return undefined;
    return { ca: t.ca, cert: t.cert, key: t.key, rejectUnauthorized: !t.insecureSkipVerify };
  }

  async #ready(client: Redis): Promise<void> {
    if (client.status === "wait" || client.status === "end") await client.connect();
  }

  /** Every key under the root (SCAN, never KEYS: the server is not blocked). */
  async #keys(): Promise<string[]> {
    const client = await this.#redis();
    const keys: string[] = [];
    let cursor = "0";
    do {
      const [next, batch] = await client.scan(
        cursor,
        "MATCH",
        `${this.root}/*`,
        "COUNT",
        1000,
      );
      keys.push(...batch);
      cursor = next;
    } while (cursor !== "0");
    return keys;
  }

  async list(): Promise<{ pairs: [string, string][]; revision: string }> {
    // In slices, as the values come: with 300 000 keys, a sort or a hash of them all in one
    // piece would hold the event loop for hundreds of ms.
    const keys = await sortInSlices(await this.#keys());
    const client = await this.#redis();
    const pairs: [string, string][] = [];
    const hash = createHash("sha256");
    for (let i = 0; i < keys.length; i += 500) {
      const values = await client.mget(...keys.slice(i, i + 500));
      const batch: [string, string][] = [];
      values.forEach((v, j) => v !== null && batch.push([keys[i + j], v]));
      hash.update(JSON.stringify(batch));
      pairs.push(...batch);
    }
    return { pairs, revision: hash.digest("hex").slice(0, 12) };
  }

  /**
   * Keyspace notifications tell which keys changed: l4p turns them on (`notify-keyspace-events
   * KA`) if the server allows; otherwise the periodic full read is what sees changes.
   */
  async watch(onChange: () => void): Promise<void> {
    const client = await this.#redis();
    await client.config("SET", "notify-keyspace-events", "KA").catch(() => {});
    const sub = this.#subscriber = await this.#connect();
    await this.#ready(sub);
    sub.on("pmessage", () => onChange());
    sub.on("ready", () => onChange()); // after a reconnect: catch up
    sub.on("close", () => onChange()); // lost: the read fails and the store shows as down
    sub.on("error", () => {});
    await sub.psubscribe(`__keyspace@${this.db}__:${this.root}/*`);
  }

  async replace(pairs: [string, string][]): Promise<"atomic" | "steps"> {
    const old = await this.#keys();
    const multi = (await this.#redis()).multi();
    if (old.length) multi.del(...old);
    for (const [k, v] of pairs) multi.set(k, v);
    await multi.exec();
    return "atomic";
  }

  async close(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    this.#subscriber?.disconnect();
    if (client) (await client).disconnect();
  }
}

/** Keys an etcd read asks for at a time. */
export const ETCD_PAGE = 1000;

/** The first key after every key that starts with `prefix` (the end of etcd's prefix range). */
export function prefixEnd(prefix: string): Buffer {
  const bytes = Buffer.from(prefix);
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i] < 0xff) {
      bytes[i]++;
      return bytes.subarray(0, i + 1);
    }
  }
  // Every byte is 0xff: the range runs to the end of the keys (etcd's "\0").
  return Buffer.from([0]);
}

function splitHostPort(endpoint: string, fallback: number): [string, number] {
  const url = endpoint.includes("://") ? new URL(endpoint) : new URL(`redis://${endpoint}`);
  return [url.hostname.replace(/^\[|\]$/g, ""), Number(url.port || fallback)];
}

/** The stores a configuration names. */
export function storesOf(providers: ProvidersConfig): KvStore[] {
  const out: KvStore[] = [];
  if (providers.http) out.push(new HttpStore(providers.http));
  if (providers.docker) out.push(new DockerStore(providers.docker));
  if (providers.etcd) {
    const e = providers.etcd;
    out.push(new EtcdStore(e.endpoints, e.rootKey, e));
  }
  if (providers.redis) {
    const r = providers.redis;
    out.push(new RedisStore(r.endpoints[0], r.rootKey, r.db, r));
  }
  return out;
}

/** A store from a command-line URL: `--etcd http://host:2379` or `--redis redis://host:6379/0`. */
export function storeFromUrl(
  kind: "etcd" | "redis",
  url: string,
  root: string,
  tls?: StoreTls,
): KvStore {
  if (kind === "etcd") return new EtcdStore([url], root, { tls });
  const u = new URL(url.includes("://") ? url : `redis://${url}`);
  const db = Number(u.pathname.replace("/", "") || 0);
  return new RedisStore(`${u.hostname}:${u.port || 6379}`, root, db, {
    username: u.username || undefined,
    password: u.password || undefined,
    tls: tls ?? (u.protocol === "rediss:" ? { insecureSkipVerify: false } : undefined),
  });
}
