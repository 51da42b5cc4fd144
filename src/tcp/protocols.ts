/**
 * Protocol matchers: what protocol a client speaks, from the first bytes it sends, as sslh and
 * caddy-l4 tell them apart. Each is a pure function over the bytes so far: yes, no, or more
 * needed (the router's peek reads more, within the entrypoint's ClientHello budget and time).
 * Bounded: none looks past {@link MAX_PROTOCOL_BYTES}.
 */

import { V1_PREFIX, V2_SIGNATURE } from "../proxy_protocol/codec.ts";
import { parseClientHello } from "../tls/client_hello.ts";

/** What a matcher says of the bytes so far. */
export type Verdict = "yes" | "no" | "more";

/** The most bytes any matcher reads (an HTTP request's head, to its Host header). */
export const MAX_PROTOCOL_BYTES = 8192;

const ascii = (s: string) => new TextEncoder().encode(s);

/** Whether `buf` starts with `prefix`: yes, no, or more when it is a prefix of it so far. */
function startsWith(buf: Uint8Array, prefix: Uint8Array): Verdict {
  const n = Math.min(buf.length, prefix.length);
  for (let i = 0; i < n; i++) if (buf[i] !== prefix[i]) return "no";
  return buf.length >= prefix.length ? "yes" : "more";
}

const SSH = ascii("SSH-");
const HTTP2_PREFACE = ascii("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE"]
  .map((m) => ascii(`${m} `));

/** An HTTP/1.x request line (`GET / HTTP/1.1`), or HTTP/2's prior-knowledge preface. */
function http(buf: Uint8Array): Verdict {
  if (startsWith(buf, HTTP2_PREFACE) !== "no") return startsWith(buf, HTTP2_PREFACE);
  const method = METHODS.map((m) => startsWith(buf, m));
  if (!method.includes("yes")) return method.includes("more") ? "more" : "no";
  const eol = buf.indexOf(0x0a);
  if (eol < 0) return buf.length >= MAX_PROTOCOL_BYTES ? "no" : "more";
  const line = new TextDecoder().decode(buf.subarray(0, eol)).replace(/\r$/, "");
  return /^[A-Z]+ \S+ HTTP\/1\.[01]$/.test(line) ? "yes" : "no";
}

/** PostgreSQL's first message: a startup (protocol 3.0), SSLRequest, GSSENCRequest or cancel. */
function postgres(buf: Uint8Array): Verdict {
  if (buf.length < 8) return "more";
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const length = view.getUint32(0);
  const code = view.getUint32(4);
  if (code === 80877103 || code === 80877104) return length === 8 ? "yes" : "no";
  if (code === 80877102) return length === 16 ? "yes" : "no";
  return code === 196608 && length >= 8 && length <= 10_000 ? "yes" : "no";
}

/** An MQTT CONNECT packet (3.1 "MQIsdp", 3.1.1 and 5 "MQTT"). */
function mqtt(buf: Uint8Array): Verdict {
  if (buf.length < 1) return "more";
  if (buf[0] !== 0x10) return "no";
  // The remaining length: one to four bytes, seven bits each.
  let at = 1;
  for (; at < 5; at++) {
    if (at >= buf.length) return "more";
    if (!(buf[at] & 0x80)) break;
  }
  if (at === 5) return "no";
  const name = buf.subarray(at + 1);
  const mqttName = startsWith(name, new Uint8Array([0, 4, ...ascii("MQTT")]));
  const v31 = startsWith(name, new Uint8Array([0, 6, ...ascii("MQIsdp")]));
  if (mqttName === "yes" || v31 === "yes") return "yes";
  return mqttName === "more" || v31 === "more" ? "more" : "no";
}

/** A RESP command (Redis): an array of bulk strings, `*<n>\r\n$…`. */
function redis(buf: Uint8Array): Verdict {
  if (buf.length < 1) return "more";
  if (buf[0] !== 0x2a) return "no"; // '*'
  for (let i = 1; i < buf.length && i < 12; i++) {
    const c = buf[i];
    if (c === 0x0d) {
      return i > 1 ? (buf.length > i + 1 ? (buf[i + 1] === 0x0a ? "yes" : "no") : "more") : "no";
    }
    if (c < 0x30 || c > 0x39) return "no";
  }
  return buf.length < 12 ? "more" : "no";
}

/** RDP: a TPKT header (version 3) carrying an X.224 connection request. */
function rdp(buf: Uint8Array): Verdict {
  if (buf.length < 6) return buf.length >= 1 && buf[0] !== 0x03 ? "no" : "more";
  return buf[0] === 0x03 && buf[1] === 0x00 && (buf[5] & 0xf0) === 0xe0 ? "yes" : "no";
}

/** SOCKS5's greeting: version 5, a method count, the methods. */
function socks5(buf: Uint8Array): Verdict {
  if (buf.length < 2) return buf.length === 1 && buf[0] !== 0x05 ? "no" : "more";
  if (buf[0] !== 0x05 || buf[1] === 0 || buf[1] > 16) return "no";
  return buf.length >= 2 + buf[1] ? "yes" : "more";
}

