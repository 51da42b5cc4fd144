/**
 * Routing hooks of UDP routers (l4p's own): asked once per new session, in the router's order,
 * with what the first datagrams said; each answers nothing (go on), `{ service }` or
 * `{ refuse }`. A hook that throws, rejects or does not answer within its timeout refuses that
 * session only; every call is counted.
 */
import { formatAddr } from "../config/address.ts";
import type { NetAddr } from "../runtime/types.ts";
import type { HookDecision, HookResult } from "../tcp/middlewares/hook.ts";
import type { ProxyEnv } from "../tcp/handler.ts";

/** A new UDP session, as a hook sees it. */
export interface HookSession {
  /** The client. */
  readonly client: { address: string; port: number };
  readonly entryPoint: string;
  readonly router: string;
  /** The server name of a QUIC client's ClientHello, when the router read one. */
  readonly sni: string | undefined;
  /** Its ALPN protocols. */
  readonly alpn: readonly string[];
  /** The session's first datagram. */
  readonly first: Uint8Array;
}

/** A UDP routing hook: sync or async. */
export type UdpHook = (session: HookSession) => HookDecision | Promise<HookDecision>;

/** One hook of a router's chain. */
export interface UdpHookStep {
  middleware: string;
  hook: UdpHook;
  /** In ms. */
  timeout: number;
}

/** What the chain decided: go on (undefined), a service by name, or a refusal. */
export type UdpHookOutcome = { service?: string } | { refuse: string };

/**
 * Asks each hook in turn; the first that names a service or refuses decides. Resolves to the
 * outcome; never rejects.
 */
export async function askHooks(
  steps: readonly UdpHookStep[],
  session: HookSession,
  env: ProxyEnv,
  known: (service: string) => boolean,
): Promise<UdpHookOutcome> {
  const count = (step: UdpHookStep, result: HookResult) =>
    env.tracker.hookResult(session.router, step.middleware, result, true);
  for (const step of steps) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let d: HookDecision;
    try {
      const late = new Promise<"late">((r) => timer = setTimeout(() => r("late"), step.timeout));
      const answer = await Promise.race([Promise.resolve(step.hook(session)), late]);
      if (answer === "late") {
        count(step, "timeout");
        return failed(env, session, step, `no answer within ${step.timeout} ms`);
      }
      d = answer;
    } catch (error) {
      count(step, "error");
      return failed(env, session, step, String((error as Error)?.message ?? error));
    } finally {
      clearTimeout(timer);
    }
    if (d === undefined || d === null) {
      count(step, "pass");
      continue;
    }
    const o = d as { service?: unknown; refuse?: unknown };
    if (typeof o.refuse === "string") {
      count(step, "refuse");
      return { refuse: o.refuse };
    }
    if (typeof o.service === "string" && known(o.service)) {
      count(step, "service");
      return { service: o.service };
    }
    count(step, "error");
    return failed(
      env,
      session,
      step,
      typeof o.service === "string"
        ? `no service "${o.service}" is configured`
        : "answered neither nothing, { service } nor { refuse }",
    );
  }
  return {};
}

function failed(
  env: ProxyEnv,
  session: HookSession,
  step: UdpHookStep,
  why: string,
): UdpHookOutcome {
  env.logger.repeated(
    "warn",
    `udp hook ${session.router} ${step.middleware}`,
    "routing hook failed; session refused",
    {
      router: session.router,
      middleware: step.middleware,
      client: formatAddr({ hostname: session.client.address, port: session.client.port }),
      error: why,
    },
  );
  return { refuse: `hook failed: ${why}` };
}

/** The session a hook is shown. */
export function hookSession(
  entryPoint: string,
  router: string,
  client: NetAddr,
  first: Uint8Array,
  hello: { sni: string | undefined; alpn: readonly string[] } | undefined,
): HookSession {
  return {
    client: { address: client.hostname, port: client.port },
    entryPoint,
    router,
    sni: hello?.sni,
    alpn: hello?.alpn ?? [],
    first,
  };
}
