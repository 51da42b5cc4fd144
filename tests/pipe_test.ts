import assert from "node:assert/strict";
import { test } from "node:test";
import { Logger } from "../src/log/logger.ts";
import { TrafficTracker } from "../src/metrics/tracker.ts";
import type { ChunkSink, NetAddr, Runtime, TcpConn } from "../src/runtime/types.ts";
import { TcpContext } from "../src/tcp/handler.ts";
import { KEEPALIVE_AFTER, TcpPipe } from "../src/tcp/proxy.ts";
import { waitFor } from "./_helpers.ts";

/** A connection in memory that records what is asked of it. */
class Conn implements TcpConn {
  sink: ChunkSink | undefined;
  keptAlive: number[] = [];
  closed = false;
  readonly localAddr: NetAddr = { hostname: "127.0.0.1", port: 1 };
  readonly remoteAddr: NetAddr = { hostname: "127.0.0.1", port: 2 };
  read(): Promise<Uint8Array | null> {
    return Promise.resolve(null);
  }
  stream(sink: ChunkSink): void {
    this.sink = sink;
  }
  write(): undefined {
    return undefined;
  }
  closeWrite(): void {}
  close(): void {
    this.closed = true;
  }
  reset(): void {
    this.closed = true;
  }
  keepAlive(idleMs: number): void {
    this.keptAlive.push(idleMs);
  }
}

function pipe(): { pipe: TcpPipe; client: Conn; backend: Conn } {
  const env = {
    runtime: undefined as unknown as Runtime,
    tracker: new TrafficTracker(),
    logger: new Logger({ level: "error", write: () => {} }),
  };
  const client = new Conn();
  const backend = new Conn();
  const ctx = new TcpContext(client, "web", env);
  const p = new TcpPipe(ctx, -1);
  client.stream(p);
  p.attach(backend, []);
  return { pipe: p, client, backend };
}

test("backend keep-alive: switched on once the connection has lasted a while, never for one that ended before", async () => {
  const long = pipe();
  const short = pipe();
  long.pipe.keepBackendAlive(30_000);
  short.pipe.keepBackendAlive(30_000);
  assert.deepEqual(long.backend.keptAlive, [], "not at the dial: most connections end sooner");
  short.pipe.close("done");
  assert.equal(short.backend.closed, true);
  await waitFor(() => long.backend.keptAlive.length > 0, KEEPALIVE_AFTER + 5000, "keep-alive");
  assert.deepEqual(long.backend.keptAlive, [30_000], "with the configured idle time");
  assert.deepEqual(short.backend.keptAlive, [], "a connection that ended never gets it");
  long.pipe.close("done");
});

test("backend keep-alive: an idle time shorter than the wait is honoured at that time", async () => {
  const p = pipe();
  p.pipe.keepBackendAlive(200);
  await waitFor(() => p.backend.keptAlive.length > 0, 5000, "keep-alive");
  assert.deepEqual(p.backend.keptAlive, [200]);
  p.pipe.close("done");
});
