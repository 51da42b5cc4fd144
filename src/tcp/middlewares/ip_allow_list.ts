/** traefik's `ipAllowList` TCP middleware: only clients from the listed ranges get through. */
import type { CidrSet } from "../../net/ip.ts";
import type { TcpContext, TcpHandler } from "../handler.ts";
import { type MiddlewareInfo, refuse } from "./refuse.ts";

/**
 * Lets a connection through when its client address (after a trusted PROXY header, if any) lies
 * in `sourceRange`; closes it otherwise, before any backend is dialled.
 */
export class IpAllowList implements TcpHandler, MiddlewareInfo {
  readonly kind = "ipAllowList";

  constructor(
    readonly router: string,
    readonly name: string,
    readonly sourceRange: CidrSet,
    readonly next: TcpHandler,
  ) {}

  serve(ctx: TcpContext): void {
    if (this.sourceRange.has(ctx.client.hostname)) return this.next.serve(ctx);
    refuse(ctx, this, "client not in sourceRange");
  }
}
