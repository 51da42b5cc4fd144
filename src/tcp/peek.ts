/**
 * Reading the first bytes of a connection before it is routed (a PROXY header, a TLS
 * ClientHello), bounded in time; what was read stays in `ctx.initial` for the backend.
 */
import { formatAddr } from "../config/address.ts";
import { type ChunkSink, SocketError, type TcpConn } from "../runtime/types.ts";
import type { TcpContext } from "./handler.ts";

/**
 * When the client sends nothing at all for `ms`, the peek ends with what `silent()` says (a
 * server speaks first: SMTP, MySQL, FTP); the read under way is kept for whoever reads the
 * connection next.
 */
export interface Silence<T> {
  ms: number;
  silent: () => T;
}

/** What `decide` says of the bytes so far: read more, or done with a value. */
export type PeekStep<T> = { more: true } | { more: false; value: T };

/**
 * Reads until `decide` is done with the bytes so far (starting from `ctx.initial`), and resolves
 * to its value; or closes the connection, with `reason`, when the client leaves or `timeoutMs`
 * passes first, and resolves to `undefined`. `decide` bounds the size by deciding (an error is a
 * value too).
 */
export async function peek<T>(
  ctx: TcpContext,
  timeoutMs: number,
  what: string,
  decide: (buf: Uint8Array) => PeekStep<T>,
  silence?: Silence<T>,
): Promise<T | undefined> {
  let buf: Uint8Array = ctx.initial ?? new Uint8Array(0);
  // Bytes gather in a buffer that doubles when full, so a client dripping its hello a few bytes
  // at a time costs copies linear in what it sent, not one whole copy per piece.
  let store: Uint8Array | undefined;
  if (buf.length > 0) {
    const step = decide(buf);
    if (!step.more) return step.value;
  }
  const timer = setTimeout(() => {
    // Slow clients come in crowds (a slowloris): one line a second says how many.
    const key = `peek ${ctx.entryPoint} ${what}`;
    ctx.env.logger.repeated("warn", key, `no complete ${what} in time; connection closed`, {
      entryPoint: ctx.entryPoint,
      client: formatAddr(ctx.client),
      timeoutMs,
    });
    ctx.end(`${what} timeout`);
  }, timeoutMs);
  try {
    for (;;) {
      let chunk: Uint8Array | null;
      try {
        const reading = ctx.conn.read();
        if (silence && buf.length === 0) {
          const first = await firstOrSilence(reading, silence.ms);
          if (first === SILENT) {
            if (ctx.ended) return undefined;
            ctx.conn = new ReadUnderWay(ctx.conn, reading);
            return silence.silent();
          }
          chunk = first;
        } else chunk = await reading;
      } catch {
        chunk = null;
      }
      if (ctx.ended) return undefined;
      if (chunk === null) {
        ctx.end(`client left before its ${what}`);
        return undefined;
      }
      // The chunk's buffer is reused by the next read, so even a lone chunk is copied.
      const length = buf.length + chunk.length;
      if (!store || store.length < length) {
        const grown = new Uint8Array(Math.max(length, 2 * (store?.length ?? 0), 512));
        grown.set(buf, 0);
        store = grown;
      }
      store.set(chunk, buf.length);
      buf = store.subarray(0, length);
      ctx.initial = buf;
      const step = decide(buf);
      if (!step.more) return step.value;
    }
  } finally {
    clearTimeout(timer);
  }
}

const SILENT = Symbol("silent");

/** The first chunk, or {@link SILENT} when `ms` pass before it. */
function firstOrSilence(
  reading: Promise<Uint8Array | null>,
  ms: number,
): Promise<Uint8Array | null | typeof SILENT> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    reading,
    new Promise<typeof SILENT>((r) => timer = setTimeout(() => r(SILENT), ms)),
  ]).finally(() => clearTimeout(timer));
}

/**
 * A connection with a read under way (given up by a peek on a silent client): the next reader
 * gets that read's chunk first, so no byte the client sends later is lost.
 */
class ReadUnderWay implements TcpConn {
  #reading: Promise<Uint8Array | null> | undefined;
  constructor(readonly inner: TcpConn, reading: Promise<Uint8Array | null>) {
    this.#reading = reading;
    this.keepAlive = inner.keepAlive?.bind(inner);
  }
  readonly keepAlive?: (idleMs: number) => void;
  get localAddr() {
    return this.inner.localAddr;
  }
  get remoteAddr() {
    return this.inner.remoteAddr;
  }
  read(): Promise<Uint8Array | null> {
    const reading = this.#reading;
    this.#reading = undefined;
    return reading ?? this.inner.read();
  }
  stream(sink: ChunkSink): void {
    const reading = this.#reading;
    this.#reading = undefined;
    if (!reading) return this.inner.stream(sink);
    reading.then((chunk) => {
      if (chunk === null) return sink.end();
      const held = sink.chunk(chunk);
      if (held) held.then(() => this.inner.stream(sink), () => this.inner.stream(sink));
      else this.inner.stream(sink);
    }, (error) => {
      sink.error(
        error instanceof SocketError
          ? error
          : new SocketError("ECONNRESET", String((error as Error)?.message ?? error)),
      );
    });
  }
  write(chunk: Uint8Array): Promise<void> | undefined {
    return this.inner.write(chunk);
  }
  closeWrite(): void {
    this.inner.closeWrite();
  }
  close(): void {
    this.inner.close();
  }
  reset(): void {
    this.inner.reset();
  }
}
