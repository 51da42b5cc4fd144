/**
 * Automatic certificates (traefik's `certificatesResolvers.NAME.acme`), through `acme-client`,
 * a well-kept ACME (RFC 8555) client: l4p keeps the account and certificates in one JSON file
 * per resolver, obtains what routers name, renews 30 days before expiry, retries failures with
 * backoff, and answers the challenges itself: TLS-ALPN-01 on its TLS entrypoints, HTTP-01 on
 * the entrypoint `httpChallenge` names. Nothing here can stop the proxy: failures are logged.
 */
import { X509Certificate } from "node:crypto";
import { chmod, readFile, rename, writeFile } from "node:fs/promises";
import https from "node:https";
import { dirname } from "node:path";
import { setTimeout as timeout } from "node:timers";
import { rootCertificates } from "node:tls";
import type { AcmeResolverConfig, Config } from "../config/model.ts";
import type { Logger } from "../log/logger.ts";
import { literalHosts } from "../tcp/rule.ts";
import { ruleOf } from "../tcp/router_order.ts";
import type { Certificate } from "./certificates.ts";

/**
 * acme-client, loaded when a certificate is first ordered: loading it costs every process about
 * 40 MB and 0.15 s, and most processes never order one.
 */
type AcmeClient = typeof import("acme-client");
let acmeClient: Promise<AcmeClient> | undefined;
function loadAcme(): Promise<AcmeClient> {
  // A CommonJS package: its exports are the module's default export.
  return acmeClient ??= import("acme-client").then((m) =>
    (m as { default?: AcmeClient }).default ?? m
  );
}

/** Renew this long before a certificate expires. */
export const RENEW_BEFORE = 30 * 24 * 3600 * 1000;
/** Retry a failed order after this long at first, doubling up to {@link RETRY_MAX}. */
const RETRY_MIN = 60_000;
const RETRY_MAX = 3600_000;
/** Look for certificates to renew this often. */
const RENEW_CHECK = 12 * 3600_000;

/** Challenges l4p answers while an order waits on them. */
export interface AcmeChallenges {
  /** The TLS-ALPN-01 certificate for a name, while one is being validated. */
  alpn(name: string): { cert: string; key: string } | undefined;
  /** The key authorization for an HTTP-01 token. */
  http(token: string): string | undefined;
}

/** What a resolver's storage file holds. */
interface Storage {
  account?: { key: string; url?: string };
  certificates: { domains: string[]; cert: string; key: string }[];
}

/** One set of names a router asks a resolver for. */
interface Demand {
  resolver: string;
  names: string[];
}

/** Obtains, keeps and renews certificates; answers challenges. */
export class AcmeManager implements AcmeChallenges {
  /** Certificates obtained, by lowercase name: what the certificate store serves. */
  readonly certificates: Map<string, Certificate> = new Map();
  readonly #alpn = new Map<string, { cert: string; key: string }>();
  readonly #http = new Map<string, string>();
  #resolvers: Record<string, AcmeResolverConfig> = {};
  #demands: Demand[] = [];
  /** Storage per resolver, loaded once. */
  readonly #storage = new Map<string, Storage>();
  /** Orders under way or waiting to be retried, by resolver and names. */
  readonly #pending = new Map<string, { retryIn: number; timer?: ReturnType<typeof timeout> }>();
  #renewTimer: ReturnType<typeof timeout> | undefined;
  #stopped = false;

  constructor(readonly logger: Logger, readonly now: () => number = Date.now) {}

  alpn(name: string): { cert: string; key: string } | undefined {
    return this.#alpn.get(name.toLowerCase());
  }

  http(token: string): string | undefined {
    return this.#http.get(token);
  }

  /** Puts the resolvers and routers of `config` in force: what is stored is served at once, what is missing or expiring is ordered. */
  configure(config: Config): void {
    this.#resolvers = config.certificatesResolvers;
    this.#demands = demandsOf(config);
    this.#stopped = false;
    this.#check();
    if (this.#demands.length > 0 && !this.#renewTimer) {
      this.#renewTimer = timeout(() => {
        this.#renewTimer = undefined;
        this.configure({ ...config, certificatesResolvers: this.#resolvers });
      }, RENEW_CHECK);
      this.#renewTimer.unref();
    }
  }

