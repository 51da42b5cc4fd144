/**
 * Reading the first bytes of a connection before it is routed (a PROXY header, a TLS
 * ClientHello), bounded in time; what was read stays in `ctx.initial` for the backend.
 */
import { formatAddr } from "../config/address.ts";
import type { TcpContext } from "./handler.ts";

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
        chunk = await ctx.conn.read();
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
