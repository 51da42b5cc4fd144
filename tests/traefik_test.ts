/**
 * traefik users' files as they write them: static sections l4p maps or sets aside, `http:` beside
 * `tcp:`, keys in any case, TOML, and what traefik accepts and ignores. The files are written for
 * these tests from traefik's documentation and the shapes of its integration fixtures.
 */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import net from "node:net";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import tls from "node:tls";
import { tmpdir } from "node:os";
import { test } from "node:test";
import process from "node:process";
import { startAdmin } from "../src/admin/admin.ts";
import { readFileParts, renderTemplates } from "../src/providers/file.ts";
import { formatProblem, parseConfig } from "../src/config/load.ts";
import { buildHello } from "./_hello.ts";
import {
  deadline,
  echoServer,
  freePort,
  netServer,
  peerOrSkip,
  runL4p,
  startProxy,
  waitFor,
} from "./_helpers.ts";
import { makeTlsFixtures } from "./_tls.ts";

/** A traefik static file holding its dynamic part too, as traefik's own fixtures do (YAML). */
const TRAEFIK_YAML = (web: number, dashboard: number, backend: number) => `
global:
  checkNewVersion: false
  sendAnonymousUsage: false
log:
  level: INFO
  noColor: true
accessLog: { bufferingSize: 100 }
api:
  insecure: true
  dashboard: true
ping: {}
entrypoints:
  web:
    address: "127.0.0.1:${web}"
    asDefault: true
    http:
      redirections:
        entryPoint: { to: websecure, scheme: https }
    transport:
      respondingTimeouts: { readTimeout: 60s }
      lifeCycle: { graceTimeOut: 10s }
  traefik:
    address: "127.0.0.1:${dashboard}"
providers:
  kubernetesCRD: { allowCrossNamespace: true }
http:
  routers:
    dashboard: { rule: "Host(\`traefik.example\`)", service: api@internal }
    app: { rule: "Host(\`app.example\`)", service: app }
  services:
    app: { loadBalancer: { servers: [{ url: "http://127.0.0.1:9000" }] } }
  middlewares:
    auth: { basicAuth: { users: ["u:p"] } }
tcp:
  routers:
    echo:
      rule: "HostSNI(\`*\`)"
      ruleSyntax: v3
      service: echo@file
  services:
    echo:
      loadBalancer:
        servers: [{ address: "127.0.0.1:${backend}" }]
tls:
  options:
    modern: { minVersion: VersionTLS13, curvePreferences: [X25519, CurveP256] }
`;

test("traefik static file: mapped, set aside with a note each, and served", async () => {
  const backend = await echoServer();
  const [web, dashboard] = [await freePort(), await freePort()];
  const { config, notes } = parseConfig(TRAEFIK_YAML(web, dashboard, backend.port), "traefik.yml");
  const said = notes.map(formatProblem).join("\n");
  for (
    const expected of [
      /traefik\.yml:2:1: global: not used/,
      /accessLog\.bufferingSize: not applied/,
      /entryPoints\.web\.http: http: HTTP only; not served/,
      /entryPoints\.web\.transport\.respondingTimeouts: respondingTimeouts: HTTP timeouts/,
      /providers\.kubernetesCRD: the kubernetesCRD provider is not supported/,
      /traefik\.yml:\d+:\d+: http: 2 routers, 1 services, 1 middlewares not served \(l4p is a layer-4 proxy\)/,
      /tls\.options\.modern\.curvePreferences: accepted/,
      new RegExp(`api: api, ping: served by l4p's admin listener on 127\\.0\\.0\\.1:${dashboard}`),
    ]
  ) assert.match(said, expected);
  // traefik's names, read as traefik reads them.
  assert.equal(config.log.level, "info");
  assert.equal(config.entryPoints.web.graceTimeOut, 10_000, "lifeCycle is served");
  assert.equal(config.entryPoints.web.requestAcceptGraceTimeout, 0);
  assert.deepEqual(
    Object.keys(config.entryPoints),
    ["web"],
    "the traefik entrypoint is the admin's",
  );
  assert.equal(config.metrics?.address.port, dashboard);
  assert.equal(config.tcp.routers.echo.service, "echo");
  assert.deepEqual(config.tcp.routers.echo.entryPoints, ["web"]);

  const proxy = await startProxy(config);
  try {
    const { connect } = await import("./_helpers.ts");
    const c = await connect(proxy.port("web"));
    const echoed = new Promise<string>((resolve) => c.once("data", (d) => resolve(String(d))));
    c.write("through traefik's file");
    assert.equal(await deadline(echoed, 5000, "echo"), "through traefik's file");
    c.destroy();
  } finally {
    proxy.close();
    await backend.close();
  }
});

