import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../src/config/load.ts";
import {
  connect,
  deadline,
  ended,
  type NetServer,
  netServer,
  readToEnd,
  rssOf,
  runL4p,
  startProxy,
  waitFor,
} from "./_helpers.ts";
import { captureClientHello, OPENSSL, startTlsServer, tlsClient } from "./_peers.ts";

const skip = !OPENSSL && "needs openssl (apt-get install openssl)";

/** A configuration of one entrypoint `web` with `routers` (YAML lines) over `services`. */
function config(routers: string, services: Record<string, number>, entryPoint = "") {
  let svc = "";
  for (const [name, port] of Object.entries(services)) {
    svc += `    ${name}: { loadBalancer: { servers: [{ address: "127.0.0.1:${port}" }] } }\n`;
  }
  return parseConfig(
    `entryPoints:
  web:
    address: "127.0.0.1:0"
${entryPoint}
tcp:
  routers:
${routers}
  services:
${svc}`,
    "tls.yaml",
  ).config;
}

/** A plain backend that records what it got and answers with its name. */
function named(name: string, got: Buffer[] = []): Promise<NetServer> {
  return netServer((s) => {
    s.on("error", () => {});
    s.once("data", (c: Buffer) => {
      got.push(c);
      s.end(name);
    });
  });
}

test(
  "tls passthrough: SNI picks the server, the certificate is the server's own",
  { skip },
  async () => {
    const a = await startTlsServer("a.test");
    const b = await startTlsServer("b.test");
    const other = await startTlsServer("other.test");
    const proxy = await startProxy(config(
      `    to-a: { rule: "HostSNI(\`a.test\`)", service: a, tls: { passthrough: true } }
    to-b: { rule: "HostSNI(\`b.test\`)", service: b, tls: { passthrough: true } }
    rest: { rule: "HostSNI(\`*\`)", service: other }`,
      { a: a.port, b: b.port, other: other.port },
    ));
    try {
      const port = proxy.port("web");
      assert.equal((await tlsClient(port, "a.test")).subject, "a.test");
      assert.equal((await tlsClient(port, "b.test")).subject, "b.test");
      assert.equal((await tlsClient(port, "B.TEST")).subject, "b.test");
      assert.equal(
        (await tlsClient(port, undefined)).subject,
        "other.test",
        "no SNI: the catch-all",
      );
      assert.equal((await tlsClient(port, "unknown.test")).subject, "other.test");
      const t = proxy.server.tracker.routers;
      assert.equal(t.get("to-a")!.opened, 1);
      assert.equal(t.get("to-b")!.opened, 2);
      assert.equal(t.get("rest")!.opened, 2);
    } finally {
      proxy.close();
      for (const s of [a, b, other]) s.stop();
    }
  },
);

test(
  "tls passthrough: an unknown name with no catch-all is refused and logged",
  { skip },
  async () => {
    const a = await startTlsServer("a.test");
    const proxy = await startProxy(
      config(`    to-a: { rule: "HostSNI(\`a.test\`)", service: a }`, { a: a.port }),
    );
    try {
      const r = await tlsClient(proxy.port("web"), "nope.test");
      assert.equal(r.subject, undefined, r.output);
      assert.ok(
        proxy.lines.some((l) => l.includes("no router matched") && l.includes("sni=nope.test")),
      );
      // Non-TLS bytes on this entrypoint, with no catch-all: closed too.
      const plain = await connect(proxy.port("web"));
      plain.on("error", () => {});
      plain.write("GET / HTTP/1.1\r\n\r\n");
      await deadline(ended(plain), 5000, "plain client closed");
    } finally {
      proxy.close();
      a.stop();
    }
  },
);

test("tls passthrough: ALPN routing (h2 vs http/1.1)", { skip }, async () => {
  const h2 = await startTlsServer("h2.test", "h2");
  const h1 = await startTlsServer("h1.test", "http/1.1");
  const proxy = await startProxy(config(
    `    h2: { rule: "ALPN(\`h2\`)", service: h2 }
    h1: { rule: "ALPN(\`http/1.1\`)", service: h1 }`,
    { h2: h2.port, h1: h1.port },
  ));
  try {
    const port = proxy.port("web");
    const viaH2 = await tlsClient(port, "x.test", "h2");
    assert.deepEqual([viaH2.subject, viaH2.alpn], ["h2.test", "h2"]);
    const viaH1 = await tlsClient(port, "x.test", "http/1.1");
    assert.deepEqual([viaH1.subject, viaH1.alpn], ["h1.test", "http/1.1"]);
  } finally {
    proxy.close();
    h2.stop();
    h1.stop();
  }
});

