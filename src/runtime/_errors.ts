/** Errors both adapters make alike. */
import { SocketError } from "./types.ts";

/** The error of a connect given up through its signal: a timeout, or the caller's abort. */
export function abortError(signal: AbortSignal): SocketError {
  const reason = signal.reason as { name?: string } | undefined;
  return reason?.name === "TimeoutError"
    ? new SocketError("ETIMEDOUT", "connect timed out", { cause: reason })
    : new SocketError("EABORTED", "connect abandoned", { cause: reason });
}
