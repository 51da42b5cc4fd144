/**
 * TLS over an already open {@link TcpConn}, through `node:tls`, which both runtimes implement:
 * termination after the ClientHello was peeked (the peeked bytes are replayed first), and
 * origination after a plain dial. Measured here: handing `node:tls` a `net.Socket` after
 * `unshift()` loses the peeked bytes on both runtimes, while a `node:stream` Duplex that yields
 * them first works on both; so the connection is wrapped in such a Duplex.
 */
import { Duplex } from "node:stream";
import tls from "node:tls";
import { type ChunkSink, type NetAddr, SocketError, type TcpConn } from "./types.ts";

export type { SecureContext } from "node:tls";

/** How to terminate TLS on one connection. */
export interface TlsServerOptions {
  /** The certificate (and its options) chosen for the client's server name. */
  secureContext: tls.SecureContext;
  /** Protocols offered by ALPN, in preference order. */
  alpnProtocols?: string[];
  /** Ask the client for a certificate. */
  requestClientCert?: boolean;
  /**
   * Refuse, in the handshake, a client without a certificate that verifies against the secure
   * context's CAs. Only where {@link Capabilities.tlsVerifiesClientCert}: Deno ignores it.
   */
  requireClientCert?: boolean;
  /** Bytes already read from the connection (the peeked ClientHello). */
  initial?: Uint8Array;
  /** Give up the handshake after this long, in ms. */
  timeout: number;
}

/** How to originate TLS to a server. */
export interface TlsClientOptions {
  /** SNI and the name the certificate must carry. */
  serverName?: string;
  /** Trusted roots (PEM); the system's when absent. */
  ca?: string[];
  /** Accept any certificate (traefik's `insecureSkipVerify`). */
  insecureSkipVerify?: boolean;
  /** A client certificate and key (PEM), for servers that ask. */
  cert?: string;
  key?: string;
  /** The server certificate must carry this URI SAN (traefik's `peerCertURI`). */
  peerCertURI?: string;
  timeout: number;
}

/** What a handshake settled on, for logs and routing. */
export interface TlsInfo {
  protocol: string;
  alpn: string | undefined;
  cipher: string | undefined;
}

/** A TLS connection, seen as plain bytes, with what its handshake settled on. */
export interface TlsConn extends TcpConn {
  readonly tls: TlsInfo;
  /** The certificates the peer sent (DER), its own first; empty when it sent none. */
  peerCertificates(): Uint8Array[];
}

/** Terminates TLS on `conn`; resolves once the handshake is done, rejects when it fails. */
export function terminateTls(conn: TcpConn, options: TlsServerOptions): Promise<TlsConn> {
  const duplex = new ConnDuplex(conn, options.initial);
  const socket = new tls.TLSSocket(duplex as unknown as import("node:net").Socket, {
    isServer: true,
    secureContext: options.secureContext,
    ALPNProtocols: options.alpnProtocols,
    requestCert: options.requestClientCert ?? false,
    rejectUnauthorized: options.requireClientCert ?? false,
  });
  return handshake(socket, conn, duplex, "secure", options.timeout);
}

/** Starts TLS as a client on `conn`; resolves once the server's certificate is accepted. */
export function originateTls(conn: TcpConn, options: TlsClientOptions): Promise<TlsConn> {
  const duplex = new ConnDuplex(conn, undefined);
  const socket = tls.connect({
    socket: duplex as unknown as import("node:net").Socket,
    servername: options.serverName,
    ca: options.ca,
    cert: options.cert,
    key: options.key,
    rejectUnauthorized: !options.insecureSkipVerify,
    checkServerIdentity: (host, cert) => {
      if (options.insecureSkipVerify) return undefined;
      const wrong = tls.checkServerIdentity(host, cert);
      if (wrong) return wrong;
      const uri = options.peerCertURI;
      const sans = (cert.subjectaltname ?? "").split(/,\s*/);
      if (uri && !sans.includes(`URI:${uri}`)) {
        return new Error(`the server certificate has no URI SAN ${uri}`);
      }
      return undefined;
    },
  });
  return handshake(socket, conn, duplex, "secureConnect", options.timeout);
}

