import assert from "node:assert/strict";
import { test } from "node:test";
import {
  encodeProxyHeader,
  parseProxyHeader,
  type ParseResult,
  type ProxyHeader,
  proxyHeaderFor,
} from "../src/proxy_protocol/codec.ts";

const text = (s: string) => new TextEncoder().encode(s);
const SIG = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

function header(result: ParseResult): ProxyHeader {
  assert.equal(result.kind, "header", JSON.stringify(result));
  return (result as { header: ProxyHeader }).header;
}

function errorOf(bytes: Uint8Array): string {
  const r = parseProxyHeader(bytes);
  assert.equal(r.kind, "error", `expected an error, got ${r.kind}`);
  return (r as { error: Error }).error.message;
}

test("proxy protocol v1: the specification's example parses", () => {
  const r = parseProxyHeader(text("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /"));
  assert.equal(r.kind, "header");
  assert.equal((r as { length: number }).length, 47);
  assert.deepEqual(header(r), {
    version: 1,
    command: "PROXY",
    protocol: "TCP4",
    source: { hostname: "192.168.0.1", port: 56324 },
    destination: { hostname: "192.168.0.11", port: 443 },
    tlvs: [],
  });
});

test("proxy protocol: headers round-trip through encode and parse, v1 and v2, IPv4 and IPv6", () => {
  for (const version of [1, 2] as const) {
    for (
      const [src, dst] of [["10.1.2.3", "192.0.2.1"], ["2001:db8::1", "::1"], ["10.0.0.1", "::1"]]
    ) {
      const h = proxyHeaderFor(version, { hostname: src, port: 40000 }, {
        hostname: dst,
        port: 443,
      });
      const bytes = encodeProxyHeader(h);
      const r = parseProxyHeader(bytes);
      assert.deepEqual(header(r), h);
      assert.equal((r as { length: number }).length, bytes.length);
    }
  }
  const mixed = proxyHeaderFor(1, { hostname: "10.0.0.1", port: 1 }, { hostname: "::1", port: 2 });
  assert.equal(mixed.protocol, "TCP6");
  assert.equal(mixed.source!.hostname, "::ffff:10.0.0.1");
});

test("proxy protocol v2: LOCAL, UNKNOWN and TLVs (unknown ones kept) round-trip", () => {
  const local: ProxyHeader = { version: 2, command: "LOCAL", protocol: "UNKNOWN", tlvs: [] };
  assert.deepEqual(header(parseProxyHeader(encodeProxyHeader(local))), local);
  const withTlvs: ProxyHeader = {
    ...proxyHeaderFor(2, { hostname: "10.0.0.1", port: 1000 }, { hostname: "10.0.0.2", port: 443 }),
    tlvs: [
      { type: 0x01, value: text("h2") }, // ALPN
      { type: 0x02, value: text("example.com") }, // authority
      { type: 0xe7, value: new Uint8Array([1, 2, 3]) }, // custom, unknown to l4p
      { type: 0x04, value: new Uint8Array(0) }, // NOOP
    ],
  };
  assert.deepEqual(header(parseProxyHeader(encodeProxyHeader(withTlvs))), withTlvs);
  const unknown: ProxyHeader = { version: 1, command: "PROXY", protocol: "UNKNOWN", tlvs: [] };
  assert.deepEqual(header(parseProxyHeader(text("PROXY UNKNOWN ffff::1 whatever\r\n"))), unknown);
});

test("proxy protocol: a header delivered a byte at a time is incomplete until its last byte", () => {
  for (const version of [1, 2] as const) {
    const bytes = encodeProxyHeader(
      proxyHeaderFor(version, { hostname: "10.0.0.1", port: 5 }, { hostname: "10.0.0.2", port: 6 }),
    );
    for (let n = 0; n < bytes.length; n++) {
      assert.equal(
        parseProxyHeader(bytes.subarray(0, n)).kind,
        "incomplete",
        `v${version} at ${n} bytes`,
      );
    }
    assert.equal(parseProxyHeader(bytes).kind, "header");
  }
});

test("proxy protocol: bytes that are no header are said to be none", () => {
  for (
    const s of ["GET / HTTP/1.1\r\n", "\x16\x03\x01\x02\x00", "PROXX", "proxy TCP4", "\r\n\r\nX"]
  ) {
    assert.equal(parseProxyHeader(text(s)).kind, "none", JSON.stringify(s));
  }
});

