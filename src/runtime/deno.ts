/** The Deno adapter: `Deno.listen`, `Deno.connect` and `Deno.listenDatagram` behind {@link Runtime}. */
import { pathToFileURL } from "node:url";
import {
  type ChunkSink,
  type ConnectOptions,
  type DatagramOptions,
  type DatagramSocket,
  type HttpOptions,
  type HttpServer,
  type ListenOptions,
  type LogOutput,
  type NetAddr,
  type Runtime,
  SocketError,
  type TcpConn,
  type TcpListener,
} from "./types.ts";
import { BufferPool } from "./_buffer_pool.ts";

/**
 * Read buffers follow the traffic. A connection reads into its own small buffer while it is
 * idle or chatty (an idle proxied connection costs little), and switches to a large buffer from
 * a shared pool when a read fills the small one (a bulk transfer moves in big chunks). Measured
 * here: 4 KiB buffers alone cost 3x the throughput of 64 KiB ones, and single-stream throughput
 * went 0.51 → 0.63 → 0.70 of a direct connection with 64, 128 and 256 KiB large buffers (each
 * op costs the same whatever its size); at 4 000 idle connections a small buffer of 2 KiB cost
 * 19.6 KiB a proxied connection, 1 KiB 17.5, 512 bytes 16.8. A bulk transfer holds two large
 * buffers a direction; at most 32 wait free in the pool (8 MiB).
 */
const SMALL_READ = 512;
const LARGE_READ = 256 * 1024;
const pool = new BufferPool(LARGE_READ, 32);

const ERROR_CODES: Record<string, string> = {
  AddrInUse: "EADDRINUSE",
  AddrNotAvailable: "EADDRNOTAVAIL",
  ConnectionRefused: "ECONNREFUSED",
  ConnectionReset: "ECONNRESET",
  ConnectionAborted: "ECONNABORTED",
  BrokenPipe: "EPIPE",
  TimedOut: "ETIMEDOUT",
  PermissionDenied: "EACCES",
  NotConnected: "ENOTCONN",
  BadResource: "EBADF",
  Interrupted: "EINTR",
  AbortError: "EABORTED",
  NotFound: "ENOTFOUND",
};

function socketError(error: unknown): SocketError {
  if (error instanceof SocketError) return error;
  const e = error as { name?: string; code?: string; message?: string };
  const code = e.code ?? ERROR_CODES[e.name ?? ""] ?? "EIO";
  return new SocketError(code, e.message ?? String(error), { cause: error });
}

function netAddr(addr: Deno.Addr): NetAddr {
  const a = addr as Deno.NetAddr;
  return { hostname: a.hostname, port: a.port };
}

class DenoTcpConn implements TcpConn {
  #conn: Deno.TcpConn;
  #small: Uint8Array | undefined;
  #large: Uint8Array | undefined;
  #wantLarge = false;
  #closed = false;
  #sink: ChunkSink | undefined;
  #onRead: ((n: number | null) => void) | undefined;
  #onFail: ((error: unknown) => void) | undefined;
  #onWritten: (() => void) | undefined;

  constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  // Made when asked, from Deno's own: copies kept on every connection would be memory an idle
  // connection holds for nothing.
  get localAddr(): NetAddr {
    return netAddr(this.#conn.localAddr);
  }

  get remoteAddr(): NetAddr {
    return netAddr(this.#conn.remoteAddr);
  }

  async read(): Promise<Uint8Array | null> {
    let buf: Uint8Array;
    if (this.#wantLarge) {
      buf = this.#large ??= pool.take();
    } else {
      this.#releaseLarge();
      buf = this.#small ??= new Uint8Array(SMALL_READ);
    }
    const chunk = await this.#readInto(buf).catch((error) => {
      this.#releaseLarge();
      throw error;
    });
    if (chunk === null) {
      this.#releaseLarge();
      return null;
    }
    // A full small read says a bulk transfer is on; a large read under a quarter full says it
    // has ended, and the pooled buffer should not sit in an idle read.
    this.#wantLarge = buf === this.#small
      ? chunk.length === buf.length
      : chunk.length >= LARGE_READ / 4;
    return chunk;
  }