test("traefik file: l4p check names what is not served and exits 0; run serves /ping on traefik's entrypoint", async () => {
  const backend = await echoServer();
  const dir = mkdtempSync(`${tmpdir()}/l4p-traefik-`);
  const [web, dashboard] = [await freePort(), await freePort()];
  writeFileSync(`${dir}/traefik.yml`, TRAEFIK_YAML(web, dashboard, backend.port));
  try {
    const check = runL4p(["check", `${dir}/traefik.yml`]);
    assert.equal(await deadline(check.exited, 30_000, "check"), 0, check.stderr());
    assert.match(check.stdout(), /note: .*http: 2 routers, 1 services, 1 middlewares not served/);
    const l4p = runL4p(["run", `--configFile=${dir}/traefik.yml`]);
    try {
      await l4p.waitForLine(/admin listening/);
      const ping = await fetch(`http://127.0.0.1:${dashboard}/ping`);
      assert.equal(await ping.text(), "OK");
      const status = await fetch(`http://127.0.0.1:${dashboard}/api/status`);
      assert.equal(status.status, 200);
      assert.ok((await status.json()).routers?.echo ?? true);
    } finally {
      l4p.kill("SIGKILL");
    }
  } finally {
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

const TRAEFIK_TOML = (web: number, backend: number) => `
[global]
  checkNewVersion = false

[log]
  level = "DEBUG"

[entryPoints]
  [entryPoints.tcp]
    address = "127.0.0.1:${web}"

[tcpServersTransport]
  dialTimeout = "3s"
  terminationDelay = "250ms"

[tcp]
  [tcp.routers]
    [tcp.routers.to-backend]
      rule = "HostSNI(\`*\`)"
      service = "backend"
      entryPoints = [ "tcp" ]

    [tcp.services.backend.loadBalancer]
      [[tcp.services.backend.loadBalancer.servers]]
        address = "127.0.0.1:${backend}"
`;

test("traefik TOML: tcpServersTransport is every TCP service's default transport", () => {
  const { config } = parseConfig(TRAEFIK_TOML(8093, 9000), "traefik.toml");
  assert.equal(config.log.level, "debug");
  assert.equal(config.tcp.defaultTransport?.dialTimeout, 3000);
  assert.equal(config.tcp.defaultTransport?.terminationDelay, 250);
  assert.equal(config.tcp.routers["to-backend"].service, "backend");
});

test("traefik keys in any case are traefik's; unknown keys stay errors with a did-you-mean", () => {
  const { config } = parseConfig(
    `EntryPoints:
  Web: { Address: "127.0.0.1:8080" }
TCP:
  Routers:
    r: { Rule: "HostSNI(\`*\`)", Service: s }
  Services:
    s: { LoadBalancer: { Servers: [{ Address: "127.0.0.1:9" }] } }
`,
    "case.yaml",
  );
  assert.equal(config.entryPoints.Web.address.port, 8080, "names keep their case");
  assert.equal(config.tcp.routers.r.service, "s");
  assert.throws(
    () =>
      parseConfig(
        `entryPoints:\n  web: { adress: "127.0.0.1:8080" }\n`,
        "typo.yaml",
      ),
    /typo\.yaml:2:10: entryPoints\.web\.adress: unknown key; did you mean "address"\?/,
  );
});

test("a dynamic router with an undefined service is left out, shown in /api/status; its entrypoint's others serve", async () => {
  const backend = await echoServer();
  const { config, leftOut } = parseConfig(
    `entryPoints:
  web: { address: "127.0.0.1:0" }
tcp:
  routers:
    good: { rule: "HostSNI(\`*\`)", service: echo }
    broken: { rule: "HostSNI(\`b.example\`)", service: nowhere }
    bad-rule: { rule: "HostSNI(\`a.example\`) &&", service: echo }
  services:
    echo: { loadBalancer: { servers: [{ address: "127.0.0.1:${backend.port}" }] } }
`,
    "dyn.yaml",
    { isolate: true },
  );
  assert.deepEqual(leftOut.map((l) => l.item).sort(), [
    "tcp.routers.bad-rule",
    "tcp.routers.broken",
  ]);
  assert.match(
    leftOut.map((l) => l.problems.map(formatProblem).join()).join("\n"),
    /dyn\.yaml:6:\d+: tcp\.routers\.broken\.service: tcp service "nowhere" is not defined/,
  );
  const proxy = await startProxy(config);
  const admin = startAdmin(
    proxy.server,
    { hostname: "127.0.0.1", port: 0, text: "127.0.0.1:0" },
    { version: "test" },
  );
  try {
    const status = await (await fetch(`http://127.0.0.1:${admin.addr.port}/api/status`)).json();
    assert.equal(status.tcp.routers.broken.status, "disabled");
    assert.match(status.tcp.routers.broken.error, /tcp service "nowhere" is not defined/);
    assert.equal(status.tcp.routers.good.status, "enabled");
    const metrics = await (await fetch(`http://127.0.0.1:${admin.addr.port}/metrics`)).text();
    assert.match(metrics, /^l4p_config_left_out_items 2$/m);
    assert.ok(
      proxy.lines.some((l) => /left out of the configuration.*item=tcp\.routers\.broken/.test(l)),
    );
    const { connect } = await import("./_helpers.ts");
    const c = await connect(proxy.port("web"));
    const echoed = new Promise<string>((resolve) => c.once("data", (d) => resolve(String(d))));
    c.write("the good router serves");
    assert.equal(await deadline(echoed, 5000, "echo"), "the good router serves");
    c.destroy();
    // check, unlike run, refuses the file, naming each cause once.
    assert.throws(() =>
      parseConfig(
        `entryPoints:\n  web: { address: "127.0.0.1:0" }\ntcp:\n  routers:\n    broken: { rule: "HostSNI(\`*\`)", service: nowhere }\n`,
        "dyn.yaml",
      ), /tcp service "nowhere" is not defined/);
  } finally {
    admin.close();
    proxy.close();
    await backend.close();
  }
});

/** A backend that says its name when a client connects. */
function named(name: string) {
  return netServer((s) => {
    s.on("error", () => {});
    s.end(name);
  });
}

/** What a new connection to `port` is told: a backend's name, or "" when l4p closes it. */
async function ask(port: number): Promise<string> {
  const { connect } = await import("./_helpers.ts");
  const c = await connect(port).catch(() => undefined);
  if (!c) return "(refused)";
  c.on("error", () => {});
  return await deadline(
    new Promise<string>((resolve) => {
      let got = "";
      c.on("data", (d: Buffer) => got += d);
      c.once("end", () => c.end());
      c.once("close", () => resolve(got));
    }),
    5000,
    "an answer",
  );
}

test("providers.file.directory: files added, changed, broken and removed are applied while connections flow", async () => {
  const [a, b] = [await named("A"), await named("B")];
  const dir = mkdtempSync(`${tmpdir()}/l4p-provider-`);
  const [web, web2] = [await freePort(), await freePort()];
  const dyn = `${dir}/dynamic`;
  mkdirSync(dyn);
  writeFileSync(
    `${dir}/traefik.yml`,
    `entryPoints:
  web: { address: "127.0.0.1:${web}" }
  web2: { address: "127.0.0.1:${web2}" }
providers:
  providersThrottleDuration: 100ms
  file: { directory: ./dynamic, watch: true }
`,
  );
  const route = (router: string, ep: string, service: string, port: number) =>
    `tcp:
  routers:
    ${router}: { entryPoints: [${ep}], rule: "HostSNI(\`*\`)", service: ${service} }
  services:
    ${service}: { loadBalancer: { servers: [{ address: "127.0.0.1:${port}" }] } }
`;
  writeFileSync(`${dyn}/one.yml`, route("r1", "web", "s1", a.port));
  const l4p = runL4p(["run", "-c", `${dir}/traefik.yml`]);
  let probing = true;
  const answers: string[] = [];
  try {
    await l4p.waitForLine(/listening entryPoint=web /);
    assert.equal(await ask(web), "A");
    const prober = (async () => {
      while (probing) answers.push(await ask(web).catch((e) => `failed: ${e}\n${l4p.stderr()}`));
    })();
    // Added, in TOML.
    writeFileSync(
      `${dyn}/two.toml`,
      `[tcp.routers.r2]\nentryPoints = ["web2"]\nrule = "HostSNI(\`*\`)"\nservice = "s2"\n` +
        `[[tcp.services.s2.loadBalancer.servers]]\naddress = "127.0.0.1:${b.port}"\n`,
    );
    await eventually(async () => await ask(web2) === "B", "the added file's router");
    // Changed.
    writeFileSync(`${dyn}/one.yml`, route("r1", "web", "s1", b.port));
    await eventually(async () => await ask(web) === "B", "the changed file's server");
    // Broken: left out, located, the rest served.
    writeFileSync(`${dyn}/three.yml`, "tcp:\n  routers: [\n");
    await l4p.waitForLine(/left out of the configuration.*three\.yml:\d+:\d+: YAML/);
    assert.equal(await ask(web), "B");
    assert.equal(await ask(web2), "B");
    // Removed.
    rmSync(`${dyn}/two.toml`);
    await eventually(async () => await ask(web2) !== "B", "the removed file's router gone");
    probing = false;
    await prober;
    assert.ok(answers.every((x) => x === "A" || x === "B"), `every probe served: ${answers}`);
  } catch (e) {
    console.error(l4p.stderr());
    throw e;
  } finally {
    probing = false;
    l4p.kill("SIGKILL");
    await a.close();
    await b.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Retries `check` until it holds (a reload follows the file within the throttle). */
async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  const end = Date.now() + 15_000;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("beside ALPN(`h2`), the catch-all HostSNI(`*`) is tried last: an h2 client goes to the ALPN router", async () => {
  const [all, h2] = [await named("ALL"), await named("H2")];
  const { config, notes } = parseConfig(
    `entryPoints:
  web: { address: "127.0.0.1:0" }
tcp:
  routers:
    all: { rule: "HostSNI(\`*\`)", service: all }
    h2: { rule: "ALPN(\`h2\`)", service: h2, tls: { passthrough: true } }
    mqtt: { rule: "ALPN(\`mqtt\`)", service: all, tls: { passthrough: true } }
  services:
    all: { loadBalancer: { servers: [{ address: "127.0.0.1:${all.port}" }] } }
    h2: { loadBalancer: { servers: [{ address: "127.0.0.1:${h2.port}" }] } }
`,
    "alpn.yaml",
  );
  assert.deepEqual(notes, [], "ALPN(`mqtt`) and HostSNI(`*`), both 12 long, do not tie");
  const proxy = await startProxy(config);
  try {
    const { connect } = await import("./_helpers.ts");
    const answer = async (hello: Uint8Array | string) => {
      const c = await connect(proxy.port("web"));
      c.on("error", () => {});
      const got = new Promise<string>((resolve) => {
        let text = "";
        c.on("data", (d: Buffer) => text += d);
        c.once("end", () => c.end());
        c.once("close", () => resolve(text));
      });
      c.write(hello);
      return await deadline(got, 5000, "an answer");
    };
    assert.equal(await answer(buildHello("x.example", ["h2", "http/1.1"])), "H2");
    assert.equal(await answer(buildHello("x.example", ["http/1.1"])), "ALL");
    assert.equal(await answer("plain bytes"), "ALL");
  } finally {
    proxy.close();
    await all.close();
    await h2.close();
  }
});

test("Go templates in dynamic files: {{ env }} is rendered; any other action leaves the file out, located", () => {
  process.env.L4P_TEST_BACKEND = "127.0.0.1:9001";
  assert.equal(
    renderTemplates('address: "{{ env "L4P_TEST_BACKEND" }}"\nport: {{env "L4P_TEST_UNSET"}}x'),
    'address: "127.0.0.1:9001"\nport: x',
  );
  const dir = mkdtempSync(`${tmpdir()}/l4p-tmpl-`);
  try {
    writeFileSync(
      `${dir}/a.yml`,
      'tcp:\n  services:\n    s: { loadBalancer: { servers: [{ address: "{{ .Whoami }}" }] } }\n',
    );
    const [part] = readFileParts({ directory: dir, watch: false }, `${dir}/static.yml`);
    assert.equal(
      formatProblem(part.unreadable!),
      `${dir}/a.yml:3:48: Go template action "{{ .Whoami }}": l4p renders {{ env "NAME" }} only in dynamic files`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("traefik TOML files (static + providers.file) serve each kind of router to real clients", {
  skip: !peerOrSkip("openssl") && "needs openssl",
}, async () => {
  const fx = makeTlsFixtures(["a.example", "b.example", "*.c.example"]);
  const tlsNamed = (pair: { cert: string; key: string }, name: string) =>
    new Promise<{ port: number; close(): void }>((resolve) => {
      const server = tls.createServer(
        { cert: readFileSync(pair.cert), key: readFileSync(pair.key) },
        (s) => {
          s.on("error", () => {});
          s.end(name);
        },
      );
      server.listen(
        0,
        "127.0.0.1",
        () =>
          resolve({
            port: (server.address() as { port: number }).port,
            close: () => server.close(),
          }),
      );
    });
  const passthrough = await tlsNamed(fx.server("b.example"), "B-TLS");
  const [term, regexp, local, w1, w2] = await Promise.all(
    ["TERM", "REGEXP", "LOCAL", "W1", "W2"].map(named),
  );
  const udpBackend = dgram.createSocket("udp4");
  udpBackend.on(
    "message",
    (m, r) => udpBackend.send(Buffer.concat([Buffer.from("U:"), m]), r.port, r.address),
  );
  await new Promise<void>((r) => udpBackend.bind(0, "127.0.0.1", () => r()));
  const [tcpPort, udpPort] = [await freePort(), await freePort()];
  mkdirSync(`${fx.dir}/dynamic`);
  writeFileSync(
    `${fx.dir}/traefik.toml`,
    `[global]
  checkNewVersion = false
[log]
  level = "INFO"
[entryPoints]
  [entryPoints.tcp]
    address = "127.0.0.1:${tcpPort}"
  [entryPoints.udp]
    address = "127.0.0.1:${udpPort}/udp"
[providers.file]
  directory = "dynamic"
`,
  );
  const server = (port: number) => `[[SERVERS]]\n        address = "127.0.0.1:${port}"`;
  writeFileSync(
    `${fx.dir}/dynamic/routes.toml`,
    `[tcp.routers.pass]
  entryPoints = ["tcp"]
  rule = "HostSNI(\`b.example\`)"
  service = "pass"
  [tcp.routers.pass.tls]
    passthrough = true
[tcp.routers.term]
  entryPoints = ["tcp"]
  rule = "HostSNI(\`a.example\`)"
  service = "term"
  [tcp.routers.term.tls]
[tcp.routers.regexp]
  entryPoints = ["tcp"]
  rule = "HostSNIRegexp(\`^.+\\\\.c\\\\.example$\`)"
  service = "regexp"
  [tcp.routers.regexp.tls]
[tcp.routers.local]
  entryPoints = ["tcp"]
  rule = "ClientIP(\`127.0.0.2/32\`)"
  service = "local"
[tcp.routers.all]
  entryPoints = ["tcp"]
  rule = "HostSNI(\`*\`)"
  service = "both"
[tcp.services]
  [tcp.services.pass.loadBalancer]
      ${server(passthrough.port).replace("SERVERS", "tcp.services.pass.loadBalancer.servers")}
  [tcp.services.term.loadBalancer]
      ${server(term.port).replace("SERVERS", "tcp.services.term.loadBalancer.servers")}
  [tcp.services.regexp.loadBalancer]
      ${server(regexp.port).replace("SERVERS", "tcp.services.regexp.loadBalancer.servers")}
  [tcp.services.local.loadBalancer]
      ${server(local.port).replace("SERVERS", "tcp.services.local.loadBalancer.servers")}
  [tcp.services.w1.loadBalancer]
      ${server(w1.port).replace("SERVERS", "tcp.services.w1.loadBalancer.servers")}
  [tcp.services.w2.loadBalancer]
      ${server(w2.port).replace("SERVERS", "tcp.services.w2.loadBalancer.servers")}
  [[tcp.services.both.weighted.services]]
    name = "w1"
    weight = 1
  [[tcp.services.both.weighted.services]]
    name = "w2"
    weight = 1
[udp.routers.dns]
  entryPoints = ["udp"]
  service = "dns"
[udp.services.dns.loadBalancer]
  [[udp.services.dns.loadBalancer.servers]]
    address = "127.0.0.1:${(udpBackend.address() as { port: number }).port}"
`,
  );
  const pair = (n: string) => fx.server(n);
  writeFileSync(
    `${fx.dir}/dynamic/tls.yml`,
    `tls:
  certificates:
    - { certFile: ${pair("a.example").cert}, keyFile: ${pair("a.example").key} }
    - { certFile: ${pair("*.c.example").cert}, keyFile: ${pair("*.c.example").key} }
`,
  );
  const check = runL4p(["check", `${fx.dir}/traefik.toml`]);
  assert.equal(await deadline(check.exited, 30_000, "check"), 0, check.stderr() + check.stdout());
  const l4p = runL4p(["run", `--configFile=${fx.dir}/traefik.toml`]);
  const client = dgram.createSocket("udp4");
  try {
    await l4p.waitForLine(/listening entryPoint=tcp /);
    await l4p.waitForLine(/listening entryPoint=udp /);
    const ca = readFileSync(fx.ca);
    const overTls = (servername: string) =>
      new Promise<string>((resolve, reject) => {
        const s = tls.connect({ port: tcpPort, host: "127.0.0.1", servername, ca });
        let got = "";
        s.on("data", (d: Buffer) => got += d);
        s.once("end", () => s.end());
        s.once("close", () => resolve(got));
        s.once("error", reject);
      });
    assert.equal(await deadline(overTls("b.example"), 10_000, "passthrough"), "B-TLS");
    assert.equal(await deadline(overTls("a.example"), 10_000, "termination"), "TERM");
    assert.equal(await deadline(overTls("x.c.example"), 10_000, "regexp"), "REGEXP");
    const plain = async (from: string) => {
      const { connect } = await import("./_helpers.ts");
      const c = await connect(tcpPort, "127.0.0.1", from);
      // Beside TLS routers the entrypoint reads the first bytes, as traefik does: not TLS.
      c.write("hello\n");
      return await deadline(
        new Promise<string>((resolve) => {
          let got = "";
          c.on("data", (d: Buffer) => got += d);
          c.once("end", () => c.end());
          c.once("close", () => resolve(got));
        }),
        5000,
        "plain",
      );
    };
    assert.equal(await plain("127.0.0.2"), "LOCAL");
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) seen.add(await plain("127.0.0.1"));
    assert.deepEqual([...seen].sort(), ["W1", "W2"], "the weighted catch-all uses both");
    const reply = new Promise<string>((resolve) =>
      client.once("message", (m) => resolve(String(m)))
    );
    client.send("q", udpPort, "127.0.0.1");
    assert.equal(await deadline(reply, 5000, "udp"), "U:q");
  } finally {
    client.close();
    l4p.kill("SIGKILL");
    passthrough.close();
    udpBackend.close();
    for (const b of [term, regexp, local, w1, w2]) await b.close();
    rmSync(fx.dir, { recursive: true, force: true });
  }
});

test("serversTransports.tls.spiffe: a clear 'not supported', at its key", () => {
  assert.throws(
    () =>
      parseConfig(
        `entryPoints:\n  e: { address: "127.0.0.1:0" }\ntcp:\n  serversTransports:\n    t: { tls: { spiffe: { ids: ["spiffe://x/y"] } } }\n`,
        "s.yaml",
      ),
    /s\.yaml:5:\d+: tcp\.serversTransports\.t\.tls\.spiffe: SPIFFE identities are not supported by l4p/,
  );
});

test("entryPoints.*.transport.lifeCycle on SIGTERM: one entrypoint accepts for requestAcceptGraceTimeout, each drains for its graceTimeOut", async () => {
  // A backend that holds every connection: only the drain ends them.
  const silent = await netServer((s) => s.on("error", () => {}));
  const [quick, late] = [await freePort(), await freePort()];
  const dir = mkdtempSync(`${tmpdir()}/l4p-lifecycle-`);
  writeFileSync(
    `${dir}/traefik.yml`,
    `
entryPoints:
  quick:
    address: "127.0.0.1:${quick}"
    transport: { lifeCycle: { graceTimeOut: 200ms } }
  late:
    address: "127.0.0.1:${late}"
    transport:
      lifeCycle: { requestAcceptGraceTimeout: 4s, graceTimeOut: 1m }
tcp:
  routers:
    all: { rule: "HostSNI(\`*\`)", service: held }
  services:
    held: { loadBalancer: { servers: [{ address: "127.0.0.1:${silent.port}" }] } }
`,
  );
  const l4p = runL4p(["run", "-c", `${dir}/traefik.yml`]);
  const open = (port: number) =>
    new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(port, "127.0.0.1", () => resolve(s));
      s.once("error", reject);
    });
  const closed = (s: net.Socket) =>
    new Promise<void>((r) => {
      s.on("error", () => {});
      s.once("close", () => r());
    });
  try {
    await l4p.waitForLine(/listening .*entryPoint=quick/);
    await l4p.waitForLine(/listening .*entryPoint=late/);
    const a = await open(quick);
    const b = await open(late);
    const [aClosed, bClosed] = [closed(a), closed(b)];
    await waitFor(() => silent.sockets.length === 2, 10_000, "both reach the backend");
    l4p.kill("SIGTERM");
    await l4p.waitForLine(/stopping: still accepting .*entryPoints=late:4000ms/);
    // quick stopped listening before that line; late still accepts and serves.
    await assert.rejects(open(quick), "quick refuses at once");
    const c = await open(late);
    const cClosed = closed(c);
    await waitFor(() => silent.sockets.length === 3, 10_000, "late serves a new one");
    // quick's connection has 200ms once quick stops: it ends while late still accepts.
    await deadline(aClosed, 10_000, "quick's connection closed at its graceTimeOut");
    assert.equal(l4p.child.exitCode, null, "still running: late's connections have a minute");
    await l4p.waitForLine(/stopping: no new connections; draining .*connections=2/);
    await assert.rejects(open(late), "late refuses after requestAcceptGraceTimeout");
    // late's connections finish on their own within graceTimeOut: l4p then exits 0.
    b.destroy();
    c.destroy();
    await Promise.all([bClosed, cClosed]);
    assert.equal(await deadline(l4p.exited, 10_000, "exit after late's connections end"), 0);
    assert.match(
      l4p.stderr(),
      /drain timeout; connections closed connections=1/,
      "quick's, forced",
    );
  } finally {
    l4p.kill("SIGKILL");
    await silent.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("traefik accessLog.filters: minDuration is applied, statusCodes and retryAttempts noted as HTTP", () => {
  const { config, notes } = parseConfig(
    `
entryPoints: { tcp: { address: "127.0.0.1:0" } }
accessLog:
  filters: { StatusCodes: ["500-599"], retryAttempts: true, minDuration: 250ms }
`,
    "traefik.yml",
  );
  assert.equal(config.accessLog?.minDuration, 250);
  assert.match(
    notes.map(formatProblem).join("\n"),
    /accessLog\.filters\.\w+: (statusCodes, retryAttempts|retryAttempts, statusCodes): HTTP only; not applied/,
  );
});

test("traefik's own fixture habits: certificate paths from the working directory, weighted.healthCheck", async () => {
  const tls = makeTlsFixtures(["app.example"]);
  const dir = mkdtempSync(`${tmpdir()}/l4p-cwd-`);
  mkdirSync(`${dir}/fixtures/certs`, { recursive: true });
  mkdirSync(`${dir}/conf`);
  writeFileSync(`${dir}/fixtures/certs/app.crt`, readFileSync(tls.server("app.example").cert));
  writeFileSync(`${dir}/fixtures/certs/app.key`, readFileSync(tls.server("app.example").key));
  writeFileSync(
    `${dir}/conf/traefik.toml`,
    `[entryPoints.tcp]
address = "127.0.0.1:0"
[tcp.routers.r]
rule = "HostSNI(\`app.example\`)"
service = "w"
[tcp.routers.r.tls]
[tcp.services.w.weighted]
services = [{ name = "s" }]
[tcp.services.w.weighted.healthCheck]
[tcp.services.s.loadBalancer]
servers = [{ address = "127.0.0.1:9" }]
[[tls.certificates]]
certFile = "fixtures/certs/app.crt"
keyFile = "fixtures/certs/app.key"
`,
  );
  try {
    // From the folder traefik would run in, the file's relative paths are found.
    const ok = runL4p(["check", "-c", "conf/traefik.toml"], undefined, dir);
    assert.equal(await deadline(ok.exited, 30_000, "check"), 0, ok.stderr() + ok.stdout());
    // From elsewhere, the same file names what it cannot read, at its key.
    const elsewhere = runL4p(["check", "-c", `${dir}/conf/traefik.toml`]);
    assert.equal(await deadline(elsewhere.exited, 30_000, "check"), 1);
    assert.match(
      elsewhere.stderr() + elsewhere.stdout(),
      /traefik\.toml:\d+:\d+: tls\.certificates\[0\]\.certFile: cannot read fixtures\/certs\/app\.crt: no such file/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(tls.dir, { recursive: true, force: true });
  }
});
