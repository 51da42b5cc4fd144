import assert from "node:assert/strict";
import { execFile, spawn, spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import type net from "node:net";
import tls from "node:tls";
import { test } from "node:test";
import { ConfigError, formatProblem, parseConfig } from "../src/config/load.ts";
import { loadRuntime } from "../src/runtime/mod.ts";
import {
  connect,
  deadline,
  docExample,
  echoServer,
  freePort,
  pattern,
  peerOrSkip,
  ROOT,
  runL4p,
  sha256,
  startProxy,
  waitFor,
} from "./_helpers.ts";
import { makeTlsFixtures } from "./_tls.ts";

const OPENSSL = peerOrSkip("openssl");
const skip = !OPENSSL && "needs openssl";
const SS = peerOrSkip("ss");

/** What `openssl s_client` sees: the certificate's subject and issuer, or the failure. */
function sClient(
  port: number,
  serverName: string,
  args: string[] = [],
  input = "ping\n",
): Promise<string> {
  return new Promise((resolve) => {
    const p = execFile(
      OPENSSL as string,
      ["s_client", "-connect", `127.0.0.1:${port}`, "-servername", serverName, ...args],
      { timeout: 10_000 },
      (_e, out, err) => resolve(`${out}\n${err}`),
    );
    p.stdin!.end(input);
  });
}

/**
 * A TLS client (node:tls) through l4p to an echo backend: sends `data`, then half-closes and
 * reads to the end (`halfClose`), or reads the whole echo and then closes.
 */
function tlsRoundTrip(
  port: number,
  serverName: string,
  ca: string,
  data: Uint8Array,
  extra: tls.ConnectionOptions = {},
  halfClose = true,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      port,
      host: "127.0.0.1",
      servername: serverName,
      ca: readFileSync(ca),
      ...extra,
    } as tls.ConnectionOptions, () => {
      s.write(data);
      if (halfClose) s.end();
    });
    const chunks: Buffer[] = [];
    let got = 0;
    s.on("data", (c: Buffer) => {
      chunks.push(c);
      got += c.length;
      if (!halfClose && got >= data.length) s.end();
    });
    s.once("end", () => resolve(Buffer.concat(chunks)));
    s.once("error", reject);
  });
}

test(
  "termination: each SNI name gets its own certificate; a wildcard and the default cover the rest",
  {
    skip,
  },
  async () => {
    const fx = makeTlsFixtures(["a.example", "b.example", "*.wild.example", "default.example"]);
    const backend = await echoServer();
    const cert = (n: string) =>
      `{ certFile: "${fx.server(n).cert}", keyFile: "${fx.server(n).key}" }`;
    const proxy = await startProxy(
      parseConfig(
        `entryPoints:
  websecure: { address: "127.0.0.1:0" }
tcp:
  routers:
    all: { rule: "HostSNI(\`*\`)", service: echo, tls: {} }
  services:
    echo: { loadBalancer: { servers: [{ address: "127.0.0.1:${backend.port}" }] } }
tls:
  certificates: [${cert("a.example")}, ${cert("b.example")}, ${cert("*.wild.example")}]
  stores:
    default: { defaultCertificate: ${cert("default.example")} }
`,
        `${fx.dir}/l4p.yaml`,
      ).config,
    );
    try {
      const port = proxy.port("websecure");
      const verify = ["-CAfile", fx.ca, "-verify_return_error"];
      for (
        const [name, subject] of [
          ["a.example", "a.example"],
          ["b.example", "b.example"],
          ["x.wild.example", "*.wild.example"],
          ["unknown.example", "default.example"],
        ]
      ) {
        const out = await sClient(port, name, name === "unknown.example" ? [] : verify);
        assert.match(
          out,
          new RegExp(`subject=CN ?= ?${subject.replace(".", "\\.").replace("*", "\\*")}\\n`),
          out,
        );
        assert.match(out, /issuer=CN ?= ?l4p-test-ca/);
      }
      // A client that says nothing and leaves at once after its handshake.
      assert.match(await sClient(port, "a.example", [], ""), /subject=CN ?= ?a\.example/);
      // Every openssl client has left (close_notify, then FIN): none of them stays open here.
      await waitFor(() => proxy.server.tracker.live.size === 0, 5000, "s_client connections gone");
      // The plain backend sees exactly the bytes sent, and half-close works through termination:
      // the client ends its writes and still gets every byte echoed back (where the runtime's
      // TLS can half-close; on Bun the echo is read before closing: docs/limits.md).
      const { tlsHalfClose } = (await loadRuntime()).capabilities;
      for (const size of [1, 100_000, 8 << 20]) {
        const data = pattern(size, 7);
        const back = await deadline(
          tlsRoundTrip(port, "a.example", fx.ca, data, {}, tlsHalfClose),
          20_000,
          `${size} bytes through termination`,
        );
        assert.equal(back.length, data.length);
        assert.equal(sha256(back), sha256(data));
      }
    } finally {
      proxy.close();
      await backend.close();
      rmSync(fx.dir, { recursive: true, force: true });
    }
  },
);

