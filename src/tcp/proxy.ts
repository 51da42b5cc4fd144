/** Pumps bytes both ways between a client and its backend, honouring half-close. */
import type { ChunkSink, SocketError, TcpConn } from "../runtime/types.ts";
import type { TcpContext } from "./handler.ts";

const noop = () => {};

/**
 * One proxied connection. The client is streamed from the start, so it is watched while the
 * backend is dialled: its first chunk waits (reading paused, nothing dropped) until
 * {@link attach}; a client that ends or fails before sending anything is "gone", and the dial
 * can be abandoned.
 *
 * When one side ends its writes, the other side's writes are ended too (half-close) and the
 * reverse direction goes on until it ends or stays silent for `terminationDelay`. An error in
 * either direction closes both. Bytes are counted on the connection's record.
 */
export class TcpPipe {
  /** Set when the client ended or failed before sending a byte and before a backend was had. */
  clientGone = false;
  /** Called once when {@link clientGone} becomes true. */
  onClientGone: () => void = noop;
  #backend: TcpConn | undefined;
  #held: { chunk: Uint8Array; release: () => void } | undefined;
  #clientEnded = false;
  #open = 2;
  #done = false;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /**
   * @param terminationDelay once one direction has ended, how long the other may stay silent
   *   before both are closed, in ms; negative: wait for it forever.
   */
  constructor(readonly ctx: TcpContext, readonly terminationDelay: number) {
    ctx.onEnd(this);
  }

  /** Client → backend. A class instance rather than closures: an idle connection is small. */
  readonly upstream: ChunkSink = new Upstream(this);

  /** Backend → client. */
  readonly downstream: ChunkSink = new Downstream(this);

  /** For the sinks: a chunk from the client. */
  fromClient(data: Uint8Array): Promise<void> | undefined {
    this.ctx.record.bytesIn += data.length;
    const backend = this.#backend;
    if (backend) return this.#write(backend, data, "client→backend");
    if (this.#done) return undefined;
    return new Promise<void>((release) => this.#held = { chunk: data, release });
  }

  /** For the sinks: the client ended its writes. */
  clientEnded(): void {
    if (this.#backend) return this.#ended(this.#backend);
    this.#clientEnded = true;
    if (this.ctx.record.bytesIn === 0 && !this.ctx.initial) this.#gone();
  }

  /** For the sinks: reading the client failed. */
  clientFailed(error: SocketError): void {
    if (!this.#backend) return this.#gone();
    this.#finish(`client→backend: ${errorText(error)}`);
  }

  /** For the sinks: a chunk from the backend. */
  fromBackend(data: Uint8Array): Promise<void> | undefined {
    this.ctx.record.bytesOut += data.length;
    return this.#write(this.ctx.conn, data, "backend→client");
  }

  /** For the sinks: the backend ended its writes. */
  backendEnded(): void {
    this.#ended(this.ctx.conn);
  }

  /** For the sinks: reading the backend failed. */
  backendFailed(error: SocketError): void {
    this.#finish(`backend→client: ${errorText(error)}`);
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
      } else if (this.#clientEnded) {
        this.#ended(backend);
      }
    };
    if (wait) wait.then(flush, (e) => this.#finish(`client→backend: ${errorText(e)}`));
    else flush();
    backend.stream(this.downstream);
  }

  /** Closes both sides now. */
  close(reason: string): void {
    this.#finish(reason);
  }

  #write(to: TcpConn, data: Uint8Array, direction: string): Promise<void> | undefined {
    if (this.#done) return undefined;
    const w = to.write(data);
    return w && w.catch((e) => this.#finish(`${direction}: ${errorText(e)}`));
  }

  #gone(): void {
    if (this.clientGone) return;
    this.clientGone = true;
    this.onClientGone();
  }

  #ended(to: TcpConn): void {
    if (this.#done) return;
    to.closeWrite();
    if (--this.#open === 0) return this.#finish("done");
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
    const record = this.ctx.record;
    const delay = this.terminationDelay;
    let seen = record.bytesIn + record.bytesOut;
    let armedAt = Date.now();
    const check = () => {
      const now = record.bytesIn + record.bytesOut;
      const late = Date.now() - armedAt > delay * 1.5 + 20;
      if (now === seen && !late) return this.#finish("termination delay");
      seen = now;
      armedAt = Date.now();
      this.#timer = setTimeout(check, delay);
    };
    this.#timer = setTimeout(check, delay);
  }

  #finish(reason: string): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#held?.release();
    this.#held = undefined;
    this.#backend?.close();
    this.ctx.end(reason);
  }
}

class Upstream implements ChunkSink {
  constructor(readonly pipe: TcpPipe) {}
  chunk(data: Uint8Array) {
    return this.pipe.fromClient(data);
  }
  end() {
    this.pipe.clientEnded();
  }
  error(e: SocketError) {
    this.pipe.clientFailed(e);
  }
}

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
