/**
 * Routing hooks (l4p's own middleware): a TypeScript function decides, per connection, to let
 * it go on, to send it to another service, or to refuse it. It sees what the router learnt (the
 * client, SNI, ALPN) and may read the first bytes (`peek`, `detect`: the protocol and what it
 * says, a Postgres database, an MQTT client id, an HTTP Host). A hook that throws, rejects or
 * does not answer in time refuses its own connection only; every outcome is counted.
 */
import { formatAddr } from "../../config/address.ts";
import type { TcpContext, TcpHandler } from "../handler.ts";
import { peek } from "../peek.ts";
import { fieldsOf, MAX_PROTOCOL_BYTES, PROTOCOLS } from "../protocols.ts";
import { type MiddlewareInfo, refuse } from "./refuse.ts";

/** The most bytes a hook may peek. */
export const MAX_HOOK_PEEK = 64 * 1024;

/** A connection, as a hook sees it. */
export interface HookConnection {
  /** The client (from a trusted PROXY header when there was one). */
  readonly client: { address: string; port: number };
  /** The address the client connected to. */
  readonly local: { address: string; port: number };
  readonly entryPoint: string;
  /** The router whose middleware this is. */
  readonly router: string;
  /** The TLS server name, lower case, when the router read a ClientHello with one. */
  readonly sni: string | undefined;
  /** The ALPN protocols the ClientHello offered. */
  readonly alpn: readonly string[];
  /**
   * The first `n` bytes the client sent (fewer if it ends its writes first), reading until they
   * are there, within the hook's timeout; at most {@link MAX_HOOK_PEEK}. They still go to the
   * backend.
   */
  peek(n: number): Promise<Uint8Array>;
  /**
   * The protocol the first bytes speak (`ssh`, `tls`, `http`, `postgres`, `mqtt`, `redis`,
   * `rdp`, `socks5`, `proxy`; undefined when none) and what l4p reads of it: `user`, `database`
   * and `application_name` of a Postgres startup message; `clientId` of an MQTT CONNECT;
   * `method`, `path` and `host` of an HTTP/1.x request; `banner` of SSH; `sni` of TLS. Reads
   * as much as it needs (at most 8 KiB).
   */
  detect(): Promise<{ protocol: string | undefined; fields: Record<string, string> }>;
}

/** What a hook answers: nothing (go on), a service, or a refusal. */
export type HookDecision = void | undefined | null | { service: string } | { refuse: string };

/** A routing hook: sync or async. */
export type Hook = (conn: HookConnection) => HookDecision | Promise<HookDecision>;

/** How a hook's calls ended, for the metrics. */
export type HookResult = "pass" | "service" | "refuse" | "error" | "timeout";

/** A hook's answer as l4p reads it, whatever the hook returned (TCP's and UDP's alike). */
export type ReadDecision =
  | { pass: true }
  | { refuse: string }
  | { service: string }
  | { error: string };

/** Reads what a hook answered: nothing, `{ refuse }`, `{ service }`, or something else. */
export function readDecision(d: unknown): ReadDecision {
  if (d === undefined || d === null) return { pass: true };
  const o = typeof d === "object" ? d as { refuse?: unknown; service?: unknown } : {};
  if (typeof o.refuse === "string") return { refuse: o.refuse };
  if (typeof o.service === "string") return { service: o.service };
  return { error: "answered neither nothing, { service } nor { refuse }" };
}

/** The hook's answer, or "late" when it has none within `ms` (the timer then goes). */
export function answerWithin<T>(answer: Promise<T>, ms: number): Promise<T | "late"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((r) => timer = setTimeout(() => r("late"), ms));
  return Promise.race([answer, late]).finally(() => clearTimeout(timer));
}

/** The connection as a hook sees it: made per call, reading the context only when asked. */
class Connection implements HookConnection {
  constructor(readonly ctx: TcpContext, readonly router: string, readonly timeout: number) {}

  get client() {
    const c = this.ctx.client;
    return { address: c.hostname, port: c.port };
  }

  get local() {
    const l = this.ctx.destination;
    return { address: l.hostname, port: l.port };
  }

  get entryPoint() {
    return this.ctx.entryPoint;
  }

  get sni() {
    return this.ctx.sni;
  }

