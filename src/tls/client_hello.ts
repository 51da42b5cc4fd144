/**
 * Reads what a router needs (SNI and ALPN) from a TLS ClientHello without terminating TLS. Pure
 * and incremental: feed it the bytes so far; a ClientHello split across TCP segments and TLS
 * records is put back together. Bounded: a hello beyond {@link MAX_HELLO} bytes is refused.
 */

/** What a router may match on. */
export interface ClientHelloInfo {
  /** The server name (SNI), lower case, without a trailing dot; absent when not sent. */
  sni: string | undefined;
  /** The offered ALPN protocols, in the client's order. */
  alpn: string[];
}

/** The outcome of looking at the first bytes of a connection. */
export type HelloResult =
  | { kind: "hello"; info: ClientHelloInfo }
  | { kind: "incomplete" }
  | { kind: "not-tls" }
  | { kind: "error"; message: string };

/** l4p's bound on the bytes it reads for a ClientHello (records included). */
export const MAX_HELLO = 16 * 1024;

const RECORD_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 0x01;
const EXT_SERVER_NAME = 0x0000;
const EXT_ALPN = 0x0010;

const error = (message: string): HelloResult => ({ kind: "error", message });

/** Looks for a ClientHello at the start of `buf`. */
export function parseClientHello(buf: Uint8Array): HelloResult {
  if (buf.length === 0) return { kind: "incomplete" };
  if (buf[0] !== RECORD_HANDSHAKE) return { kind: "not-tls" };
  if (buf.length >= 2 && buf[1] !== 0x03) return { kind: "not-tls" };
  // Gather the handshake bytes from as many records as it takes.
  const handshake: Uint8Array[] = [];
  let have = 0;
  let need = -1;
  for (let at = 0;;) {
    if (buf.length < at + 5) return incompleteOr(buf);
    if (buf[at] !== RECORD_HANDSHAKE) {
      return error("TLS record before the ClientHello is complete is not a handshake record");
    }
    if (buf[at + 1] !== 0x03) return error("TLS record with an unknown version");
    const len = (buf[at + 3] << 8) | buf[at + 4];
    if (len === 0 || len > 16384 + 2048) return error(`TLS record length ${len} out of range`);
    if (buf.length < at + 5 + len) return incompleteOr(buf);
    handshake.push(buf.subarray(at + 5, at + 5 + len));
    have += len;
    at += 5 + len;
    if (need < 0 && have >= 4) {
      const h = join(handshake, 4);
      if (h[0] !== HANDSHAKE_CLIENT_HELLO) {
        return error(`handshake message type ${h[0]} is not a ClientHello`);
      }
      need = 4 + ((h[1] << 16) | (h[2] << 8) | h[3]);
      if (need > MAX_HELLO) {
        return error(`ClientHello of ${need} bytes is over l4p's bound of ${MAX_HELLO}`);
      }
    }
    if (need >= 0 && have >= need) return parseBody(join(handshake, need).subarray(4));
  }
}

/**
 * A ClientHello handshake message on its own (type, length, body), not in TLS records: what a
 * QUIC client's CRYPTO stream carries.
 */
export function parseClientHelloMessage(message: Uint8Array): HelloResult {
  if (message.length < 4) return { kind: "incomplete" };
  if (message[0] !== HANDSHAKE_CLIENT_HELLO) {
    return error(`handshake message type ${message[0]} is not a ClientHello`);
  }
  const need = 4 + ((message[1] << 16) | (message[2] << 8) | message[3]);
  if (need > MAX_HELLO) {
    return error(`ClientHello of ${need} bytes is over l4p's bound of ${MAX_HELLO}`);
  }
  if (message.length < need) return { kind: "incomplete" };
  return parseBody(message.subarray(4, need));
}

function incompleteOr(buf: Uint8Array): HelloResult {
  return buf.length >= MAX_HELLO
    ? error(`no complete ClientHello within ${MAX_HELLO} bytes`)
    : { kind: "incomplete" };
}

