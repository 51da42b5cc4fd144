/// <reference types="bun-types" />
/** The Bun adapter: `Bun.listen`, `Bun.connect` and `Bun.udpSocket` behind {@link Runtime}. */
import { createRequire } from "node:module";
import { close as closeFd, closeSync, open as openFd, openSync, write as writeFd } from "node:fs";
import process from "node:process";
import { bindNodeDatagram } from "./_bun_dgram.ts";
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

type BunSocket = Bun.Socket<BunTcpConn>;
type Settle<T> = { resolve: (value: T) => void; reject: (error: Error) => void };

// The states of a BunTcpConn, as bits of one field: every field is memory each idle connection
// holds, twice (client and backend).
/** The peer ended its writes, or the connection is gone. */
const ENDED = 1;
/** Reading is paused: a chunk waits to be taken. */
const PAUSED = 2;
/** close() was called, or the socket closed. */
const CLOSED = 4;
/** The sink holds chunks back until a write completes. */
const BLOCKED = 8;
/** The sink has been told of the end (or error). */
const END_GIVEN = 16;

function socketError(error: unknown): SocketError {
  if (error instanceof SocketError) return error;
  const e = error as { code?: string; message?: string };
  return new SocketError(e.code ?? "EIO", e.message ?? String(error), { cause: error });
}

/**
 * Bun pushes bytes through callbacks; this turns them into the pull interface. Bun calls `data`
 * with a fresh buffer each time, so a chunk can be kept until it is read. While a chunk waits
 * the socket is paused, so nothing piles up: backpressure reaches the kernel and the peer.
 */
class BunTcpConn implements TcpConn {
  #socket: BunSocket | undefined;
  /** Chunks received but not yet taken; made when first needed (most never are). */
  #queue: Uint8Array[] | undefined;
  #reader: Settle<Uint8Array | null> | undefined;
  #pendingWrite: (Settle<void> & { rest: Uint8Array }) | undefined;
  #error: SocketError | undefined;
  #sink: ChunkSink | undefined;
  #state = 0;

