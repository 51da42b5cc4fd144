/** Picks, for each connection on an entrypoint, the first router whose rule matches. */
import type { TcpContext, TcpHandler } from "./handler.ts";

/** One router, ready to match. */
export interface TcpRoute {
  name: string;
  /** Whether this router takes the connection. */
  matches(ctx: TcpContext): boolean;
  handler: TcpHandler;
}

/** The routers of one entrypoint, in match order. */
export class TcpRouter implements TcpHandler {
  constructor(readonly entryPoint: string, readonly routes: readonly TcpRoute[]) {}

  serve(ctx: TcpContext): void {
    for (const route of this.routes) {
      if (!route.matches(ctx)) continue;
      ctx.env.tracker.routed(ctx.record, route.name);
      route.handler.serve(ctx);
      return;
    }
    ctx.env.logger.info("no router matched; connection closed", { entryPoint: this.entryPoint });
    ctx.end("no router");
  }
}
