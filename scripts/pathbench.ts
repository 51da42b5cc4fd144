/**
 * pathbench: what l4p's own JavaScript costs per proxied connection, without sockets. The real
 * server (entrypoint, router, load balancer, pipe, accounting) runs over an in-memory runtime
 * whose connections cost nothing, so the time measured is l4p's alone, and repeatable to a few
 * per cent: the socket benchmarks (`scripts/bench.ts`) move by more than l4p's whole share from
 * one run to the next. Each connection does what the bench's new-connection workload does:
 * accept, route, dial, the client's 6 bytes, the backend's 7, the client's end, the backend's.
 *
 *   deno run -A scripts/pathbench.ts [connections] [--reset] [--routers N] [--hook]
 *   bun scripts/pathbench.ts [connections] [--reset] [--routers N] [--hook]
 *
 * --routers N: N passthrough routers of one exact HostSNI name each, and every client sends a
 * TLS ClientHello for the last name: what a connection costs among many routers.
 * --hook: the router has a routing hook that answers at once (nothing: go on), as an embedder
 * gives it: what a hook costs a connection beside the same run without.
 * --reset: the client resets instead of ending (the read fails with ECONNRESET), as the bench's
 * "client resets" workload does; l4p then resets the backend.
 *
 * Prints the median of 7 rounds in ns per connection, and the heap growth the rounds caused
 * (garbage: what the collector then has to take back).
 */
import process from "node:process";
import { parseConfig } from "../src/config/load.ts";
import { Logger } from "../src/log/logger.ts";
import { loadRuntime } from "../src/runtime/mod.ts";
import type {
  ChunkSink,
  ConnectOptions,
  ListenOptions,
  NetAddr,
  Runtime,
  TcpConn,
  TcpListener,
} from "../src/runtime/types.ts";
import { SocketError } from "../src/runtime/types.ts";
import { L4pServer } from "../src/server/server.ts";
// The ClientHello the tests build by hand: one record, an SNI extension.
import { buildHello } from "../tests/_hello.ts";

const args = process.argv.slice(2);
const RESET = args.includes("--reset");
const HOOK = args.includes("--hook");
const ROUTERS = args.includes("--routers") ? Number(args[args.indexOf("--routers") + 1]) : 0;
const CONNECTIONS = Number(
  args.find((a, i) => /^\d+$/.test(a) && args[i - 1] !== "--routers") ?? 200_000,
);
/** Connections open at once, as the bench's load generator keeps 50. */
const BATCH = 50;
const PING = new TextEncoder().encode("PING\r\n");
const PONG = new TextEncoder().encode("+PONG\r\n");

/** A connection that costs nothing: it remembers its sink and counts what is written to it. */
class MemConn implements TcpConn {
  sink: ChunkSink | undefined;
  written = 0;
  closed = false;
  /** What was sent before the proxy streamed the connection (a peek reads it). */
  #queued: Uint8Array[] = [];
  #reader: ((chunk: Uint8Array) => void) | undefined;
  readonly localAddr: NetAddr = { hostname: "127.0.0.1", port: 7000 };
  readonly remoteAddr: NetAddr = { hostname: "127.0.0.1", port: 40000 };
  /** The peer sends `data`: to the sink, or to a read (a peek before routing). */
  send(data: Uint8Array): void {
    if (this.sink) return void this.sink.chunk(data);
    const reader = this.#reader;
    this.#reader = undefined;
    if (reader) reader(data);
    else this.#queued.push(data);
  }
  read(): Promise<Uint8Array | null> {
    const chunk = this.#queued.shift();
    if (chunk) return Promise.resolve(chunk);
    return new Promise((resolve) => this.#reader = resolve);
  }
  stream(sink: ChunkSink): void {
    this.sink = sink;
  }
  write(chunk: Uint8Array): undefined {
    this.written += chunk.length;
    return undefined;
  }
  closeWrite(): void {}
  close(): void {
    this.closed = true;
  }
  reset(): void {
    this.closed = true;
  }
}

const real = await loadRuntime();
let accept: ((conn: TcpConn) => void) | undefined;
let dialled: MemConn[] = [];
const runtime: Runtime = {
  ...real,
  listen(_options: ListenOptions, onConn: (conn: TcpConn) => void): TcpListener {
    accept = onConn;
    return { addr: { hostname: "127.0.0.1", port: 7000 }, close: () => Promise.resolve() };
  },
  connect(_options: ConnectOptions): Promise<TcpConn> {
    const conn = new MemConn();
    dialled.push(conn);
    return Promise.resolve(conn);
  },
};

const routers = ROUTERS
  ? Array.from(
    { length: ROUTERS },
    (_, i) =>
      `    r${i}: { rule: "HostSNI(\`customer${i}.example\`)", service: s, tls: { passthrough: true } }`,
  ).join("\n")
  : `    r: { rule: "HostSNI(\`*\`)", service: s${HOOK ? ", middlewares: [h]" : ""} }`;
const config = parseConfig(
  `
entryPoints:
  web: { address: "127.0.0.1:7000" }
tcp:
  routers:
${routers}
  services:
    s: { loadBalancer: { servers: [{ address: "127.0.0.1:7001" }] } }
  middlewares:
    h: { hook: { export: pass } }
`,
  "pathbench.yaml",
);
/** What each client sends first: a ClientHello for the last router's name, or PING. */
const FIRST = ROUTERS ? buildHello(`customer${ROUTERS - 1}.example`) : PING;

const server = new L4pServer({
  runtime,
  logger: new Logger({ level: "error" }),
  hooks: { pass: () => undefined },
});
await server.start(config.config);

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

async function round(n: number): Promise<number> {
  const started = performance.now();
  for (let done = 0; done < n; done += BATCH) {
    const clients: MemConn[] = [];
    dialled = [];
    for (let i = 0; i < BATCH; i++) {
      const client = new MemConn();
      clients.push(client);
      accept!(client);
      client.send(FIRST);
    }
    await tick();
    for (const backend of dialled) backend.sink!.chunk(PONG);
    if (RESET) {
      for (const client of clients) {
        client.sink!.error(new SocketError("ECONNRESET", "connection reset by peer"));
      }
    } else {
      for (const client of clients) client.sink!.end();
      for (const backend of dialled) backend.sink!.end();
    }
    await tick();
    for (const client of clients) {
      if (!client.closed || client.written !== PONG.length) {
        throw new Error("pathbench: a connection did not go through");
      }
    }
  }
  return (performance.now() - started) * 1e6 / n;
}

await round(CONNECTIONS / 4);
const heapBefore = process.memoryUsage().heapUsed;
const times: number[] = [];
for (let i = 0; i < 7; i++) times.push(await round(CONNECTIONS));
times.sort((a, b) => a - b);
console.log(
  `${runtime.name}${RESET ? " (client resets)" : ""}${ROUTERS ? ` (${ROUTERS} routers)` : ""}${
    HOOK ? " (a hook)" : ""
  }: ${times[3].toFixed(0)} ns per connection (rounds ${
    times.map((t) => t.toFixed(0)).join(" ")
  }); live records after: ${server.tracker.live.size}; heap ${
    ((process.memoryUsage().heapUsed - heapBefore) / 1e6).toFixed(1)
  } MB above the start`,
);
await server.close();
process.exit(0);
