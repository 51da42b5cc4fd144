/**
 * Reading a QUIC client's ClientHello from its Initial packets (RFC 9001 §5, QUIC v1, and RFC
 * 9369, QUIC v2), to route a UDP session by SNI and ALPN without terminating anything. Initial
 * packets are protected with keys anyone can derive from the Destination Connection ID: remove
 * the header protection, open the AEAD, gather the CRYPTO frames (a ClientHello with large key
 * shares spans several packets), parse the ClientHello. Pure and bounded: the work per datagram
 * is one packet's, and what is gathered per client stops at {@link MAX_HELLO}.
 */
import { Buffer } from "node:buffer";
import { createCipheriv, createDecipheriv, createHmac } from "node:crypto";
import { type HelloResult, MAX_HELLO, parseClientHelloMessage } from "../tls/client_hello.ts";

/** QUIC versions whose Initial packets l4p reads. */
export const QUIC_V1 = 0x00000001;
export const QUIC_V2 = 0x6b3343cf;

const hex = (s: string) => Uint8Array.from(s.match(/../g)!.map((b) => parseInt(b, 16)));
const SALT = {
  [QUIC_V1]: hex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a"),
  [QUIC_V2]: hex("0dede3def700a6db819381be6e269dcbf9bd2ed9"),
};

/** The keys that protect a client's Initial packets. */
export interface InitialKeys {
  key: Uint8Array;
  iv: Uint8Array;
  hp: Uint8Array;
}

/** TLS 1.3's HKDF-Expand-Label with an empty context, for outputs of one SHA-256 block. */
function expandLabel(secret: Uint8Array, label: string, length: number): Uint8Array {
  const full = new TextEncoder().encode(`tls13 ${label}`);
  const info = new Uint8Array([length >> 8, length & 0xff, full.length, ...full, 0, 1]);
  return new Uint8Array(createHmac("sha256", secret).update(info).digest()).subarray(0, length);
}

/** The client's Initial keys for a connection whose client chose `dcid` (RFC 9001 §5.2). */
export function clientInitialKeys(dcid: Uint8Array, version: number): InitialKeys {
  const initial = createHmac("sha256", SALT[version as keyof typeof SALT]).update(dcid).digest();
  const client = expandLabel(new Uint8Array(initial), "client in", 32);
  const prefix = version === QUIC_V2 ? "quicv2" : "quic";
  return {
    key: expandLabel(client, `${prefix} key`, 16),
    iv: expandLabel(client, `${prefix} iv`, 12),
    hp: expandLabel(client, `${prefix} hp`, 16),
  };
}

/** A variable-length integer (RFC 9000 §16) at `at`: its value and size, or undefined. */
function varint(b: Uint8Array, at: number): { value: number; size: number } | undefined {
  if (at >= b.length) return undefined;
  const size = 1 << (b[at] >> 6);
  if (at + size > b.length) return undefined;
  let value = b[at] & 0x3f;
  for (let i = 1; i < size; i++) value = value * 256 + b[at + i];
  return { value, size };
}

/** What one datagram's first packet is, to the router. */
export type InitialPacket =
  | { kind: "not-initial" }
  | { kind: "initial"; dcid: string; crypto: { offset: number; data: Uint8Array }[] }
  | { kind: "error"; message: string };

