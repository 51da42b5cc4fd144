/**
 * Any protocol on one port: real clients (OpenSSH, curl, psql, openssl) on one entrypoint reach
 * the backend their protocol (and, for HTTP, Host) names, with the bytes they sent intact.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import http from "node:http";
import net from "node:net";
import { test } from "node:test";
import { parseConfig } from "../src/config/load.ts";
import { httpHost, PROTOCOLS } from "../src/tcp/protocols.ts";
import { netServer, peerOrSkip, startProxy, waitFor } from "./_helpers.ts";

const enc = (s: string) => new TextEncoder().encode(s);

test("protocols: each matcher says yes, no or more from the first bytes", () => {
  const cases: [string, Uint8Array, string][] = [
    ["ssh", enc("SSH-2.0-OpenSSH_9.2\r\n"), "yes"],
    ["ssh", enc("SS"), "more"],
    ["ssh", enc("GET / HTTP/1.1\r\n"), "no"],
    ["http", enc("GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n"), "yes"],
    ["http", enc("GET /index.html HT"), "more"],
    ["http", enc("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), "yes"],
    ["http", enc("GETX / HTTP/1.1\r\n"), "no"],
    ["postgres", new Uint8Array([0, 0, 0, 8, 4, 210, 22, 47]), "yes"],
    ["postgres", new Uint8Array([0, 0, 0, 9, 0, 3, 0, 0, 117]), "yes"],
    ["postgres", new Uint8Array([0, 0, 0]), "more"],
    ["mqtt", new Uint8Array([0x10, 20, 0, 4, ...enc("MQTT"), 5]), "yes"],
    ["mqtt", new Uint8Array([0x10, 20, 0, 4, ...enc("MQ")]), "more"],
    ["redis", enc("*1\r\n$4\r\nPING\r\n"), "yes"],
    ["redis", enc("+OK\r\n"), "no"],
    ["rdp", new Uint8Array([3, 0, 0, 19, 14, 0xe0]), "yes"],
    ["socks5", new Uint8Array([5, 1, 0]), "yes"],
    ["socks5", new Uint8Array([5, 2, 0]), "more"],
    ["tls", new Uint8Array([0x16, 3, 1]), "yes"],
    ["proxy", enc("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), "yes"],
  ];
  for (const [name, bytes, want] of cases) {
    assert.equal(PROTOCOLS[name](bytes), want, `${name}: ${JSON.stringify([...bytes])}`);
  }
  assert.equal(httpHost(enc("GET / HTTP/1.1\r\nHOST: A.Example:8080\r\n\r\n")), "a.example");
  assert.equal(httpHost(enc("GET / HTTP/1.1\r\nHost: a")), "more");
});

/** A backend that keeps the first bytes it was sent, and answers with `reply`. */
async function recorder(reply = "") {
  const got: Buffer[] = [];
  const server = await netServer((s) => {
    s.on("error", () => {});
    s.once("data", (d: Buffer) => {
      got.push(d);
      if (reply) s.end(reply);
    });
  });
  return { ...server, got };
}

/** An HTTP backend that answers with its name. */
function httpNamed(name: string): Promise<{ port: number; close(): void }> {
  const server = http.createServer((_req, res) => res.end(name));
  return new Promise((resolve) =>
    server.listen(
      0,
      "127.0.0.1",
      () =>
        resolve({ port: (server.address() as net.AddressInfo).port, close: () => server.close() }),
    )
  );
}

/** Runs a client with nothing on its stdin (openssl s_client would wait for input). */
function run(file: string, args: string[]): { output: Promise<string>; kill(): void } {
  let kill = () => {};
  const output = new Promise<string>((resolve) => {
    const child = execFile(
      file,
      args,
      { timeout: 15_000 },
      (_e, out, err) => resolve(`${out}${err}`),
    );
    child.stdin?.end();
    kill = () => child.kill("SIGKILL");
  });
  return { output, kill };
}

const CURL = peerOrSkip("curl");
const SSH = peerOrSkip("ssh");
const PSQL = peerOrSkip("psql");
const OPENSSL = peerOrSkip("openssl");

