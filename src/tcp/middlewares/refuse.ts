/** How a middleware turns a connection away: counted, logged at debug, closed at once. */
import { formatAddr } from "../../config/address.ts";
import type { TcpContext } from "../handler.ts";

/** What a refusing middleware is, for the count and the log. */
export interface MiddlewareInfo {
  /** The router it is attached to. */
  readonly router: string;
  /** Its name in `tcp.middlewares`. */
  readonly name: string;
  /** `ipAllowList`, `inFlightConn`, `connRateLimit`. */
  readonly kind: string;
}

/** Ends `ctx` before any backend is dialled, saying which middleware refused it and why. */
export function refuse(ctx: TcpContext, mw: MiddlewareInfo, why: string): void {
  ctx.env.tracker.refused(mw.router, mw.name);
  if (ctx.env.logger.enabled("debug")) {
    ctx.env.logger.debug("connection refused by a middleware", {
      router: mw.router,
      middleware: mw.name,
      kind: mw.kind,
      client: formatAddr(ctx.client),
      why,
    });
  }
  ctx.end(`refused by ${mw.kind} ${mw.name}: ${why}`);
}