function handshake(
  socket: tls.TLSSocket,
  conn: TcpConn,
  duplex: ConnDuplex,
  event: "secure" | "secureConnect",
  timeoutMs: number,
): Promise<TlsConn> {
  return new Promise((resolve, reject) => {
    let failed = false;
    const fail = (error: Error) => {
      if (failed) return;
      failed = true;
      clearTimeout(timer);
      socket.destroy();
      conn.close();
      reject(tlsError(error));
    };
    const timer = setTimeout(
      () => fail(new SocketError("ETIMEDOUT", "TLS handshake timed out")),
      timeoutMs,
    );
    socket.once("error", fail);
    // A handshake that fails (a certificate refused) closes the connection too: the TLS error,
    // which says why, comes a tick later and should win.
    duplex.onClosed = () =>
      setTimeout(() => fail(new SocketError("ECONNRESET", "closed during the TLS handshake")), 0);
    socket.once(event, () => {
      clearTimeout(timer);
      socket.off("error", fail);
      duplex.onClosed = undefined;
      const cipher = socket.getCipher?.();
      resolve(
        new TlsSocketConn(socket, conn, duplex, {
          protocol: socket.getProtocol?.() ?? "TLS",
          alpn: typeof socket.alpnProtocol === "string" ? socket.alpnProtocol : undefined,
          cipher: cipher?.standardName ?? cipher?.name,
        }),
      );
    });
  });
}

function tlsError(error: unknown): SocketError {
  if (error instanceof SocketError) return error;
  const e = error as { code?: string; message?: string };
  return new SocketError(e.code ?? "ETLS", e.message ?? String(error), { cause: error });
}

/**
 * A `node:stream` Duplex over a {@link TcpConn}: what `node:tls` reads and writes its records
 * through. Bytes read before TLS took over (`initial`) come out first. A chunk waits (the
 * connection paused) while the TLS side does not want more: backpressure.
 */
class ConnDuplex extends Duplex {
  /** Told when the connection ends or fails before the handshake is done. */
  onClosed: (() => void) | undefined;
  #wake: (() => void) | undefined;
  /** While set, encrypted bytes wait on the connection (the decrypted side is backed up). */
  #held: Promise<void> | undefined;
  #release: (() => void) | undefined;

