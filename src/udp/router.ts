/**
 * The UDP routers of one entrypoint, in match order (l4p's own: traefik's UDP routers have no
 * rule). A new session is routed once, by its client address and, when a rule asks for SNI or
 * ALPN, by the ClientHello of its QUIC Initial packets; it keeps that route for its life.
 */
import { parseIp } from "../net/ip.ts";
import {
  type MatchInfo,
  matchRule,
  needsClientHello,
  needsClientIp,
  type Rule,
} from "../tcp/rule.ts";
import type { UdpHookStep } from "./hook.ts";
import type { UdpService } from "./service.ts";

/** Where a session goes: the router's name and its service. */
export interface UdpRoute {
  router: string;
  service: UdpService;
}

/** A route with the rule that chooses it (no rule: every session) and the hooks it asks. */
export interface UdpRuledRoute extends UdpRoute {
  rule: Rule | undefined;
  hooks: readonly UdpHookStep[];
}

const NO_HELLO: MatchInfo = Object.freeze({
  tls: false,
  sni: undefined,
  alpn: Object.freeze([]) as unknown as string[],
  clientIp: undefined,
});

/** Picks a new session's route. */
export class UdpRouter {
  /** Some rule needs SNI or ALPN: new sessions wait for their ClientHello. */
  readonly needsHello: boolean;
  /** Some route asks hooks: its new sessions wait for their answer. */
  readonly hasHooks: boolean;
  readonly #needsClientIp: boolean;

  constructor(
    readonly entryPoint: string,
    readonly routes: readonly UdpRuledRoute[],
    /** How long a new session may take to send its whole ClientHello, in ms. */
    readonly helloTimeout: number,
    /** The services a hook may name, by name. */
    readonly services: (name: string) => UdpService | undefined = () => undefined,
  ) {
    this.hasHooks = routes.some((r) => r.hooks.length > 0);
    // Hooks are shown a QUIC client's server name too.
    this.needsHello = this.hasHooks ||
      routes.some((r) => r.rule !== undefined && needsClientHello(r.rule));
    this.#needsClientIp = routes.some((r) => r.rule !== undefined && needsClientIp(r.rule));
  }

  /** The first route whose rule takes a session from `client` with `hello` (if it had one). */
  pick(
    client: string,
    hello?: { sni: string | undefined; alpn: readonly string[] },
  ): UdpRuledRoute | undefined {
    const clientIp = this.#needsClientIp ? parseIp(client) : undefined;
    const info: MatchInfo = hello
      ? { tls: true, sni: hello.sni, alpn: hello.alpn, clientIp }
      : clientIp
      ? { ...NO_HELLO, clientIp }
      : NO_HELLO;
    return this.routes.find((r) => r.rule === undefined || matchRule(r.rule, info));
  }
}
