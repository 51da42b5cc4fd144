/**
 * The receiving side of the PROXY protocol on a TCP entrypoint: from trusted sources a header is
 * read (bounded in size and time) and its addresses become the connection's; from anyone else a
 * connection that starts with a header is closed, so that no one can forge a client address
 * through l4p to a backend that trusts it.
 */
import { formatAddr } from "../config/address.ts";
import { canonicalIp, type CidrSet } from "../net/ip.ts";
import { type ChunkSink, SocketError, type TcpConn } from "../runtime/types.ts";
import type { TcpContext } from "../tcp/handler.ts";
import { peek } from "../tcp/peek.ts";
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
  const { env } = ctx;
  const result = await peek(ctx, options.headerTimeout, "PROXY header", (buf) => {
    const r = parseProxyHeader(buf);
    return r.kind === "incomplete" ? { more: true } : { more: false, value: r };
  });
  if (!result) return false;
  // A trusted source may connect without a header (its own health check, say).
  if (result.kind === "none") return true;
  if (result.kind === "error") {
    const key = `proxy ${ctx.entryPoint} ${result.error.message}`;
    env.logger.repeated("warn", key, "malformed PROXY header; connection closed", {
      entryPoint: ctx.entryPoint,
      client: formatAddr(ctx.client),
      error: result.error.message,
    });
    ctx.end("malformed PROXY header");
    return false;
  }
  if (result.kind !== "header") return false;
  const { header, length } = result;
  if (header.command === "PROXY" && header.source && header.destination) {
    ctx.client = { hostname: canonicalIp(header.source.hostname), port: header.source.port };
    ctx.destination = {
      hostname: canonicalIp(header.destination.hostname),
      port: header.destination.port,
    };
  }
  const rest = ctx.initial!.subarray(length);
  ctx.initial = rest.length > 0 ? rest : undefined;
  env.logger.debug("PROXY header accepted", {
    entryPoint: ctx.entryPoint,
    version: header.version,
    client: formatAddr(ctx.client),
    via: formatAddr(ctx.conn.remoteAddr),
  });
  return true;
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
 * start of one, however it is split) closes the connection; any other bytes pass untouched, and
 * after the first ones the wrapper steps aside.
 */
export function guardAgainstProxyHeader(ctx: TcpContext): TcpConn {
  const inner = ctx.conn;
  let seen: Uint8Array | undefined;
  /** Looks at the bytes so far: "pass" them on, wait for "more", or refuse. */
  const judge = (chunk: Uint8Array): "pass" | "more" | "refuse" => {
    // Only a prefix that could still become a signature needs more bytes; that is at most a
    // few, so copying them is cheap, and a plain first chunk is passed on as it is.
    seen = seen ? concat(seen, chunk) : chunk;
    const kind = parseProxyHeader(seen.subarray(0, Math.min(seen.length, V2_MAX_LENGTH))).kind;
    if (kind === "none") return "pass";
    if (kind === "incomplete" && seen.length < 16) {
      if (seen === chunk) seen = chunk.slice();
      return "more";
    }
    return "refuse";
  };
  /** Closes the connection; the caller has already stopped passing bytes on. */
  const refuse = () => {
    ctx.env.logger.warn("PROXY header from an untrusted source; connection closed", {
      entryPoint: ctx.entryPoint,
      client: formatAddr(ctx.client),
    });
    ctx.end("PROXY header from an untrusted source");
    return new ProxyProtocolError("PROXY header from an untrusted source");
  };
  return {
    localAddr: inner.localAddr,
    remoteAddr: inner.remoteAddr,
    async read() {
      for (;;) {
        const chunk = await inner.read();
        if (chunk === null) return seen ?? null;
        const verdict = judge(chunk);
        if (verdict === "refuse") throw refuse();
        if (verdict === "pass") {
          this.read = () => inner.read();
          return seen!;
        }
      }
    },
    stream(sink: ChunkSink) {
      let decided = false;
      const first: ChunkSink = {
        chunk(data) {
          if (decided) return undefined; // refused: nothing more is passed on
          const verdict = judge(data);
          if (verdict === "more") return undefined;
          decided = true;
          if (verdict === "refuse") {
            return void sink.error(new SocketError("EPROTO", refuse().message));
          }
          // From here on chunks go straight to the sink.
          first.chunk = (d) => sink.chunk(d);
          return sink.chunk(seen!);
        },
        end() {
          // Bytes that only began like a signature, then stopped: they were no header.
          if (!decided && seen) {
            decided = true;
            const wait = sink.chunk(seen);
            if (wait) return void wait.then(() => sink.end());
          }
          sink.end();
        },
        error: (e) => sink.error(e),
      };
      inner.stream(first);
    },
    write: (chunk) => inner.write(chunk),
    closeWrite: () => inner.closeWrite(),
    close: () => inner.close(),
    reset: () => inner.reset(),
  };
}
