/**
 * Datagrams the kernel dropped on a UDP socket (its receive queue was full), read from Linux's
 * `/proc/net/udp` and `/proc/net/udp6`: no runtime exposes SO_RXQ_OVFL, and a drop there is one
 * the proxy never sees. Read when asked (a scrape), not on a timer.
 */
import { readFile } from "node:fs/promises";
import { parseIp } from "../net/ip.ts";

/** One socket's line: where it is bound, and what the kernel dropped on it. */
export interface UdpSocketLine {
  /** Local address as `/proc` writes it: hex, in the kernel's byte order. */
  local: string;
  port: number;
  drops: number;
}

/** The sockets listed in a `/proc/net/udp`-style text. */
export function parseProcNetUdp(text: string): UdpSocketLine[] {
  const out: UdpSocketLine[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 13) continue;
    const [addr, port] = f[1].split(":");
    const drops = Number(f[12]);
    if (!addr || !port || !Number.isFinite(drops)) continue;
    out.push({ local: addr.toUpperCase(), port: parseInt(port, 16), drops });
  }
  return out;
}

/**
 * How `/proc/net/udp` writes `ip`: IPv4 as one 32-bit word, IPv6 as four, each in the host's
 * byte order (little-endian on the machines l4p runs on).
 */
export function procAddress(ip: string): string | undefined {
  const bytes = parseIp(ip);
  if (!bytes) return undefined;
  let hex = "";
  for (let w = 0; w < bytes.length; w += 4) {
    for (let i = 3; i >= 0; i--) hex += bytes[w + i].toString(16).padStart(2, "0");
  }
  return hex.toUpperCase();
}

/**
 * Kernel drops on the sockets bound to `hostname:port`, summed (several with SO_REUSEPORT);
 * undefined where `/proc/net/udp` cannot be read (not Linux).
 */
export async function kernelDrops(hostname: string, port: number): Promise<number | undefined> {
  const v6 = hostname.includes(":");
  const local = procAddress(hostname === "" ? (v6 ? "::" : "0.0.0.0") : hostname);
  if (!local) return undefined;
  let text: string;
  try {
    text = await readFile(v6 ? "/proc/net/udp6" : "/proc/net/udp", "utf8");
  } catch {
    return undefined;
  }
  let sum = 0;
  for (const s of parseProcNetUdp(text)) if (s.port === port && s.local === local) sum += s.drops;
  return sum;
}
