/** `host:port` addresses as operators write them. */
import type { NetAddr } from "../runtime/types.ts";

/** An address to listen on or dial, after parsing. */
export interface HostPort extends NetAddr {
  /** The text as written, for messages. */
  text: string;
}

/**
 * Parses `host:port`, `[v6]:port` or (with `listen`) `:port`, which means every IPv4
 * interface. Returns an error message on failure.
 *
 * @example parseHostPort("[::1]:8080") // { hostname: "::1", port: 8080, text: "[::1]:8080" }
 */
export function parseHostPort(text: string, listen = false): HostPort | string {
  const s = text.trim();
  let host: string;
  let port: string;
  if (s.startsWith("[")) {
    const end = s.indexOf("]");
    if (end < 0 || s[end + 1] !== ":") return `"${text}" is not [ipv6]:port`;
    host = s.slice(1, end);
    port = s.slice(end + 2);
  } else {
    const colon = s.lastIndexOf(":");
    if (colon < 0) return `"${text}" has no port (write host:port)`;
    host = s.slice(0, colon);
    port = s.slice(colon + 1);
    if (host.includes(":")) {
      return `"${text}": write an IPv6 address in brackets, [${host}]:${port}`;
    }
  }
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) {
    return `"${text}" has a bad port "${port}" (0-65535)`;
  }
  if (host === "") {
    if (!listen) return `"${text}" has no host`;
    host = "0.0.0.0";
  } else if (!/^[A-Za-z0-9.\-_:%]+$/.test(host)) {
    return `"${text}" has a bad host "${host}"`;
  }
  if (!listen && Number(port) === 0) return `"${text}": port 0 cannot be dialled`;
  return { hostname: host, port: Number(port), text: s };
}

/** Formats an address as `host:port`, bracketing IPv6. */
export function formatAddr(a: NetAddr): string {
  return a.hostname.includes(":") ? `[${a.hostname}]:${a.port}` : `${a.hostname}:${a.port}`;
}

/** Whether `hostname` (as listened on) reaches this machine only: `localhost`, 127/8, ::1. */
export function isLoopback(hostname: string): boolean {
  const h = hostname.toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h);
}