test("proxy protocol: every malformed form is rejected with a clear error", () => {
  assert.match(errorOf(text("PROXY TCP4 " + "1".repeat(100) + "\r\n")), /longer than 107 bytes/);
  assert.match(errorOf(text("PROXY TCP4 " + "1".repeat(120))), /longer than 107 bytes/);
  assert.match(errorOf(text("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX")), /CR not followed by LF/);
  assert.match(errorOf(text("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n")), /expected 6 fields/);
  assert.match(errorOf(text("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n")), /unknown protocol/);
  assert.match(errorOf(text("PROXY TCP4 ::1 ::2 1 2\r\n")), /not IPv4/);
  assert.match(errorOf(text("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n")), /not IPv6/);
  assert.match(errorOf(text("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n")), /bad port/);
  assert.match(errorOf(text("PROXY TCP4 1.2.3.4 5.6.7.8 0443 2\r\n")), /bad port/);
  assert.match(errorOf(text("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n")), /not IPv4/);
  assert.match(errorOf(text("PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n")), /printable ASCII/);
  assert.match(
    errorOf(new Uint8Array([...SIG, 0x11, 0x11, 0, 12, ...new Uint8Array(12)])),
    /version 1, not 2/,
  );
  assert.match(
    errorOf(new Uint8Array([...SIG, 0x2f, 0x11, 0, 12, ...new Uint8Array(12)])),
    /unknown command/,
  );
  assert.match(
    errorOf(new Uint8Array([...SIG, 0x21, 0x41, 0, 12, ...new Uint8Array(12)])),
    /unknown address family 0x41/,
  );
  assert.match(
    errorOf(new Uint8Array([...SIG, 0x21, 0x13, 0, 12, ...new Uint8Array(12)])),
    /unknown address family 0x13/,
  );
  assert.match(
    errorOf(new Uint8Array([...SIG, 0x21, 0x11, 0, 8, ...new Uint8Array(8)])),
    /too short for its addresses/,
  );
  assert.match(
    errorOf(new Uint8Array([...SIG, 0x21, 0x21, 0, 12, ...new Uint8Array(12)])),
    /too short/,
  );
  assert.match(
    errorOf(new Uint8Array([...SIG, 0x21, 0x11, 0, 14, ...new Uint8Array(14)])),
    /truncated TLV/,
  );
  assert.match(
    errorOf(new Uint8Array([...SIG, 0x21, 0x11, 0, 16, ...new Uint8Array(12), 1, 0, 9, 0])),
    /TLV longer/,
  );
  assert.match(errorOf(new Uint8Array([...SIG, 0x21, 0x11, 0xff, 0xff])), /over l4p's bound/);
});

test("proxy protocol: many thousands of random and mutated headers never throw or hang", () => {
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const valid = [
    encodeProxyHeader(
      proxyHeaderFor(1, { hostname: "10.0.0.1", port: 5 }, { hostname: "10.0.0.2", port: 6 }),
    ),
    encodeProxyHeader(
      proxyHeaderFor(1, { hostname: "2001:db8::1", port: 5 }, { hostname: "::1", port: 6 }),
    ),
    encodeProxyHeader({
      ...proxyHeaderFor(2, { hostname: "2001:db8::1", port: 5 }, { hostname: "::1", port: 6 }),
      tlvs: [{ type: 1, value: text("h2") }],
    }),
  ];
  const counts: Record<string, number> = {};
  for (let i = 0; i < 30_000; i++) {
    let bytes: Uint8Array;
    if (i % 3 === 0) {
      bytes = new Uint8Array(Math.floor(rand() * 120)).map(() => Math.floor(rand() * 256));
      if (rand() < 0.5) {
        bytes.set(
          rand() < 0.5
            ? SIG.slice(0, Math.min(12, bytes.length))
            : text("PROXY ").slice(0, Math.min(6, bytes.length)),
        );
      }
    } else {
      bytes = valid[i % valid.length].slice(
        0,
        1 + Math.floor(rand() * valid[i % valid.length].length),
      );
      for (let m = Math.floor(rand() * 4); m > 0; m--) {
        bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
      }
    }
    const r = parseProxyHeader(bytes);
    counts[r.kind] = (counts[r.kind] ?? 0) + 1;
    if (r.kind === "header") assert.ok(r.length <= bytes.length);
  }
  // Every outcome was reached, and none by an exception.
  assert.deepEqual(Object.keys(counts).sort(), ["error", "header", "incomplete", "none"]);
});
