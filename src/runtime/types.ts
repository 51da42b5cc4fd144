/**
 * The one interface the rest of l4p sees of a JavaScript runtime's sockets.
 *
 * Words follow the WinterTC Sockets API where they fit (`connect`, `closed`), but the data path
 * is a pull loop over reused buffers rather than web streams: `pipeTo` measured 2× slower on
 * Deno and cannot half-close.
 */

/**
 * A socket failure, with the POSIX-style code both runtimes agree on (`EADDRINUSE`,
 * `ECONNREFUSED`, `ECONNRESET`, `ETIMEDOUT`, `EABORTED`, …).
 */
export class SocketError extends Error {
  constructor(readonly code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SocketError";
  }
}

/**
 * Gives up a connect under way: a timeout, or the caller's change of mind. An AbortSignal with
 * one listener and no events: a dial on the data path pays for no EventTarget.
 */
export class DialCancel {
  /** Why the connect was given up (ETIMEDOUT or EABORTED), once it was. */
  reason: SocketError | undefined;
  #listener: ((reason: SocketError) => void) | undefined;

  /** Gives up because the connect took too long: it fails with ETIMEDOUT. */
  timeOut(): void {
    this.#cancel(new SocketError("ETIMEDOUT", "connect timed out"));
  }

  /** Gives up because the connection is no longer wanted: it fails with EABORTED. */
  abandon(): void {
    this.#cancel(new SocketError("EABORTED", "connect abandoned"));
  }

  /** For the adapters: `listener` is told of the cancel (once); `undefined` stops listening. */
  listen(listener: ((reason: SocketError) => void) | undefined): void {
    this.#listener = listener;
  }

  #cancel(reason: SocketError): void {
    if (this.reason) return;
    this.reason = reason;
    const listener = this.#listener;
    this.#listener = undefined;
    listener?.(reason);
  }
}

/** An IP endpoint as the operating system reports it. */
export interface NetAddr {
  /** Literal IP address, without brackets for IPv6. */
  hostname: string;
  port: number;
}

/** Where {@link TcpConn.stream} delivers a connection's bytes. */
export interface ChunkSink {
  /**
   * A chunk arrived. Return a promise to hold further chunks until it settles (backpressure);
   * the chunk's bytes stay valid until then (or, returning `undefined`, until this returns).
   */
  chunk(data: Uint8Array): Promise<void> | undefined;
  /** The peer ended its writes; nothing follows. */
  end(): void;
  /** The connection failed; nothing follows. */
  error(error: SocketError): void;
}

/** A connected TCP stream. */
export interface TcpConn {
  readonly localAddr: NetAddr;
  readonly remoteAddr: NetAddr;
  /**
   * Next chunk of received bytes, or `null` once the peer has ended its writes (or the
   * connection is gone). The returned view is valid only until the next `read()` call, so a
   * caller must finish with it (write it onward) before reading again.
   */
  read(): Promise<Uint8Array | null>;
  /**
   * Delivers every further chunk to `sink`, then its end or error; after this, `read()` is not
   * to be called. The runtime pushes where it can (Bun), so an idle connection holds no pending
   * read, and a chunk costs no promise unless a write has to wait.
   */
  stream(sink: ChunkSink): void;
  /**
   * Writes all of `chunk`. Returns `undefined` when the runtime took (copied) every byte at once,
   * or a promise that settles once it has; until then the chunk's bytes are the runtime's (the
   * caller must neither change nor reuse its buffer) and the caller must not write again.
   * Rejects when the connection is broken.
   */
  write(chunk: Uint8Array): Promise<void> | undefined;
  /** Ends our writes (TCP FIN) while reads go on: the half-close. */
  closeWrite(): void;
  /**
   * Switches TCP keep-alive on: probes after `idleMs` of silence where the runtime can set that
   * (`capabilities.keepAliveIdle`), else after the system's idle time. Absent on connections that
   * cannot have it; {@link ConnectOptions.keepAlive} does the same at connect time.
   */
  keepAlive?(idleMs: number): void;
  /** Closes both directions and releases the socket. Idempotent. */
  close(): void;
  /**
   * Closes with a reset (SO_LINGER 0: an RST, no TIME_WAIT) where the runtime can
   * ({@link Capabilities.reset}); elsewhere the same as {@link close}. Idempotent.
   */
  reset(): void;
}

/** Options for a TCP listener. */
export interface ListenOptions {
  hostname: string;
  port: number;
  /** SO_REUSEPORT, so that several processes can share one port. */
  reusePort?: boolean;
  /** Told of a failed accept (say, out of file descriptors); the listener keeps accepting. */
  onAcceptError?: (error: Error) => void;
}

/** A listening TCP socket. */
export interface TcpListener {
  readonly addr: NetAddr;
  /**
   * Stops accepting; open connections are not touched. Resolves once the port refuses new
   * connections (on Deno that is only after the pending accept has been cancelled).
   */
  close(): Promise<void>;
}

