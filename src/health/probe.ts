/**
 * One health check of one server: a TCP connect (then, if asked, bytes sent and bytes expected
 * in the reply), or a UDP datagram and its reply. Resolves to undefined when it passed, else to
 * why it failed; never rejects, never outlives its timeout.
 */
import { parseIp } from "../net/ip.ts";
import { DialCancel, type NetAddr, type Runtime, type TcpConn } from "../runtime/types.ts";

/** What to check and how long it may take. */
export interface ProbeOptions {
  /** In ms. */
  timeout: number;
  send?: Uint8Array;
  expect?: Uint8Array;
}

/** Replies are read up to this much while looking for `expect`. */
export const MAX_REPLY = 64 * 1024;

/** Checks a TCP server. */
export async function probeTcp(
  runtime: Runtime,
  target: NetAddr,
  options: ProbeOptions,
): Promise<string | undefined> {
  const cancel = new DialCancel();
  let conn: TcpConn | undefined;
  const timer = setTimeout(() => {
    cancel.timeOut();
    conn?.close(); // a pending read then ends
  }, options.timeout);
  try {
    conn = await runtime.connect({ ...target, cancel });
    if (options.send) await conn.write(options.send);
    if (!options.expect) return undefined;
    let got = new Uint8Array(0);
    for (;;) {
      const chunk = await conn.read();
      if (cancel.reason) return "timed out waiting for the expected reply";
      if (chunk === null) {
        return `closed before the expected reply${got.length ? `; got ${describe(got)}` : ""}`;
      }
      const next = new Uint8Array(got.length + chunk.length);
      next.set(got, 0);
      next.set(chunk, got.length);
      got = next;
      if (indexOf(got, options.expect) >= 0) return undefined;
      if (got.length >= MAX_REPLY) return `no expected reply in ${MAX_REPLY} bytes`;
    }
  } catch (error) {
    if (cancel.reason) return "timed out";
    const e = error as { code?: string; message?: string };
    return e.code ?? e.message ?? String(error);
  } finally {
    clearTimeout(timer);
    conn?.close();
  }
}

/** Checks a UDP server: `send` goes out, and a reply from the server (containing `expect`) must come back. */
export async function probeUdp(
  runtime: Runtime,
  target: NetAddr,
  options: ProbeOptions & { send: Uint8Array },
): Promise<string | undefined> {
  const literal = parseIp(target.hostname) !== undefined;
  let settle: (why: string | undefined) => void = () => {};
  const done = new Promise<string | undefined>((resolve) => settle = resolve);
  let mismatch: string | undefined;
  const socket = await runtime.bindDatagram({
    hostname: target.hostname.includes(":") ? "::" : "0.0.0.0",
    port: 0,
    onMessage(data, from) {
      if (from.port !== target.port || (literal && from.hostname !== target.hostname)) return;
      if (!options.expect || indexOf(data, options.expect) >= 0) return settle(undefined);
      mismatch = `reply did not contain the expected bytes; got ${describe(data)}`;
    },
  }).catch((error) => {
    settle(`cannot open a UDP socket: ${(error as Error).message}`);
    return undefined;
  });
  if (!socket) return await done;
  const timer = setTimeout(
    () => settle(mismatch ?? "no reply within the timeout"),
    options.timeout,
  );
  socket.send(options.send, target, () => settle("the check's datagram could not be sent"));
  try {
    return await done;
  } finally {
    clearTimeout(timer);
    socket.close();
  }
}

/** Where `needle` starts in `hay`, or -1. */
export function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  if (needle.length === 0) return 0;
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** A short, safe rendering of received bytes for a log line. */
function describe(bytes: Uint8Array): string {
  const head = bytes.subarray(0, 32);
  const printable = head.every((b) => (b >= 0x20 && b < 0x7f) || b === 0x0d || b === 0x0a);
  const text = printable ? JSON.stringify(new TextDecoder().decode(head)) : `0x${toHex(head)}`;
  return bytes.length > 32 ? `${text}…` : text;
}

/** Bytes as lowercase hex. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Hex (validated by the configuration) to bytes. */
export function fromHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}
