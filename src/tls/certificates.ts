/**
 * Certificate files: read, checked (a PEM certificate, a key that matches it, its names and
 * expiry) and chosen by server name. Errors are messages for a located configuration problem.
 */
import { configPath } from "../config/paths.ts";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { generatedCertificate } from "./generated.ts";

/** A certificate (with its chain) and its key, ready to serve. */
export interface Certificate {
  certFile: string;
  keyFile: string;
  /** PEM: the certificate first, then its chain. */
  cert: string;
  key: string;
  /** The DNS names it is for (its SANs; its CN when it has none), lowercase; may have wildcards. */
  names: string[];
  subject: string;
  issuer: string;
  /** When it expires, in ms since the epoch. */
  notAfter: number;
}

/** Reads a file named in the configuration, relative to the configuration file's folder. */
export function readConfigFile(path: string, base: string): string {
  return readFileSync(configPath(path, base), "utf8");
}

/** Reads and checks a certificate and its key; an error message says which file and why. */
export function loadCertificate(
  certFile: string,
  keyFile: string,
  base: string,
): Certificate | { error: string; file: "certFile" | "keyFile" } {
  let cert: string;
  let key: string;
  try {
    cert = readConfigFile(certFile, base);
  } catch (e) {
    return { error: `cannot read ${certFile}: ${why(e)}`, file: "certFile" };
  }
  try {
    key = readConfigFile(keyFile, base);
  } catch (e) {
    return { error: `cannot read ${keyFile}: ${why(e)}`, file: "keyFile" };
  }
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    return { error: `${certFile} is not a PEM certificate`, file: "certFile" };
  }
  try {
    if (!x509.checkPrivateKey(createPrivateKey(key))) {
      return {
        error: `the key in ${keyFile} does not match the certificate in ${certFile}`,
        file: "keyFile",
      };
    }
  } catch {
    return { error: `${keyFile} is not a PEM private key`, file: "keyFile" };
  }
  return {
    certFile,
    keyFile,
    cert,
    key,
    names: namesOf(x509),
    subject: x509.subject,
    issuer: x509.issuer,
    notAfter: Date.parse(x509.validTo),
  };
}

/** Reads PEM certificates (CA bundles); an error message says which file and why. */
export function loadCaFile(file: string, base: string): string | { error: string } {
  try {
    const pem = readConfigFile(file, base);
    new X509Certificate(pem);
    return pem;
  } catch (e) {
    const code = (e as { code?: string }).code;
    return { error: code ? `cannot read ${file}: ${why(e)}` : `${file} is not a PEM certificate` };
  }
}

function why(e: unknown): string {
  const code = (e as { code?: string }).code;
  return code === "ENOENT" ? "no such file" : code ?? (e as Error).message;
}

/** DNS SANs, else the subject's CN. */
function namesOf(x509: X509Certificate): string[] {
  const sans = (x509.subjectAltName ?? "").split(/,\s*/)
    .filter((s) => s.startsWith("DNS:"))
    .map((s) => s.slice(4).toLowerCase());
  if (sans.length > 0) return sans;
  const cn = x509.subject.match(/(?:^|\n)CN=([^\n]+)/);
  return cn ? [cn[1].toLowerCase()] : [];
}

/** Whether a certificate name (maybe `*.example.com`) covers server name `name`. */
export function nameMatches(pattern: string, name: string): boolean {
  if (!pattern.startsWith("*.")) return pattern === name;
  const dot = name.indexOf(".");
  return dot > 0 && name.slice(dot + 1) === pattern.slice(2);
}

/**
 * Picks the certificate for a server name: one that names it exactly, else one whose wildcard
 * covers it, else the default, else a generated self-signed one (none when `strict`).
 */
export class CertificateStore {
  readonly #exact = new Map<string, Certificate>();
  readonly #wildcard = new Map<string, Certificate>();

  constructor(
    readonly certificates: readonly Certificate[],
    readonly defaultCertificate: Certificate | undefined,
    /** Certificates obtained at run time (ACME), by lowercase name; may change any time. */
    readonly obtained: ReadonlyMap<string, Certificate> = new Map(),
  ) {
    // Later files do not override earlier ones for a name (traefik keeps the first).
    for (const c of certificates) {
      for (const n of c.names) {
        const map = n.startsWith("*.") ? this.#wildcard : this.#exact;
        const key = n.startsWith("*.") ? n.slice(2) : n;
        if (!map.has(key)) map.set(key, c);
      }
    }
  }

  /** The certificate for `serverName` (SNI), or undefined when none fits. */
  select(serverName: string | undefined, strict = false): Certificate | undefined {
    if (serverName) {
      const name = serverName.toLowerCase();
      const exact = this.#exact.get(name) ?? this.obtained.get(name);
      if (exact) return exact;
      const dot = name.indexOf(".");
      const wild = dot > 0 ? this.#wildcard.get(name.slice(dot + 1)) : undefined;
      if (wild) return wild;
    }
    // As traefik serves its "TRAEFIK DEFAULT CERT": a self-signed one, unless sniStrict.
    return strict ? undefined : this.defaultCertificate ?? generatedCertificate();
  }

  /** Certificates (with the default) that expire before `at` (ms). */
  expiringBefore(at: number): Certificate[] {
    const all = [...this.certificates];
    if (this.defaultCertificate) all.push(this.defaultCertificate);
    return all.filter((c) => c.notAfter < at);
  }
}