  attach(socket: BunSocket): void {
    this.#socket = socket;
    // Bun sets TCP_NODELAY itself on every socket it opens or accepts (seen with strace).
    if (this.#queue?.length) this.#pause();
  }

  // Read from the socket when asked: a backend connection's addresses are rarely wanted, and
  // objects not made are memory an idle connection does not hold.
  get localAddr(): NetAddr {
    const s = this.#socket;
    // Once the socket has closed, Bun answers undefined (measured): "" and 0 stand for unknown.
    return s
      ? { hostname: s.localAddress ?? "", port: s.localPort ?? 0 }
      : { hostname: "", port: 0 };
  }

  get remoteAddr(): NetAddr {
    const s = this.#socket;
    return s
      ? { hostname: s.remoteAddress ?? "", port: s.remotePort ?? 0 }
      : { hostname: "", port: 0 };
  }

  onData(chunk: Uint8Array): void {
    if (this.#sink) {
      if (!(this.#state & BLOCKED) && !this.#queue?.length) return this.#deliver(chunk);
      (this.#queue ??= []).push(chunk);
      this.#pause();
      return;
    }
    const reader = this.#reader;
    if (reader) {
      this.#reader = undefined;
      reader.resolve(chunk);
      return;
    }
    (this.#queue ??= []).push(chunk);
    if (this.#socket) this.#pause();
  }

  onEnd(): void {
    this.#state |= ENDED;
    if (this.#sink) return this.#flush();
    this.#wakeReader();
  }

  onClose(error?: Error): void {
    if (error && !(this.#state & CLOSED)) this.#error = socketError(error);
    this.#state |= ENDED | CLOSED;
    if (this.#sink) this.#flush();
    else this.#wakeReader();
    const pending = this.#pendingWrite;
    if (pending) {
      this.#pendingWrite = undefined;
      pending.reject(this.#error ?? new SocketError("EPIPE", "connection closed while writing"));
    }
  }

  onDrain(): void {
    const pending = this.#pendingWrite;
    if (!pending || !this.#socket) return;
    const n = this.#socket.write(pending.rest);
    if (n < 0) return this.onClose(new SocketError("EPIPE", "connection closed while writing"));
    if (n === pending.rest.length) {
      this.#pendingWrite = undefined;
      pending.resolve();
    } else {
      pending.rest = pending.rest.subarray(n);
    }
  }

  read(): Promise<Uint8Array | null> {
    const chunk = this.#queue?.shift();
    if (chunk) {
      if (this.#queue!.length === 0 && this.#state & PAUSED) {
        this.#state &= ~PAUSED;
        this.#socket?.resume();
      }
      return Promise.resolve(chunk);
    }
    if (this.#error) return Promise.reject(this.#error);
    if (this.#state & ENDED) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      this.#reader = { resolve, reject };
    });
  }

  stream(sink: ChunkSink): void {
    this.#sink = sink;
    this.#flush();
  }

  /** Hands queued chunks to the sink while it takes them, then the end once all are given. */
  #flush(): void {
    const sink = this.#sink!;
    while (!(this.#state & BLOCKED)) {
      const chunk = this.#queue?.shift();
      if (!chunk) break;
      this.#deliver(chunk);
    }
    const state = this.#state;
    if (state & BLOCKED) return;
    if (state & PAUSED && !(state & ENDED)) {
      this.#state &= ~PAUSED;
      this.#socket?.resume();
    }
    if (state & ENDED && !(state & END_GIVEN)) {
      this.#state |= END_GIVEN;
      if (this.#error) sink.error(this.#error);
      else sink.end();
    }
  }

  /**
   * Hands a chunk to the sink. A chunk held back blocks the next ones, but the socket is paused
   * only when a next one comes meanwhile (onData): the first chunk of most connections waits
   * for their backend alone, and pausing and resuming would cost two system calls each.
   */
  #deliver(chunk: Uint8Array): void {
    const wait = this.#sink!.chunk(chunk);
    if (!wait) return;
    this.#state |= BLOCKED;
    wait.then(
      this.#unblock ??= () => {
        this.#state &= ~BLOCKED;
        this.#flush();
      },
    );
  }

  /** Made the first time a sink holds chunks back; most connections never need it. */
  #unblock: (() => void) | undefined;

  write(chunk: Uint8Array): Promise<void> | undefined {
    const socket = this.#socket;
    const n = socket && !(this.#state & CLOSED) ? socket.write(chunk) : -1;
    if (n === chunk.length) return undefined;
    if (n < 0) {
      return Promise.reject(this.#error ?? new SocketError("EPIPE", "connection is closed"));
    }
    return new Promise((resolve, reject) => {
      this.#pendingWrite = { rest: chunk.subarray(n), resolve, reject };
    });
  }

  keepAlive(idleMs: number): void {
    if (!(this.#state & CLOSED)) this.#socket?.setKeepAlive(true, idleMs);
  }

  closeWrite(): void {
    // `end()` would close both ways; `shutdown()` sends FIN and keeps reading.
    if (!(this.#state & CLOSED)) this.#socket?.shutdown();
  }

  close(): void {
    this.#close(false);
  }

  reset(): void {
    this.#close(true);
  }

  #close(reset: boolean): void {
    if (this.#state & CLOSED) return;
    this.#state |= CLOSED | ENDED;
    // terminate() closes with SO_LINGER 0: the peer gets an RST and no TIME_WAIT stays here.
    if (reset) this.#socket?.terminate();
    else this.#socket?.end();
    this.#queue = undefined;
    // The end reaches the sink (or reader) after the caller of close() is done, as on Deno,
    // where a pending read settles later: no sink sees its connection end inside its own
    // call to close.
    queueMicrotask(() => (this.#sink ? this.#flush() : this.#wakeReader()));
  }

  /** Pauses reading (once: it is asked for wherever a chunk has to wait). */
  #pause(): void {
    if (this.#state & PAUSED) return;
    this.#state |= PAUSED;
    this.#socket?.pause();
  }

  #wakeReader(): void {
    const reader = this.#reader;
    if (!reader) return;
    this.#reader = undefined;
    if (this.#error) reader.reject(this.#error);
    else reader.resolve(null);
  }
}

const handlers = {
  binaryType: "uint8array" as const,
  data(socket: BunSocket, data: Uint8Array) {
    socket.data.onData(data);
  },
  end(socket: BunSocket) {
    socket.data.onEnd();
  },
  close(socket: BunSocket, error?: Error) {
    socket.data?.onClose(error);
  },
  drain(socket: BunSocket) {
    socket.data.onDrain();
  },
  error(socket: BunSocket, error: Error) {
    socket.data?.onClose(error);
  },
};

class BunTcpListener implements TcpListener {
  readonly addr: NetAddr;
  #listener: Bun.TCPSocketListener<BunTcpConn>;

  constructor(options: ListenOptions, onConn: (conn: TcpConn) => void) {
    try {
      this.#listener = Bun.listen<BunTcpConn>({
        hostname: options.hostname,
        port: options.port,
        allowHalfOpen: true,
        // Bun honours reusePort on listeners though its typings only name it for connect.
        ...({ reusePort: options.reusePort ?? false } as object),
        socket: {
          ...handlers,
          open(socket: BunSocket) {
            const conn = new BunTcpConn();
            socket.data = conn;
            conn.attach(socket);
            onConn(conn);
          },
        },
      });
    } catch (error) {
      throw socketError(error);
    }
    this.addr = { hostname: this.#listener.hostname, port: this.#listener.port };
  }

  close(): Promise<void> {
    // Bun closes the listening socket at once.
    this.#listener.stop(false);
    return Promise.resolve();
  }
}

/**
 * Handlers shared by every outgoing socket: a handler object per connection costs memory. With
 * no `connectError` handler, a failed connect rejects the promise `Bun.connect` returns.
 */
const connectHandlers = {
  ...handlers,
  open(socket: BunSocket) {
    socket.data.attach(socket);
  },
};

/**
 * Bun 1.4.5 reports a connect that could not get a socket (out of file descriptors) as
 * ECONNREFUSED, which would blame the server: a refusal is checked by opening a descriptor.
 */
function connectError(error: unknown): SocketError {
  const e = socketError(error);
  if (e.code !== "ECONNREFUSED") return e;
  try {
    closeSync(openSync("/dev/null", "r"));
  } catch (probe) {
    const code = (probe as { code?: string }).code;
    if (code === "EMFILE" || code === "ENFILE") {
      return new SocketError(code, "out of file descriptors", { cause: error });
    }
  }
  return e;
}

function connect(options: ConnectOptions): Promise<TcpConn> {
  const cancel = options.cancel;
  if (cancel?.reason) return Promise.reject(cancel.reason);
  const conn = new BunTcpConn();
  return new Promise<TcpConn>((resolve, reject) => {
    let settled = false;
    // Bun cannot cancel a pending connect; if it opens later it is closed at once below.
    cancel?.listen((reason) => {
      if (settled) return;
      settled = true;
      reject(reason);
    });
    Bun.connect<BunTcpConn>({
      hostname: options.hostname,
      port: options.port,
      allowHalfOpen: true,
      data: conn,
      socket: connectHandlers,
    }).then(
      (socket) => {
        cancel?.listen(undefined);
        if (settled) {
          conn.close();
          return;
        }
        const keepAlive = options.keepAlive ?? 0;
        if (keepAlive > 0) socket.setKeepAlive(true, keepAlive);
        settled = true;
        resolve(conn);
      },
      (error) => {
        cancel?.listen(undefined);
        conn.onClose();
        if (settled) return;
        settled = true;
        reject(connectError(error));
      },
    );
  });
}

class BunDatagramSocket implements DatagramSocket {
  constructor(
    readonly addr: NetAddr,
    readonly socket: Bun.udp.Socket<"uint8array">,
  ) {}

  send(data: Uint8Array, to: NetAddr, onDropped: () => void): void {
    let sent: boolean;
    try {
      sent = this.socket.send(data, to.port, to.hostname);
    } catch {
      // Oversized datagram or unreachable address: the caller counts the drop.
      sent = false;
    }
    if (!sent) onDropped();
  }

  close(): void {
    if (!this.socket.closed) this.socket.close();
  }
}

async function bindDatagram(options: DatagramOptions): Promise<DatagramSocket> {
  // node:dgram's reusePort works on Bun, Bun.udpSocket's does not (EADDRINUSE; measured); and
  // only node:dgram sets a receive buffer. Its send takes a callback, which costs more than
  // Bun.udpSocket's: it serves only where those are asked for.
  if (options.reusePort || options.receiveBuffer) return bindNodeDatagram(options);
  const onMessage = options.onMessage;
  let socket: Bun.udp.Socket<"uint8array">;
  try {
    socket = await Bun.udpSocket({
      hostname: options.hostname,
      port: options.port,
      binaryType: "uint8array",
      socket: {
        data(_s, data, port, address) {
          onMessage(data, { hostname: address, port });
        },
        // An ICMP error (port unreachable: the backend is not there yet, or has gone) surfaces
        // here; it concerns one earlier datagram, which is lost as UDP allows.
        error() {},
      },
    });
  } catch (error) {
    throw socketError(error);
  }
  return new BunDatagramSocket({ hostname: socket.hostname, port: socket.port }, socket);
}

/**
 * A log output through `node:fs` writes, which Bun runs off the event loop: a full stderr pipe
 * makes a write wait, not the process (Bun's `process.stderr.write` would buffer without bound).
 */
function openOutput(path?: string): Promise<LogOutput> {
  const fdOf = path === undefined
    ? Promise.resolve(2)
    : new Promise<number>((resolve, reject) =>
      openFd(path, "a", 0o644, (error, fd) => error ? reject(error) : resolve(fd))
    );
  return fdOf.then((fd) => ({
    write(data: Uint8Array): Promise<void> {
      return new Promise((resolve, reject) => {
        const from = (offset: number) =>
          writeFd(fd, data, offset, data.length - offset, null, (error, n) => {
            if (error) return reject(error);
            if (offset + n < data.length) from(offset + n);
            else resolve();
          });
        from(0);
      });
    },
    close() {
      if (fd !== 2) closeFd(fd, () => {});
    },
  }));
}

/** The Bun implementation of {@link Runtime}. */
export const bunRuntime: Runtime = {
  name: "bun",
  version: Bun.version,
  capabilities: {
    reset: true,
    keepAliveIdle: true,
    tlsAlpnChallenge: true,
    tlsHalfClose: false,
    tlsVerifiesClientCert: true,
    udpReceiveBuffer: true,
    udpReusePort: true,
  },
  openOutput,
  listen: (options, onConn) => new BunTcpListener(options, onConn),
  connect,
  bindDatagram,
  async importFresh(path: string) {
    // Bun's module cache ignores a query string; forgetting the entry has it read the file again.
    delete createRequire(import.meta.url).cache[path];
    return await import(path);
  },
  selfCommand() {
    // A compiled binary keeps its program inside; otherwise bun runs the main module again.
    const compiled = Bun.main.startsWith("/$bunfs/");
    return { command: process.execPath, args: compiled ? [] : [Bun.main] };
  },
  serveHttp(options: HttpOptions): HttpServer {
    let server: ReturnType<typeof Bun.serve>;
    try {
      server = Bun.serve({
        hostname: options.hostname,
        port: options.port,
        fetch: options.handler,
        error: () => new Response("internal error", { status: 500 }),
      });
    } catch (error) {
      throw socketError(error);
    }
    return {
      addr: { hostname: server.hostname ?? options.hostname, port: server.port ?? options.port },
      close: () => void server.stop(true),
    };
  },
};