test(
  "termination: without a default certificate, an unknown name gets l4p's generated one; sniStrict an alert",
  {
    skip,
  },
  async () => {
    const fx = makeTlsFixtures(["a.example"]);
    const backend = await echoServer();
    const proxy = await startProxy(
      parseConfig(
        `entryPoints:
  websecure: { address: "127.0.0.1:0" }
tcp:
  routers:
    all: { rule: "HostSNI(\`*\`)", service: echo, tls: {} }
  services:
    echo: { loadBalancer: { servers: [{ address: "127.0.0.1:${backend.port}" }] } }
tls:
  certificates: [{ certFile: a.example.pem, keyFile: a.example.key }]
`,
        `${fx.dir}/l4p.yaml`, // relative paths are the configuration file's folder's
      ).config,
    );
    try {
      // As traefik serves its TRAEFIK DEFAULT CERT: self-signed, made once per process.
      const out = await sClient(proxy.port("websecure"), "nobody.example");
      assert.match(out, /subject=CN ?= ?L4P DEFAULT CERT/, out);
      assert.match(
        await sClient(proxy.port("websecure"), "a.example"),
        /subject=CN ?= ?a\.example/,
      );
      // With sniStrict, a name no certificate covers gets the alert, and reaches no backend: a
      // backend of its own, which the connections above (dialled after their handshakes, maybe
      // after their clients left) cannot reach.
      const strictBackend = await echoServer();
      await proxy.server.apply(
        parseConfig(
          `entryPoints:
  websecure: { address: "127.0.0.1:0" }
tcp:
  routers:
    all: { rule: "HostSNI(\`*\`)", service: echo, tls: {} }
  services:
    echo: { loadBalancer: { servers: [{ address: "127.0.0.1:${strictBackend.port}" }] } }
tls:
  certificates: [{ certFile: a.example.pem, keyFile: a.example.key }]
  options:
    default: { sniStrict: true }
`,
          `${fx.dir}/l4p.yaml`,
        ).config,
      );
      const strict = await sClient(proxy.port("websecure"), "nobody.example");
      assert.match(strict, /alert unrecognized name|unrecognized_name|alert number 112/i, strict);
      assert.equal(strictBackend.sockets.length, 0, "no backend was dialled");
      await strictBackend.close();
    } finally {
      proxy.close();
      await backend.close();
      rmSync(fx.dir, { recursive: true, force: true });
    }
  },
);

test(
  "mTLS: RequireAndVerifyClientCert refuses a client without a certificate, serves one signed by the CA",
  {
    skip,
  },
  async () => {
    const fx = makeTlsFixtures(["a.example"]);
    const backend = await echoServer();
    const proxy = await startProxy(
      parseConfig(
        `entryPoints:
  websecure: { address: "127.0.0.1:0" }
tcp:
  routers:
    all: { rule: "HostSNI(\`a.example\`)", service: echo, tls: { options: mtls } }
  services:
    echo: { loadBalancer: { servers: [{ address: "127.0.0.1:${backend.port}" }] } }
tls:
  certificates: [{ certFile: a.example.pem, keyFile: a.example.key }]
  options:
    mtls:
      clientAuth: { caFiles: [l4p-test-ca.pem], clientAuthType: RequireAndVerifyClientCert }
`,
        `${fx.dir}/l4p.yaml`,
      ).config,
    );
    try {
      const port = proxy.port("websecure");
      // TLS 1.3 tells a client its certificate was wanted only after its handshake: it is refused
      // either way, and gets nothing.
      const refused = await deadline(
        tlsRoundTrip(port, "a.example", fx.ca, new TextEncoder().encode("x"), {}, false).then(
          (b) => b.length,
          () => 0,
        ),
        10_000,
        "refusal",
      );
      assert.equal(refused, 0);
      const ok = await deadline(
        tlsRoundTrip(port, "a.example", fx.ca, new TextEncoder().encode("with a certificate"), {
          cert: readFileSync(fx.client.cert),
          key: readFileSync(fx.client.key),
        }, false),
        10_000,
        "served",
      );
      assert.equal(ok.toString(), "with a certificate");
      assert.equal(
        backend.sockets.length,
        1,
        "only the client with a certificate reached the backend",
      );
    } finally {
      proxy.close();
      await backend.close();
      rmSync(fx.dir, { recursive: true, force: true });
    }
  },
);