  get alpn() {
    return this.ctx.match?.alpn ?? [];
  }

  async peek(n: number): Promise<Uint8Array> {
    const want = Math.max(0, Math.min(n, MAX_HOOK_PEEK));
    const have = this.ctx.initial ?? new Uint8Array(0);
    if (have.length >= want) return have.slice(0, want);
    const got = await peek(
      this.ctx,
      this.timeout,
      "bytes a hook asked for",
      (buf) => buf.length >= want ? { more: false, value: buf } : { more: true },
    );
    return (got ?? this.ctx.initial ?? new Uint8Array(0)).slice(0, want);
  }

  async detect(): Promise<{ protocol: string | undefined; fields: Record<string, string> }> {
    const decide = (buf: Uint8Array) => {
      let pending = false;
      for (const [name, verdict] of Object.entries(PROTOCOLS)) {
        if (name === "silent") continue; // decided by time, not by bytes
        const v = verdict(buf);
        if (v === "yes") {
          const fields = fieldsOf(name, buf);
          if (fields !== "more") return { protocol: name, fields };
          pending = true;
        } else if (v === "more") pending = true;
      }
      return pending && buf.length < MAX_PROTOCOL_BYTES
        ? undefined
        : { protocol: undefined, fields: {} };
    };
    const now = this.ctx.initial && decide(this.ctx.initial);
    if (now) return now;
    const found = await peek(this.ctx, this.timeout, "first bytes for a hook", (buf) => {
      const d = decide(buf);
      return d ? { more: false, value: d } : { more: true };
    });
    return found ?? { protocol: undefined, fields: {} };
  }
}

/** A middleware that asks a hook. */
export class HookMiddleware implements TcpHandler, MiddlewareInfo {
  readonly kind = "hook";

  constructor(
    readonly router: string,
    readonly name: string,
    readonly hook: Hook,
    /** In ms: a hook that has not answered by then refuses the connection. */
    readonly timeout: number,
    /** The handler for a service the hook names (with the router's TLS termination, if any). */
    readonly route: (service: string) => TcpHandler | undefined,
    readonly next: TcpHandler,
  ) {}

  serve(ctx: TcpContext): void {
    let answer: ReturnType<Hook>;
    try {
      answer = this.hook(new Connection(ctx, this.router, this.timeout));
    } catch (error) {
      return this.#failed(ctx, "error", error);
    }
    if (answer === undefined) return this.#decided(ctx, undefined); // the quick way: go on
    if (!(answer instanceof Promise)) return this.#decided(ctx, answer);
    answerWithin(answer, this.timeout).then(
      (d) => d === "late" ? this.#failed(ctx, "timeout") : this.#decided(ctx, d),
      (error) => this.#failed(ctx, "error", error),
    );
  }

  #decided(ctx: TcpContext, answer: HookDecision): void {
    if (ctx.ended) return; // the client left while the hook thought
    const tracker = ctx.env.tracker;
    const d = readDecision(answer);
    if ("pass" in d) {
      tracker.hookResult(this.router, this.name, "pass");
      return this.next.serve(ctx);
    }
    if ("refuse" in d) {
      tracker.hookResult(this.router, this.name, "refuse");
      return refuse(ctx, this, d.refuse);
    }
    const handler = "service" in d ? this.route(d.service) : undefined;
    if (handler) {
      tracker.hookResult(this.router, this.name, "service");
      return handler.serve(ctx);
    }
    const why = "service" in d ? `no service "${d.service}" is configured` : d.error;
    this.#failed(ctx, "error", new Error(why));
  }

  #failed(ctx: TcpContext, result: "error" | "timeout", error?: unknown): void {
    ctx.env.tracker.hookResult(this.router, this.name, result);
    if (ctx.ended) return;
    const why = result === "timeout"
      ? `no answer within ${this.timeout} ms`
      : String((error as Error)?.message ?? error);
    ctx.env.logger.repeated(
      "warn",
      `hook ${this.router} ${this.name} ${result}`,
      "routing hook failed; connection refused",
      { router: this.router, middleware: this.name, client: formatAddr(ctx.client), error: why },
    );
    refuse(ctx, this, `hook ${result}: ${why}`);
  }
}
