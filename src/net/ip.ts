/** IP addresses and CIDR ranges, parsed strictly and compared as bytes. */

/** An IPv4 (4 bytes) or IPv6 (16 bytes) address. */
export type IpBytes = Uint8Array;

/** Parses a dotted-quad IPv4 address; `undefined` if it is not one. */
export function parseIPv4(text: string): IpBytes | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255) return undefined;
    out[i] = Number(p);
  }
  return out;
}

/** Parses an IPv6 address (with `::` and an optional trailing dotted quad); `undefined` if not. */
export function parseIPv6(text: string): IpBytes | undefined {
  if (!/^[0-9A-Fa-f:.]+$/.test(text) || text.length > 45) return undefined;
  const double = text.indexOf("::");
  if (double !== text.lastIndexOf("::")) return undefined;
  const groups = (s: string): number[] | undefined => {
    if (s === "") return [];
    const out: number[] = [];
    const parts = s.split(":");
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      if (i === parts.length - 1 && p.includes(".")) {
        const v4 = parseIPv4(p);
        if (!v4) return undefined;
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else {
        if (!/^[0-9A-Fa-f]{1,4}$/.test(p)) return undefined;
        out.push(parseInt(p, 16));
      }
    }
    return out;
  };
  let words: number[];
  if (double >= 0) {
    const head = groups(text.slice(0, double));
    const tail = groups(text.slice(double + 2));
    if (!head || !tail || head.length + tail.length > 7) return undefined;
    words = [...head, ...new Array(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    const all = groups(text);
    if (!all || all.length !== 8) return undefined;
    words = all;
  }
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

/** Parses either family; an IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) becomes IPv4. */
export function parseIp(text: string): IpBytes | undefined {
  const v4 = parseIPv4(text);
  if (v4) return v4;
  const v6 = parseIPv6(text);
  return v6 && isV4Mapped(v6) ? v6.slice(12) : v6;
}

function isV4Mapped(b: IpBytes): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/** Formats address bytes: dotted quad, or RFC 5952 IPv6 (longest zero run as `::`). */
export function formatIp(b: IpBytes): string {
  if (b.length === 4) return b.join(".");
  if (isV4Mapped(b)) return `::ffff:${b.subarray(12).join(".")}`;
  const words = Array.from({ length: 8 }, (_, i) => (b[2 * i] << 8) | b[2 * i + 1]);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) [bestStart, bestLen] = [i, j - i];
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}

/** The canonical text of an address: IPv4-mapped IPv6 shown as IPv4, IPv6 compressed. */
export function canonicalIp(text: string): string {
  const b = parseIp(text);
  return b ? formatIp(b) : text;
}

/** A network: address bytes and prefix length. */
export interface Cidr {
  bytes: IpBytes;
  prefix: number;
  text: string;
}

/** Parses `10.0.0.0/8`, `::1/128` or a lone address (a host route); or an error message. */
export function parseCidr(text: string): Cidr | string {
  const slash = text.indexOf("/");
  const addr = slash < 0 ? text : text.slice(0, slash);
  const bytes = parseIp(addr);
  if (!bytes) return `"${text}" is not an IP address or CIDR range`;
  const max = bytes.length * 8;
  let prefix = max;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) {
      return `"${text}" has a bad prefix length (0-${max})`;
    }
    prefix = Number(p);
  }
  return { bytes, prefix, text };
}

/** Whether address `ip` lies in `cidr` (families must match; IPv4-mapped counts as IPv4). */
export function cidrContains(cidr: Cidr, ip: IpBytes): boolean {
  if (cidr.bytes.length !== ip.length) return false;
  let bits = cidr.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((cidr.bytes[i] & mask) !== (ip[i] & mask)) return false;
  }
  return true;
}

/** A set of CIDR ranges to test addresses against. */
export class CidrSet {
  constructor(readonly ranges: readonly Cidr[]) {}

  /** Whether `address` (text) is in any range. */
  has(address: string): boolean {
    const ip = parseIp(address);
    return ip !== undefined && this.ranges.some((r) => cidrContains(r, ip));
  }
}
