/**
 * The PROXY protocol, versions 1 (text) and 2 (binary), as HAProxy's specification defines them.
 * Pure: bytes in, headers out. Parsing is incremental (a prefix says "incomplete") and strict; a
 * malformed header gives a typed error, never an exception.
 */
import { formatIp, parseIp, parseIPv4, parseIPv6 } from "../net/ip.ts";
import type { NetAddr } from "../runtime/types.ts";

/** A type-length-value extension of a v2 header, kept as received. */
export interface Tlv {
  type: number;
  value: Uint8Array;
}

/** A decoded (or to-be-encoded) PROXY header. */
export interface ProxyHeader {
  version: 1 | 2;
  /** `LOCAL` (v2 only): the sender's own connection, e.g. a health check; no addresses. */
  command: "PROXY" | "LOCAL";
  /** The original transport; `UNKNOWN` carries no addresses. */
  protocol: "TCP4" | "TCP6" | "UDP4" | "UDP6" | "UNIX" | "UNKNOWN";
  /** The original client, for TCP4/TCP6/UDP4/UDP6. */
  source?: NetAddr;
  /** The address the client connected to. */
  destination?: NetAddr;
  /** v2 extensions, unknown ones included. */
  tlvs: Tlv[];
}

/** Why a header was refused. */
export class ProxyProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProxyProtocolError";
  }
}

/** The outcome of looking at the first bytes of a connection. */
export type ParseResult =
  | { kind: "header"; header: ProxyHeader; length: number }
  | { kind: "incomplete" }
  | { kind: "none" }
  | { kind: "error"; error: ProxyProtocolError };

/** The v1 line's limit, CRLF included. */
export const V1_MAX_LENGTH = 107;
/** l4p's bound on a whole v2 header (16-byte prefix, addresses, TLVs). */
export const V2_MAX_LENGTH = 4096;

/** How a v1 header starts. */
export const V1_PREFIX = new TextEncoder().encode("PROXY ");
/** How a v2 header starts. */
export const V2_SIGNATURE = new Uint8Array([
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
]);

const fail = (message: string): ParseResult => ({
  kind: "error",
  error: new ProxyProtocolError(message),
});

/** How many leading bytes of `buf` agree with `sig`. */
function agree(buf: Uint8Array, sig: Uint8Array): number {
  const n = Math.min(buf.length, sig.length);
  for (let i = 0; i < n; i++) if (buf[i] !== sig[i]) return i;
  return n;
}

/**
 * Looks at the first bytes of a connection: a complete header (and its length), a prefix of one
 * (read more, up to the bounds), none at all (the bytes are the client's own), or an error.
 */
export function parseProxyHeader(buf: Uint8Array): ParseResult {
  const v1 = agree(buf, V1_PREFIX);
  if (v1 === V1_PREFIX.length) return parseV1(buf);
  const v2 = agree(buf, V2_SIGNATURE);
  if (v2 === V2_SIGNATURE.length) return parseV2(buf);
  if (v1 === buf.length || v2 === buf.length) return { kind: "incomplete" };
  return { kind: "none" };
}

function parseV1(buf: Uint8Array): ParseResult {
  const limit = Math.min(buf.length, V1_MAX_LENGTH);
  let end = -1;
  for (let i = V1_PREFIX.length; i < limit; i++) {
    const c = buf[i];
    if (c === 0x0d) {
      if (i + 1 >= buf.length) {
        return i + 1 >= V1_MAX_LENGTH
          ? fail("v1 header longer than 107 bytes")
          : { kind: "incomplete" };
      }
      if (buf[i + 1] !== 0x0a) return fail("v1 header: CR not followed by LF");
      end = i;
      break;
    }
    if (c < 0x20 || c > 0x7e) return fail("v1 header: byte outside printable ASCII");
  }
  if (end < 0) {
    return buf.length >= V1_MAX_LENGTH
      ? fail("v1 header longer than 107 bytes")
      : { kind: "incomplete" };
  }
  const line = new TextDecoder().decode(buf.subarray(0, end));
  const fields = line.split(" ");
  const length = end + 2;
  if (fields[1] === "UNKNOWN") {
    return {
      kind: "header",
      length,
      header: { version: 1, command: "PROXY", protocol: "UNKNOWN", tlvs: [] },
    };
  }
  if (fields.length !== 6) return fail(`v1 header: expected 6 fields, got ${fields.length}`);
  const [, proto, src, dst, sport, dport] = fields;
  if (proto !== "TCP4" && proto !== "TCP6") {
    return fail(`v1 header: unknown protocol "${proto.slice(0, 16)}"`);
  }
  const parse = proto === "TCP4" ? parseIPv4 : parseIPv6;
  const s = parse(src);
  const d = parse(dst);
  if (!s || !d) return fail(`v1 header: addresses are not ${proto === "TCP4" ? "IPv4" : "IPv6"}`);
  const sp = port(sport);
  const dp = port(dport);
  if (sp === undefined || dp === undefined) return fail("v1 header: bad port");
  return {
    kind: "header",
    length,
    header: {
      version: 1,
      command: "PROXY",
      protocol: proto,
      source: { hostname: formatIp(s), port: sp },
      destination: { hostname: formatIp(d), port: dp },
      tlvs: [],
    },
  };
}

function port(text: string): number | undefined {
  return /^(0|[1-9]\d{0,4})$/.test(text) && Number(text) <= 65535 ? Number(text) : undefined;
}

const ADDRESS_LENGTH: Record<number, number> = { 0x0: 0, 0x1: 12, 0x2: 36, 0x3: 216 };

