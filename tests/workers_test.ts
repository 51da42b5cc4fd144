import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { test } from "node:test";
import { loadRuntime } from "../src/runtime/mod.ts";
import {
  connect,
  deadline,
  freePort,
  netServer,
  readToEnd,
  runL4p,
  type UdpPeer,
  udpPeer,
  waitFor,
} from "./_helpers.ts";

test("--workers 2: two processes share the port (SO_REUSEPORT), both serve, both drain", async () => {
  const backend = await netServer((s) => {
    s.on("error", () => {});
    s.end("hello");
  });
  const port = await freePort();
  const l4p = runL4p([
    "tcp",
    `127.0.0.1:${port}`,
    `127.0.0.1:${backend.port}`,
    "--workers",
    "2",
    "--access-log",
  ]);
  try {
    await waitFor(
      () => (l4p.stderr().match(/listening entryPoint=tcp/g) ?? []).length === 2,
      15_000,
      "two listeners",
    );
    // Two listening sockets on the one port, in two processes.
    const ss = spawnSync("ss", ["-ltnpH", `sport = :${port}`], { encoding: "utf8" }).stdout;
    const pids = new Set([...ss.matchAll(/pid=(\d+)/g)].map((m) => m[1]));
    assert.equal(pids.size, 2, ss);
    for (let i = 0; i < 40; i++) {
      const c = await connect(port);
      assert.equal((await deadline(readToEnd(c), 5000, "answer")).toString(), "hello");
      c.destroy();
    }
    await waitFor(
      () => (l4p.stderr().match(/"protocol":"tcp"/g) ?? []).length === 40,
      5000,
      "40 access lines",
    );
    // No file to reload: SIGHUP is said and changes nothing (its default would end l4p).
    l4p.kill("SIGHUP");
    await l4p.waitForLine(/SIGHUP: no configuration file to reload/);
    const after = await connect(port);
    assert.equal((await deadline(readToEnd(after), 5000, "answer")).toString(), "hello");
    after.destroy();
    l4p.kill("SIGTERM");
    assert.equal(await deadline(l4p.exited, 15_000, "both exit"), 0);
    assert.match(l4p.stderr(), /worker exited worker=1 code=0/);
  } finally {
    l4p.kill("SIGKILL");
    await backend.close();
  }
});

test("--workers: a worker whose first process is killed outright stops too, freeing the port", async () => {
  const port = await freePort();
  const l4p = runL4p(["tcp", `127.0.0.1:${port}`, "127.0.0.1:9", "--workers", "2"]);
  try {
    await waitFor(
      () => (l4p.stderr().match(/listening entryPoint=tcp/g) ?? []).length === 2,
      15_000,
      "two listeners",
    );
    l4p.kill("SIGKILL");
    await deadline(l4p.exited, 5000, "first process gone");
    const listening = () =>
      spawnSync("ss", ["-ltnH", `sport = :${port}`], { encoding: "utf8" }).stdout.trim();
    await waitFor(() => listening() === "", 10_000, "the orphaned worker to stop");
  } finally {
    l4p.kill("SIGKILL");
  }
});

test("--workers 2 with UDP: every process serves the port where the runtime can share it", async () => {
  const backend = await udpPeer((peer, data, from) => void peer.send(data, from));
  const port = await freePort();
  const l4p = runL4p(["udp", `127.0.0.1:${port}`, `127.0.0.1:${backend.port}`, "--workers", "2"]);
  const clients: UdpPeer[] = [];
  try {
    const { udpReusePort } = (await loadRuntime()).capabilities;
    const expected = udpReusePort ? 2 : 1;
    await waitFor(
      () => (l4p.stderr().match(/listening entryPoint=udp/g) ?? []).length === expected,
      15_000,
      "the UDP listeners",
    );
    const ss = spawnSync("ss", ["-ulnpH", `sport = :${port}`], { encoding: "utf8" }).stdout;
    const pids = new Set([...ss.matchAll(/pid=(\d+)/g)].map((m) => m[1]));
    assert.equal(pids.size, expected, ss);
    // 30 clients (30 source ports), each answered, whichever process the kernel gave it to.
    for (let i = 0; i < 30; i++) {
      const c = await udpPeer();
      clients.push(c);
      let answer: Buffer | undefined;
      for (let attempt = 0; attempt < 3 && !answer; attempt++) {
        await c.send(`q${i}`, port);
        answer = await c.next(1000).then((d) => d.data, () => undefined);
      }
      assert.equal(answer?.toString(), `q${i}`);
    }
  } finally {
    for (const c of clients) c.close();
    l4p.kill("SIGKILL");
    backend.close();
  }
});

