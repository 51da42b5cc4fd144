import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createCipheriv } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { test } from "node:test";
import { buildHello } from "./_hello.ts";
import { freePort, ROOT, runL4p, udpPeer, waitFor } from "./_helpers.ts";
import { makeTlsFixtures } from "./_tls.ts";
import {
  clientInitialKeys,
  InitialCrypto,
  openInitial,
  QUIC_V1,
  QUIC_V2,
} from "../src/udp/quic_initial.ts";

const DENO = `${ROOT}node_modules/.bin/deno`;
const PEER = ["run", "-A", "--unstable-net", `${ROOT}tests/_quic_peer.ts`];

/** A QUIC server of Deno's on `port`, answering as `name`. */
async function quicServer(port: number, name: string, cert: { cert: string; key: string }) {
  const child = spawn(DENO, [...PEER, "server", String(port), name, cert.cert, cert.key], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d) => out += d);
  child.stderr!.on("data", (d) => out += d);
  await waitFor(() => out.includes("listening"), 30_000, `QUIC server ${name}`);
  return child;
}

/** A QUIC client of Deno's: connects for `serverName`, says ping, resolves to the answer. */
function quicClient(port: number, serverName: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      DENO,
      [...PEER, "client", String(port), serverName, ca],
      { timeout: 30_000 },
      (error, out, err) =>
        error ? reject(new Error(`${error.message}\n${err}`)) : resolve(out.trim()),
    );
  });
}

test("QUIC by SNI: a real QUIC client reaches the server its server name names, handshake and stream through l4p", async () => {
  const tls = makeTlsFixtures(["alpha.example", "beta.example"]);
  const [alphaPort, betaPort, port] = [await freePort(), await freePort(), await freePort()];
  const servers: ChildProcess[] = [];
  const dir = mkdtempSync(`${tmpdir()}/l4p-quic-`);
  writeFileSync(
    `${dir}/l4p.yaml`,
    `entryPoints:
  quic: { address: "127.0.0.1:${port}/udp" }
udp:
  routers:
    alpha: { rule: "HostSNI(\`alpha.example\`)", service: alpha }
    beta: { rule: "HostSNI(\`beta.example\`) && ALPN(\`l4p-test\`)", service: beta }
  services:
    alpha: { loadBalancer: { servers: [{ address: "127.0.0.1:${alphaPort}" }] } }
    beta: { loadBalancer: { servers: [{ address: "127.0.0.1:${betaPort}" }] } }
`,
  );
  const l4p = runL4p(["run", "-c", `${dir}/l4p.yaml`]);
  try {
    servers.push(await quicServer(alphaPort, "alpha", tls.server("alpha.example")));
    servers.push(await quicServer(betaPort, "beta", tls.server("beta.example")));
    await l4p.waitForLine(/listening entryPoint=quic/, 30_000);
    assert.equal(await quicClient(port, "alpha.example", tls.ca), "alpha:ping");
    assert.equal(await quicClient(port, "beta.example", tls.ca), "beta:ping");
    assert.equal(await quicClient(port, "alpha.example", tls.ca), "alpha:ping");
  } finally {
    for (const s of servers) s.kill("SIGKILL");
    l4p.kill("SIGKILL");
    await l4p.exited;
    rmSync(dir, { recursive: true, force: true });
    rmSync(tls.dir, { recursive: true, force: true });
  }
});

/**
 * A client Initial packet of `version` carrying `crypto` at `offset`, protected as RFC 9001 §5
 * says (the other direction of what l4p does), padded to 1200 bytes.
 */
function initialPacket(
  version: number,
  dcid: Uint8Array,
  offset: number,
  crypto: Uint8Array,
  pn: number,
): Uint8Array {
  const keys = clientInitialKeys(dcid, version);
  const varint2 = (n: number) => [0x40 | (n >> 8), n & 0xff];
  const frame = [0x06, ...varint2(offset), ...varint2(crypto.length), ...crypto];
  // Padded, as a client pads its Initials (to about 1200 bytes in all).
  const plain = new Uint8Array(1100);
  plain.set(frame);
  const first = 0xc0 | ((version === QUIC_V2 ? 1 : 0) << 4) | 0x01; // 2-byte packet number
  const header = new Uint8Array([
    first,
    ...[24, 16, 8, 0].map((s) => (version >>> s) & 0xff),
    dcid.length,
    ...dcid,
    0, // no source connection id
    0, // no token
    ...varint2(2 + plain.length + 16),
    pn >> 8,
    pn & 0xff,
  ]);
  const nonce = keys.iv.slice();
  nonce[10] ^= pn >> 8;
  nonce[11] ^= pn & 0xff;
  const cipher = createCipheriv("aes-128-gcm", keys.key, nonce);
  cipher.setAAD(header);
  const sealed = new Uint8Array([
    ...cipher.update(plain),
    ...cipher.final(),
    ...cipher.getAuthTag(),
  ]);
  const packet = new Uint8Array([...header, ...sealed]);
  const pnAt = header.length - 2;
  const mask = createCipheriv("aes-128-ecb", keys.hp, null).update(
    packet.subarray(pnAt + 4, pnAt + 20),
  );
  packet[0] ^= mask[0] & 0x0f;
  packet[pnAt] ^= mask[1];
  packet[pnAt + 1] ^= mask[2];
  return packet;
}

