/** Pumps bytes both ways between a client and its backend, honouring half-close. */
import type { ChunkSink, SocketError, TcpConn } from "../runtime/types.ts";
import { type Deadline, deadlines } from "./deadlines.ts";
import type { TcpContext } from "./handler.ts";

const noop = () => {};

// The states of a TcpPipe, as bits of one field (an idle connection holds every field).
/** The client ended its writes. */
const CLIENT_ENDED = 1;
/** The backend ended its writes. */
const BACKEND_ENDED = 2;
/** The client left before sending a byte and before a backend was had. */
const CLIENT_GONE = 4;
/** Both sides are closed. */
const DONE = 8;

/**
 * How long a backend connection lasts before its TCP keep-alive is switched on, in ms. Most
 * connections are over sooner, and on Bun switching it on takes four system calls; keep-alive is
 * for connections that sit idle far longer than this (traefik's default idle time is 15 s).
 */
export const KEEPALIVE_AFTER = 1000;

/** What {@link TcpPipe}'s finish resets rather than closes. */
const RESET_BACKEND = 1;
const RESET_CLIENT = 2;

/** Whether a socket failed by a reset (its peer aborted), which is passed on as a reset. */
function abortive(error: unknown): boolean {
  const code = (error as { code?: string })?.code;
  return code === "ECONNRESET" || code === "EPIPE";
}

/**
 * One proxied connection. The client is streamed from the start, so it is watched while the
 * backend is dialled: its first chunk waits (reading paused, nothing dropped) until
 * {@link attach}; a client that ends or fails before sending anything is "gone", and the dial
 * can be abandoned.
 *
 * When one side ends its writes, the other side's writes are ended too (half-close) and the
 * reverse direction goes on until it ends or stays silent for `terminationDelay`. An error in
 * either direction closes both. Bytes are counted on the connection's record.
 *
 * The pipe is itself the sink of the client's bytes (client → backend); the backend's go to a
 * small {@link Downstream}. Few objects and few fields: an idle connection holds them all.
 */
export class TcpPipe implements ChunkSink {
  /** Called once when {@link clientGone} becomes true. */
  onClientGone: () => void = noop;
  #backend: TcpConn | undefined;
  #held: { chunk: Uint8Array; release: () => void } | undefined;
  #state = 0;
  #deadline: Deadline | undefined;
  #keepAlive: Deadline | undefined;

  /**
   * @param terminationDelay once one direction has ended, how long the other may stay silent
   *   before both are closed, in ms; negative: wait for it forever.
   */
  constructor(readonly ctx: TcpContext, readonly terminationDelay: number) {
    ctx.onEnd(this);
  }