/** Connects and waits for the backend's greeting: the socket if it came, null if l4p closed. */
async function greeted(port: number): Promise<Socket | null> {
  const c = await connect(port);
  c.on("error", () => {});
  return await deadline(
    new Promise<Socket | null>((resolve) => {
      c.once("data", () => resolve(c));
      c.once("end", () => resolve(null));
      c.once("close", () => resolve(null));
    }),
    15_000,
    "a greeting or a close",
  );
}

/** A backend that greets each connection and keeps it open. */
function greeter() {
  return netServer((s) => {
    s.on("error", () => {});
    s.write("hi");
  });
}

/** Starts `l4p run` on `yaml` with `--workers 2` and waits until both processes serve. */
async function group(yaml: string, ...args: string[]) {
  const dir = mkdtempSync(`${tmpdir()}/l4p-workers-`);
  writeFileSync(`${dir}/l4p.yaml`, yaml);
  const l4p = runL4p(["run", "-c", `${dir}/l4p.yaml`, "--workers", "2", ...args]);
  await waitFor(() => /worker joined worker=1/.test(l4p.stderr()), 20_000, "worker 1 joined");
  return {
    l4p,
    file: `${dir}/l4p.yaml`,
    async stop() {
      l4p.kill("SIGKILL");
      await l4p.exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** What `n` connections to `port` were told, each read to its end: the distinct answers. */
async function answersFrom(port: number, n: number): Promise<string[]> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const c = await connect(port);
    seen.add((await deadline(readToEnd(c), 10_000, "an answer")).toString());
    c.destroy();
  }
  return [...seen];
}

async function getJson(admin: number, path: string) {
  const r = await fetch(`http://127.0.0.1:${admin}${path}`);
  return await r.json();
}

test("--workers 2: /metrics, /api/connections and l4p top count every worker's connections", async () => {
  const backend = await greeter();
  const [port, admin] = [await freePort(), await freePort()];
  const g = await group(`entryPoints:
  web: { address: "127.0.0.1:${port}" }
metrics: { address: "127.0.0.1:${admin}" }
tcp:
  routers:
    all: { entryPoints: [web], rule: "HostSNI(\`*\`)", service: app }
  services:
    app: { loadBalancer: { servers: [{ address: "127.0.0.1:${backend.port}" }] } }
`);
  const held: Socket[] = [];
  try {
    // 20 connections held open: the kernel hands them to both processes (by their ports' hash).
    for (let i = 0; i < 20; i++) held.push((await greeted(port))!);
    const live = await getJson(admin, "/api/connections");
    assert.equal(live.tcp.length, 20);
    const byWorker = new Set(live.tcp.map((c: { worker?: number }) => c.worker ?? 0));
    assert.deepEqual([...byWorker].sort(), [0, 1], "connections of both processes are listed");
    const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
    assert.match(metrics, /^l4p_tcp_entrypoint_connections_opened_total\{entrypoint="web"\} 20$/m);
    assert.match(metrics, /^l4p_tcp_entrypoint_connections_open\{entrypoint="web"\} 20$/m);
    assert.match(metrics, /^l4p_worker_up\{worker="1"\} 1$/m);
    const status = await getJson(admin, "/api/status");
    assert.equal(status.entryPoints.web.connectionsOpen, 20);
    assert.equal(status.workers.length, 1);
    const top = runL4p(["top", "--admin", `127.0.0.1:${admin}`]);
    assert.equal(await deadline(top.exited, 30_000, "l4p top"), 0, top.stderr());
    assert.match(top.stdout(), /, 2 processes,/);
    assert.match(top.stdout(), /^127\.0\.0\.1\s+20\s+\S+\s+0,1$/m, top.stdout());
  } finally {
    for (const c of held) c.destroy();
    await g.stop();
    await backend.close();
  }
});

test("--workers 2: inFlightConn, maxConnections and connRateLimit hold for the group, not per process", async () => {
  const backend = await greeter();
  const [web, capped, rated, admin] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const g = await group(`entryPoints:
  web: { address: "127.0.0.1:${web}" }
  capped: { address: "127.0.0.1:${capped}", maxConnections: 3 }
  rated: { address: "127.0.0.1:${rated}" }
metrics: { address: "127.0.0.1:${admin}" }
tcp:
  routers:
    web: { entryPoints: [web], rule: "HostSNI(\`*\`)", service: app, middlewares: [three] }
    capped: { entryPoints: [capped], rule: "HostSNI(\`*\`)", service: app }
    rated: { entryPoints: [rated], rule: "HostSNI(\`*\`)", service: app, middlewares: [slow] }
  middlewares:
    three: { inFlightConn: { amount: 3 } }
    slow: { connRateLimit: { average: 1, period: 1m, burst: 3 } }
  services:
    app: { loadBalancer: { servers: [{ address: "127.0.0.1:${backend.port}" }] } }
`);
  const held: Socket[] = [];
  const open = async (port: number) => {
    const c = await greeted(port);
    if (c) held.push(c);
    return c !== null;
  };
  // Waits until the group holds `n` connections (a close seen means its place was given back).
  const liveOn = async (n: number) => {
    let live = -1;
    for (let i = 0; i < 200 && live !== n; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 50));
      live = (await getJson(admin, "/api/connections")).tcp.length;
    }
    assert.equal(live, n, "connections held by the group");
  };
  try {
    for (const port of [web, capped]) {
      for (let i = 0; i < 3; i++) assert.ok(await open(port), `place ${i + 1} of 3`);
      // Twelve more, from as many ports: the kernel gives them to both processes; none gets in.
      for (let i = 0; i < 12; i++) assert.equal(await open(port), false, `attempt ${i + 4}`);
      // A place given back is a place for the next client, whichever process takes it.
      held.shift()!.destroy();
      await liveOn(2);
      assert.ok(await open(port), "a place given back is taken again");
      for (const c of held.splice(0)) c.destroy();
      await liveOn(0);
    }
    // connRateLimit: a burst of 3 (and at most one more token a minute) for the group.
    let accepted = 0;
    for (let i = 0; i < 12; i++) if (await open(rated)) accepted++;
    assert.ok(accepted >= 3 && accepted <= 4, `${accepted} accepted of 12`);
    const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
    assert.match(
      metrics,
      /^l4p_tcp_entrypoint_connections_refused_total\{entrypoint="capped"\} 12$/m,
    );
  } finally {
    for (const c of held) c.destroy();
    await g.stop();
    await backend.close();
  }
});

