/**
 * Answering ACME challenges on l4p's own entrypoints, before routing: TLS-ALPN-01 (a
 * ClientHello that offers `acme-tls/1` for a name being validated gets the challenge
 * certificate) and HTTP-01 (`GET /.well-known/acme-challenge/TOKEN` on the entrypoint that
 * `httpChallenge` names gets the key authorization).
 */
import { createSecureContext } from "node:tls";
import { formatAddr } from "../config/address.ts";
import { terminateTls } from "../runtime/tls.ts";
import type { TcpContext } from "../tcp/handler.ts";
import { peek } from "../tcp/peek.ts";

/** The ALPN protocol of TLS-ALPN-01 (RFC 8737). */
export const ACME_TLS_ALPN = "acme-tls/1";

const PREFIX = new TextEncoder().encode("GET /.well-known/acme-challenge/");
/** The most a challenge request line may take. */
const MAX_LINE = 2048;

/**
 * Answers a TLS-ALPN-01 validation if this connection is one (it offers `acme-tls/1` for a
 * name with a challenge under way); true when it took the connection.
 */
export function answerAlpnChallenge(
  ctx: TcpContext,
  sni: string | undefined,
  alpn: readonly string[],
  timeoutMs: number,
): boolean {
  const challenge = sni && alpn.includes(ACME_TLS_ALPN) ? ctx.env.acme?.alpn(sni) : undefined;
  if (!challenge) return false;
  // Read now: after the challenge's handshake the validator closes, and the socket forgets.
  const client = formatAddr(ctx.client);
  terminateTls(ctx.conn, {
    secureContext: createSecureContext({ cert: challenge.cert, key: challenge.key }),
    alpnProtocols: [ACME_TLS_ALPN],
    initial: ctx.initial,
    timeout: timeoutMs,
  }).then((conn) => {
    ctx.env.logger.info("ACME: TLS-ALPN-01 challenge answered", {
      name: sni,
      client,
    });
    ctx.conn = conn;
    ctx.end("ACME TLS-ALPN-01 challenge");
  }, (error) => ctx.end(`ACME TLS-ALPN-01 handshake failed: ${(error as Error).message}`));
  return true;
}

/**
 * On the HTTP-01 entrypoint: reads the request line, and answers it if it asks for a challenge
 * (then resolves to "answered"); otherwise resolves to "pass" with the bytes read kept in
 * `ctx.initial` for routing, or to undefined if the client left or was too slow.
 */
export async function answerHttpChallenge(
  ctx: TcpContext,
  timeoutMs: number,
): Promise<"answered" | "pass" | undefined> {
  const token = await peek(ctx, timeoutMs, "HTTP request line", (buf) => {
    const n = Math.min(buf.length, PREFIX.length);
    for (let i = 0; i < n; i++) if (buf[i] !== PREFIX[i]) return { more: false, value: null };
    if (buf.length < PREFIX.length) return { more: true };
    const eol = buf.indexOf(0x0a);
    if (eol < 0) return buf.length > MAX_LINE ? { more: false, value: null } : { more: true };
    const line = new TextDecoder().decode(buf.subarray(PREFIX.length, eol));
    return { more: false, value: line.split(" ")[0] };
  });
  if (token === undefined) return undefined;
  if (token === null) return "pass";
  const answer = ctx.env.acme?.http(token);
  const client = formatAddr(ctx.client);
  const body = answer ?? "no such challenge\n";
  const head = answer ? "HTTP/1.1 200 OK" : "HTTP/1.1 404 Not Found";
  const response = new TextEncoder().encode(
    `${head}\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
  );
  ctx.initial = undefined;
  const w = ctx.conn.write(response);
  const done = () => {
    ctx.conn.closeWrite();
    ctx.end(answer ? "ACME HTTP-01 challenge" : "ACME HTTP-01: unknown token");
  };
  if (w) w.then(done, done);
  else done();
  if (answer) {
    ctx.env.logger.info("ACME: HTTP-01 challenge answered", { client });
  }
  return "answered";
}
