import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type net from "node:net";
import { tmpdir } from "node:os";
import { test } from "node:test";
import {
  connect,
  deadline,
  ended,
  freePort,
  type NetServer,
  netServer,
  promtoolCheck,
  readToEnd,
  runL4p,
  udpPeer,
  waitFor,
} from "./_helpers.ts";

/**
 * A backend that answers a new connection with its name and closes, unless the client says
 * "stream": then it sends 1 KiB every 10 ms until the client leaves.
 */
function backend(name: string): Promise<NetServer> {
  return netServer((s) => {
    s.on("error", () => {});
    let timer: ReturnType<typeof setInterval> | undefined;
    s.once("data", (c: Buffer) => {
      if (c.toString() !== "stream") return void s.end(name);
      timer = setInterval(() => s.write(new Uint8Array(1024).fill(name.charCodeAt(0))), 10);
    });
    s.on("close", () => clearInterval(timer));
  });
}

function configText(
  port: number,
  service: string,
  ports: Record<string, number>,
  extra = "",
): string {
  const services = Object.entries(ports)
    .map(([n, p]) => `    ${n}: { loadBalancer: { servers: [{ address: "127.0.0.1:${p}" }] } }`)
    .join("\n");
  return `entryPoints:
  web: { address: "127.0.0.1:${port}" }
tcp:
  routers:
    r: { rule: "HostSNI(\`*\`)", service: ${service} }
  services:
${services}
${extra}`;
}

/** Opens a connection, says `hello`, and reads the answer to the end. */
async function ask(port: number, hello = "hi"): Promise<string> {
  const c = await connect(port);
  c.write(hello);
  return (await deadline(readToEnd(c), 5000, "answer")).toString();
}

test("reload under traffic: streams go on, new connections take the new route, none refused", async () => {
  const a = await backend("A");
  const b = await backend("B");
  const dir = mkdtempSync(`${tmpdir()}/l4p-reload-`);
  const file = `${dir}/l4p.yaml`;
  const port = await freePort();
  writeFileSync(file, configText(port, "a", { a: a.port, b: b.port }));
  const l4p = runL4p(["run", "-c", file]);
  let stream: net.Socket | undefined;
  try {
    await l4p.waitForLine(/listening entryPoint=web/);
    assert.equal(await ask(port), "A");
    // A long-lived connection streaming through the old route.
    stream = await connect(port);
    let streamed = 0;
    let fromB = false;
    stream.on("data", (c: Buffer) => {
      streamed += c.length;
      if (c.includes("B".charCodeAt(0))) fromB = true;
    });
    stream.write("stream");
    await waitFor(() => streamed >= 10 * 1024, 5000, "stream flowing");

    // Connections keep being made while the file changes: every one must be served.
    let probing = true;
    const answers: string[] = [];
    const prober = (async () => {
      while (probing) answers.push(await ask(port));
    })();
    writeFileSync(file, configText(port, "b", { a: a.port, b: b.port }));
    await l4p.waitForLine(/configuration reloaded .*why="file changed"/);
    await waitFor(() => answers.at(-1) === "B", 5000, "new connections on the new route");
    const afterReload = answers.length;
    await waitFor(
      () => answers.length >= afterReload + 10,
      5000,
      "more connections after the reload",
    );
    probing = false;
    await prober; // rejects if any connection was refused or unanswered
    assert.ok(answers.every((x) => x === "A" || x === "B"), answers.join(","));

    const before = streamed;
    await waitFor(() => streamed > before + 10 * 1024, 5000, "the old stream keeps streaming");
    assert.equal(fromB, false, "the stream stayed on its backend");

    // A file read while an editor writes it may be empty: refused with located messages,
    // every listener stays and the running configuration with them.
    writeFileSync(file, "");
    await l4p.waitForLine(/configuration refused; the running one stays in force/);
    await l4p.waitForLine(new RegExp(`${file}:1:1: entryPoints: no entrypoint is defined`));
    assert.equal(await ask(port), "B");

    // A router whose service is not defined is left out, located, as traefik disables it.
    writeFileSync(file, configText(port, "nope", { a: a.port, b: b.port }));
    await l4p.waitForLine(
      new RegExp(
        `left out of the configuration; the rest is served item=tcp\\.routers\\.r error=".*${file}:\\d+:\\d+: tcp\\.routers\\.r\\.service: tcp service \\\\"nope\\\\" is not defined`,
      ),
    );

    // SIGHUP reloads too.
    writeFileSync(file, configText(port, "a", { a: a.port, b: b.port }));
    await waitFor(
      () => /configuration reloaded/.test(l4p.stderr().split("refused").at(-1)!),
      5000,
      "watch reload",
    );
    l4p.kill("SIGHUP");
    await l4p.waitForLine(/configuration reloaded .*why=SIGHUP/);
    assert.equal(await ask(port), "A");
  } finally {
    stream?.destroy();
    l4p.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    await a.close();
    await b.close();
  }
});

