/**
 * Picks, for each connection on an entrypoint, the first router (in priority order) whose rule
 * matches. When a rule needs SNI or ALPN, the TLS ClientHello is peeked first, without being
 * consumed: the backend gets the exact bytes, so TLS stays end to end (passthrough).
 */
import { formatAddr } from "../config/address.ts";
import { parseIp } from "../net/ip.ts";
import { answerAlpnChallenge, answerHttpChallenge } from "../tls/acme_challenge.ts";
import { MAX_HELLO, parseClientHello } from "../tls/client_hello.ts";
import type { TcpContext, TcpHandler } from "./handler.ts";
import { peek } from "./peek.ts";
import {
  type MatchInfo,
  needsClientHello,
  needsClientIp,
  needsHttpHost,
  protocolsOf,
  type Rule,
} from "./rule.ts";
import { httpHost as httpHostOf, MAX_PROTOCOL_BYTES, PROTOCOLS } from "./protocols.ts";
import { RouteIndex } from "./route_index.ts";

/** What is known of a connection that is not matched on its ClientHello. */
const NO_TLS: MatchInfo = Object.freeze({
  tls: false,
  sni: undefined,
  alpn: Object.freeze([]),
  clientIp: undefined,
});

/** One router, ready to match. */
export interface TcpRoute {
  name: string;
  rule: Rule;
  handler: TcpHandler;
  /** The router terminates TLS: it needs the ClientHello, and takes only TLS connections. */
  terminatesTls?: boolean;
}

/** The routers of one entrypoint, in match order. */
export class TcpRouter implements TcpHandler {
  readonly #needsHello: boolean;
  readonly #needsClientIp: boolean;
  /** The protocols its rules ask about, and whether they read an HTTP request's Host. */
  readonly #protocols: string[];
  readonly #needsHttpHost: boolean;
  /** A rule asks for `Protocol(\`silent\`)`: the peek gives up waiting after silenceTimeout. */
  readonly #waitsForSilence: boolean;
  readonly #index: RouteIndex;

  constructor(
    readonly entryPoint: string,
    readonly routes: readonly TcpRoute[],
    /** How long a client may take to send its ClientHello, in ms. */
    readonly helloTimeout: number,
    /** This entrypoint answers ACME HTTP-01 challenges (`httpChallenge.entryPoint`). */
    readonly answersHttpChallenges = false,
    /** How long a client may send nothing before `Protocol(\`silent\`)` matches it, in ms. */
    readonly silenceTimeout = 2_000,
  ) {
    this.#needsHello = routes.some((r) => r.terminatesTls || needsClientHello(r.rule));
    this.#needsClientIp = routes.some((r) => needsClientIp(r.rule));
    this.#protocols = [...new Set(routes.flatMap((r) => protocolsOf(r.rule)))];
    this.#needsHttpHost = routes.some((r) => needsHttpHost(r.rule));
    this.#waitsForSilence = this.#protocols.includes("silent");
    this.#index = new RouteIndex(routes.map((r) => r.rule));
  }

  serve(ctx: TcpContext): void {
    if (this.answersHttpChallenges) {
      answerHttpChallenge(ctx, this.helloTimeout).then((r) => {
        if (r === "pass") this.#route(ctx);
      });
      return;
    }
    this.#route(ctx);
  }

  #route(ctx: TcpContext): void {
    // Parsed only when a rule asks: most entrypoints route every connection alike.
    const clientIp = this.#needsClientIp ? parseIp(ctx.client.hostname) : undefined;
    const protocols = this.#protocols;
    if (!this.#needsHello && protocols.length === 0) {
      return this.#dispatch(ctx, clientIp ? { ...NO_TLS, clientIp } : NO_TLS);
    }
    let found: { protocols: Set<string>; httpHost: string | undefined } | undefined;
    // A client that sends nothing for silenceTimeout is one a server speaks to first.
    const silence = this.#waitsForSilence
      ? {
        ms: this.silenceTimeout,
        silent: () => {
          found = { protocols: new Set(["silent"]), httpHost: undefined };
          return parseClientHello(new Uint8Array(0));
        },
      }
      : undefined;
    peek(ctx, this.helloTimeout, protocols.length ? "first bytes" : "TLS ClientHello", (buf) => {
      const r = parseClientHello(buf);
      if (r.kind === "incomplete" && this.#needsHello) return { more: true };
      // Each protocol the rules ask about decides from the bytes so far, or wants more.
      const seen = new Set<string>();
      let pending = false;
      for (const name of protocols) {
        const verdict = PROTOCOLS[name](buf);
        if (verdict === "yes") seen.add(name);
        else if (verdict === "more") pending = true;
      }
      let httpHost: string | undefined;
      if (this.#needsHttpHost && seen.has("http")) {
        const host = httpHostOf(buf);
        if (host === "more") pending = true;
        else httpHost = host;
      }
      if (pending && buf.length < MAX_PROTOCOL_BYTES) return { more: true };
      found = { protocols: seen, httpHost };
      return { more: false, value: r };
    }, silence).then((hello) => {
      if (!hello) return;
      if (hello.kind === "error") {
        const key = `hello ${this.entryPoint} ${hello.message}`;
        ctx.env.logger.repeated("warn", key, "malformed TLS ClientHello; connection closed", {
          entryPoint: this.entryPoint,
          client: formatAddr(ctx.client),
          error: hello.message,
          bound: MAX_HELLO,
        });
        return ctx.end("malformed ClientHello");
      }
      if (
        hello.kind === "hello" &&
        answerAlpnChallenge(ctx, hello.info.sni, hello.info.alpn, this.helloTimeout)
      ) return;
      const info: MatchInfo = hello.kind === "hello"
        ? { tls: true, sni: hello.info.sni, alpn: hello.info.alpn, clientIp }
        : { ...NO_TLS, clientIp };
      if (found) {
        info.protocols = found.protocols;
        info.httpHost = found.httpHost;
      }
      this.#dispatch(ctx, info);
    });
  }

  #dispatch(ctx: TcpContext, info: MatchInfo): void {
    ctx.match = info;
    const routes = this.routes;
    // The same router a scan in order would choose, found among the candidates the index names.
    const at = this.#index.first(info, (i) => info.tls || !routes[i].terminatesTls);
    if (at >= 0) {
      const route = routes[at];
      ctx.env.tracker.routed(ctx, route.name);
      route.handler.serve(ctx);
      return;
    }
    ctx.env.logger.info("no router matched; connection closed", {
      entryPoint: this.entryPoint,
      client: formatAddr(ctx.client),
      tls: info.tls,
      sni: info.sni,
    });
    ctx.end("no router");
  }
}