  /** True when the client ended or failed before sending a byte and before a backend was had. */
  get clientGone(): boolean {
    return (this.#state & CLIENT_GONE) !== 0;
  }

  /** A chunk from the client. */
  chunk(data: Uint8Array): Promise<void> | undefined {
    this.ctx.bytesIn += data.length;
    const backend = this.#backend;
    if (backend) return this.#write(backend, data, "client→backend");
    if (this.#state & DONE) return undefined;
    return new Promise<void>((release) => this.#held = { chunk: data, release });
  }

  /** The client ended its writes. */
  end(): void {
    if (this.#backend) return this.#ended(this.#backend, CLIENT_ENDED);
    this.#state |= CLIENT_ENDED;
    if (this.ctx.bytesIn === 0 && !this.ctx.initial) this.#gone();
  }

  /** Reading the client failed: a client's reset resets the backend too. */
  error(error: SocketError): void {
    if (!this.#backend) return this.#gone();
    this.#finish(`client→backend: ${errorText(error)}`, abortive(error) ? RESET_BACKEND : 0);
  }

  /** For the sinks: a chunk from the backend. */
  fromBackend(data: Uint8Array): Promise<void> | undefined {
    this.ctx.bytesOut += data.length;
    return this.#write(this.ctx.conn, data, "backend→client");
  }

  /** For the sinks: the backend ended its writes. */
  backendEnded(): void {
    this.#ended(this.ctx.conn, BACKEND_ENDED);
  }

  /** For the sinks: reading the backend failed; a backend's reset resets the client too. */
  backendFailed(error: SocketError): void {
    this.#finish(`backend→client: ${errorText(error)}`, abortive(error) ? RESET_CLIENT : 0);
  }

  /** The context ended from outside (a drain that ran out of time): the backend goes too. */
  contextEnded(): void {
    this.#finish("ended");
  }

  /**
   * The backend is connected: `prefix` (a PROXY header, peeked bytes) goes first, then a held
   * chunk, then everything else; the backend's own bytes start flowing back.
   */
  attach(backend: TcpConn, prefix: Uint8Array[]): void {
    this.#backend = backend;
    let wait: Promise<void> | undefined;
    for (const bytes of prefix) {
      wait = wait ? wait.then(() => backend.write(bytes)) : backend.write(bytes);
    }
    const held = this.#held;
    this.#held = undefined;
    const flush = () => {
      if (held) {
        const w = this.#write(backend, held.chunk, "client→backend");
        if (w) w.then(held.release);
        else held.release();
      } else if (this.#state & CLIENT_ENDED) {
        this.#ended(backend, CLIENT_ENDED);
      }
    };
    if (wait) wait.then(flush, (e) => this.#finish(`client→backend: ${errorText(e)}`));
    else flush();
    backend.stream(new Downstream(this));
  }

  /**
   * Switches TCP keep-alive on for the backend (probes after `idleMs` of silence) once the
   * connection has lasted {@link KEEPALIVE_AFTER} (or `idleMs`, if that is shorter).
   */
  keepBackendAlive(idleMs: number): void {
    const backend = this.#backend;
    if (!backend?.keepAlive || this.#state & DONE) return;
    this.#keepAlive = deadlines(Math.min(KEEPALIVE_AFTER, idleMs)).add(() => {
      this.#keepAlive = undefined;
      if (!(this.#state & DONE)) backend.keepAlive!(idleMs);
    });
  }

  /** Closes both sides now. */
  close(reason: string): void {
    this.#finish(reason);
  }

  #write(to: TcpConn, data: Uint8Array, direction: string): Promise<void> | undefined {
    if (this.#state & DONE) return undefined;
    const w = to.write(data);
    // A write that fails because its side reset fails the other side the same way.
    const other = to === this.#backend ? RESET_CLIENT : RESET_BACKEND;
    return w &&
      w.catch((e) => this.#finish(`${direction}: ${errorText(e)}`, abortive(e) ? other : 0));
  }

  #gone(): void {
    if (this.#state & CLIENT_GONE) return;
    this.#state |= CLIENT_GONE;
    this.onClientGone();
  }

  /** One direction ended (`which`; each is told once): the other side's writes end too. */
  #ended(to: TcpConn, which: number): void {
    if (this.#state & DONE) return;
    this.#state |= which;
    // Both ways ended: closing sends the FIN (a shutdown first would be one more system call).
    if ((this.#state & (CLIENT_ENDED | BACKEND_ENDED)) === (CLIENT_ENDED | BACKEND_ENDED)) {
      return this.#finish("done");
    }
    to.closeWrite();
    if (this.terminationDelay >= 0) this.#armIdleDeadline();
  }

  /**
   * After one direction ends, the other is closed once it has carried no byte for
   * terminationDelay. traefik sets an absolute deadline instead, which cuts off a download
   * still in full flow; an idle deadline ends silent half-open connections just the same. The
   * timer compares byte counts rather than stamping each chunk with the time, and a timer that
   * fires late (the process was busy, so bytes may be waiting unread) looks once more.
   */
  #armIdleDeadline(): void {
    const record = this.ctx;
    const delay = this.terminationDelay;
    // One timer for every connection with this delay, not one each.
    const queue = deadlines(delay);
    let seen = record.bytesIn + record.bytesOut;
    let armedAt = Date.now();
    const check = () => {
      const now = record.bytesIn + record.bytesOut;
      const late = Date.now() - armedAt > delay * 1.5 + 20;
      if (now === seen && !late) return this.#finish("termination delay");
      seen = now;
      armedAt = Date.now();
      this.#deadline = queue.add(check);
    };
    this.#deadline = queue.add(check);
  }

  /**
   * Closes both sides: with a FIN, or, for the side named in `reset` ({@link RESET_BACKEND},
   * {@link RESET_CLIENT}), with an RST, as HAProxy passes a reset on. Passing a client's reset on
   * to the backend also spares l4p a TIME_WAIT (and an ephemeral port) per such connection.
   */
  #finish(reason: string, reset = 0): void {
    if (this.#state & DONE) return;
    this.#state |= DONE;
    this.#deadline?.cancel();
    this.#keepAlive?.cancel();
    this.#held?.release();
    this.#held = undefined;
    if (reset & RESET_BACKEND) this.#backend?.reset();
    else this.#backend?.close();
    if (reset & RESET_CLIENT) this.ctx.conn.reset();
    this.ctx.end(reason);
  }
}

/** Backend → client. */
class Downstream implements ChunkSink {
  constructor(readonly pipe: TcpPipe) {}
  chunk(data: Uint8Array) {
    return this.pipe.fromBackend(data);
  }
  end() {
    this.pipe.backendEnded();
  }
  error(e: SocketError) {
    this.pipe.backendFailed(e);
  }
}

/** A short description of an error for logs and close reasons. */
export function errorText(error: unknown): string {
  const e = error as SocketError | { code?: string; message?: string };
  return e?.code ?? e?.message ?? String(error);
}