function join(parts: Uint8Array[], n: number): Uint8Array {
  if (parts[0].length >= n) return parts[0];
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    if (at >= n) break;
    const take = Math.min(p.length, n - at);
    out.set(p.subarray(0, take), at);
    at += take;
  }
  return out;
}

/** A bounds-checked cursor: every read past the end gives `undefined`. */
class Cursor {
  at = 0;
  constructor(readonly b: Uint8Array, readonly end = b.length) {}

  u8(): number | undefined {
    return this.at + 1 <= this.end ? this.b[this.at++] : undefined;
  }

  u16(): number | undefined {
    if (this.at + 2 > this.end) return undefined;
    const v = (this.b[this.at] << 8) | this.b[this.at + 1];
    this.at += 2;
    return v;
  }

  bytes(n: number | undefined): Uint8Array | undefined {
    if (n === undefined || this.at + n > this.end) return undefined;
    const v = this.b.subarray(this.at, this.at + n);
    this.at += n;
    return v;
  }
}

function parseBody(body: Uint8Array): HelloResult {
  const c = new Cursor(body);
  const version = c.u16();
  if (version === undefined || version >> 8 !== 0x03) {
    return error("ClientHello with an unknown version");
  }
  if (!c.bytes(32)) return error("ClientHello truncated in its random");
  const sid = c.u8();
  if (sid === undefined || sid > 32 || !c.bytes(sid)) {
    return error("ClientHello with a bad session id");
  }
  const suites = c.u16();
  if (suites === undefined || suites < 2 || suites % 2 !== 0 || !c.bytes(suites)) {
    return error("ClientHello with a bad cipher suite list");
  }
  const comp = c.u8();
  if (comp === undefined || comp < 1 || !c.bytes(comp)) {
    return error("ClientHello with a bad compression list");
  }
  const info: ClientHelloInfo = { sni: undefined, alpn: [] };
  if (c.at === body.length) return { kind: "hello", info }; // no extensions at all
  const extLen = c.u16();
  if (extLen === undefined || c.at + extLen !== body.length) {
    return error("ClientHello extensions do not fill the message");
  }
  const seen = new Set<number>();
  while (c.at < body.length) {
    const type = c.u16();
    const data = c.bytes(c.u16());
    if (type === undefined || !data) return error("ClientHello with a truncated extension");
    if (seen.has(type)) return error(`ClientHello repeats extension ${type}`);
    seen.add(type);
    if (type === EXT_SERVER_NAME) {
      const sni = serverName(data);
      if (typeof sni !== "string" && sni !== undefined) return sni;
      info.sni = sni;
    } else if (type === EXT_ALPN) {
      const alpn = protocols(data);
      if (!Array.isArray(alpn)) return alpn;
      info.alpn = alpn;
    }
  }
  return { kind: "hello", info };
}

function serverName(data: Uint8Array): string | undefined | HelloResult {
  if (data.length === 0) return undefined; // as a server echoes it: no name
  const c = new Cursor(data);
  const listLen = c.u16();
  if (listLen === undefined || listLen + 2 !== data.length) return error("bad server_name list");
  let name: string | undefined;
  while (c.at < data.length) {
    const type = c.u8();
    const value = c.bytes(c.u16());
    if (type === undefined || !value) return error("truncated server_name entry");
    if (type !== 0 || name !== undefined) continue; // only the first host_name counts
    if (value.length === 0 || value.length > 255) return error("server name of a bad length");
    for (const b of value) {
      if (b <= 0x20 || b >= 0x7f) return error("server name with a byte outside printable ASCII");
    }
    name = String.fromCharCode(...value).toLowerCase().replace(/\.$/, "");
  }
  return name;
}

function protocols(data: Uint8Array): string[] | HelloResult {
  const c = new Cursor(data);
  const listLen = c.u16();
  if (listLen === undefined || listLen + 2 !== data.length || listLen === 0) {
    return error("bad ALPN list");
  }
  const out: string[] = [];
  while (c.at < data.length) {
    const p = c.bytes(c.u8());
    if (!p || p.length === 0) return error("bad ALPN protocol entry");
    out.push(new TextDecoder().decode(p));
  }
  return out;
}