  /** Stops ordering and renewing (orders under way finish). */
  stop(): void {
    this.#stopped = true;
    if (this.#renewTimer) clearTimeout(this.#renewTimer);
    this.#renewTimer = undefined;
    for (const p of this.#pending.values()) if (p.timer) clearTimeout(p.timer);
  }

  #check(): void {
    for (const d of this.#demands) {
      this.#serve(d).catch((error) => this.#failed(d, error));
    }
  }

  /** Serves a stored certificate for `d` if one is good, else orders one. */
  async #serve(d: Demand): Promise<void> {
    const storage = await this.#load(d.resolver);
    const stored = storage.certificates.find((c) => sameNames(c.domains, d.names));
    const cert = stored && toCertificate(stored);
    if (cert && !this.certificates.has(d.names[0])) {
      this.logger.info("ACME: certificate served from storage", {
        resolver: d.resolver,
        names: d.names.join(","),
        notAfter: new Date(cert.notAfter).toISOString(),
      });
    }
    if (cert) this.#install(cert, d.names);
    if (cert && cert.notAfter - this.now() > RENEW_BEFORE) return;
    const key = `${d.resolver} ${d.names.join(",")}`;
    if (this.#pending.has(key) && !this.#pending.get(key)!.timer) return; // under way
    this.#pending.set(key, { retryIn: this.#pending.get(key)?.retryIn ?? RETRY_MIN });
    await this.#order(d, storage, cert ? "renewing" : "obtaining");
    this.#pending.delete(key);
  }

  async #order(d: Demand, storage: Storage, why: string): Promise<void> {
    const r = this.#resolvers[d.resolver];
    this.logger.info(`ACME: ${why} a certificate`, {
      resolver: d.resolver,
      names: d.names.join(","),
      challenge: r.challenge,
      caServer: r.caServer,
    });
    const acme = await loadAcme();
    if (r.caCertificates.length) {
      // acme-client talks through its axios instance: the CA's own certificate is trusted here.
      acme.axios.defaults.httpsAgent = new https.Agent({
        ca: [...rootCertificates, ...r.caCertificates],
      });
    }
    if (!storage.account) {
      storage.account = { key: (await acme.crypto.createPrivateEcdsaKey("P-256")).toString() };
    }
    const client = new acme.Client({
      directoryUrl: r.caServer,
      accountKey: storage.account.key,
      accountUrl: storage.account.url,
    });
    const [key, csr] = await acme.crypto.createCsr(
      { commonName: d.names[0], altNames: d.names },
      await privateKey(r.keyType),
    );
    const cert = await client.auto({
      csr,
      email: r.email,
      termsOfServiceAgreed: true,
      // The names point at this box; checking them from here would ask the system's DNS.
      skipChallengeVerification: true,
      challengePriority: [r.challenge],
      challengeCreateFn: async (authz, challenge, keyAuthorization) => {
        if (challenge.type === "http-01") this.#http.set(challenge.token, keyAuthorization);
        else {
          const [k, c] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization);
          this.#alpn.set(authz.identifier.value.toLowerCase(), {
            key: k.toString(),
            cert: c.toString(),
          });
        }
      },
      challengeRemoveFn: (authz, challenge) => {
        this.#http.delete(challenge.token);
        this.#alpn.delete(authz.identifier.value.toLowerCase());
        return Promise.resolve();
      },
    });
    storage.account.url = client.getAccountUrl();
    const entry = { domains: d.names, cert, key: key.toString() };
    storage.certificates = storage.certificates.filter((c) => !sameNames(c.domains, d.names));
    storage.certificates.push(entry);
    await this.#save(d.resolver, storage);
    const installed = toCertificate(entry)!;
    this.#install(installed, d.names);
    this.logger.info("ACME: certificate obtained", {
      resolver: d.resolver,
      names: d.names.join(","),
      issuer: installed.issuer,
      notAfter: new Date(installed.notAfter).toISOString(),
    });
  }

  #install(cert: Certificate, names: string[]): void {
    for (const n of names) this.certificates.set(n.toLowerCase(), cert);
  }

  /** A failed order is retried with backoff (1 minute, doubling, at most an hour). */
  #failed(d: Demand, error: unknown): void {
    const key = `${d.resolver} ${d.names.join(",")}`;
    const p = this.#pending.get(key) ?? { retryIn: RETRY_MIN };
    this.logger.warn("ACME: no certificate this time; will retry", {
      resolver: d.resolver,
      names: d.names.join(","),
      error: (error as Error)?.message ?? String(error),
      retryInSeconds: Math.round(p.retryIn / 1000),
    });
    if (this.#stopped) return void this.#pending.delete(key);
    p.timer = timeout(() => {
      p.timer = undefined;
      this.#serve(d).catch((e) => this.#failed(d, e));
    }, p.retryIn);
    p.timer.unref();
    p.retryIn = Math.min(p.retryIn * 2, RETRY_MAX);
    this.#pending.set(key, p);
  }

  /** The storage file (made absolute, against the configuration file's folder, at load). */
  #path(resolver: string): string {
    return this.#resolvers[resolver].storage;
  }

  async #load(resolver: string): Promise<Storage> {
    const path = this.#path(resolver);
    const known = this.#storage.get(path);
    if (known) return known;
    let storage: Storage = { certificates: [] };
    try {
      storage = JSON.parse(await readFile(path, "utf8"));
    } catch (error) {
      if ((error as { code?: string }).code !== "ENOENT") {
        this.logger.warn("ACME: storage unreadable; starting afresh", {
          resolver,
          storage: path,
          error: (error as Error).message,
        });
      }
    }
    storage.certificates ??= [];
    this.#storage.set(path, storage);
    return storage;
  }

  /** Writes the storage atomically (a temporary file renamed over it), readable by l4p only. */
  async #save(resolver: string, storage: Storage): Promise<void> {
    const path = this.#path(resolver);
    const tmp = `${dirname(path)}/.${Date.now()}.${Math.random().toString(36).slice(2)}.tmp`;
    await writeFile(tmp, JSON.stringify(storage, null, 2), { mode: 0o600 });
    await chmod(tmp, 0o600);
    await rename(tmp, path);
  }
}