/** Options for an outgoing TCP connection. */
export interface ConnectOptions {
  hostname: string;
  port: number;
  /** Cancelling gives up the attempt; a connection that opens after that is closed at once. */
  cancel?: DialCancel;
  /** TCP keep-alive: idle time before probes, in ms; absent or ≤ 0: off. */
  keepAlive?: number;
}

/** A bound UDP socket. */
export interface DatagramSocket {
  readonly addr: NetAddr;
  /** Sends one datagram; `onDropped` is told if the runtime refused it (it is then lost). */
  send(data: Uint8Array, to: NetAddr, onDropped: () => void): void;
  /** Closes the socket; `onMessage` is not called afterwards. */
  close(): void;
  /** Sets the kernel's receive buffer (bytes); present on sockets bound with `receiveBuffer`. */
  setReceiveBuffer?(bytes: number): void;
}

/** Options for a UDP socket. */
export interface DatagramOptions {
  hostname: string;
  port: number;
  /** Called once per received datagram; `data` is the handler's to keep. */
  onMessage(data: Uint8Array, from: NetAddr): void;
  /** SO_REUSEPORT, so that several processes share the port ({@link Capabilities.udpReusePort}). */
  reusePort?: boolean;
  /** SO_RCVBUF in bytes (the kernel doubles it, and caps it at net.core.rmem_max). */
  receiveBuffer?: number;
}

/** A small HTTP server (the admin and metrics listener). */
export interface HttpServer {
  readonly addr: NetAddr;
  close(): void;
}

/** Options for an HTTP server. */
export interface HttpOptions {
  hostname: string;
  port: number;
  handler(request: Request): Response | Promise<Response>;
}

/** Where log lines go: stderr or a file, written without ever blocking the event loop. */
export interface LogOutput {
  /** Writes all of `data`; resolves once written (a full pipe makes it wait, not the process). */
  write(data: Uint8Array): Promise<void>;
  /** Releases the file, if any. */
  close(): void;
}

/** What a runtime can and cannot do, asked by the rest of l4p instead of naming the runtime. */
export interface Capabilities {
  /** {@link TcpConn.reset} sends an RST (Bun's `terminate()`); Deno's connections have no reset. */
  reset: boolean;
  /** Keep-alive takes an idle time; on Deno it only switches on (the system's idle time applies). */
  keepAliveIdle: boolean;
  /**
   * TLS can serve the TLS-ALPN-01 challenge certificate; Deno's TLS refuses any certificate with
   * the critical acmeIdentifier extension (`UnsupportedCriticalExtension`).
   */
  tlsAlpnChallenge: boolean;
  /**
   * A terminated TLS connection can be half-closed: the client's close_notify ends its direction
   * only. Bun 1.4.5's node:tls answers it by closing its own side at once.
   */
  tlsHalfClose: boolean;
  /**
   * Server-side TLS verifies a client's certificate against the CAs it was given, and refuses it
   * in the handshake. Deno 2.9's node:tls neither verifies nor refuses (l4p verifies the chain
   * itself everywhere; this only says whether the handshake can refuse too).
   */
  tlsVerifiesClientCert: boolean;
  /**
   * A UDP socket's receive buffer (SO_RCVBUF) can be set. Deno has no option for it, and its
   * node:dgram's setRecvBufferSize reports the size without applying it (ss shows the default).
   */
  udpReceiveBuffer: boolean;
  /**
   * Several processes can share a UDP port, the kernel keeping each client with one of them
   * (Bun, through node:dgram). Deno has no SO_REUSEPORT for UDP (its reuseAddress hands the
   * port to the last process bound).
   */
  udpReusePort: boolean;
}

/** What every runtime adapter provides. Process matters (arguments, signals, files) go through
 * `node:process` and `node:fs`, which both runtimes implement alike. */
export interface Runtime {
  /** "deno" or "bun". */
  readonly name: "deno" | "bun";
  /** The runtime's own version. */
  readonly version: string;
  readonly capabilities: Capabilities;
  /** Starts a TCP listener; `onConn` is called for each accepted connection. */
  listen(options: ListenOptions, onConn: (conn: TcpConn) => void): TcpListener;
  /** Opens a TCP connection. */
  connect(options: ConnectOptions): Promise<TcpConn>;
  /** Binds a UDP socket. */
  bindDatagram(options: DatagramOptions): Promise<DatagramSocket>;
  /**
   * Opens a log output: stderr, or the file at `path` (appended to, created 0644). Throws a
   * `SocketError`-like error with a code when the file cannot be opened.
   */
  openOutput(path?: string): Promise<LogOutput>;
  /** Serves HTTP with web-standard requests and responses. */
  serveHttp(options: HttpOptions): HttpServer;
  /** How to start this same program again (for worker processes): the command and the
   * arguments that come before the program's own. */
  selfCommand(): { command: string; args: string[] };
  /**
   * Imports the module at `path` (absolute) as it is on disk now: a file that changed since it
   * was last imported is evaluated again (`version` names what is on disk: its mtime and size).
   * Modules it imports itself are not.
   */
  importFresh(path: string, version: string): Promise<Record<string, unknown>>;
}