/** Starts `openssl s_server` with a certificate, in -rev mode (it answers each line reversed). */
async function sServer(cert: { cert: string; key: string }) {
  const port = await freePort();
  const child = spawn(OPENSSL as string, [
    "s_server",
    "-accept",
    `127.0.0.1:${port}`,
    "-cert",
    cert.cert,
    "-key",
    cert.key,
    "-rev",
    "-naccept",
    "100",
  ], { stdio: ["pipe", "pipe", "ignore"] });
  // It serves one connection at a time, so a probe would hold it: it says when it listens.
  await deadline(
    new Promise<void>((resolve) => {
      let out = "";
      child.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        if (out.includes("ACCEPT")) resolve();
      });
    }),
    10_000,
    "openssl s_server listening",
  );
  return { port, close: () => child.kill() };
}

/** A plain client through l4p: one line out, the reversed line back (or "" when closed). */
async function plainLine(port: number, line: string): Promise<string> {
  const c: net.Socket = await connect(port);
  c.on("error", () => {});
  let got = "";
  const answer = new Promise<string>((resolve) => {
    c.on("data", (d: Buffer) => {
      got += d.toString();
      if (got.includes("\n")) resolve(got.trim());
    });
    c.once("end", () => resolve(got.trim()));
    c.once("close", () => resolve(got.trim()));
  });
  c.write(`${line}\n`);
  const out = await deadline(answer, 10_000, "an answer");
  c.destroy();
  return out;
}

