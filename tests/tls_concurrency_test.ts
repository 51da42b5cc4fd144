/**
 * Several TLS clients at once, every byte checked: termination, passthrough and origination,
 * each with payloads of random sizes well over the runtime adapters' small read buffers. A
 * buffer handed to a write and reused before the runtime copied it shows up here as changed
 * bytes, and only under concurrency (one client at a time never saw it).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import type net from "node:net";
import tls from "node:tls";
import { test } from "node:test";
import { parseConfig } from "../src/config/load.ts";
import {
  deadline,
  echoServer,
  hashToEnd,
  netServer,
  pattern,
  peerOrSkip,
  readBytes,
  ROOT,
  sha256,
  startProxy,
} from "./_helpers.ts";
import { makeTlsFixtures } from "./_tls.ts";

const OPENSSL = peerOrSkip("openssl");
const PYTHON = peerOrSkip("python3");
const skip = !(OPENSSL && PYTHON) && "needs openssl and python3";

/** Clients at once, and round trips each. */
const CLIENTS = 4;
const ROUNDS = 150;

/**
 * Runs tests/_roundtrips.py (Python's ssl, a real OpenSSL client): CLIENTS threads of ROUNDS
 * verified round trips each, through `port`, TLS when `tlsTo` is given. Returns its report.
 * Asynchronous: the proxy under test runs in this process.
 */
function roundTrips(port: number, tlsTo?: { servername: string; ca: string }): Promise<string> {
  const args = [`${ROOT}tests/_roundtrips.py`, String(port), String(CLIENTS), String(ROUNDS)];
  if (tlsTo) args.push(tlsTo.servername, tlsTo.ca);
  return new Promise((resolve, reject) =>
    execFile(PYTHON as string, args, { timeout: 120_000 }, (error, out, err) => {
      if (error) reject(new Error(`${error.message}\n${out}${err}`));
      else resolve(out);
    })
  );
}

/** A TLS echo server (node:tls) with the certificate of `pair`. */
function tlsEcho(pair: { cert: string; key: string }): Promise<{ port: number; close(): void }> {
  const server = tls.createServer(
    { cert: readFileSync(pair.cert), key: readFileSync(pair.key) },
    (socket) => {
      socket.on("error", () => {});
      socket.pipe(socket);
    },
  );
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({
        port: (server.address() as net.AddressInfo).port,
        close: () => server.close(),
      }))
  );
}

test(
  "TLS under concurrency: termination, passthrough and origination return every byte unchanged",
  { skip },
  async () => {
    const fx = makeTlsFixtures(["a.example", "b.example"]);
    const plain = await echoServer();
    const secure = await tlsEcho(fx.server("b.example"));
    const cert = fx.server("a.example");
    const proxy = await startProxy(
      parseConfig(
        `entryPoints:
  websecure: { address: "127.0.0.1:0" }
  web: { address: "127.0.0.1:0" }
tcp:
  routers:
    terminate:
      entryPoints: [websecure]
      rule: "HostSNI(\`a.example\`)"
      service: plain
      tls: {}
    pass:
      entryPoints: [websecure]
      rule: "HostSNI(\`b.example\`)"
      service: secure
      tls: { passthrough: true }
    originate: { entryPoints: [web], rule: "HostSNI(\`*\`)", service: originated }
  services:
    plain: { loadBalancer: { servers: [{ address: "127.0.0.1:${plain.port}" }] } }
    secure: { loadBalancer: { servers: [{ address: "127.0.0.1:${secure.port}" }] } }
    originated:
      loadBalancer:
        servers: [{ address: "127.0.0.1:${secure.port}", tls: true }]
        serversTransport: private
  serversTransports:
    private:
      tls: { serverName: b.example, rootCAs: [l4p-test-ca.pem] }
tls:
  certificates: [{ certFile: "${cert.cert}", keyFile: "${cert.key}" }]
`,
        `${fx.dir}/l4p.yaml`,
      ).config,
    );
    try {
      const websecure = proxy.port("websecure");
      const all = CLIENTS * ROUNDS;
      for (
        const [kind, report] of [
          ["termination", () => roundTrips(websecure, { servername: "a.example", ca: fx.ca })],
          ["passthrough", () => roundTrips(websecure, { servername: "b.example", ca: fx.ca })],
          ["origination", () => roundTrips(proxy.port("web"))],
        ] as const
      ) {
        const out = await report();
        assert.match(out, new RegExp(`^round trips: ${all}, changed: 0$`, "m"), `${kind}: ${out}`);
      }
    } finally {
      proxy.close();
      await plain.close();
      secure.close();
      rmSync(fx.dir, { recursive: true, force: true });
    }
  },
);