function parseV2(buf: Uint8Array): ParseResult {
  if (buf.length < 16) return { kind: "incomplete" };
  const version = buf[12] >> 4;
  const command = buf[12] & 0x0f;
  if (version !== 2) return fail(`v2 header: version ${version}, not 2`);
  if (command > 1) return fail(`v2 header: unknown command ${command}`);
  const family = buf[13] >> 4;
  const transport = buf[13] & 0x0f;
  if (!(family in ADDRESS_LENGTH) || transport > 2) {
    return fail(`v2 header: unknown address family 0x${buf[13].toString(16).padStart(2, "0")}`);
  }
  const len = (buf[14] << 8) | buf[15];
  if (16 + len > V2_MAX_LENGTH) {
    return fail(`v2 header: ${16 + len} bytes, over l4p's bound of ${V2_MAX_LENGTH}`);
  }
  if (buf.length < 16 + len) return { kind: "incomplete" };
  const addrLen = command === 0 && family === 0 ? 0 : ADDRESS_LENGTH[family];
  if (len < addrLen) {
    return fail(`v2 header: length ${len} too short for its addresses (${addrLen})`);
  }
  const body = buf.subarray(16, 16 + len);
  const tlvs: Tlv[] = [];
  for (let at = addrLen; at < len;) {
    if (at + 3 > len) return fail("v2 header: truncated TLV");
    const vlen = (body[at + 1] << 8) | body[at + 2];
    if (at + 3 + vlen > len) return fail("v2 header: TLV longer than the header");
    tlvs.push({ type: body[at], value: body.slice(at + 3, at + 3 + vlen) });
    at += 3 + vlen;
  }
  const header: ProxyHeader = {
    version: 2,
    command: command === 0 ? "LOCAL" : "PROXY",
    protocol: "UNKNOWN",
    tlvs,
  };
  if (command === 1 && (family === 1 || family === 2) && transport !== 0) {
    const n = family === 1 ? 4 : 16;
    const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
    header.protocol = `${transport === 1 ? "TCP" : "UDP"}${
      family === 1 ? "4" : "6"
    }` as ProxyHeader["protocol"];
    header.source = { hostname: formatIp(body.slice(0, n)), port: view.getUint16(2 * n) };
    header.destination = {
      hostname: formatIp(body.slice(n, 2 * n)),
      port: view.getUint16(2 * n + 2),
    };
  } else if (command === 1 && family === 3) {
    header.protocol = "UNIX";
  }
  return { kind: "header", header, length: 16 + len };
}

/**
 * The header that tells a backend who the client is: `source` the client, `destination` the
 * address it connected to. Mixed families are carried as IPv6 (IPv4-mapped).
 */
export function proxyHeaderFor(version: 1 | 2, source: NetAddr, destination: NetAddr): ProxyHeader {
  const s = parseIp(source.hostname);
  const d = parseIp(destination.hostname);
  if (!s || !d) return { version, command: "PROXY", protocol: "UNKNOWN", tlvs: [] };
  const v6 = s.length === 16 || d.length === 16;
  const text = (b: Uint8Array) => (v6 && b.length === 4 ? `::ffff:${formatIp(b)}` : formatIp(b));
  return {
    version,
    command: "PROXY",
    protocol: v6 ? "TCP6" : "TCP4",
    source: { hostname: text(s), port: source.port },
    destination: { hostname: text(d), port: destination.port },
    tlvs: [],
  };
}

/** Encodes a header in its own version. */
export function encodeProxyHeader(h: ProxyHeader): Uint8Array {
  return h.version === 1 ? encodeV1(h) : encodeV2(h);
}

function encodeV1(h: ProxyHeader): Uint8Array {
  const tcp = h.protocol === "TCP4" || h.protocol === "TCP6";
  const line = tcp && h.source && h.destination
    ? `PROXY ${h.protocol} ${h.source.hostname} ${h.destination.hostname} ${h.source.port} ${h.destination.port}\r\n`
    : "PROXY UNKNOWN\r\n";
  return new TextEncoder().encode(line);
}

function encodeV2(h: ProxyHeader): Uint8Array {
  let family = 0;
  let addresses = new Uint8Array(0);
  const inet = h.protocol !== "UNKNOWN" && h.protocol !== "UNIX" && h.source && h.destination;
  if (h.command === "PROXY" && inet) {
    const six = h.protocol.endsWith("6");
    const parse = six ? parseIPv6 : parseIPv4;
    const s = parse(h.source!.hostname);
    const d = parse(h.destination!.hostname);
    if (s && d) {
      family = ((six ? 2 : 1) << 4) | (h.protocol.startsWith("UDP") ? 2 : 1);
      addresses = new Uint8Array(2 * s.length + 4);
      addresses.set(s, 0);
      addresses.set(d, s.length);
      const view = new DataView(addresses.buffer);
      view.setUint16(2 * s.length, h.source!.port);
      view.setUint16(2 * s.length + 2, h.destination!.port);
    }
  }
  const tlvLength = h.tlvs.reduce((n, t) => n + 3 + t.value.length, 0);
  const out = new Uint8Array(16 + addresses.length + tlvLength);
  out.set(V2_SIGNATURE, 0);
  out[12] = 0x20 | (h.command === "PROXY" ? 1 : 0);
  out[13] = family;
  const len = addresses.length + tlvLength;
  out[14] = len >> 8;
  out[15] = len & 0xff;
  out.set(addresses, 16);
  let at = 16 + addresses.length;
  for (const t of h.tlvs) {
    out[at] = t.type;
    out[at + 1] = t.value.length >> 8;
    out[at + 2] = t.value.length & 0xff;
    out.set(t.value, at + 3);
    at += 3 + t.value.length;
  }
  return out;
}
