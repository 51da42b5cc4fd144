/** The process's file-descriptor limit, which bounds how many connections l4p can hold. */
import { readFileSync } from "node:fs";

/** RLIMIT_NOFILE, soft and hard (`Infinity` for unlimited), or undefined where unknown. */
export interface FdLimit {
  soft: number;
  hard: number;
}

/** Reads the limit from `/proc/self/limits` (Linux); undefined elsewhere. */
export function fdLimit(limitsText?: string): FdLimit | undefined {
  let text = limitsText;
  if (text === undefined) {
    try {
      text = readFileSync("/proc/self/limits", "utf8");
    } catch {
      return undefined; // not Linux: the limit is simply not reported
    }
  }
  const m = text.match(/^Max open files\s+(\S+)\s+(\S+)/m);
  if (!m) return undefined;
  const n = (v: string) => (v === "unlimited" ? Infinity : Number(v));
  return { soft: n(m[1]), hard: n(m[2]) };
}

/**
 * Each proxied TCP connection holds two descriptors (client and backend), a UDP session one;
 * a few more are l4p's own (listeners, the log, the runtime). So the most TCP connections a
 * process can carry is about half the soft limit.
 */
export function connectionsWithin(limit: FdLimit): number {
  return Math.floor((limit.soft - 32) / 2);
}