test("one port: OpenSSH, curl (two hosts), psql and openssl reach four kinds of backend", {
  skip: !(CURL && SSH && PSQL && OPENSSL) && "needs curl, ssh, psql and openssl",
}, async () => {
  const ssh = await recorder("SSH-2.0-recorder\r\n");
  const pg = await recorder("N"); // "no TLS" to an SSLRequest
  const tls = await recorder();
  const [a, b] = [await httpNamed("site A"), await httpNamed("site B")];
  const server = (port: number) =>
    `{ loadBalancer: { servers: [{ address: "127.0.0.1:${port}" }] } }`;
  const proxy = await startProxy(
    parseConfig(
      `entryPoints:
  any: { address: "127.0.0.1:0" }
tcp:
  routers:
    ssh: { rule: "Protocol(\`ssh\`)", service: ssh }
    site-a: { rule: "HTTPHost(\`a.example\`)", service: a }
    site-b: { rule: "HTTPHost(\`b.example\`)", service: b }
    pg: { rule: "Protocol(\`postgres\`)", service: pg }
    secure: { rule: "HostSNI(\`secure.example\`)", service: tls, tls: { passthrough: true } }
  services:
    ssh: ${server(ssh.port)}
    a: ${server(a.port)}
    b: ${server(b.port)}
    pg: ${server(pg.port)}
    tls: ${server(tls.port)}
`,
      "any.yaml",
    ).config,
  );
  try {
    const port = String(proxy.port("any"));
    // curl, two names on one port.
    for (const [host, want] of [["a.example", "site A"], ["b.example", "site B"]]) {
      const out = await run(CURL as string, [
        "-s",
        "-H",
        `Host: ${host}`,
        `http://127.0.0.1:${port}/`,
      ])
        .output;
      assert.equal(out, want);
    }
    // OpenSSH: its banner reaches the SSH backend (the client is stopped once it has).
    const sshClient = run(SSH as string, [
      "-p",
      port,
      "-o",
      "BatchMode=yes",
      "-o",
      "StrictHostKeyChecking=no",
      "-o",
      "UserKnownHostsFile=/dev/null",
      "-o",
      "ConnectTimeout=5",
      "nobody@127.0.0.1",
      "true",
    ]);
    await waitFor(() => ssh.got.length > 0, 10_000, "the ssh banner");
    sshClient.kill();
    assert.match(String(ssh.got[0]), /^SSH-2\.0-OpenSSH/);
    // psql: its SSLRequest reaches the PostgreSQL backend.
    await run(PSQL as string, [
      `host=127.0.0.1 port=${port} user=x dbname=y connect_timeout=5 sslmode=prefer`,
      "-c",
      "select 1",
    ]);
    await waitFor(() => pg.got.length > 0, 10_000, "psql's first message");
    assert.deepEqual([...pg.got[0].subarray(0, 8)], [0, 0, 0, 8, 4, 210, 22, 47]);
    // openssl: its ClientHello for secure.example goes through untouched.
    await run(OPENSSL as string, [
      "s_client",
      "-connect",
      `127.0.0.1:${port}`,
      "-servername",
      "secure.example",
    ]);
    await waitFor(() => tls.got.length > 0, 10_000, "the ClientHello");
    assert.equal(tls.got[0][0], 0x16);
  } finally {
    proxy.close();
    for (const s of [ssh, pg, tls]) await s.close();
    a.close();
    b.close();
  }
});

test("rules: Protocol names are checked; Protocol combines with ClientIP", () => {
  assert.throws(
    () =>
      parseConfig(
        `entryPoints:\n  e: { address: "127.0.0.1:0" }\ntcp:\n  routers:\n    r: { rule: "Protocol(\`gopher\`)", service: s }\n  services:\n    s: { loadBalancer: { servers: [{ address: "127.0.0.1:9" }] } }\n`,
        "p.yaml",
      ),
    /unknown protocol "gopher" \(known: ssh, tls, http, postgres, mqtt, redis, rdp, socks5, proxy, silent\)/,
  );
  const { config } = parseConfig(
    `entryPoints:\n  e: { address: "127.0.0.1:0" }\ntcp:\n  routers:\n    r: { rule: "Protocol(\`ssh\`) && ClientIP(\`10.0.0.0/8\`)", service: s }\n  services:\n    s: { loadBalancer: { servers: [{ address: "127.0.0.1:9" }] } }\n`,
    "p.yaml",
  );
  assert.equal(config.tcp.routers.r.rule, "Protocol(`ssh`) && ClientIP(`10.0.0.0/8`)");
});

test("Protocol(`silent`): a client that says nothing reaches the server-first backend, and what it sends after reaches it too", async () => {
  // An SMTP-like server: it speaks first, then echoes what it is sent.
  const smtp = await netServer((s) => {
    s.on("error", () => {});
    s.write("220 mail.example ready\r\n");
    s.on("data", (c: Buffer) => s.write(c));
  });
  const ssh = await netServer((s) => {
    s.on("error", () => {});
    s.on("data", (c: Buffer) => s.write(`ssh backend got ${c}`));
  });
  const server = (port: number) =>
    `{ loadBalancer: { servers: [{ address: "127.0.0.1:${port}" }] } }`;
  const proxy = await startProxy(
    parseConfig(
      `entryPoints:
  any: { address: "127.0.0.1:0", silenceTimeout: 300ms }
tcp:
  routers:
    mail: { rule: "Protocol(\`silent\`)", service: mail }
    ssh: { rule: "Protocol(\`ssh\`)", service: ssh }
  services:
    mail: ${server(smtp.port)}
    ssh: ${server(ssh.port)}
`,
      "silent.yaml",
    ).config,
  );
  const talk = (first?: string) => {
    const got: Buffer[] = [];
    const s = net.connect(proxy.port("any"), "127.0.0.1");
    s.on("error", () => {});
    s.on("data", (c: Buffer) => got.push(c));
    if (first) s.write(first);
    return { s, text: () => Buffer.concat(got).toString() };
  };
  try {
    // Several at once: each silent one gets the banner, then its own words back.
    const quiet = Array.from({ length: 5 }, () => talk());
    for (const q of quiet) {
      await waitFor(() => q.text() === "220 mail.example ready\r\n", 10_000, "the banner");
    }
    quiet.forEach((q, i) => q.s.write(`EHLO client${i}\r\n`));
    for (const [i, q] of quiet.entries()) {
      const want = `220 mail.example ready\r\nEHLO client${i}\r\n`;
      await waitFor(() => q.text() === want, 10_000, "the echo after the banner");
    }
    // A client that speaks at once is not silent: it goes by its protocol.
    const speaker = talk("SSH-2.0-OpenSSH_9.6\r\n");
    await waitFor(
      () => speaker.text() === "ssh backend got SSH-2.0-OpenSSH_9.6\r\n",
      10_000,
      "the ssh backend",
    );
    for (const c of [...quiet, speaker]) c.s.destroy();
  } finally {
    proxy.close();
    await smtp.close();
    await ssh.close();
  }
});