test("--workers 2: one health checker for the group; every worker follows what it finds", async () => {
  const a = await greeter();
  const b = await greeter();
  const [web, admin] = [await freePort(), await freePort()];
  const g = await group(`entryPoints:
  web: { address: "127.0.0.1:${web}" }
metrics: { address: "127.0.0.1:${admin}" }
tcp:
  routers:
    all: { entryPoints: [web], rule: "HostSNI(\`*\`)", service: app }
  services:
    app:
      loadBalancer:
        servers: [{ address: "127.0.0.1:${a.port}" }, { address: "127.0.0.1:${b.port}" }]
        healthCheck: { interval: 500ms, timeout: 2s }
`);
  try {
    // Each check is one connection to each server: the group makes one per interval, not two.
    await waitFor(() => a.sockets.length > 0, 15_000, "a first check");
    const [from, since] = [a.sockets.length, Date.now()];
    await new Promise((r) => setTimeout(r, 3000));
    const checks = a.sockets.length - from;
    const intervals = (Date.now() - since) / 500;
    // At most one check an interval (their jitter is ±10 %); two checkers would make twice that.
    assert.ok(checks <= intervals * 1.1 + 1, `${checks} checks in ${intervals} intervals`);
    // b goes away: the first process's checks put it down, and the worker hears it.
    await b.close();
    await g.l4p.waitForLine(/WARN {2}server down .*checked by the first process/, 30_000);
    const dialErrors = async () =>
      (await getJson(admin, "/api/status")).tcp.services.app.servers
        .find((s: { address: string }) => s.address.endsWith(`:${b.port}`)).dialErrors;
    const before = await dialErrors();
    const held: Socket[] = [];
    for (let i = 0; i < 20; i++) held.push((await greeted(web))!);
    assert.equal(held.filter((c) => c === null).length, 0);
    assert.equal(await dialErrors(), before, "no process dialled the server that is down");
    for (const c of held) c.destroy();
  } finally {
    await g.stop();
    await a.close();
  }
});