/** The CRYPTO frames of the client Initial packet that starts `datagram`. */
export function openInitial(datagram: Uint8Array): InitialPacket {
  const d = datagram;
  // A long header (RFC 9000 §17.2), of a version l4p reads, of the Initial type.
  if (d.length < 7 || !(d[0] & 0x80)) return { kind: "not-initial" };
  const version = ((d[1] << 24) | (d[2] << 16) | (d[3] << 8) | d[4]) >>> 0;
  if (version !== QUIC_V1 && version !== QUIC_V2) return { kind: "not-initial" };
  const type = (d[0] >> 4) & 0x03;
  if (type !== (version === QUIC_V2 ? 1 : 0)) return { kind: "not-initial" };
  const error = (message: string): InitialPacket => ({ kind: "error", message });
  let at = 5;
  const dcidLength = d[at++];
  if (dcidLength > 20 || at + dcidLength >= d.length) return error("bad connection id length");
  const dcid = d.subarray(at, at + dcidLength);
  at += dcidLength;
  const scidLength = d[at++];
  if (scidLength > 20 || at + scidLength > d.length) return error("bad connection id length");
  at += scidLength;
  const token = varint(d, at);
  if (!token || at + token.size + token.value > d.length) return error("truncated token");
  at += token.size + token.value;
  const length = varint(d, at);
  if (!length) return error("truncated length");
  at += length.size;
  const end = at + length.value;
  // The header protection sample starts 4 bytes after the packet number's start.
  if (end > d.length || length.value < 20) return error("truncated packet");
  const keys = clientInitialKeys(dcid, version);
  const sample = d.subarray(at + 4, at + 20);
  const mask = createCipheriv("aes-128-ecb", keys.hp, null).update(sample);
  const header = d.slice(0, at + 4);
  header[0] ^= mask[0] & 0x0f;
  const pnLength = (header[0] & 0x03) + 1;
  let pn = 0;
  for (let i = 0; i < pnLength; i++) {
    header[at + i] ^= mask[1 + i];
    pn = pn * 256 + header[at + i];
  }
  const nonce = keys.iv.slice();
  for (let i = 0; i < 4; i++) nonce[11 - i] ^= (pn >>> (8 * i)) & 0xff;
  const payloadAt = at + pnLength;
  let plain: Uint8Array;
  try {
    const decipher = createDecipheriv("aes-128-gcm", keys.key, nonce);
    decipher.setAAD(header.subarray(0, payloadAt));
    decipher.setAuthTag(d.subarray(end - 16, end));
    plain = new Uint8Array(Buffer.concat([
      decipher.update(d.subarray(payloadAt, end - 16)),
      decipher.final(),
    ]));
  } catch {
    return error("does not decrypt as a client Initial");
  }
  const crypto = framesOf(plain);
  if (typeof crypto === "string") return error(crypto);
  const id = [...dcid].map((b) => b.toString(16).padStart(2, "0")).join("");
  return { kind: "initial", dcid: id, crypto };
}

/** The CRYPTO frames of an Initial packet's payload; a message when a frame does not read. */
function framesOf(p: Uint8Array): { offset: number; data: Uint8Array }[] | string {
  const out: { offset: number; data: Uint8Array }[] = [];
  const skip = (at: number, n: number) => {
    for (let i = 0; i < n; i++) {
      const v = varint(p, at);
      if (!v) return -1;
      at += v.size;
    }
    return at;
  };
  for (let at = 0; at < p.length;) {
    const type = p[at++];
    if (type === 0x00 || type === 0x01) continue; // PADDING, PING
    if (type === 0x06) { // CRYPTO: offset, length, data
      const offset = varint(p, at);
      const length = offset && varint(p, at + offset.size);
      if (!offset || !length) return "truncated CRYPTO frame";
      at += offset.size + length.size;
      if (at + length.value > p.length) return "truncated CRYPTO frame";
      out.push({ offset: offset.value, data: p.subarray(at, at + length.value) });
      at += length.value;
    } else if (type === 0x02 || type === 0x03) { // ACK: largest, delay, count, first, ranges
      const count = varint(p, skip(at, 2));
      if (!count) return "truncated ACK frame";
      at = skip(skip(at, 2) + count.size, 1 + 2 * count.value + (type === 0x03 ? 3 : 0));
      if (at < 0) return "truncated ACK frame";
    } else if (type === 0x1c) { // CONNECTION_CLOSE: code, frame type, reason
      at = skip(at, 2);
      const reason = varint(p, at);
      if (at < 0 || !reason) return "truncated CONNECTION_CLOSE frame";
      at += reason.size + reason.value;
    } else return `frame type ${type} in an Initial packet`;
  }
  return out;
}

/**
 * A client's CRYPTO stream as its Initial packets bring it, in any order, up to
 * {@link MAX_HELLO} bytes: the ClientHello once it is whole.
 */
export class InitialCrypto {
  readonly #parts: { offset: number; data: Uint8Array }[] = [];
  #bytes = 0;

  constructor(readonly dcid: string) {}

  /** Adds frames (copied: a datagram's buffer may be reused); false past the bound. */
  add(frames: { offset: number; data: Uint8Array }[]): boolean {
    for (const f of frames) {
      if (f.offset + f.data.length > MAX_HELLO || this.#bytes + f.data.length > MAX_HELLO) {
        return false;
      }
      this.#parts.push({ offset: f.offset, data: f.data.slice() });
      this.#bytes += f.data.length;
    }
    return true;
  }

  /** The ClientHello, once the stream holds it from offset 0; "incomplete" until then. */
  hello(): HelloResult {
    const parts = [...this.#parts].sort((a, b) => a.offset - b.offset);
    let end = 0;
    for (const p of parts) {
      if (p.offset > end) break;
      end = Math.max(end, p.offset + p.data.length);
    }
    if (end === 0) return { kind: "incomplete" };
    const stream = new Uint8Array(end);
    for (const p of parts) {
      if (p.offset < end) stream.set(p.data.subarray(0, end - p.offset), p.offset);
    }
    return parseClientHelloMessage(stream);
  }
}
