/**
 * The certificate a terminating router serves when none fits the client's server name and none
 * is configured as the default: self-signed, made once per process, as traefik serves its
 * "TRAEFIK DEFAULT CERT". `node:crypto` makes keys and signatures but not certificates, so the
 * few DER structures of one are written here (X.509 v3, ECDSA P-256 with SHA-256).
 */
import { createSign, generateKeyPairSync, randomBytes } from "node:crypto";
import type { Certificate } from "./certificates.ts";

/** The name it carries, in its subject and as its one DNS name. */
export const GENERATED_NAME = "L4P DEFAULT CERT";
const DNS_NAME = "l4p.default.invalid";

/** DER: a tag, its length, its contents. */
function der(tag: number, ...parts: Uint8Array[]): Uint8Array {
  const length = parts.reduce((n, p) => n + p.length, 0);
  const head = length < 0x80
    ? [tag, length]
    : length < 0x100
    ? [tag, 0x81, length]
    : length < 0x10000
    ? [tag, 0x82, length >> 8, length & 0xff]
    : [tag, 0x83, length >> 16, (length >> 8) & 0xff, length & 0xff];
  const out = new Uint8Array(head.length + length);
  out.set(head, 0);
  let at = head.length;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const seq = (...parts: Uint8Array[]) => der(0x30, ...parts);
const text = (s: string) => new TextEncoder().encode(s);

function oid(dotted: string): Uint8Array {
  const [a, b, ...rest] = dotted.split(".").map(Number);
  const bytes = [40 * a + b];
  for (const n of rest) {
    const seven: number[] = [];
    let v = n;
    do {
      seven.unshift(v & 0x7f);
      v = Math.floor(v / 128);
    } while (v > 0);
    for (let i = 0; i < seven.length - 1; i++) seven[i] |= 0x80;
    bytes.push(...seven);
  }
  return der(0x06, new Uint8Array(bytes));
}

/** UTCTime (until 2049) as X.509 wants it: YYMMDDHHMMSSZ. */
function time(at: Date): Uint8Array {
  const iso = at.toISOString();
  return der(
    0x17,
    text(
      `${iso.slice(2, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${
        iso.slice(14, 16)
      }${iso.slice(17, 19)}Z`,
    ),
  );
}

function pem(label: string, bytes: Uint8Array): string {
  const b64 = btoa(String.fromCharCode(...bytes)).match(/.{1,64}/g)!.join("\n");
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

let made: Certificate | undefined;

/** The generated default certificate: made at the first call, the same afterwards. */
export function generatedCertificate(now = new Date()): Certificate {
  if (made) return made;
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const spki = new Uint8Array(publicKey.export({ type: "spki", format: "der" }));
  const ecdsaSha256 = seq(oid("1.2.840.10045.4.3.2"));
  const name = seq(der(0x31, seq(oid("2.5.4.3"), der(0x0c, text(GENERATED_NAME)))));
  const serial = randomBytes(16);
  serial[0] &= 0x7f; // a positive INTEGER
  const notAfter = new Date(now.getTime() + 365 * 86_400_000);
  const san = seq(oid("2.5.29.17"), der(0x04, seq(der(0x82, text(DNS_NAME)))));
  const tbs = seq(
    der(0xa0, der(0x02, new Uint8Array([2]))), // v3
    der(0x02, serial),
    ecdsaSha256,
    name,
    seq(time(now), time(notAfter)),
    name,
    spki,
    der(0xa3, seq(san)),
  );
  const signature = new Uint8Array(createSign("SHA256").update(tbs).sign(privateKey));
  const bits = new Uint8Array(signature.length + 1); // no unused bits
  bits.set(signature, 1);
  const cert = pem("CERTIFICATE", seq(tbs, ecdsaSha256, der(0x03, bits)));
  const key = privateKey.export({ type: "pkcs8", format: "pem" }) as string;
  made = {
    certFile: "(generated)",
    keyFile: "(generated)",
    cert,
    key,
    names: [DNS_NAME],
    subject: `CN=${GENERATED_NAME}`,
    issuer: `CN=${GENERATED_NAME}`,
    notAfter: notAfter.getTime(),
  };
  return made;
}
