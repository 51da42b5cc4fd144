/**
 * Client certificates as traefik (Go's crypto/tls) treats them, one rule set for both runtimes:
 * what each `clientAuthType` asks of a client, and the verification of a client's chain against
 * the configured CAs. l4p verifies the chain itself because Deno's server-side TLS does not
 * (it ignores `rejectUnauthorized` and reports every certificate unauthorized: measured).
 */
import { X509Certificate } from "node:crypto";
import type { ClientAuthType } from "../config/model.ts";

/** What a client-auth type asks for: whether to request a certificate, require one, verify it. */
export interface ClientAuthPolicy {
  request: boolean;
  require: boolean;
  verify: boolean;
}

/** Go's `tls.ClientAuthType`s, by traefik's names. */
export const CLIENT_AUTH_POLICIES: Record<ClientAuthType, ClientAuthPolicy> = {
  NoClientCert: { request: false, require: false, verify: false },
  RequestClientCert: { request: true, require: false, verify: false },
  RequireAnyClientCert: { request: true, require: true, verify: false },
  VerifyClientCertIfGiven: { request: true, require: false, verify: true },
  RequireAndVerifyClientCert: { request: true, require: true, verify: true },
};

/** The longest chain followed from a client's certificate to a trusted CA (Go has no limit but
 * its own; a client must not make l4p walk a chain of its choosing for ever). */
const MAX_CHAIN = 10;

/** serverAuth is not enough: a client certificate that names its uses must name clientAuth. */
const CLIENT_AUTH_EKU = "1.3.6.1.5.5.7.3.2";
const ANY_EKU = "2.5.29.37.0";

/** Trusted client CAs, parsed once per set of TLS options. */
export class ClientCaPool {
  readonly roots: X509Certificate[];

  /** @param pems the CA certificates (PEM; a file may hold several) */
  constructor(pems: string[]) {
    this.roots = pems.flatMap(splitPem).map((pem) => new X509Certificate(pem));
  }
}

/** Each certificate of a PEM text, as its own PEM. */
function splitPem(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
}

function within(cert: X509Certificate, now: Date): boolean {
  return new Date(cert.validFrom) <= now && now <= new Date(cert.validTo);
}

/**
 * Why the client's chain (its certificate first, then what it sent along) does not verify
 * against `pool` at `now`, or `undefined` when it does: every certificate in its validity
 * period, each issued and signed by the next, intermediates marked as CAs, ending at a trusted
 * CA; the client's certificate usable for client authentication.
 */
export function verifyClientChain(
  chain: readonly Uint8Array[],
  pool: ClientCaPool,
  now: Date,
): string | undefined {
  let certs: X509Certificate[];
  try {
    certs = chain.slice(0, MAX_CHAIN).map((der) => new X509Certificate(der));
  } catch {
    return "the client certificate cannot be parsed";
  }
  const leaf = certs[0];
  if (!leaf) return "no client certificate";
  const usages = extendedKeyUsages(chain[0]);
  if (usages && !usages.includes(CLIENT_AUTH_EKU) && !usages.includes(ANY_EKU)) {
    return "the client certificate is not for client authentication";
  }
  const signedBy = (cert: X509Certificate, issuer: X509Certificate) => {
    try {
      return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
    } catch {
      return false;
    }
  };
  let current = leaf;
  const used = new Set<X509Certificate>([leaf]);
  for (let depth = 0; depth < MAX_CHAIN; depth++) {
    if (!within(current, now)) {
      return depth === 0
        ? "the client certificate has expired or is not yet valid"
        : "a certificate in the client's chain has expired or is not yet valid";
    }
    const trusted = pool.roots.find((root) =>
      root.fingerprint256 === current.fingerprint256 ||
      (root.ca && within(root, now) && signedBy(current, root))
    );
    if (trusted) return undefined;
    const next = certs.find((c) => !used.has(c) && c.ca && signedBy(current, c));
    if (!next) return "the client certificate is signed by an unknown authority";
    used.add(next);
    current = next;
  }
  return "the client's certificate chain is too long";
}

/** One DER element: its tag, and where its contents start and end in the buffer. */
interface Der {
  tag: number;
  start: number;
  end: number;
}

/** The DER element at `at` (bounded by `limit`), or undefined where the bytes are not DER. */
function derAt(buf: Uint8Array, at: number, limit: number): Der | undefined {
  if (at + 2 > limit) return undefined;
  const tag = buf[at];
  let len = buf[at + 1];
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3 || start + n > limit) return undefined;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[start + i];
    start += n;
  }
  const end = start + len;
  return end <= limit ? { tag, start, end } : undefined;
}

/** The elements inside a constructed DER element. */
function derChildren(buf: Uint8Array, parent: Der): Der[] {
  const out: Der[] = [];
  for (let at = parent.start; at < parent.end;) {
    const child = derAt(buf, at, parent.end);
    if (!child) break;
    out.push(child);
    at = child.end;
  }
  return out;
}

function oidText(buf: Uint8Array, el: Der): string {
  const parts: number[] = [];
  let value = 0;
  for (let i = el.start; i < el.end; i++) {
    value = value * 128 + (buf[i] & 0x7f);
    if (!(buf[i] & 0x80)) {
      if (parts.length === 0) {
        parts.push(value < 80 ? Math.floor(value / 40) : 2, value < 80 ? value % 40 : value - 80);
      } else parts.push(value);
      value = 0;
    }
  }
  return parts.join(".");
}

const EKU_EXTENSION = "2.5.29.37";

/**
 * The extended key usages (OIDs) a certificate names, or undefined when it has no such
 * extension. Read from the DER, because Deno's X509Certificate has no `keyUsage`.
 */
export function extendedKeyUsages(der: Uint8Array): string[] | undefined {
  const cert = derAt(der, 0, der.length);
  const tbs = cert && derChildren(der, cert)[0];
  if (!tbs) return undefined;
  // Extensions are the tbsCertificate's [3], explicitly tagged.
  const tagged = derChildren(der, tbs).find((el) => el.tag === 0xa3);
  const list = tagged && derChildren(der, tagged)[0];
  if (!list) return undefined;
  for (const ext of derChildren(der, list)) {
    const [id, ...rest] = derChildren(der, ext);
    if (!id || id.tag !== 0x06 || oidText(der, id) !== EKU_EXTENSION) continue;
    const value = rest.find((el) => el.tag === 0x04);
    const seq = value && derAt(der, value.start, value.end);
    if (!seq) return [];
    return derChildren(der, seq).filter((el) => el.tag === 0x06).map((el) => oidText(der, el));
  }
  return undefined;
}
