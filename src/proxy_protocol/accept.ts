/**
 * The receiving side of the PROXY protocol on a TCP entrypoint: from trusted sources a header is
 * read (bounded in size and time) and its addresses become the connection's; from anyone else a
 * connection that starts with a header is closed, so that no one can forge a client address
 * through l4p to a backend that trusts it.
 */
import { formatAddr } from "../config/address.ts";
import { canonicalIp, type CidrSet } from "../net/ip.ts";
import type { TcpConn } from "../runtime/types.ts";
import type { TcpContext } from "../tcp/handler.ts";
import { parseProxyHeader, ProxyProtocolError, V2_MAX_LENGTH } from "./codec.ts";

/** How an entrypoint takes PROXY headers. */
export interface AcceptProxyOptions {
  /** Sources whose headers are believed; `"all"` trusts everyone (traefik's `insecure`). */
  trusted: CidrSet | "all";
  /** How long a trusted source may take to send its header, in ms. */
  headerTimeout: number;
}

/** Whether `ctx`'s peer may send a PROXY header. */
export function isTrusted(options: AcceptProxyOptions, ctx: TcpContext): boolean {
  return options.trusted === "all" || options.trusted.has(ctx.conn.remoteAddr.hostname);
}

/**
 * Reads the PROXY header of a trusted connection. Resolves to true when the connection should
 * go on (with the header's addresses applied and any bytes after it in `ctx.initial`), false
 * when it has been closed (a malformed header, the deadline, the client leaving).
 */
export async function readProxyHeader(
  ctx: TcpContext,
  options: AcceptProxyOptions,
): Promise<boolean> {
  const { env, record } = ctx;
  const timer = setTimeout(() => {
    env.logger.warn("no complete PROXY header in time; connection closed", {
      entryPoint: record.entryPoint,
      client: formatAddr(record.client),
      timeoutMs: options.headerTimeout,
    });
    ctx.end("PROXY header timeout");
  }, options.headerTimeout);
  try {
    let buf: Uint8Array = new Uint8Array(0);
    for (;;) {
      let chunk: Uint8Array | null;
      try {
        chunk = await ctx.conn.read();
      } catch {
        chunk = null;
      }
      if (ctx.ended) return false;
      if (chunk === null) {
        ctx.end("client left before its PROXY header");
        return false;
      }
      buf = concat(buf, chunk);
      const result = parseProxyHeader(buf);
      if (result.kind === "incomplete") continue;
      if (result.kind === "none") {
        // A trusted source may connect without a header (its own health check, say).
        ctx.initial = buf;
        return true;
      }
      if (result.kind === "error") {
        env.logger.warn("malformed PROXY header; connection closed", {
          entryPoint: record.entryPoint,
          client: formatAddr(record.client),
          error: result.error.message,
        });
        ctx.end("malformed PROXY header");
        return false;
      }
      const { header, length } = result;
      if (header.command === "PROXY" && header.source && header.destination) {
        ctx.record.client = {
          hostname: canonicalIp(header.source.hostname),
          port: header.source.port,
        };
        ctx.destination = {
          hostname: canonicalIp(header.destination.hostname),
          port: header.destination.port,
        };
      }
      if (length < buf.length) ctx.initial = buf.subarray(length);
      env.logger.debug("PROXY header accepted", {
        entryPoint: record.entryPoint,
        version: header.version,
        client: formatAddr(ctx.record.client),
        via: formatAddr(ctx.conn.remoteAddr),
      });
      return true;
    }
  } finally {
    clearTimeout(timer);
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  // The chunk's buffer is reused by the next read, so even a lone chunk is copied.
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/**
 * Wraps an untrusted connection so that its first bytes are checked: a PROXY header (or the
 * start of one, however it is split) makes the first read fail and the connection close; any
 * other bytes pass untouched, and after that reads go straight to the connection.
 */
export function guardAgainstProxyHeader(ctx: TcpContext): TcpConn {
  const inner = ctx.conn;
  const guard: TcpConn = {
    localAddr: inner.localAddr,
    remoteAddr: inner.remoteAddr,
    async read() {
      let buf: Uint8Array | undefined;
      for (;;) {
        const chunk = await inner.read();
        if (chunk === null) {
          guard.read = () => inner.read();
          return buf ?? null;
        }
        // Only a prefix that could still become a signature needs more bytes; that is at most
        // a few, so copying them is cheap, and a plain first chunk is passed on as it is.
        const seen: Uint8Array = buf ? concat(buf, chunk) : chunk;
        const kind = parseProxyHeader(seen.subarray(0, Math.min(seen.length, V2_MAX_LENGTH))).kind;
        if (kind === "none") {
          guard.read = () => inner.read();
          return seen;
        }
        if (kind === "incomplete" && seen.length < 16) {
          buf = seen === chunk ? chunk.slice() : seen;
          continue;
        }
        ctx.env.logger.warn("PROXY header from an untrusted source; connection closed", {
          entryPoint: ctx.record.entryPoint,
          client: formatAddr(ctx.record.client),
        });
        ctx.end("PROXY header from an untrusted source");
        throw new ProxyProtocolError("PROXY header from an untrusted source");
      }
    },
    write: (chunk) => inner.write(chunk),
    closeWrite: () => inner.closeWrite(),
    close: () => inner.close(),
  };
  return guard;
}