test("reload: entrypoints added and removed open and close their listeners", async () => {
  const a = await backend("A");
  const dir = mkdtempSync(`${tmpdir()}/l4p-reload-`);
  const file = `${dir}/l4p.yaml`;
  const [p1, p2] = [await freePort(), await freePort()];
  const two = (ports: number[]) =>
    `entryPoints:\n${ports.map((p, i) => `  ep${i}: { address: "127.0.0.1:${p}" }`).join("\n")}
tcp:
  routers:
    r: { rule: "HostSNI(\`*\`)", service: a }
  services:
    a: { loadBalancer: { servers: [{ address: "127.0.0.1:${a.port}" }] } }
`;
  writeFileSync(file, two([p1]));
  const l4p = runL4p(["run", "-c", file]);
  try {
    await l4p.waitForLine(/listening entryPoint=ep0/);
    await assert.rejects(connect(p2));
    writeFileSync(file, two([p1, p2]));
    await l4p.waitForLine(/listening entryPoint=ep1/);
    assert.equal(await ask(p2), "A");
    writeFileSync(file, two([p2]).replace("ep0", "only"));
    await waitFor(
      () => (l4p.stderr().match(/configuration reloaded/g) ?? []).length === 2,
      5000,
      "second reload",
    );
    await assert.rejects(connect(p1));
    assert.equal(await ask(p2), "A");
  } finally {
    l4p.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    await a.close();
  }
});

test("SIGTERM drains: new connections refused, an open one finishes, then exit 0", async () => {
  const echo = await netServer((s) => s.on("data", (c: Buffer) => s.write(c)));
  // A port outside the ephemeral range: a connect to a closed ephemeral port can, rarely,
  // connect the socket to itself.
  const port = await freePort();
  const l4p = runL4p([
    "tcp",
    `127.0.0.1:${port}`,
    `127.0.0.1:${echo.port}`,
    "--drain-timeout",
    "20s",
  ]);
  try {
    await l4p.waitForLine(/listening /);
    const client = await connect(Number(port));
    const got: Buffer[] = [];
    client.on("data", (c: Buffer) => got.push(c));
    client.write("before");
    await waitFor(() => Buffer.concat(got).toString() === "before", 5000, "connection established");
    l4p.kill("SIGTERM");
    await l4p.waitForLine(/stopping: no new connections; draining .*connections=1/);
    await assert.rejects(connect(Number(port)), "new connections are refused");
    // The established connection still works both ways.
    client.write(" and after");
    await waitFor(
      () => Buffer.concat(got).toString() === "before and after",
      5000,
      "echo during drain",
    );
    assert.equal(l4p.child.exitCode, null, "still draining while the connection lives");
    client.end();
    assert.equal(await deadline(l4p.exited, 10_000, "exit after the last connection"), 0);
    assert.match(l4p.stderr(), /drained/);
  } finally {
    l4p.kill("SIGKILL");
    await echo.close();
  }
});

test("drain timeout closes what is left and exits 0; a second signal exits at once", async () => {
  const silent = await netServer((s) => s.on("error", () => {}));
  for (const second of [false, true]) {
    const l4p = runL4p([
      "tcp",
      "127.0.0.1:0",
      `127.0.0.1:${silent.port}`,
      "--drain-timeout",
      second ? "1m" : "300ms",
    ]);
    try {
      const [, port] = await l4p.waitForLine(/listening .* address=127\.0\.0\.1:(\d+)/);
      const client = await connect(Number(port));
      client.on("error", () => {});
      const seen = second ? 2 : 1;
      await waitFor(() => silent.sockets.length === seen, 5000, "connection reaches the backend");
      l4p.kill("SIGTERM");
      await l4p.waitForLine(/stopping/);
      if (second) l4p.kill("SIGTERM");
      assert.equal(await deadline(l4p.exited, 10_000, "exit"), second ? 1 : 0);
      assert.match(
        l4p.stderr(),
        second
          ? /second signal; closing every connection now/
          : /drain timeout; connections closed connections=1/,
      );
      await deadline(ended(client), 5000, "client closed");
    } finally {
      l4p.kill("SIGKILL");
    }
  }
  await silent.close();
});

