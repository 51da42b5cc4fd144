import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import net from "node:net";
import { test } from "node:test";
import { redisArgs } from "../scripts/peer_args.ts";
import { startAdmin } from "../src/admin/admin.ts";
import { parseConfig } from "../src/config/load.ts";
import { renderMetrics } from "../src/metrics/prometheus.ts";
import type { ServerState } from "../src/health/server_state.ts";
import {
  blackhole,
  connect,
  deadline,
  digA,
  freePort,
  type NetServer,
  netServer,
  peerOrSkip,
  promtoolCheck,
  runL4p,
  startDnsmasq,
  startProxy,
  type TestProxy,
  waitFor,
} from "./_helpers.ts";

const REDIS = peerOrSkip("redis-server");
const DNSMASQ = peerOrSkip("dnsmasq");
const DIG = peerOrSkip("dig");

/**
 * A backend that says its name as soon as a client connects, then echoes; it closes when the
 * client does. `server.close()` on it stops accepting but leaves its connections alone.
 */
function named(name: string): Promise<NetServer> {
  return netServer((s) => {
    s.on("error", () => {});
    s.write(name);
    s.on("data", (c) => s.write(c));
    s.on("end", () => s.end());
  });
}

/** Connects (from `from`, if given) and resolves to the backend's name; `keep` keeps it open. */
async function ask(port: number, from?: string, keep?: net.Socket[]): Promise<string> {
  const c = await connect(port, "127.0.0.1", from);
  c.on("error", () => {});
  const name = await deadline(
    new Promise<string>((resolve) => {
      c.once("data", (d: Buffer) => resolve(d.toString()));
      c.once("close", () => resolve("(closed)"));
    }),
    5000,
    "a backend's name",
  );
  if (keep) keep.push(c);
  else c.destroy();
  return name;
}

/** One TCP service `s` over `servers` (YAML flow items), with `lb` added to its loadBalancer. */
function service(servers: string[], lb = "", extra = "") {
  return parseConfig(
    `entryPoints:
  web: { address: "127.0.0.1:0" }
tcp:
  routers:
    r: { rule: "HostSNI(\`*\`)", service: s }
  services:
    s:
      loadBalancer:
        servers: [${servers.map((a) => `{ address: "${a}" }`).join(", ")}]
${lb.split("\n").filter(Boolean).map((l) => `        ${l}`).join("\n")}
${extra}`,
    "test.yaml",
  ).config;
}

const stateOf = (proxy: TestProxy, port: number): ServerState =>
  proxy.server.servers.find((s) => s.address.port === port)!;

/** Resolves once the proxy's server on `port` is up (or down, `up` false). */
const becomes = (proxy: TestProxy, port: number, up: boolean, ms = 10_000) =>
  waitFor(() => stateOf(proxy, port)?.up === up, ms, `server :${port} ${up ? "up" : "down"}`);

test("a black-holed and a refusing server, once detected, cost no client a dial", async () => {
  const good = await named("G");
  const hole = await blackhole();
  const refusing = await freePort(); // nothing listens there
  const proxy = await startProxy(service(
    [`127.0.0.1:${hole.port}`, `127.0.0.1:${refusing}`, `127.0.0.1:${good.port}`],
    `serversTransport: slow
healthCheck: { interval: 100ms, timeout: 300ms }`,
    `  serversTransports:
    slow: { dialTimeout: 3s }`,
  ));
  try {
    await becomes(proxy, hole.port, false);
    await becomes(proxy, refusing, false);
    const failed = proxy.server.tracker.services.get("s")?.dialErrors ?? 0;
    // Each of 50 connections goes straight to the good server: no dial waits on a dead one
    // (the deadline is well under the 3 s dial timeout a black hole would cost).
    for (let i = 0; i < 50; i++) {
      assert.equal(await deadline(ask(proxy.port("web")), 1000, `connection ${i}`), "G");
    }
    assert.equal(proxy.server.tracker.services.get("s")?.dialErrors ?? 0, failed);
    assert.match(stateOf(proxy, hole.port).reason, /3 health checks failed: timed out/);
    assert.match(stateOf(proxy, refusing).reason, /ECONNREFUSED/);
    assert.ok(proxy.lines.some((l) => /WARN {2}server down .*service=s/.test(l)));
  } finally {
    proxy.close();
    hole.close();
    await good.close();
  }
});