  async #readInto(buf: Uint8Array): Promise<Uint8Array | null> {
    let n: number | null;
    try {
      n = await this.#conn.read(buf);
    } catch (error) {
      if (this.#closed) return null;
      throw socketError(error);
    }
    return n === null ? null : buf.subarray(0, n);
  }

  stream(sink: ChunkSink): void {
    this.#releaseLarge();
    this.#sink = sink;
    this.#readSmall();
  }

  /**
   * Waits for the next bytes in the small buffer. Not an async function: an idle connection
   * waits here with two callbacks made once, not in a suspended frame (whose registers, promise
   * and await callbacks measured about 350 bytes a direction). A read that fills the buffer
   * starts a bulk transfer ({@link #bulk}).
   */
  #readSmall(): void {
    const buf = this.#small ??= new Uint8Array(SMALL_READ);
    this.#conn.read(buf).then(
      this.#onRead ??= (n) => this.#gotSmall(n),
      this.#onFail ??= (error) => this.#failed(error),
    );
  }

  #gotSmall(n: number | null): void {
    const sink = this.#sink!;
    if (n === null) return sink.end();
    const chunk = this.#small!.subarray(0, n);
    if (n === SMALL_READ) {
      this.#bulk(sink, chunk);
      return;
    }
    const wait = sink.chunk(chunk);
    if (!wait) return this.#readSmall();
    const next = this.#onWritten ??= () => this.#readSmall();
    wait.then(next, next);
  }

  #failed(error: unknown): void {
    if (this.#closed) this.#sink!.end();
    else this.#sink!.error(socketError(error));
  }

  /**
   * A bulk transfer, from its first (full, small) chunk until a read comes back under a quarter
   * of a large buffer. Two pooled buffers take turns: the next chunk is read into one while the
   * last is still being written from the other, so reading and writing overlap (measured here:
   * single-stream throughput up from 0.45 to about 0.6 of a direct connection).
   */
  async #bulk(sink: ChunkSink, first: Uint8Array): Promise<void> {
    const bulk = [pool.take(), pool.take()];
    let turn = 0;
    let chunk = first;
    let ahead: Promise<number | null> | undefined;
    try {
      for (;;) {
        const leaving = chunk !== first && chunk.length < LARGE_READ / 4;
        const wait = sink.chunk(chunk);
        if (!leaving && wait) {
          // The chunk may lie in bulk[turn]: read ahead into the other one.
          turn ^= 1;
          ahead = this.#conn.read(bulk[turn]);
          ahead.catch(() => {}); // awaited below; this only keeps it handled meanwhile
        }
        if (wait) await wait;
        if (leaving) {
          giveBack(bulk);
          return this.#readSmall();
        }
        const n = await (ahead ?? this.#conn.read(bulk[turn]));
        ahead = undefined;
        if (n === null) {
          giveBack(bulk);
          return sink.end();
        }
        chunk = bulk[turn].subarray(0, n);
      }
    } catch (error) {
      // A read still pending may yet write into a buffer: then it is left to the collector.
      if (!ahead) giveBack(bulk);
      this.#failed(error);
    }
  }

  write(chunk: Uint8Array): Promise<void> {
    return this.#writeAll(chunk);
  }

  async #writeAll(chunk: Uint8Array): Promise<void> {
    try {
      let off = await this.#conn.write(chunk);
      while (off < chunk.length) off += await this.#conn.write(chunk.subarray(off));
    } catch (error) {
      throw socketError(error);
    }
  }

  closeWrite(): void {
    // Fails only when the socket is already reset or closed, and then there is nothing to end.
    this.#conn.closeWrite().catch(() => {});
  }

  /** Deno takes no idle time: the system's (tcp_keepalive_time) applies. */
  keepAlive(_idleMs: number): void {
    if (this.#closed) return;
    try {
      this.#conn.setKeepAlive(true);
    } catch {
      // The socket is gone: nothing to keep alive.
    }
  }

  /** Deno's connections cannot be reset (no SO_LINGER): a close is the nearest thing. */
  reset(): void {
    this.close();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the runtime after a reset: nothing is left to release.
    }
    // A read still pending holds the large buffer; it goes back to the pool when that read
    // settles.
  }

  #releaseLarge(): void {
    if (this.#large) {
      pool.give(this.#large);
      this.#large = undefined;
    }
  }
}