/** Fetches a path from the admin listener. */
async function get(
  port: number,
  path: string,
): Promise<{ status: number; text: string; type: string }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: r.status, text: await r.text(), type: r.headers.get("content-type") ?? "" };
}

/** The value of one sample in a Prometheus exposition. */
function sample(text: string, name: string, labels: string): number {
  const line = text.split("\n").find((l) =>
    l.startsWith(`${name}{${labels}} `) || (labels === "" && l.startsWith(`${name} `))
  );
  assert.ok(line, `no sample ${name}{${labels}}`);
  return Number(line.split(" ").at(-1));
}

test("metrics, status and access log match the traffic exactly", async () => {
  // Doubles what it gets; ends when the client ends.
  const echo = await netServer((s) => {
    s.on("data", (c: Buffer) => s.write(Buffer.concat([c, c])));
    s.on("end", () => s.end());
  });
  const udpEcho = await udpPeer((peer, data, port) => peer.send(data, port));
  const dir = mkdtempSync(`${tmpdir()}/l4p-metrics-`);
  const file = `${dir}/l4p.yaml`;
  const [port, udpPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  writeFileSync(
    file,
    `entryPoints:
  web: { address: "127.0.0.1:${port}" }
  dns: { address: "127.0.0.1:${udpPort}/udp" }
tcp:
  routers:
    r: { rule: "HostSNI(\`*\`)", service: echo }
  services:
    echo: { loadBalancer: { servers: [{ address: "127.0.0.1:${echo.port}" }] } }
udp:
  routers:
    u: { entryPoints: [dns], service: uecho }
  services:
    uecho: { loadBalancer: { servers: [{ address: "127.0.0.1:${udpEcho.port}" }] } }
metrics:
  address: "127.0.0.1:${adminPort}"
accessLog: {}
`,
  );
  const l4p = runL4p(["run", "-c", file]);
  let open: net.Socket | undefined;
  const client = await udpPeer();
  try {
    await l4p.waitForLine(/admin listening/);
    for (let i = 0; i < 5; i++) {
      const c = await connect(port);
      c.end("12345");
      assert.equal((await deadline(readToEnd(c), 5000, "answer")).toString(), "1234512345");
    }
    open = await connect(port); // one more, left open, with 3 bytes each way in flight
    const echoed = new Promise<void>((r) => open!.once("data", () => r()));
    open.write("abc");
    await deadline(echoed, 5000, "live connection echo");
    for (let i = 0; i < 4; i++) {
      await client.send("dgram", udpPort);
      assert.equal((await client.next()).data.toString(), "dgram");
    }
    await waitFor(
      () => (l4p.stderr().match(/"protocol":"tcp"/g) ?? []).length === 5,
      5000,
      "5 access lines",
    ).catch((e) => {
      throw new Error(`${e.message}\n${l4p.stderr()}`);
    });

    const metrics = await get(adminPort, "/metrics");
    assert.equal(metrics.status, 200);
    assert.match(metrics.type, /^text\/plain; version=0\.0\.4/);
    const m = metrics.text;
    assert.equal(sample(m, "l4p_tcp_entrypoint_connections_opened_total", 'entrypoint="web"'), 6);
    assert.equal(sample(m, "l4p_tcp_entrypoint_connections_closed_total", 'entrypoint="web"'), 5);
    assert.equal(sample(m, "l4p_tcp_entrypoint_connections_open", 'entrypoint="web"'), 1);
    assert.equal(
      sample(m, "l4p_tcp_entrypoint_received_bytes_total", 'entrypoint="web"'),
      5 * 5 + 3,
    );
    assert.equal(sample(m, "l4p_tcp_entrypoint_sent_bytes_total", 'entrypoint="web"'), 5 * 10 + 6);
    assert.equal(sample(m, "l4p_tcp_router_connections_opened_total", 'router="r"'), 6);
    assert.equal(
      sample(
        m,
        "l4p_tcp_server_connections_opened_total",
        `service="echo",server="127.0.0.1:${echo.port}"`,
      ),
      6,
    );
    assert.equal(sample(m, "l4p_tcp_service_dial_errors_total", 'service="echo"'), 0);
    assert.equal(sample(m, "l4p_tcp_connection_duration_seconds_count", 'entrypoint="web"'), 5);
    assert.equal(sample(m, "l4p_udp_entrypoint_sessions_created_total", 'entrypoint="dns"'), 1);
    assert.equal(sample(m, "l4p_udp_entrypoint_sessions_active", 'entrypoint="dns"'), 1);
    assert.equal(sample(m, "l4p_udp_entrypoint_received_datagrams_total", 'entrypoint="dns"'), 4);
    assert.equal(sample(m, "l4p_udp_entrypoint_sent_bytes_total", 'entrypoint="dns"'), 20);
    assert.equal(sample(m, "l4p_config_reloads_total", 'result="success"'), 0);
    assert.ok(
      !/client|127\.0\.0\.1:\d+"\}.*\n/.test(
        m.split("\n").filter((l) => l.includes("entrypoint=")).join("\n"),
      ),
    );

    const promtool = await promtoolCheck(m);
    if (promtool) assert.equal(promtool.code, 0, `promtool check metrics:\n${promtool.out}`);

    const status = JSON.parse((await get(adminPort, "/api/status")).text);
    assert.equal(status.entryPoints.web.connectionsOpen, 1);
    assert.equal(status.entryPoints.web.listening, `127.0.0.1:${port}`);
    assert.deepEqual(status.entryPoints.web.routers, ["r"]);
    assert.equal(status.tcp.routers.r.connectionsTotal, 6);
    assert.equal(status.tcp.services.echo.servers[0].connectionsTotal, 6);
    assert.equal(status.tcp.services.echo.servers[0].bytesIn, 28);
    assert.equal(status.udp.services.uecho.sessionsActive, 1);
    assert.equal(status.udp.services.uecho.datagramsIn, 4);

    const conns = JSON.parse((await get(adminPort, "/api/connections")).text);
    assert.equal(conns.tcp.length, 1);
    assert.deepEqual(
      {
        client: conns.tcp[0].client,
        router: conns.tcp[0].router,
        bytesIn: conns.tcp[0].bytesIn,
        bytesOut: conns.tcp[0].bytesOut,
      },
      { client: `127.0.0.1:${open.localPort}`, router: "r", bytesIn: 3, bytesOut: 6 },
    );
    assert.equal(conns.udp.length, 1);
    assert.equal(conns.udp[0].client, `127.0.0.1:${client.port}`);
    assert.equal(conns.udp[0].datagramsOut, 4);
    assert.equal((await get(adminPort, "/healthz")).text, "ok\n");
    assert.equal((await get(adminPort, "/nope")).status, 404);

    const access = l4p.stderr().split("\n").filter((l) => l.startsWith("{")).map((l) =>
      JSON.parse(l)
    );
    assert.equal(access.length, 5);
    for (const a of access) {
      assert.equal(a.protocol, "tcp");
      assert.equal(a.entryPoint, "web");
      assert.equal(a.router, "r");
      assert.equal(a.service, "echo");
      assert.equal(a.server, `127.0.0.1:${echo.port}`);
      assert.equal(a.bytesIn, 5);
      assert.equal(a.bytesOut, 10);
      assert.match(a.client, /^127\.0\.0\.1:\d+$/);
      assert.equal(typeof a.durationMs, "number");
      assert.ok(a.reason);
    }
  } finally {
    open?.destroy();
    client.close();
    l4p.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    await echo.close();
    udpEcho.close();
  }
});