/** A TLS record carrying a handshake (the ClientHello parser reads the rest). */
function tls(buf: Uint8Array): Verdict {
  if (buf.length < 2) return buf.length === 1 && buf[0] !== 0x16 ? "no" : "more";
  return buf[0] === 0x16 && buf[1] === 0x03 ? "yes" : "no";
}

/** A PROXY protocol header (v1 text or v2 binary) the entrypoint did not consume. */
function proxy(buf: Uint8Array): Verdict {
  const v1 = startsWith(buf, V1_PREFIX);
  const v2 = startsWith(buf, V2_SIGNATURE);
  if (v1 === "yes" || v2 === "yes") return "yes";
  return v1 === "more" || v2 === "more" ? "more" : "no";
}

/** The matchers `Protocol(`NAME`)` takes, by name. */
export const PROTOCOLS: Record<string, (buf: Uint8Array) => Verdict> = {
  ssh: (buf) => startsWith(buf, SSH),
  tls,
  http,
  postgres,
  mqtt,
  redis,
  rdp,
  socks5,
  proxy,
  // l4p's own: nothing at all within the entrypoint's silenceTimeout (the router's peek decides
  // that by time; any byte says no).
  silent: (buf) => buf.length > 0 ? "no" : "more",
};

/**
 * The Host of an HTTP/1.x request's head (lower case, without a port), undefined when it has
 * none; "more" while the head is not complete.
 */
export function httpHost(buf: Uint8Array): string | undefined | "more" {
  const text = new TextDecoder().decode(buf.subarray(0, MAX_PROTOCOL_BYTES));
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) return buf.length >= MAX_PROTOCOL_BYTES ? undefined : "more";
  const m = text.slice(0, end).match(/\r\nhost:[ \t]*([^\r\n]*)/i);
  if (!m) return undefined;
  const host = m[1].trim().toLowerCase();
  return host.startsWith("[") ? host.slice(0, host.indexOf("]") + 1) : host.replace(/:\d+$/, "");
}

/**
 * What a hook is told of a connection that speaks `protocol` (its first bytes `buf`): "more"
 * while they are not enough to say. Bounded like the matchers: past {@link MAX_PROTOCOL_BYTES}
 * what could not be read is left out.
 */
export function fieldsOf(protocol: string, buf: Uint8Array): Record<string, string> | "more" {
  const complete = buf.length >= MAX_PROTOCOL_BYTES;
  const text = (from: number, to: number) => new TextDecoder().decode(buf.subarray(from, to));
  switch (protocol) {
    case "postgres": {
      const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
      const length = view.getUint32(0);
      const code = view.getUint32(4);
      if (code === 80877103) return { request: "ssl" };
      if (code === 80877104) return { request: "gssenc" };
      if (code === 80877102) return { request: "cancel" };
      if (buf.length < length) return complete ? {} : "more";
      // Pairs of NUL-ended names and values, ended by a NUL.
      const fields: Record<string, string> = {};
      const parts = text(8, length).split("\0");
      for (let i = 0; i + 1 < parts.length && parts[i] !== ""; i += 2) {
        if (["user", "database", "application_name"].includes(parts[i])) {
          fields[parts[i]] = parts[i + 1];
        }
      }
      if (fields.user && !fields.database) fields.database = fields.user;
      return fields;
    }
    case "mqtt": {
      let at = 1;
      while (at < 5 && at < buf.length && buf[at] & 0x80) at++;
      // The protocol name, level, flags, keep-alive; MQTT 5 adds properties.
      let p = at + 1;
      if (p + 2 > buf.length) return complete ? {} : "more";
      p += 2 + ((buf[p] << 8) | buf[p + 1]);
      if (p + 4 > buf.length) return complete ? {} : "more";
      const level = buf[p];
      p += 4;
      if (level === 5) {
        let length = 0;
        for (let shift = 0; shift < 28; shift += 7) {
          if (p >= buf.length) return complete ? {} : "more";
          const b = buf[p++];
          length |= (b & 0x7f) << shift;
          if (!(b & 0x80)) break;
        }
        p += length;
      }
      if (p + 2 > buf.length) return complete ? {} : "more";
      const idLength = (buf[p] << 8) | buf[p + 1];
      if (p + 2 + idLength > buf.length) return complete ? {} : "more";
      return { clientId: text(p + 2, p + 2 + idLength) };
    }
    case "http": {
      const host = httpHost(buf);
      if (host === "more") return "more";
      const line = text(0, Math.min(buf.length, MAX_PROTOCOL_BYTES)).split("\r\n", 1)[0];
      const [method, path] = line.split(" ");
      return { method, path, ...(host ? { host } : {}) };
    }
    case "ssh": {
      const eol = buf.indexOf(0x0a);
      if (eol < 0) return buf.length >= 255 ? {} : "more";
      return { banner: text(0, eol).replace(/\r$/, "") };
    }
    case "tls": {
      const r = parseClientHello(buf);
      if (r.kind === "incomplete") return complete ? {} : "more";
      if (r.kind !== "hello") return {};
      return {
        ...(r.info.sni ? { sni: r.info.sni } : {}),
        ...(r.info.alpn.length ? { alpn: r.info.alpn.join(",") } : {}),
      };
    }
    default:
      return {};
  }
}