/** Returns a bulk transfer's buffers to the pool. */
function giveBack(bulk: Uint8Array[]): void {
  for (const buf of bulk) pool.give(buf);
}

class DenoTcpListener implements TcpListener {
  readonly addr: NetAddr;
  #listener: Deno.TcpListener;
  #closed = false;
  /** Ends once the pending accept has been cancelled, and with it the socket closed. */
  #loop: Promise<void>;

  constructor(options: ListenOptions, onConn: (conn: TcpConn) => void) {
    try {
      this.#listener = Deno.listen({
        hostname: options.hostname,
        port: options.port,
        transport: "tcp",
        reusePort: options.reusePort,
      });
    } catch (error) {
      throw socketError(error);
    }
    this.addr = netAddr(this.#listener.addr);
    this.#loop = this.#acceptLoop(onConn, options.onAcceptError);
  }

  async #acceptLoop(
    onConn: (conn: TcpConn) => void,
    onError?: (error: Error) => void,
  ): Promise<void> {
    while (!this.#closed) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#closed) return;
        onError?.(socketError(error));
        // Out of descriptors or memory: give the process a moment rather than spin.
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      conn.setNoDelay(true);
      onConn(new DenoTcpConn(conn));
    }
  }

  close(): Promise<void> {
    if (this.#closed) return this.#loop;
    this.#closed = true;
    try {
      this.#listener.close();
    } catch {
      // Already closed: nothing to release.
    }
    // Deno closes the socket when it next polls the cancelled accept: until then the port still
    // takes connections (measured), so "closed" means once the accept loop has ended.
    return this.#loop;
  }
}

async function connect(options: ConnectOptions): Promise<TcpConn> {
  const cancel = options.cancel;
  if (cancel?.reason) throw cancel.reason;
  // Deno.connect takes a signal, and then cancels the pending connect itself.
  let abort: AbortController | undefined;
  if (cancel) {
    const a = abort = new AbortController();
    cancel.listen(() => a.abort());
  }
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({
      hostname: options.hostname,
      port: options.port,
      transport: "tcp",
      signal: abort?.signal,
    });
  } catch (error) {
    throw cancel?.reason ?? socketError(error);
  } finally {
    cancel?.listen(undefined);
  }
  if (cancel?.reason) {
    conn.close();
    throw cancel.reason;
  }
  conn.setNoDelay(true);
  // Deno switches keep-alive on without an idle time: the system's (tcp_keepalive_time) applies.
  if ((options.keepAlive ?? 0) > 0) conn.setKeepAlive(true);
  return new DenoTcpConn(conn);
}

/**
 * Deno receives into a buffer the caller gives, which a pending receive holds: every open UDP
 * socket holds one of 64 KiB (the largest datagram). A session socket is one per UDP session,
 * so buffers of closed sockets wait here for the next ones: memory follows the sessions open at
 * once, not how many came and went (measured: 2 000 sessions three times grew RSS 70 → 310 MB
 * without it).
 */
const datagramBuffers = new BufferPool(65536, 1024);

/**
 * Closed UDP sockets whose sends are still pending. Deno releases a socket (its descriptor)
 * only once its pending operations complete, and completes a send only when the event loop
 * polls it; a receive with datagrams queued completes at once, so under a flood a receive loop
 * never gives the event loop that turn (measured: 12 900 descriptors held for a session bound
 * of 100). Past {@link MAX_UNRELEASED}, receive loops wait for a timer tick first: a costly
 * yield (about 28 000 datagrams/s where 480 000 went through without it), taken only then.
 */
let unreleased = 0;
const MAX_UNRELEASED = 256;
const tick = (resolve: () => void): void => void setTimeout(resolve, 0);

class DenoDatagramSocket implements DatagramSocket {
  readonly addr: NetAddr;
  #conn: Deno.DatagramConn;
  #closed = false;
  /** Sends under way; counted in {@link unreleased} while this socket is closed. */
  #sending = 0;
  readonly #sent = () => {
    if (--this.#sending === 0 && this.#closed) unreleased--;
  };

  constructor(conn: Deno.DatagramConn, onMessage: DatagramOptions["onMessage"]) {
    this.#conn = conn;
    this.addr = netAddr(conn.addr);
    this.#receiveLoop(onMessage);
  }