test("a SIGHUP as soon as l4p listens is a reload, never the end of the process", async () => {
  const dir = mkdtempSync(`${tmpdir()}/l4p-hup-`);
  const [web, admin] = [await freePort(), await freePort()];
  writeFileSync(
    `${dir}/l4p.yaml`,
    `entryPoints:\n  web: { address: "127.0.0.1:${web}" }\n` +
      `metrics: { address: "127.0.0.1:${admin}" }\n` +
      `tcp:\n  routers:\n    r: { rule: "HostSNI(\`*\`)", service: s }\n` +
      `  services:\n    s: { loadBalancer: { servers: [{ address: "127.0.0.1:1" }] } }\n`,
  );
  const l4p = runL4p(["run", "-c", `${dir}/l4p.yaml`]);
  try {
    // The admin listener opens after the entrypoints: the signal comes while l4p is still
    // starting (as systemd's reload may, right after the start).
    await l4p.waitForLine(/listening entryPoint=web/, 30_000);
    l4p.kill("SIGHUP");
    await l4p.waitForLine(/configuration reloaded .*why=SIGHUP/, 30_000);
    assert.equal(l4p.child.exitCode, null, "still running");
    l4p.kill("SIGTERM");
    assert.equal(await deadline(l4p.exited, 15_000, "l4p stops"), 0);
  } finally {
    l4p.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});
