/**
 * TLS fixtures for tests, made with the real openssl: a private CA, server certificates
 * (ECDSA P-256) for given names, a client certificate, an expired certificate.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";

/** Paths of what {@link makeTlsFixtures} made. */
export interface TlsFixtures {
  dir: string;
  ca: string;
  /** `name` → { cert, key } paths, for each server name asked (wildcards as `*.x` → `wild.x`). */
  server: (name: string) => { cert: string; key: string };
  client: { cert: string; key: string };
  expired: { cert: string; key: string };
  /** A certificate for a.example from another CA (fails verification against `ca`). */
  stranger: { cert: string; key: string };
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

/** Makes a CA and certificates for `names` (each a SAN list joined by commas) in a new folder. */
export function makeTlsFixtures(names: string[]): TlsFixtures {
  const dir = mkdtempSync(`${tmpdir()}/l4p-tls-`);
  const key = (file: string) =>
    openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", file], dir);
  const ca = (name: string) => {
    key(`${name}.key`);
    openssl([
      "req",
      "-x509",
      "-new",
      "-key",
      `${name}.key`,
      "-subj",
      `/CN=${name}`,
      "-days",
      "30",
      "-out",
      `${name}.pem`,
    ], dir);
  };
  ca("l4p-test-ca");
  ca("stranger-ca");
  const file = (n: string) => n.replace("*.", "wild.");
  const issue = (n: string, sans: string, by: string, extra: string[] = []) => {
    key(`${file(n)}.key`);
    openssl([
      "req",
      "-new",
      "-key",
      `${file(n)}.key`,
      "-subj",
      `/CN=${n}`,
      "-out",
      `${file(n)}.csr`,
    ], dir);
    writeFileSync(`${dir}/${file(n)}.ext`, sans ? `subjectAltName=${sans}\n` : "");
    openssl([
      "x509",
      "-req",
      "-in",
      `${file(n)}.csr`,
      "-CA",
      `${by}.pem`,
      "-CAkey",
      `${by}.key`,
      "-CAcreateserial",
      "-days",
      "30",
      "-extfile",
      `${file(n)}.ext`,
      "-out",
      `${file(n)}.pem`,
      ...extra,
    ], dir);
  };
  for (const n of names) {
    const sans = n.split(",");
    const san = (s: string) => /^[\d.]+$/.test(s) ? `IP:${s}` : `DNS:${s}`;
    issue(sans[0], sans.map(san).join(","), "l4p-test-ca");
  }
  issue("client", "", "l4p-test-ca");
  // A.example again, from a CA nobody trusts.
  key("stranger.key");
  openssl(
    ["req", "-new", "-key", "stranger.key", "-subj", "/CN=a.example", "-out", "stranger.csr"],
    dir,
  );
  writeFileSync(`${dir}/stranger.ext`, "subjectAltName=DNS:a.example\n");
  openssl([
    "x509",
    "-req",
    "-in",
    "stranger.csr",
    "-CA",
    "stranger-ca.pem",
    "-CAkey",
    "stranger-ca.key",
    "-CAcreateserial",
    "-days",
    "30",
    "-extfile",
    "stranger.ext",
    "-out",
    "stranger.pem",
  ], dir);
  // Expired: `openssl ca` takes explicit dates.
  writeFileSync(
    `${dir}/ca.cnf`,
    `[ca]
default_ca = d
[d]
database = ${dir}/index.txt
new_certs_dir = ${dir}
serial = ${dir}/serial
default_md = sha256
policy = p
copy_extensions = copy
[p]
commonName = supplied
`,
  );
  writeFileSync(`${dir}/index.txt`, "");
  writeFileSync(`${dir}/serial`, "01\n");
  key("expired.key");
  openssl([
    "req",
    "-new",
    "-key",
    "expired.key",
    "-subj",
    "/CN=expired.example",
    "-out",
    "expired.csr",
  ], dir);
  openssl([
    "ca",
    "-batch",
    "-config",
    "ca.cnf",
    "-cert",
    "l4p-test-ca.pem",
    "-keyfile",
    "l4p-test-ca.key",
    "-in",
    "expired.csr",
    "-out",
    "expired.pem",
    "-startdate",
    "20200101000000Z",
    "-enddate",
    "20200102000000Z",
    "-notext",
  ], dir);
  const pair = (n: string) => ({ cert: `${dir}/${n}.pem`, key: `${dir}/${n}.key` });
  return {
    dir,
    ca: `${dir}/l4p-test-ca.pem`,
    server: (n) => pair(file(n)),
    client: pair("client"),
    expired: pair("expired"),
    stranger: pair("stranger"),
  };
}