test("--workers 2: a reload reaches both; a worker killed outright is started again", async () => {
  const a = await netServer((s) => s.end("a"));
  const b = await netServer((s) => s.end("b"));
  const [web, admin] = [await freePort(), await freePort()];
  const yaml = (port: number) =>
    `entryPoints:
  web: { address: "127.0.0.1:${web}" }
metrics: { address: "127.0.0.1:${admin}" }
tcp:
  routers:
    all: { entryPoints: [web], rule: "HostSNI(\`*\`)", service: app }
  services:
    app: { loadBalancer: { servers: [{ address: "127.0.0.1:${port}" }] } }
`;
  const g = await group(yaml(a.port));
  const answers = (n: number) => answersFrom(web, n);
  try {
    assert.deepEqual(await answers(20), ["a"]);
    writeFileSync(g.file, yaml(b.port));
    await waitFor(
      () => (g.l4p.stderr().match(/configuration reloaded/g) ?? []).length >= 2,
      30_000,
      "both processes reloaded",
    );
    assert.deepEqual(await answers(20), ["b"], "every process serves the new configuration");
    // The worker put in force what the first process read: the same revision, not lagging.
    assert.match(g.l4p.stderr(), /configuration reloaded .*why="the first process reloaded"/);
    const { workers } = await getJson(admin, "/api/status");
    assert.equal(workers.length, 1);
    assert.equal(workers[0].configRevision, 2);
    assert.equal(workers[0].lagging, false);
    const pid = workers[0].pid;
    process.kill(pid, "SIGKILL");
    await g.l4p.waitForLine(/worker died; its connections were lost; starting it again worker=1/);
    await waitFor(
      () => (g.l4p.stderr().match(/worker joined worker=1/g) ?? []).length === 2,
      30_000,
      "worker 1 joined again",
    );
    assert.notEqual((await getJson(admin, "/api/status")).workers[0].pid, pid);
    assert.deepEqual(await answers(20), ["b"], "the port is served throughout");
    g.l4p.kill("SIGTERM");
    assert.equal(await deadline(g.l4p.exited, 30_000, "the group stops"), 0);
  } finally {
    await g.stop();
    await a.close();
    await b.close();
  }
});

test("--workers 2: a provider is read by the first process alone, and its changes reach both", async () => {
  const a = await netServer((s) => s.end("a"));
  const b = await netServer((s) => s.end("b"));
  const body = (port: number) =>
    JSON.stringify({
      tcp: {
        routers: { r: { rule: "HostSNI(`*`)", service: "app" } },
        services: { app: { loadBalancer: { servers: [{ address: `127.0.0.1:${port}` }] } } },
      },
    });
  let current = body(a.port);
  let polls = 0;
  const control = await new Promise<Server>((resolve) => {
    const s = createServer((_req, res) => {
      polls++;
      res.writeHead(200, { "content-type": "application/json" }).end(current);
    });
    s.listen(0, "127.0.0.1", () => resolve(s));
  });
  const controlPort = (control.address() as { port: number }).port;
  const [web, admin] = [await freePort(), await freePort()];
  const g = await group(`entryPoints:
  web: { address: "127.0.0.1:${web}" }
metrics: { address: "127.0.0.1:${admin}" }
providers:
  http: { endpoint: "http://127.0.0.1:${controlPort}/config", pollInterval: 250ms }
`);
  const answers = (n: number) => answersFrom(web, n);
  try {
    await waitFor(() => polls > 0, 15_000, "a first poll");
    const [from, since] = [polls, Date.now()];
    await new Promise((r) => setTimeout(r, 2500));
    const intervals = (Date.now() - since) / 250;
    // One poller for the group: two would ask twice an interval.
    assert.ok(polls - from <= intervals + 2, `${polls - from} polls in ${intervals} intervals`);
    assert.deepEqual(await answers(20), ["a"]);
    current = body(b.port);
    await waitFor(
      () => (g.l4p.stderr().match(/configuration reloaded/g) ?? []).length >= 2,
      30_000,
      "both processes reloaded",
    );
    assert.deepEqual(await answers(20), ["b"], "every process serves the change");
  } finally {
    await g.stop();
    control.close();
    await a.close();
    await b.close();
  }
});

test("--workers 2: dial failures seen by any process count towards one passive ejection", async () => {
  const live = await netServer((s) => s.end("live"));
  const dead = await freePort(); // nothing listens: every dial is refused
  const [web, admin] = [await freePort(), await freePort()];
  const g = await group(`entryPoints:
  web: { address: "127.0.0.1:${web}" }
metrics: { address: "127.0.0.1:${admin}" }
tcp:
  routers:
    all: { entryPoints: [web], rule: "HostSNI(\`*\`)", service: app }
  services:
    app:
      loadBalancer:
        servers: [{ address: "127.0.0.1:${dead}" }, { address: "127.0.0.1:${live.port}" }]
        passiveHealthCheck: { maxFailedAttempts: 4, failureWindow: 1m }
`);
  try {
    // One at a time: each process tries the dead server on about every other connection (and
    // then the live one). Counted for the group, 4 failures eject it (a dial or two more may
    // cross the news); counted per process, the first to reach 4 has let the other gather its
    // own (7 or 8 here, measured with the count taken out).
    assert.deepEqual(await answersFrom(web, 80), ["live"]);
    const status = await getJson(admin, "/api/status");
    const server = status.tcp.services.app.servers
      .find((s: { address: string }) => s.address.endsWith(`:${dead}`));
    assert.equal(server.state, "down");
    assert.ok(server.dialErrors <= 6, `${server.dialErrors} dials of the dead server in all`);
  } finally {
    await g.stop();
    await live.close();
  }
});
