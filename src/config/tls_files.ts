/**
 * The files a configuration names (certificates, CA bundles, the admin token), read and checked
 * while the configuration is
 * loaded, so that `l4p check` (and a reload) report a missing file, a key that does not match,
 * or an expired certificate at the key that names it. Paths are relative to the file's folder.
 */
import {
  type Certificate,
  loadCaFile,
  loadCertificate,
  readConfigFile,
} from "../tls/certificates.ts";
import type { StoreTls } from "./model.ts";
import type { ParsedFile } from "./schema.ts";

type Path = (string | number)[];
type Report = (path: Path, message: string) => void;

/** Everything read from files, by where it was named. */
export interface TlsMaterial {
  certificates: Certificate[];
  defaultCertificate?: Certificate;
  /** Client CA bundles, by `tls.options` name. */
  clientCas: Record<string, string[]>;
  /** Root CAs and client certificate, by `serversTransports` name. */
  transports: Record<string, { rootCAs: string[]; certificate?: Certificate }>;
  /** ACME servers' roots, by resolver name. */
  acmeCas: Record<string, string[]>;
  /** The admin listener's token, from `metrics.tokenFile`. */
  metricsToken?: string;
  /** TLS to the configuration stores and the Docker engine, from `providers.*.tls`. */
  stores: { etcd?: StoreTls; redis?: StoreTls; docker?: StoreTls };
}

/** How long before expiry a certificate is worth a note. */
const SOON = 7 * 24 * 3600 * 1000;

/** Reads every TLS file `file` names; problems go to `error`, expiry to `note`. */
export function readTlsFiles(
  file: ParsedFile,
  base: string,
  error: Report,
  note: Report,
  now = Date.now(),
): TlsMaterial {
  const certificate = (
    path: Path,
    files: { certFile: string; keyFile: string },
  ): Certificate | undefined => {
    const c = loadCertificate(files.certFile, files.keyFile, base);
    if ("error" in c) {
      error([...path, c.file], c.error);
      return undefined;
    }
    if (c.notAfter < now) {
      note(
        [...path, "certFile"],
        `expired on ${new Date(c.notAfter).toISOString()}; served anyway`,
      );
    } else if (c.notAfter < now + SOON) {
      note([...path, "certFile"], `expires on ${new Date(c.notAfter).toISOString()}`);
    }
    return c;
  };
  const cas = (path: Path, files: string[] | undefined): string[] =>
    (files ?? []).flatMap((f, i) => {
      const pem = loadCaFile(f, base);
      if (typeof pem === "string") return [pem];
      error([...path, i], pem.error);
      return [];
    });

  const m: TlsMaterial = {
    certificates: [],
    clientCas: {},
    transports: {},
    acmeCas: {},
    stores: {},
  };
  (file.tls?.certificates ?? []).forEach((c, i) => {
    const loaded = certificate(["tls", "certificates", i], c);
    if (loaded) m.certificates.push(loaded);
  });
  const def = file.tls?.stores?.default?.defaultCertificate;
  if (def) {
    m.defaultCertificate = certificate(["tls", "stores", "default", "defaultCertificate"], def);
  }
  for (const [name, o] of Object.entries(file.tls?.options ?? {})) {
    m.clientCas[name] = cas(
      ["tls", "options", name, "clientAuth", "caFiles"],
      o.clientAuth?.caFiles,
    );
  }
  const transports: [string, typeof file.tcpServersTransport, Path][] = [
    ...Object.entries(file.tcp?.serversTransports ?? {}).map(([name, t]) =>
      [name, t, ["tcp", "serversTransports", name, "tls"]] as [string, typeof t, Path]
    ),
    // traefik v3's static default, under the name no dynamic transport can have.
    ["", file.tcpServersTransport, ["tcpServersTransport", "tls"]],
  ];
  for (const [name, t, path] of transports) {
    if (!t?.tls) continue;
    const first = t.tls.certificates?.[0];
    m.transports[name] = {
      rootCAs: cas([...path, "rootCAs"], t.tls.rootCAs),
      certificate: first ? certificate([...path, "certificates", 0], first) : undefined,
    };
  }
  const tokenFile = file.metrics?.tokenFile;
  if (tokenFile) {
    try {
      const token = readConfigFile(tokenFile, base).trim();
      if (token.length < 16) {
        error(["metrics", "tokenFile"], `the token in ${tokenFile} has fewer than 16 characters`);
      } else m.metricsToken = token;
    } catch (e) {
      const code = (e as { code?: string }).code;
      error(
        ["metrics", "tokenFile"],
        `cannot read ${tokenFile}: ${code === "ENOENT" ? "no such file" : code}`,
      );
    }
  }
  for (const [name, r] of Object.entries(file.certificatesResolvers ?? {})) {
    m.acmeCas[name] = cas(
      ["certificatesResolvers", name, "acme", "caCertificates"],
      r.acme.caCertificates,
    );
  }
  for (const kind of ["etcd", "redis", "docker"] as const) {
    const t = file.providers?.[kind]?.tls;
    if (!t) continue;
    const path = ["providers", kind, "tls"];
    const tls: StoreTls = { insecureSkipVerify: t.insecureSkipVerify ?? false };
    if (t.ca) {
      const pem = loadCaFile(t.ca, base);
      if (typeof pem === "string") tls.ca = pem;
      else error([...path, "ca"], pem.error);
    }
    if (t.cert && t.key) {
      const c = loadCertificate(t.cert, t.key, base);
      if ("error" in c) error([...path, c.file === "certFile" ? "cert" : "key"], c.error);
      else Object.assign(tls, { cert: c.cert, key: c.key });
    }
    m.stores[kind] = tls;
  }
  return m;
}