test("a server that goes down keeps its established connections; back up, it gets traffic again", async () => {
  const a = await named("A");
  const b = await named("B");
  const proxy = await startProxy(service(
    [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`],
    "healthCheck: { interval: 100ms, timeout: 500ms }",
  ));
  const held: net.Socket[] = [];
  try {
    const port = proxy.port("web");
    assert.equal(await ask(port, undefined, held), "A");
    a.server.close(); // stops accepting; its connection stays
    await becomes(proxy, a.port, false);
    const echo = new Promise<string>((r) => held[0].once("data", (d: Buffer) => r(d.toString())));
    held[0].write("still here");
    assert.equal(await deadline(echo, 5000, "echo through the old connection"), "still here");
    for (let i = 0; i < 5; i++) assert.equal(await ask(port), "B");
    a.server.listen(a.port, "127.0.0.1");
    await becomes(proxy, a.port, true);
    assert.equal(stateOf(proxy, a.port).reason, "2 health checks passed");
    const names = [];
    for (let i = 0; i < 4; i++) names.push(await ask(port));
    assert.ok(names.includes("A"), names.join());
  } finally {
    for (const c of held) c.destroy();
    proxy.close();
    await a.close();
    await b.close();
  }
});

test("send/expect: PING → +PONG keeps a real redis-server up, a server answering otherwise down", {
  skip: !REDIS && "needs redis-server (apt-get install redis-server)",
}, async () => {
  const redisPort = await freePort();
  const redis = spawn(REDIS as string, redisArgs(redisPort), { stdio: "ignore" });
  const impostor = await netServer((s) => {
    s.on("error", () => {});
    s.once("data", () => s.end("-ERR not redis\r\n"));
  });
  let proxy: TestProxy | undefined;
  try {
    proxy = await startProxy(service(
      [`127.0.0.1:${redisPort}`, `127.0.0.1:${impostor.port}`],
      'healthCheck: { interval: 100ms, timeout: 1s, send: "PING\\r\\n", expect: "+PONG" }',
    ));
    await becomes(proxy, impostor.port, false);
    assert.match(
      stateOf(proxy, impostor.port).reason,
      /closed before the expected reply; got "-ERR/,
    );
    assert.equal(stateOf(proxy, redisPort).up, true);
    assert.equal(stateOf(proxy, redisPort).lastCheck?.ok, true);
    for (let i = 0; i < 6; i++) {
      const c = await connect(proxy.port("web"));
      const reply = new Promise<string>((r) => c.once("data", (d: Buffer) => r(d.toString())));
      c.write("PING\r\n");
      assert.equal(await deadline(reply, 5000, "PONG"), "+PONG\r\n");
      c.destroy();
    }
  } finally {
    proxy?.close();
    redis.kill();
    await impostor.close();
  }
});

/** A DNS query for test.example, type A, id 0xbeef, in hex: what the UDP check sends. */
const DNS_QUERY = "beef01000001000000000000" + "0474657374076578616d706c650000010001";

test("UDP: a DNS query health check marks a stopped dnsmasq down; new sessions go to the other", {
  skip: (!DNSMASQ || !DIG) && "needs dnsmasq and dig",
}, async () => {
  const ports = [await freePort(), await freePort()];
  const start = (port: number, answer: string) =>
    startDnsmasq(DNSMASQ as string, port, { "test.example": answer });
  const dns = [start(ports[0], "10.0.0.1"), start(ports[1], "10.0.0.2")];
  const config = parseConfig(
    `entryPoints:
  dns: { address: "127.0.0.1:0/udp" }
udp:
  routers:
    r: { service: resolvers }
  services:
    resolvers:
      loadBalancer:
        servers: [{ address: "127.0.0.1:${ports[0]}" }, { address: "127.0.0.1:${ports[1]}" }]
        healthCheck: { interval: 100ms, timeout: 500ms, sendHex: ${DNS_QUERY}, expectHex: beef }
`,
    "test.yaml",
  ).config;
  const proxy = await startProxy(config);
  try {
    await waitFor(
      () => ports.every((p) => stateOf(proxy, p).lastCheck?.ok === true),
      10_000,
      "both resolvers answer the check",
    );
    dns[0].kill();
    await becomes(proxy, ports[0], false);
    assert.match(stateOf(proxy, ports[0]).reason, /no reply within the timeout/);
    // Each dig is a new source port, so a new session: all go to the resolver that is up.
    for (let i = 0; i < 6; i++) {
      assert.equal(await digA(proxy.port("dns"), "test.example"), "10.0.0.2");
    }
  } finally {
    proxy.close();
    for (const d of dns) d.kill();
  }
});

test("hrw: 30 clients each stick to one server; stopping a server moves only its clients", async () => {
  const backends = await Promise.all(["A", "B", "C"].map(named));
  const proxy = await startProxy(service(
    backends.map((b) => `127.0.0.1:${b.port}`),
    "strategy: hrw\nhealthCheck: { interval: 100ms, timeout: 500ms }",
  ));
  try {
    const port = proxy.port("web");
    const clients = Array.from({ length: 30 }, (_, i) => `127.0.0.${10 + i}`);
    const first = new Map<string, string>();
    for (const c of clients) first.set(c, await ask(port, c));
    for (const c of clients) assert.equal(await ask(port, c), first.get(c), `${c} sticks`);
    const used = new Set(first.values());
    assert.ok(used.size >= 2, `clients spread: ${[...used]}`);
    const gone = [...used][0];
    const stopped = backends["ABC".indexOf(gone)];
    stopped.server.close();
    await becomes(proxy, stopped.port, false);
    for (const c of clients) {
      const now = await ask(port, c);
      if (first.get(c) === gone) assert.notEqual(now, gone, `${c} moved off ${gone}`);
      else assert.equal(now, first.get(c), `${c} stayed`);
    }
  } finally {
    proxy.close();
    for (const b of backends) await b.close();
  }
});

for (const strategy of ["leastConn", "p2c"]) {
  test(`${strategy}: while one server holds connections, new ones go to the others`, async () => {
    const backends = await Promise.all(["A", "B", "C"].map(named));
    const proxy = await startProxy(service(
      backends.map((b) => `127.0.0.1:${b.port}`),
      `strategy: ${strategy}`,
    ));
    const held: net.Socket[] = [];
    try {
      const port = proxy.port("web");
      const settled = () =>
        waitFor(() => proxy.server.tracker.live.size === held.length, 5000, "closes counted");
      // Open connections and keep them all until A (a slow-draining server) has two, then
      // let the others go.
      const open: [string, net.Socket][] = [];
      for (let i = 0; i < 30 && open.filter(([n]) => n === "A").length < 2; i++) {
        const keep: net.Socket[] = [];
        open.push([await ask(port, undefined, keep), keep[0]]);
      }
      for (const [name, socket] of open) {
        if (name === "A") held.push(socket);
        else socket.destroy();
      }
      assert.equal(held.length, 2, "A holds two connections");
      await settled();
      for (let i = 0; i < 20; i++) {
        assert.notEqual(await ask(port), "A", `short connection ${i}`);
        await settled();
      }
      assert.equal(stateOf(proxy, backends[0].port).live, 2);
    } finally {
      for (const c of held) c.destroy();
      proxy.close();
      for (const b of backends) await b.close();
    }
  });
}

test("passive ejection: after maxFailedAttempts refused dials a server gets no dial for the window", async () => {
  const good = await named("G");
  const refusing = await freePort();
  const proxy = await startProxy(service(
    [`127.0.0.1:${refusing}`, `127.0.0.1:${good.port}`],
    "passiveHealthCheck: { maxFailedAttempts: 2, failureWindow: 2s }",
  ));
  try {
    const port = proxy.port("web");
    const dialErrors = () =>
      proxy.server.tracker.servers.get(`s 127.0.0.1:${refusing}`)?.dialErrors ?? 0;
    for (let i = 0; i < 10; i++) assert.equal(await ask(port), "G");
    assert.equal(dialErrors(), 2, "two refused dials, then no more");
    const metrics = renderMetrics({
      tracker: proxy.server.tracker,
      version: "test",
      runtime: "test",
      startedAt: 0,
      reloads: proxy.server.reloads,
    });
    assert.match(
      metrics,
      /^l4p_tcp_service_dial_errors_by_code_total\{service="s",code="ECONNREFUSED"\} 2$/m,
    );
    assert.equal(stateOf(proxy, refusing).up, false);
    assert.match(stateOf(proxy, refusing).reason, /2 dial failures within 2000 ms: ECONNREFUSED/);
    // Without active checks the window brings it back, and it is tried again.
    await becomes(proxy, refusing, true, 5000);
    for (let i = 0; i < 4; i++) assert.equal(await ask(port), "G");
    assert.ok(dialErrors() > 2, `${dialErrors()} dial errors after the window`);
  } finally {
    proxy.close();
    await good.close();
  }
});

test("a nested weighted service skips a child whose servers are all down", async () => {
  const a = await named("A");
  const b = await named("B");
  const config = parseConfig(
    `entryPoints:
  web: { address: "127.0.0.1:0" }
tcp:
  routers:
    r: { rule: "HostSNI(\`*\`)", service: both }
  services:
    both: { weighted: { services: [{ name: sa, weight: 1 }, { name: sb, weight: 1 }] } }
    sa:
      loadBalancer:
        servers: [{ address: "127.0.0.1:${a.port}" }]
        healthCheck: { interval: 100ms, timeout: 500ms }
    sb:
      loadBalancer:
        servers: [{ address: "127.0.0.1:${b.port}" }]
`,
    "test.yaml",
  ).config;
  const proxy = await startProxy(config);
  try {
    const port = proxy.port("web");
    a.server.close();
    await becomes(proxy, a.port, false);
    const failed = proxy.server.tracker.services.get("sa")?.dialErrors ?? 0;
    for (let i = 0; i < 6; i++) assert.equal(await ask(port), "B");
    assert.equal(proxy.server.tracker.services.get("sa")?.dialErrors ?? 0, failed);
    assert.ok(proxy.lines.some((l) => l.includes("every server of the service is down")));
  } finally {
    proxy.close();
    await a.close();
    await b.close();
  }
});

test("/metrics has l4p_server_up and check counts (promtool agrees); /api/status shows states", async () => {
  const good = await named("G");
  const refusing = await freePort();
  const proxy = await startProxy(service(
    [`127.0.0.1:${refusing}`, `127.0.0.1:${good.port}`],
    "healthCheck: { interval: 100ms, timeout: 500ms }",
  ));
  const admin = startAdmin(
    proxy.server,
    { hostname: "127.0.0.1", port: 0, text: "127.0.0.1:0" },
    { version: "test" },
  );
  try {
    await becomes(proxy, refusing, false);
    const base = `http://127.0.0.1:${admin.addr.port}`;
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(
      metrics,
      new RegExp(
        `^l4p_server_up\\{protocol="tcp",service="s",server="127.0.0.1:${refusing}"\\} 0$`,
        "m",
      ),
    );
    assert.match(
      metrics,
      new RegExp(
        `^l4p_server_up\\{protocol="tcp",service="s",server="127.0.0.1:${good.port}"\\} 1$`,
        "m",
      ),
    );
    assert.match(metrics, /^l4p_server_checks_total\{.*result="fail"\} [3-9]\d*$/m);
    const promtool = await promtoolCheck(metrics);
    if (promtool) assert.equal(promtool.code, 0, `promtool check metrics:\n${promtool.out}`);
    const status = await (await fetch(`${base}/api/status`)).json();
    const s = status.tcp.services.s;
    assert.equal(s.strategy, "wrr");
    assert.equal(s.state, "up");
    assert.equal(s.servers[0].state, "down");
    assert.equal(s.servers[0].lastCheck.ok, false);
    assert.equal(s.servers[0].lastCheck.detail, "ECONNREFUSED");
    assert.equal(s.servers[1].state, "up");
    assert.equal(s.healthCheck.interval, 100);
  } finally {
    admin.close();
    proxy.close();
    await good.close();
  }
});

test("l4p tcp --health-interval: a one-line health-checked forwarder", async () => {
  const good = await named("G");
  const dead = await freePort();
  const port = await freePort();
  const l4p = runL4p([
    "tcp",
    `127.0.0.1:${port}`,
    `127.0.0.1:${dead}`,
    `127.0.0.1:${good.port}`,
    "--health-interval",
    "100ms",
    "--strategy",
    "leastConn",
  ]);
  try {
    await l4p.waitForLine(
      new RegExp(`server down protocol=tcp service=targets server=127.0.0.1:${dead}`),
    );
    for (let i = 0; i < 5; i++) assert.equal(await ask(port), "G");
    assert.doesNotMatch(l4p.stderr(), /dial failed/);
  } finally {
    l4p.kill();
    await l4p.exited;
    await good.close();
  }
});

test("a reload keeps the state of servers that stay; a server added starts up", async () => {
  const good = await named("G");
  const refusing = await freePort();
  const extra = await named("X");
  const check = "healthCheck: { interval: 100ms, timeout: 500ms }";
  const proxy = await startProxy(
    service([`127.0.0.1:${refusing}`, `127.0.0.1:${good.port}`], check),
  );
  try {
    await becomes(proxy, refusing, false);
    const before = stateOf(proxy, refusing);
    // Another server joins, the check's settings change: the dead one stays down, unchanged.
    await proxy.server.apply(service(
      [`127.0.0.1:${refusing}`, `127.0.0.1:${good.port}`, `127.0.0.1:${extra.port}`],
      "healthCheck: { interval: 200ms, timeout: 500ms }",
    ));
    assert.equal(stateOf(proxy, refusing), before, "the same state object");
    assert.equal(stateOf(proxy, refusing).up, false);
    assert.equal(stateOf(proxy, refusing).changes, 1);
    assert.equal(stateOf(proxy, extra.port).up, true);
    for (let i = 0; i < 4; i++) assert.notEqual(await ask(proxy.port("web")), "(closed)");
    assert.equal(proxy.server.tracker.servers.get(`s 127.0.0.1:${refusing}`)?.dialErrors ?? 0, 0);
  } finally {
    proxy.close();
    await good.close();
    await extra.close();
  }
});

test("a reload that fails to apply leaves health in force: weighted failover and weights unchanged", async () => {
  const [a, b] = [await named("A"), await named("B")];
  const taken = net.createServer();
  await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r));
  const busy = (taken.address() as net.AddressInfo).port;
  const config = (weightA: number, extraEntryPoint = "") =>
    parseConfig(
      `entryPoints:
  web: { address: "127.0.0.1:0" }
${extraEntryPoint}tcp:
  routers:
    r: { rule: "HostSNI(\`*\`)", service: both }
  services:
    both: { weighted: { services: [{ name: first, weight: 1 }, { name: second, weight: 1 }] } }
    first:
      loadBalancer:
        servers: [{ address: "127.0.0.1:${a.port}", weight: ${weightA} }]
        healthCheck: { interval: 100ms, timeout: 500ms }
    second:
      loadBalancer:
        servers: [{ address: "127.0.0.1:${b.port}" }]
        healthCheck: { interval: 100ms, timeout: 500ms }
`,
      "test.yaml",
    ).config;
  const proxy = await startProxy(config(1));
  try {
    await waitFor(() => stateOf(proxy, a.port)?.lastCheck?.ok === true, 10_000, "A checked");
    // The same services, A's weight changed, and an entrypoint whose port is taken: refused.
    await assert.rejects(
      proxy.server.apply(config(5, `  taken: { address: "127.0.0.1:${busy}" }\n`)),
      /already in use|EADDRINUSE/,
    );
    assert.equal(stateOf(proxy, a.port).weight, 1, "the refused reload's weight is not in force");
    // A goes down: the graph in force hears it, so the weighted service sends everyone to B.
    await a.close();
    await becomes(proxy, a.port, false);
    for (let i = 0; i < 6; i++) assert.equal(await ask(proxy.port("web")), "B");
  } finally {
    proxy.close();
    taken.close();
    await b.close();
  }
});

test("a server of a service without health checks says it has none, not that it is not checked yet", async () => {
  const a = await named("A");
  const proxy = await startProxy(service([`127.0.0.1:${a.port}`]));
  try {
    assert.equal(stateOf(proxy, a.port).reason, "no health check");
    assert.equal(stateOf(proxy, a.port).up, true);
  } finally {
    proxy.close();
    await a.close();
  }
});