test(
  "TLS termination: a backend's whole answer reaches the client after the backend closes",
  { skip },
  async () => {
    const fx = makeTlsFixtures(["a.example"]);
    const size = 64 * 1024 * 1024;
    const payload = pattern(size, 7);
    // Sends 64 MiB at once and closes: what l4p still holds then must go out before it closes.
    const source = await netServer((socket) => {
      socket.on("error", () => {});
      socket.end(payload);
    });
    const cert = fx.server("a.example");
    const proxy = await startProxy(
      parseConfig(
        `entryPoints:
  websecure: { address: "127.0.0.1:0" }
tcp:
  routers:
    terminate: { rule: "HostSNI(\`a.example\`)", service: source, tls: {} }
  services:
    source:
      loadBalancer:
        servers: [{ address: "127.0.0.1:${source.port}" }]
        terminationDelay: 10
tls:
  certificates: [{ certFile: "${cert.cert}", keyFile: "${cert.key}" }]
`,
        `${fx.dir}/l4p.yaml`,
      ).config,
    );
    try {
      const ca = readFileSync(fx.ca);
      for (let round = 0; round < 3; round++) {
        const s = tls.connect({
          port: proxy.port("websecure"),
          host: "127.0.0.1",
          servername: "a.example",
          ca,
        });
        const got = await deadline(hashToEnd(s as net.Socket), 60_000, "the download");
        s.destroy();
        assert.deepEqual(got, { length: size, sha256: sha256(payload) }, `round ${round}`);
      }
    } finally {
      proxy.close();
      await source.close();
      rmSync(fx.dir, { recursive: true, force: true });
    }
  },
);

test("TLS termination: connections open across reloads keep their bytes, several at once", {
  skip,
}, async () => {
  const fx = makeTlsFixtures(["a.example"]);
  const plain = await echoServer();
  const cert = fx.server("a.example");
  const config = (priority: number) =>
    parseConfig(
      `entryPoints:
  websecure: { address: "127.0.0.1:0" }
tcp:
  routers:
    terminate: { rule: "HostSNI(\`a.example\`)", service: plain, tls: {}, priority: ${priority} }
  services:
    plain: { loadBalancer: { servers: [{ address: "127.0.0.1:${plain.port}" }] } }
tls:
  certificates: [{ certFile: "${cert.cert}", keyFile: "${cert.key}" }]
`,
      `${fx.dir}/l4p.yaml`,
    ).config;
  const proxy = await startProxy(config(1));
  const ca = readFileSync(fx.ca);
  const clients: tls.TLSSocket[] = [];
  try {
    const port = proxy.port("websecure");
    for (let i = 0; i < 4; i++) {
      const s = tls.connect({ port, host: "127.0.0.1", servername: "a.example", ca });
      await new Promise<void>((resolve, reject) => {
        s.once("secureConnect", () => resolve());
        s.once("error", reject);
      });
      clients.push(s);
    }
    /** One round trip of `size` bytes on every client at once; each must come back whole. */
    const roundTrips = (size: number, seed: number) =>
      Promise.all(clients.map((s, i) => {
        const data = pattern(size, seed + i);
        const back = readBytes(s as unknown as net.Socket, size);
        s.write(data);
        return deadline(back, 20_000, "a round trip").then((b) =>
          assert.ok(Buffer.from(b).equals(Buffer.from(data)), `client ${i}, ${size} bytes`)
        );
      }));
    for (let reload = 0; reload < 5; reload++) {
      await roundTrips(3000 + reload * 7000, reload * 10);
      await proxy.server.apply(config(reload + 2));
    }
    await roundTrips(40_000, 99);
  } finally {
    for (const s of clients) s.destroy();
    proxy.close();
    await plain.close();
    rmSync(fx.dir, { recursive: true, force: true });
  }
});