/** The names each router with a resolver asks for: its `tls.domains`, else its HostSNI names. */
export function demandsOf(config: Config): Demand[] {
  const out: Demand[] = [];
  const seen = new Set<string>();
  for (const r of Object.values(config.tcp.routers)) {
    const resolver = r.tls?.certResolver;
    if (!resolver || r.tls!.passthrough) continue;
    const sets = r.tls!.domains.length
      ? r.tls!.domains.map((d) => [d.main, ...d.sans])
      : [(literalHosts(ruleOf(r.rule, r.ruleSyntax)) ?? []).filter((h) => h !== "*")];
    for (const names of sets) {
      const lower = names.map((n) => n.toLowerCase());
      const key = `${resolver} ${lower.join(",")}`;
      if (lower.length === 0 || seen.has(key)) continue;
      seen.add(key);
      out.push({ resolver, names: lower });
    }
  }
  return out;
}

function sameNames(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((n) => b.includes(n));
}

async function privateKey(type: AcmeResolverConfig["keyType"]): Promise<Buffer> {
  const acme = await loadAcme();
  switch (type) {
    case "EC256":
      return await acme.crypto.createPrivateEcdsaKey("P-256");
    case "EC384":
      return await acme.crypto.createPrivateEcdsaKey("P-384");
    case "RSA2048":
      return await acme.crypto.createPrivateRsaKey(2048);
    case "RSA4096":
      return await acme.crypto.createPrivateRsaKey(4096);
  }
}

/** A stored certificate as one to serve; undefined if it does not parse. */
function toCertificate(
  c: { domains: string[]; cert: string; key: string },
): Certificate | undefined {
  try {
    const x509 = new X509Certificate(c.cert);
    return {
      certFile: "(acme)",
      keyFile: "(acme)",
      cert: c.cert,
      key: c.key,
      names: c.domains,
      subject: x509.subject,
      issuer: x509.issuer,
      notAfter: Date.parse(x509.validTo),
    };
  } catch {
    return undefined;
  }
}