test("QUIC Initial: v1 and v2, a ClientHello over two packets in either order, and what is not QUIC", () => {
  // The handshake message of a TLS ClientHello (its record header taken off), with a long SNI.
  const name = `${"x".repeat(60)}.example`;
  const hello = buildHello(name, ["h3"]).subarray(5);
  const dcid = new Uint8Array([0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08]);
  for (const version of [QUIC_V1, QUIC_V2]) {
    const half = Math.floor(hello.length / 2);
    const one = initialPacket(version, dcid, 0, hello.subarray(0, half), 0);
    const two = initialPacket(version, dcid, half, hello.subarray(half), 1);
    for (const order of [[one, two], [two, one]]) {
      const stream = new InitialCrypto("x");
      const results = order.map((p) => {
        const opened = openInitial(p);
        assert.equal(opened.kind, "initial", JSON.stringify(opened));
        stream.add((opened as { crypto: { offset: number; data: Uint8Array }[] }).crypto);
        return stream.hello().kind;
      });
      assert.deepEqual(results, ["incomplete", "hello"]);
      assert.deepEqual(stream.hello(), { kind: "hello", info: { sni: name, alpn: ["h3"] } });
    }
    // One byte changed: the AEAD refuses it.
    const bad = one.slice();
    bad[bad.length - 1] ^= 1;
    assert.equal(openInitial(bad).kind, "error");
  }
  assert.equal(openInitial(new TextEncoder().encode("a DNS query, say")).kind, "not-initial");
  assert.equal(openInitial(new Uint8Array([0x40, 1, 2, 3, 4, 5, 6, 7])).kind, "not-initial");
});

test("QUIC by SNI: a ClientHello over two datagrams is routed whole; other datagrams go by the other rules", async () => {
  const alpha = await udpPeer((peer, data, from) => void peer.send(`alpha:${data.length}`, from));
  const rest = await udpPeer((peer, data, from) => void peer.send(`rest:${data.length}`, from));
  const port = await freePort();
  const dir = mkdtempSync(`${tmpdir()}/l4p-quic-`);
  writeFileSync(
    `${dir}/l4p.yaml`,
    `entryPoints:
  quic: { address: "127.0.0.1:${port}/udp" }
udp:
  routers:
    alpha: { rule: "HostSNI(\`alpha.example\`)", service: alpha }
    rest: { service: rest }
  services:
    alpha: { loadBalancer: { servers: [{ address: "127.0.0.1:${alpha.port}" }] } }
    rest: { loadBalancer: { servers: [{ address: "127.0.0.1:${rest.port}" }] } }
`,
  );
  const l4p = runL4p(["run", "-c", `${dir}/l4p.yaml`]);
  const clients = [await udpPeer(), await udpPeer()];
  try {
    await l4p.waitForLine(/listening entryPoint=quic/, 30_000);
    const hello = buildHello("alpha.example").subarray(5);
    const dcid = new Uint8Array(8).fill(7);
    const [quic, plain] = clients;
    const packets = [
      initialPacket(QUIC_V1, dcid, 0, hello.subarray(0, 20), 0),
      initialPacket(QUIC_V1, dcid, 20, hello.subarray(20), 1),
    ];
    for (const p of packets) await quic.send(p, port);
    // Both reach alpha once the second completes the ClientHello.
    const answers = [await quic.next(10_000), await quic.next(10_000)];
    assert.deepEqual(
      answers.map((a) => a.data.toString()),
      packets.map((p) => `alpha:${p.length}`),
    );
    await plain.send("not quic", port);
    assert.equal((await plain.next(10_000)).data.toString(), "rest:8");
  } finally {
    for (const c of clients) c.close();
    alpha.close();
    rest.close();
    l4p.kill("SIGKILL");
    await l4p.exited;
    rmSync(dir, { recursive: true, force: true });
  }
});
