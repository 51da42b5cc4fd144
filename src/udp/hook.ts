/**
 * Routing hooks of UDP routers (l4p's own): asked once per new session, in the router's order,
 * with what the first datagrams said; each answers nothing (go on), `{ service }` or
 * `{ refuse }`. A hook that throws, rejects or does not answer within its timeout refuses that
 * session only; every call is counted.
 */
import { formatAddr } from "../config/address.ts";
import type { NetAddr } from "../runtime/types.ts";
import {
  answerWithin,
  type HookDecision,
  type HookResult,
  type ReadDecision,
  readDecision,
} from "../tcp/middlewares/hook.ts";
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
    let d: ReadDecision;
    try {
      const answer = await answerWithin(Promise.resolve(step.hook(session)), step.timeout);
      if (answer === "late") {
        count(step, "timeout");
        return failed(env, session, step, `no answer within ${step.timeout} ms`);
      }
      d = readDecision(answer);
    } catch (error) {
      count(step, "error");
      return failed(env, session, step, String((error as Error)?.message ?? error));
    }
    if ("pass" in d) {
      count(step, "pass");
      continue;
    }
    if ("refuse" in d) {
      count(step, "refuse");
      return { refuse: d.refuse };
    }
    if ("service" in d && known(d.service)) {
      count(step, "service");
      return { service: d.service };
    }
    count(step, "error");
    const why = "service" in d ? `no service "${d.service}" is configured` : d.error;
    return failed(env, session, step, why);
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
