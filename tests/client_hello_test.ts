import assert from "node:assert/strict";
import { test } from "node:test";
import { type HelloResult, MAX_HELLO, parseClientHello } from "../src/tls/client_hello.ts";
import { buildHello, reframe } from "./_hello.ts";
import { captureClientHello, OPENSSL } from "./_peers.ts";

const skip = !OPENSSL && "needs openssl (apt-get install openssl)";

function info(r: HelloResult) {
  assert.equal(r.kind, "hello", JSON.stringify(r));
  return (r as { info: { sni?: string; alpn: string[] } }).info;
}

test("ClientHello: SNI and ALPN from hellos built by hand", () => {
  assert.deepEqual(info(parseClientHello(buildHello("A.Example.com.", ["h2", "http/1.1"]))), {
    sni: "a.example.com",
    alpn: ["h2", "http/1.1"],
  });
  assert.deepEqual(info(parseClientHello(buildHello())), { sni: undefined, alpn: [] });
});

test("ClientHello: what openssl s_client sends parses", { skip }, async () => {
  const hello = await captureClientHello("b.test", "h2,http/1.1");
  assert.deepEqual(info(parseClientHello(hello)), { sni: "b.test", alpn: ["h2", "http/1.1"] });
  const bare = await captureClientHello(undefined, undefined);
  assert.deepEqual(info(parseClientHello(bare)), { sni: undefined, alpn: [] });
});

test("ClientHello: split across records and delivered a byte at a time", () => {
  const hello = reframe(buildHello("split.test", ["h2"]), 7);
  for (let n = 0; n < hello.length; n++) {
    assert.equal(parseClientHello(hello.subarray(0, n)).kind, "incomplete", `at ${n}`);
  }
  assert.deepEqual(info(parseClientHello(hello)), { sni: "split.test", alpn: ["h2"] });
});

test("ClientHello: plain bytes are not TLS; malformed and huge hellos are errors", () => {
  assert.equal(parseClientHello(new TextEncoder().encode("GET / HTTP/1.1\r\n")).kind, "not-tls");
  assert.equal(parseClientHello(new Uint8Array([0x16, 0x20])).kind, "not-tls");
  const bad = (bytes: Uint8Array, message: RegExp) => {
    const r = parseClientHello(bytes);
    assert.equal(r.kind, "error", JSON.stringify(r));
    assert.match((r as { message: string }).message, message);
  };
  const hello = buildHello("x.test");
  const notHello = hello.slice();
  notHello[5] = 2;
  bad(notHello, /not a ClientHello/);
  const badRecord = reframe(hello, 10);
  badRecord[15] = 0x17; // the second record is application data
  bad(badRecord, /not a handshake record/);
  // A handshake that declares 1 MiB: refused from its header, before any of it is read.
  bad(new Uint8Array([0x16, 3, 1, 0, 4, 1, 0x10, 0, 0]), /over l4p's bound/);
  // Records that never add up to a hello within the bound.
  const many = reframe(
    new Uint8Array([0x16, 3, 1, 0, 0, 1, 0, 0xff, 0xff, ...new Uint8Array(MAX_HELLO)]),
    16,
  );
  bad(many.subarray(0, MAX_HELLO + 100), /over l4p's bound|within/);
  const trunc = buildHello("x.test", ["h2"]);
  trunc[trunc.length - 4] = 0x09; // the ALPN list length no longer fits
  bad(trunc, /ALPN|extension/);
});

test("ClientHello: many thousands of mutated hellos never throw", () => {
  let seed = 99;
  const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const seeds = [
    buildHello("a.test", ["h2"]),
    reframe(buildHello("b.example.com", ["h2", "http/1.1"]), 13),
  ];
  const kinds = new Set<string>();
  for (let i = 0; i < 30_000; i++) {
    const base = seeds[i % seeds.length];
    const bytes = base.slice(0, Math.max(1, Math.floor(rand() * (base.length + 1))));
    for (let m = Math.floor(rand() * 5); m > 0; m--) {
      bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
    }
    kinds.add(parseClientHello(bytes).kind);
  }
  assert.deepEqual([...kinds].sort(), ["error", "hello", "incomplete", "not-tls"]);
});
