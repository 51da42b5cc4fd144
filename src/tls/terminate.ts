/**
 * TLS termination on a router (traefik's `tls: {}`): the certificate is chosen by the server
 * name the router already read from the ClientHello, the handshake is done, and the service
 * gets the decrypted connection. A failed handshake never reaches a backend.
 */
import { createSecureContext, type SecureContext } from "node:tls";
import { formatAddr } from "../config/address.ts";
import type { TlsOptionsConfig } from "../config/model.ts";
import { terminateTls, type TlsConn } from "../runtime/tls.ts";
import type { TcpContext, TcpHandler } from "../tcp/handler.ts";
import type { Certificate, CertificateStore } from "./certificates.ts";
import {
  CLIENT_AUTH_POLICIES,
  type ClientAuthPolicy,
  ClientCaPool,
  verifyClientChain,
} from "./client_auth.ts";
import { CIPHER_SUITES, DEFAULT_CIPHERS, TLS_VERSION_NAMES } from "./options.ts";

/** A fatal TLS alert, unrecognized_name (112): no certificate for the name the client asked. */
const UNRECOGNIZED_NAME = new Uint8Array([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70]);

/** Terminates TLS, then hands the connection to `next`. */
export class TlsTermination implements TcpHandler {
  readonly #contexts = new Map<Certificate, SecureContext>();
  readonly #auth: ClientAuthPolicy;
  #pool: ClientCaPool | undefined;

  constructor(
    readonly router: string,
    readonly store: CertificateStore,
    readonly options: TlsOptionsConfig,
    readonly next: TcpHandler,
    /** How long a handshake may take, in ms (the entrypoint's hello timeout). */
    readonly timeout: number,
  ) {
    this.#auth = CLIENT_AUTH_POLICIES[options.clientAuth.clientAuthType];
  }

  serve(ctx: TcpContext): void {
    const env = ctx.env;
    // Read now: a handshake that fails closes the socket, which then no longer knows its peer.
    const client = formatAddr(ctx.client);
    const cert = this.store.select(ctx.sni, this.options.sniStrict);
    if (!cert) {
      const w = ctx.conn.write(UNRECOGNIZED_NAME);
      const end = () => ctx.end("no certificate for the server name");
      if (w) w.then(end, end);
      else end();
      env.logger.repeated(
        "warn",
        `nocert ${this.router} ${ctx.sni}`,
        "no certificate for the server name; TLS alert sent",
        {
          router: this.router,
          client,
          sni: ctx.sni ?? "(none)",
        },
      );
      return;
    }
    const auth = this.#auth;
    terminateTls(ctx.conn, {
      secureContext: this.#context(cert),
      alpnProtocols: this.options.alpnProtocols.length ? this.options.alpnProtocols : undefined,
      requestClientCert: auth.request,
      // Where the runtime can, it refuses in the handshake (with an alert); l4p checks anyway.
      requireClientCert: auth.require && auth.verify &&
        env.runtime.capabilities.tlsVerifiesClientCert,
      initial: ctx.initial,
      timeout: this.timeout,
    }).then((conn) => {
      ctx.initial = undefined; // consumed by the handshake
      if (ctx.ended) return conn.close();
      const refused = this.#refusal(conn);
      if (refused) {
        conn.reset();
        env.logger.repeated(
          "warn",
          `clientcert ${this.router} ${refused}`,
          "client certificate refused",
          {
            router: this.router,
            client,
            sni: ctx.sni,
            error: refused,
          },
        );
        return ctx.end(`client certificate refused: ${refused}`);
      }
      ctx.conn = conn;
      if (env.logger.enabled("debug")) {
        env.logger.debug("TLS terminated", {
          router: this.router,
          client,
          sni: ctx.sni,
          alpn: conn.tls.alpn,
          protocol: conn.tls.protocol,
          cipher: conn.tls.cipher,
        });
      }
      this.next.serve(ctx);
    }, (error) => {
      const why = (error as Error).message;
      env.logger.repeated("warn", `handshake ${this.router} ${why}`, "TLS handshake failed", {
        router: this.router,
        client,
        sni: ctx.sni,
        error: why,
      });
      ctx.end(`TLS handshake failed: ${why}`);
    });
  }

  /** Why the client's certificate (or its absence) is refused under the client-auth type. */
  #refusal(conn: TlsConn): string | undefined {
    const auth = this.#auth;
    if (!auth.request) return undefined;
    const chain = conn.peerCertificates();
    if (chain.length === 0) return auth.require ? "no client certificate" : undefined;
    if (!auth.verify) return undefined;
    this.#pool ??= new ClientCaPool(this.options.clientAuth.cas);
    return verifyClientChain(chain, this.#pool, new Date());
  }

  /** The secure context of a certificate under these options, made once. */
  #context(cert: Certificate): SecureContext {
    let c = this.#contexts.get(cert);
    if (!c) {
      const o = this.options;
      c = createSecureContext({
        cert: cert.cert,
        key: cert.key,
        minVersion: TLS_VERSION_NAMES[o.minVersion],
        maxVersion: o.maxVersion && TLS_VERSION_NAMES[o.maxVersion],
        ciphers: o.cipherSuites?.map((s) => CIPHER_SUITES[s]).join(":") ?? DEFAULT_CIPHERS,
        ca: o.clientAuth.cas.length ? o.clientAuth.cas : undefined,
      });
      this.#contexts.set(cert, c);
    }
    return c;
  }
}