  constructor(readonly conn: TcpConn, initial: Uint8Array | undefined) {
    super({ allowHalfOpen: true });
    if (initial?.length) this.push(initial);
    // A sink of its own: a Duplex's own end() is its writable side's.
    conn.stream({
      chunk: (data) => {
        // The runtime may reuse the chunk's buffer once this returns: copy what is kept.
        const full = !this.push(data.slice());
        const wait = full ? new Promise<void>((resolve) => this.#wake = resolve) : undefined;
        if (this.#held) return wait ? Promise.all([wait, this.#held]).then(() => {}) : this.#held;
        return wait;
      },
      end: () => {
        this.push(null);
        this.onClosed?.();
      },
      error: (error) => {
        this.onClosed?.();
        this.destroy(error);
      },
    });
  }

  /** Stops feeding encrypted bytes until {@link release}. */
  hold(): void {
    this.#held ??= new Promise((resolve) => this.#release = resolve);
  }

  release(): void {
    const release = this.#release;
    this.#held = this.#release = undefined;
    release?.();
  }

  override _read(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  override _write(chunk: Uint8Array, _encoding: string, done: (error?: Error | null) => void) {
    const w = this.conn.write(chunk);
    if (w) w.then(() => done(), done);
    else done();
  }

  override _final(done: (error?: Error | null) => void): void {
    this.conn.closeWrite();
    done();
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    this.conn.close();
    done(error);
  }
}

/** The decrypted side of a TLS socket, as the rest of l4p sees connections. */
class TlsSocketConn implements TlsConn {
  constructor(
    readonly socket: tls.TLSSocket,
    readonly inner: TcpConn,
    readonly duplex: ConnDuplex,
    readonly tls: TlsInfo,
  ) {}

  get localAddr(): NetAddr {
    return this.inner.localAddr;
  }

  peerCertificates(): Uint8Array[] {
    const chain: Uint8Array[] = [];
    // Each certificate links to its issuer's; a self-signed one links to itself.
    let cert = this.socket.getPeerCertificate(true) as tls.DetailedPeerCertificate | undefined;
    while (cert?.raw && chain.length < 16) {
      const raw = new Uint8Array(cert.raw);
      const last = chain[chain.length - 1];
      if (last && last.length === raw.length && last.every((b, i) => b === raw[i])) break;
      chain.push(raw);
      cert = cert.issuerCertificate;
    }
    return chain;
  }

  get remoteAddr(): NetAddr {
    return this.inner.remoteAddr;
  }

  read(): Promise<Uint8Array | null> {
    return new Promise((resolve, reject) => {
      const s = this.socket;
      const done = () => {
        s.off("data", onData);
        s.off("end", onEnd);
        s.off("error", onError);
        s.pause();
      };
      const onData = (d: Uint8Array) => {
        done();
        resolve(d);
      };
      const onEnd = () => {
        done();
        resolve(null);
      };
      const onError = (e: Error) => {
        done();
        reject(tlsError(e));
      };
      s.on("data", onData);
      s.once("end", onEnd);
      s.once("error", onError);
      s.resume();
    });
  }

  /**
   * Delivers chunks one at a time: the sink hears nothing more, its end included, while it holds
   * a chunk back. The TLS socket itself is never paused (Deno 2.9's node:tls then loses the end
   * of a connection: measured); instead the encrypted bytes wait on the connection, and what the
   * socket had already decrypted waits here (at most its buffers, some tens of KiB).
   */
  stream(sink: ChunkSink): void {
    const s = this.socket;
    const queue: Uint8Array[] = [];
    let busy = false;
    let last: (() => void) | undefined;
    const pump = (): void => {
      while (queue.length > 0) {
        const wait = sink.chunk(queue.shift()!);
        if (wait) {
          busy = true;
          this.duplex.hold();
          wait.then(() => {
            busy = false;
            this.duplex.release();
            pump();
          });
          return;
        }
      }
      if (last) {
        const f = last;
        last = undefined;
        f();
      }
    };
    s.on("data", (d: Uint8Array) => {
      queue.push(d);
      if (!busy) pump();
    });
    let over = false;
    const finish = (f: () => void) => {
      if (over) return;
      over = true;
      last = f;
      if (!busy) pump();
    };
    s.once("end", () => finish(() => sink.end()));
    s.once("error", (e: Error) => finish(() => sink.error(tlsError(e))));
    // Bun's TLS socket may close on a client's close_notify without an "end".
    s.once("close", () => finish(() => sink.end()));
    s.resume();
  }

  /**
   * The chunk stays the caller's buffer until the TLS socket has taken it: node:tls may queue a
   * chunk by reference and encrypt it later (Deno's does, measured: a read buffer reused before
   * then sent the client changed bytes). So the write is done only when its callback says so.
   */
  write(chunk: Uint8Array): Promise<void> | undefined {
    const s = this.socket;
    if (s.destroyed) return Promise.reject(new SocketError("EPIPE", "connection is closed"));
    return new Promise((resolve, reject) => {
      s.write(chunk, (error?: Error | null) => {
        if (error) reject(tlsError(error));
        else resolve();
      });
    });
  }

  closeWrite(): void {
    this.socket.end();
  }

  /** Keep-alive is the TCP connection's, underneath. */
  keepAlive(idleMs: number): void {
    this.inner.keepAlive?.(idleMs);
  }

  /**
   * Closes once what was written (and the close_notify) has gone out: unlike a TCP socket's,
   * a TLS socket's writes are still being encrypted and handed on when close() is called. Out
   * means written to the connection underneath (the Duplex's writable side finished): Bun's TLS
   * socket reports itself finished while records still wait there (measured: a 64 MiB answer
   * lost its last megabytes when the backend closed first).
   */
  close(): void {
    const s = this.socket;
    const inner = this.inner;
    const gone = () => {
      s.destroy();
      inner.close();
    };
    const duplex = this.duplex;
    if (s.destroyed || duplex.writableFinished) return gone();
    duplex.once("finish", gone);
    s.end();
    setTimeout(gone, 2000).unref?.();
  }

  reset(): void {
    this.socket.destroy();
    this.inner.reset();
  }
}