test(
  "origination: a plain client reaches an openssl s_server that requires TLS, verified by a private CA",
  {
    skip,
  },
  async () => {
    const fx = makeTlsFixtures(["a.example"]);
    const good = await sServer(fx.server("a.example"));
    const stranger = await sServer(fx.stranger);
    const config = (serverName: string, port: number) =>
      parseConfig(
        `entryPoints:
  web: { address: "127.0.0.1:0" }
tcp:
  routers:
    all: { rule: "HostSNI(\`*\`)", service: secure }
  services:
    secure:
      loadBalancer:
        servers: [{ address: "127.0.0.1:${port}", tls: true }]
        serversTransport: private
  serversTransports:
    private:
      tls: { serverName: ${serverName}, rootCAs: [l4p-test-ca.pem] }
`,
        `${fx.dir}/l4p.yaml`,
      ).config;
    const proxy = await startProxy(config("a.example", good.port));
    try {
      assert.equal(await plainLine(proxy.port("web"), "hello"), "olleh");
      if (SS) {
        // TCP keep-alive (dialKeepAlive, 15 s by default) reaches the socket under the TLS one,
        // once the connection has lasted a second.
        const held = await connect(proxy.port("web"));
        held.on("error", () => {});
        try {
          const dialled = () =>
            spawnSync(SS, ["-tnoH", "state", "established", "dst", `127.0.0.1:${good.port}`], {
              encoding: "utf8",
            }).stdout;
          await waitFor(
            () => /timer:\(keepalive/.test(dialled()),
            5000,
            "keep-alive on the TLS dial",
          );
        } finally {
          held.destroy();
        }
      }
      // A name the certificate does not carry: the dial fails, is counted, and says why.
      await proxy.server.apply(config("b.example", good.port));
      assert.equal(await plainLine(proxy.port("web"), "hello"), "");
      assert.equal(proxy.server.tracker.services.get("secure")?.dialErrors, 1);
      assert.ok(
        proxy.lines.some((l) => /dial failed .*server=127\.0\.0\.1:\d+ .*b\.example/.test(l)),
        proxy.lines.join(""),
      );
      // A certificate from a CA that is not trusted: refused too.
      await proxy.server.apply(config("a.example", stranger.port));
      assert.equal(await plainLine(proxy.port("web"), "hello"), "");
      assert.equal(proxy.server.tracker.services.get("secure")?.dialErrors, 2);
    } finally {
      proxy.close();
      good.close();
      stranger.close();
      rmSync(fx.dir, { recursive: true, force: true });
    }
  },
);

test(
  "reload: new certificate files are served after SIGHUP; a bad one is left out with its error",
  {
    skip,
  },
  async () => {
    const fx = makeTlsFixtures(["a.example"]);
    const backend = await echoServer();
    const port = await freePort();
    copyFileSync(fx.server("a.example").cert, `${fx.dir}/live.pem`);
    copyFileSync(fx.server("a.example").key, `${fx.dir}/live.key`);
    const text = (certFile: string) =>
      `entryPoints:
  websecure: { address: "127.0.0.1:${port}" }
tcp:
  routers:
    all: { rule: "HostSNI(\`*\`)", service: echo, tls: {} }
  services:
    echo: { loadBalancer: { servers: [{ address: "127.0.0.1:${backend.port}" }] } }
tls:
  certificates: [{ certFile: ${certFile}, keyFile: live.key }]
`;
    writeFileSync(`${fx.dir}/l4p.yaml`, text("live.pem"));
    const l4p = runL4p(["run", "-c", `${fx.dir}/l4p.yaml`]);
    try {
      await l4p.waitForLine(/listening entryPoint=websecure/);
      assert.match(await sClient(port, "a.example"), /issuer=CN ?= ?l4p-test-ca/);
      // The same file names, new contents (a renewal): SIGHUP reads them again.
      copyFileSync(fx.stranger.cert, `${fx.dir}/live.pem`);
      copyFileSync(fx.stranger.key, `${fx.dir}/live.key`);
      l4p.kill("SIGHUP");
      await waitFor(
        () => (l4p.stderr().match(/reloaded/g) ?? []).length >= 1,
        10_000,
        "the reload",
      );
      assert.match(await sClient(port, "a.example"), /issuer=CN ?= ?stranger-ca/);
      // A file that is not there: that certificate is left out with its error, as traefik
      // skips it; with no other certificate for the name, the generated default is served.
      writeFileSync(`${fx.dir}/l4p.yaml`, text("missing.pem"));
      await l4p.waitForLine(
        /left out of the configuration.*item=tls\.certificates\[0\] .*cannot read missing\.pem: no such file/,
      );
      assert.match(await sClient(port, "a.example"), /subject=CN ?= ?L4P DEFAULT CERT/);
      // Put right, it is served again.
      writeFileSync(`${fx.dir}/l4p.yaml`, text("live.pem"));
      await waitFor(
        () => (l4p.stderr().match(/reloaded/g) ?? []).length >= 3,
        10_000,
        "the reload",
      );
      assert.match(await sClient(port, "a.example"), /issuer=CN ?= ?stranger-ca/);
    } finally {
      l4p.kill();
      await l4p.exited;
      await backend.close();
      rmSync(fx.dir, { recursive: true, force: true });
    }
  },
);

/** The problems (and notes) `parseConfig` finds in `yaml`, as `l4p check` prints them. */
function check(yaml: string, dir: string, tlsAlpnChallenge = true): string[] {
  try {
    const { notes } = parseConfig(yaml, `${dir}/l4p.yaml`, { tlsAlpnChallenge });
    return notes.map((n) => `note: ${formatProblem(n)}`);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems.map(formatProblem);
    throw error;
  }
}

test("TLS configuration errors are located: files, keys, names, passthrough with a resolver", {
  skip,
}, () => {
  const fx = makeTlsFixtures(["a.example", "b.example"]);
  const base = (tlsRouter: string, tlsSection: string, extra = "") =>
    `entryPoints:
  websecure: { address: "127.0.0.1:8443" }
tcp:
  routers:
    r: { rule: "HostSNI(\`a.example\`)", service: s, tls: ${tlsRouter} }
  services:
    s: { loadBalancer: { servers: [{ address: "127.0.0.1:9000" }] } }
tls:
${tlsSection}
${extra}`;
  const certs = (cert: string, key: string) =>
    `  certificates: [{ certFile: ${cert}, keyFile: ${key} }]`;
  try {
    const f = `${fx.dir}/l4p.yaml`;
    assert.deepEqual(check(base("{}", certs("nope.pem", "a.example.key")), fx.dir), [
      `${f}:9:30: tls.certificates[0].certFile: cannot read nope.pem: no such file`,
    ]);
    assert.deepEqual(check(base("{}", certs("a.example.pem", "b.example.key")), fx.dir), [
      `${f}:9:54: tls.certificates[0].keyFile: the key in b.example.key does not match the certificate in a.example.pem`,
    ]);
    assert.deepEqual(check(base("{}", certs("a.example.key", "a.example.key")), fx.dir), [
      `${f}:9:30: tls.certificates[0].certFile: a.example.key is not a PEM certificate`,
    ]);
    assert.deepEqual(check(base("{}", certs("expired.pem", "expired.key")), fx.dir), [
      `note: ${f}:9:30: tls.certificates[0].certFile: expired on 2020-01-02T00:00:00.000Z; served anyway`,
    ]);
    assert.deepEqual(
      check(
        base("{ options: strct }", "  options:\n    strict: { minVersion: VersionTLS13 }"),
        fx.dir,
      ),
      [
        `${f}:5:68: tcp.routers.r.tls.options: tls options "strct" are not defined; did you mean "strict"?`,
      ],
    );
    assert.deepEqual(
      check(
        base(
          "{ passthrough: true, certResolver: le }",
          "  options: {}",
          `certificatesResolvers:
  le: { acme: { storage: acme.json, httpChallenge: { entryPoint: websecure } } }`,
        ),
        fx.dir,
      ),
      [
        // traefik ignores them under passthrough, and so does l4p, saying so.
        `note: ${f}:5:57: tcp.routers.r.tls: certResolver: ignored under passthrough, as traefik ignores them`,
      ],
    );
    assert.deepEqual(
      check(
        base(
          "{ certResolver: le }",
          "  options: {}",
          `certificatesResolvers:
  le: { acme: { storage: acme.json, tlsChallenge: {} } }`,
        ),
        fx.dir,
        false,
      ),
      [
        `${f}:11:51: certificatesResolvers.le.acme.tlsChallenge: this runtime cannot answer TLS-ALPN-01 (Deno's TLS refuses the challenge certificate's critical acmeIdentifier extension); use httpChallenge, or run l4p on Bun`,
      ],
    );
    assert.deepEqual(
      check(
        base(
          "{}",
          "  options:\n    o: { cipherSuites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA265] }",
        ),
        fx.dir,
      ),
      [
        `${f}:10:25: tls.options.o.cipherSuites[0]: unknown cipher suite "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA265"; did you mean "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"?`,
      ],
    );
  } finally {
    rmSync(fx.dir, { recursive: true, force: true });
  }
});

test("termination: garbage instead of a ClientHello, or a stalled handshake, is closed in time", {
  skip,
}, async () => {
  const fx = makeTlsFixtures(["a.example"]);
  const backend = await echoServer();
  const proxy = await startProxy(
    parseConfig(
      `entryPoints:
  websecure: { address: "127.0.0.1:0", helloTimeout: 300ms }
tcp:
  routers:
    all: { rule: "HostSNI(\`*\`)", service: echo, tls: {} }
  services:
    echo: { loadBalancer: { servers: [{ address: "127.0.0.1:${backend.port}" }] } }
tls:
  certificates: [{ certFile: a.example.pem, keyFile: a.example.key }]
`,
      `${fx.dir}/l4p.yaml`,
    ).config,
  );
  const clients: net.Socket[] = [];
  try {
    const port = proxy.port("websecure");
    // Garbage: not TLS, so no terminating router takes it.
    const garbage = await connect(port);
    clients.push(garbage);
    garbage.write("GET / HTTP/1.1\r\n\r\n");
    // A real ClientHello (from openssl), then silence: the handshake never completes.
    const hello = await new Promise<Buffer>((resolve) => {
      const p = spawn(OPENSSL as string, [
        "s_client",
        "-connect",
        `127.0.0.1:${backend.port}`,
        "-servername",
        "a.example",
      ], {
        stdio: ["pipe", "ignore", "ignore"],
      });
      // The echo backend sends the ClientHello straight back: that is the bytes we want.
      backend.server.once("connection", (s: net.Socket) =>
        s.once("data", (d: Buffer) => {
          resolve(d);
          setTimeout(() => p.kill(), 50);
        }));
    });
    for (let i = 0; i < 20; i++) {
      const c = await connect(port);
      c.on("error", () => {});
      c.write(hello); // and nothing more
      clients.push(c);
    }
    await waitFor(() => proxy.server.tracker.live.size === 0, 5000, "every such client closed");
    assert.equal(backend.sockets.length, 1, "only openssl's own connection reached the backend");
    assert.ok(
      proxy.lines.some((l) =>
        /TLS handshake failed .*client=127\.0\.0\.1:[1-9]\d* .*timed out/.test(l)
      ),
      proxy.lines.join(""),
    );
  } finally {
    for (const c of clients) c.destroy();
    proxy.close();
    await backend.close();
    rmSync(fx.dir, { recursive: true, force: true });
  }
});

test("the TLS example of docs/tls.md passes l4p check with its certificate files in place", {
  skip,
}, async () => {
  const dir = mkdtempSync(`${tmpdir()}/l4p-readme-tls-`);
  const fx = { dir };
  try {
    // The page's own openssl lines make the files, as a reader would.
    const page = readFileSync(`${ROOT}docs/tls.md`, "utf8");
    const lines = page.match(/<!-- example-tls-certs -->\s*```sh\n([\s\S]*?)```/)![1];
    const made = spawnSync("sh", ["-c", lines], { cwd: dir, encoding: "utf8" });
    assert.equal(made.status, 0, made.stderr);
    writeFileSync(`${fx.dir}/l4p.yaml`, docExample("tls"));
    const l4p = runL4p(["check", `${fx.dir}/l4p.yaml`]);
    assert.equal(await deadline(l4p.exited, 30_000, "l4p check"), 0, l4p.stderr());
    assert.match(l4p.stdout(), /l4p\.yaml: ok/);
  } finally {
    rmSync(fx.dir, { recursive: true, force: true });
  }
});

test("TLS defaults: TLS 1.2 offers ECDHE with AEAD only, TLS 1.3 its suites, on both runtimes", {
  skip,
}, async () => {
  const fx = makeTlsFixtures(["a.example"]);
  const backend = await echoServer();
  const proxy = await startProxy(
    parseConfig(
      `entryPoints:
  websecure: { address: "127.0.0.1:0" }
tcp:
  routers:
    all: { rule: "HostSNI(\`*\`)", service: echo, tls: {} }
  services:
    echo: { loadBalancer: { servers: [{ address: "127.0.0.1:${backend.port}" }] } }
tls:
  certificates: [{ certFile: a.example.pem, keyFile: a.example.key }]
`,
      `${fx.dir}/l4p.yaml`,
    ).config,
  );
  try {
    const port = proxy.port("websecure");
    const cipherOf = (out: string) => out.match(/Cipher is (\S+)/)?.[1] ?? "(NONE)";
    for (const cbc of ["ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA"]) {
      const out = await sClient(port, "a.example", ["-tls1_2", "-cipher", cbc]);
      assert.equal(cipherOf(out), "(NONE)", `${cbc} was accepted:\n${out}`);
    }
    const gcm = await sClient(port, "a.example", [
      "-tls1_2",
      "-cipher",
      "ECDHE-ECDSA-AES128-GCM-SHA256",
    ]);
    assert.equal(cipherOf(gcm), "ECDHE-ECDSA-AES128-GCM-SHA256", gcm);
    const v13 = await sClient(port, "a.example", ["-tls1_3"]);
    assert.match(cipherOf(v13), /^TLS_(AES|CHACHA20)/, v13);
  } finally {
    proxy.close();
    await backend.close();
    rmSync(fx.dir, { recursive: true, force: true });
  }
});