  async #receiveLoop(onMessage: DatagramOptions["onMessage"]): Promise<void> {
    // One receive buffer for the socket's life; each datagram is copied out at its own size,
    // because the handler may keep it (queued, or in an asynchronous send).
    const buf = datagramBuffers.take();
    try {
      while (!this.#closed) {
        if (unreleased > MAX_UNRELEASED) await new Promise<void>(tick);
        let data: Uint8Array;
        let from: Deno.Addr;
        try {
          [data, from] = await this.#conn.receive(buf);
        } catch {
          // Closed under us, or an ICMP error surfaced as a receive error: either way the next
          // receive (if still open) is the right thing to do.
          if (this.#closed) return;
          continue;
        }
        onMessage(data.slice(), netAddr(from));
      }
    } finally {
      // The receive has settled: nothing writes into the buffer any more.
      datagramBuffers.give(buf);
    }
  }

  send(data: Uint8Array, to: NetAddr, onDropped: () => void): void {
    // One promise a datagram, and no more: the send is not awaited.
    this.#sending++;
    this.#conn.send(data, { transport: "udp", hostname: to.hostname, port: to.port }).then(
      this.#sent,
      () => {
        this.#sent();
        onDropped();
      },
    );
  }

  /** Deno's connections cannot be reset (no SO_LINGER): a close is the nearest thing. */
  reset(): void {
    this.close();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#sending > 0) unreleased++;
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }
}

/**
 * A log output through Deno's asynchronous writes: `process.stderr.write` and `node:fs` writes
 * are synchronous on Deno, and a full stderr pipe would block the event loop (measured).
 */
async function openOutput(path?: string): Promise<LogOutput> {
  let file: Deno.FsFile | undefined;
  if (path !== undefined) {
    try {
      file = await Deno.open(path, { append: true, create: true, mode: 0o644 });
    } catch (error) {
      throw socketError(error);
    }
  }
  const target = file ?? Deno.stderr;
  return {
    async write(data: Uint8Array): Promise<void> {
      let off = 0;
      while (off < data.length) off += await target.write(data.subarray(off));
    },
    close() {
      try {
        file?.close();
      } catch {
        // Already closed: nothing to release.
      }
    },
  };
}

/** The Deno implementation of {@link Runtime}. */
export const denoRuntime: Runtime = {
  name: "deno",
  version: Deno.version.deno,
  capabilities: {
    reset: false,
    keepAliveIdle: false,
    tlsAlpnChallenge: false,
    tlsHalfClose: true,
    tlsVerifiesClientCert: false,
    udpReceiveBuffer: false,
    udpReusePort: false,
  },
  openOutput,
  listen: (options, onConn) => new DenoTcpListener(options, onConn),
  connect,
  async importFresh(path: string, version: string) {
    // Deno keeps a module per specifier: a new query string is a new module, read from disk.
    return await import(`${pathToFileURL(path).href}?v=${encodeURIComponent(version)}`);
  },
  selfCommand() {
    // A compiled binary is its own program; otherwise deno runs the main module again.
    const compiled = !/\bdeno(\.exe)?$/.test(Deno.execPath());
    return compiled
      ? { command: Deno.execPath(), args: [] }
      : { command: Deno.execPath(), args: ["run", "-A", "--unstable-net", Deno.mainModule] };
  },
  serveHttp(options: HttpOptions): HttpServer {
    let server: Deno.HttpServer<Deno.NetAddr>;
    try {
      server = Deno.serve({
        hostname: options.hostname,
        port: options.port,
        onListen: () => {},
        onError: () => new Response("internal error", { status: 500 }),
      }, options.handler);
    } catch (error) {
      throw socketError(error);
    }
    return {
      addr: { hostname: server.addr.hostname, port: server.addr.port },
      close: () => void server.shutdown(),
    };
  },
  bindDatagram(options: DatagramOptions): Promise<DatagramSocket> {
    try {
      const conn = Deno.listenDatagram({
        hostname: options.hostname,
        port: options.port,
        transport: "udp",
      });
      return Promise.resolve(new DenoDatagramSocket(conn, options.onMessage));
    } catch (error) {
      return Promise.reject(socketError(error));
    }
  },
};