test("routing: ClientIP uses the address a trusted PROXY header delivered", async () => {
  const inside = await named("inside");
  const outside = await named("outside");
  const proxy = await startProxy(config(
    `    inside: { rule: "ClientIP(\`10.0.0.0/8\`, \`2001:db8::/32\`)", service: inside }
    outside: { rule: "HostSNI(\`*\`)", service: outside }`,
    { inside: inside.port, outside: outside.port },
    '    proxyProtocol: { trustedIPs: ["127.0.0.1"] }',
  ));
  try {
    const ask = async (header: string) => {
      const c = await connect(proxy.port("web"));
      c.write(`${header}hello`);
      return (await deadline(readToEnd(c), 5000, "answer")).toString();
    };
    assert.equal(await ask("PROXY TCP4 10.1.2.3 192.0.2.1 1234 443\r\n"), "inside");
    assert.equal(await ask("PROXY TCP6 2001:db8::9 2001:db8::1 1234 443\r\n"), "inside");
    assert.equal(await ask("PROXY TCP4 192.0.2.44 192.0.2.1 1234 443\r\n"), "outside");
    assert.equal(await ask(""), "outside"); // loopback itself
  } finally {
    proxy.close();
    await inside.close();
    await outside.close();
  }
});

test(
  "tls passthrough: a ClientHello sent one byte at a time is routed and reaches the server intact",
  {
    skip,
  },
  async () => {
    const hello = await captureClientHello("b.test", "h2");
    const gotA: Buffer[] = [];
    const gotB: Buffer[] = [];
    const a = await named("A", gotA);
    const b = await named("B", gotB);
    const proxy = await startProxy(config(
      `    a: { rule: "HostSNI(\`a.test\`)", service: a }
    b: { rule: "HostSNI(\`b.test\`)", service: b }`,
      { a: a.port, b: b.port },
    ));
    try {
      const c = await connect(proxy.port("web"));
      c.setNoDelay(true);
      const answer = readToEnd(c);
      for (const byte of hello) {
        c.write(new Uint8Array([byte]));
        await new Promise((r) => setTimeout(r, 1));
      }
      assert.equal((await deadline(answer, 10_000, "routed")).toString(), "B");
      assert.deepEqual(
        new Uint8Array(Buffer.concat(gotB)),
        hello,
        "the server got the exact bytes",
      );
      assert.equal(gotA.length, 0);
    } finally {
      proxy.close();
      await a.close();
      await b.close();
    }
  },
);

test("tls passthrough: a client that never sends is cut off at the deadline, others are served", {
  skip,
}, async () => {
  const hello = await captureClientHello("a.test");
  const a = await named("A");
  const proxy = await startProxy(config(
    `    a: { rule: "HostSNI(\`a.test\`)", service: a }`,
    { a: a.port },
    "    helloTimeout: 300ms",
  ));
  const reasons: string[] = [];
  proxy.server.tracker.onClosed((c) => reasons.push(c.reason));
  try {
    const silent = await connect(proxy.port("web"));
    silent.on("error", () => {});
    const good = await connect(proxy.port("web"));
    good.write(hello);
    assert.equal((await deadline(readToEnd(good), 5000, "good client routed")).toString(), "A");
    await deadline(ended(silent), 5000, "silent client cut off");
    await waitFor(() => reasons.includes("TLS ClientHello timeout"), 5000, "timeout recorded");
  } finally {
    proxy.close();
    await a.close();
  }
});

test("tls passthrough: a huge or malformed ClientHello is refused without l4p growing", async () => {
  const a = await named("A");
  const l4pConfig = `entryPoints:
  web: { address: "127.0.0.1:0" }
tcp:
  routers:
    a: { rule: "HostSNI(\`a.test\`)", service: a }
  services:
    a: { loadBalancer: { servers: [{ address: "127.0.0.1:${a.port}" }] } }
`;
  const { mkdtempSync, writeFileSync } = await import("node:fs");
  const dir = mkdtempSync("/tmp/l4p-huge-");
  writeFileSync(`${dir}/l4p.yaml`, l4pConfig);
  const l4p = runL4p(["run", "-c", `${dir}/l4p.yaml`]);
  try {
    const [, port] = await l4p.waitForLine(/listening .* address=127\.0\.0\.1:(\d+)/);
    const before = rssOf(l4p.child.pid!);
    for (let i = 0; i < 20; i++) {
      const c = await connect(Number(port));
      c.on("error", () => {});
      // Records of handshake bytes that claim a 16 MiB ClientHello, then keep coming.
      c.write(new Uint8Array([0x16, 3, 1, 0x40, 0, 1, 0xff, 0xff, 0xff]));
      const junk = new Uint8Array(64 * 1024).fill(0x41);
      for (let k = 0; k < 16 && !c.destroyed; k++) c.write(junk);
      await deadline(ended(c), 5000, "huge hello refused");
      c.destroy();
    }
    const garbled = await connect(Number(port));
    garbled.on("error", () => {});
    garbled.write(new Uint8Array([0x16, 3, 1, 0, 8, 9, 9, 9, 9, 9, 9, 9, 9]));
    await deadline(ended(garbled), 5000, "malformed hello refused");
    await l4p.waitForLine(/malformed TLS ClientHello; connection closed .*not a ClientHello/);
    assert.ok((rssOf(l4p.child.pid!) - before) < 32 * 1024 * 1024, "l4p's memory stayed put");
  } finally {
    l4p.kill("SIGKILL");
    await a.close();
  }
});
