/** ClientHellos built by hand, for tests that need exact or hostile ones. */

/** A ClientHello built by hand: one record, with the given SNI and ALPN extensions. */
export function buildHello(sni?: string, alpn: string[] = []): Uint8Array {
  const enc = new TextEncoder();
  const u16 = (n: number) => [n >> 8, n & 0xff];
  const ext: number[] = [];
  if (sni !== undefined) {
    const name = [...enc.encode(sni)];
    const entry = [0, ...u16(name.length), ...name];
    ext.push(...u16(0), ...u16(entry.length + 2), ...u16(entry.length), ...entry);
  }
  if (alpn.length) {
    const list = alpn.flatMap((p) => [p.length, ...enc.encode(p)]);
    ext.push(...u16(16), ...u16(list.length + 2), ...u16(list.length), ...list);
  }
  const body = [
    3,
    3,
    ...new Array(32).fill(7),
    0,
    ...u16(2),
    0x13,
    0x01,
    1,
    0,
    ...u16(ext.length),
    ...ext,
  ];
  const hs = [1, 0, ...u16(body.length), ...body];
  return new Uint8Array([0x16, 3, 1, ...u16(hs.length), ...hs]);
}

/** The same handshake message re-framed into records of at most `size` bytes. */
export function reframe(hello: Uint8Array, size: number): Uint8Array {
  const hs = hello.subarray(5);
  const out: number[] = [];
  for (let at = 0; at < hs.length; at += size) {
    const part = hs.subarray(at, at + size);
    out.push(0x16, 3, 1, part.length >> 8, part.length & 0xff, ...part);
  }
  return new Uint8Array(out);
}
