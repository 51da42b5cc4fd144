/// <reference lib="dom" />
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type net from "node:net";
import { tmpdir } from "node:os";
import { test } from "node:test";
import puppeteer from "puppeteer-core";
import { startAdmin } from "../src/admin/admin.ts";
import { EventStreams, LiveHistory } from "../src/admin/live.ts";
import { TrafficTracker } from "../src/metrics/tracker.ts";
import { parseConfig } from "../src/config/load.ts";
import {
  connect,
  deadline,
  echoServer,
  freePort,
  peerOrSkip,
  runL4p,
  startProxy,
  type TestProxy,
  waitFor,
} from "./_helpers.ts";

const CHROMIUM = peerOrSkip("chromium");

function config(backend: number) {
  return parseConfig(
    `entryPoints:
  web: { address: "127.0.0.1:0" }
tcp:
  routers:
    to-echo: { rule: "HostSNI(\`*\`)", service: echo }
  services:
    echo:
      loadBalancer:
        servers: [{ address: "127.0.0.1:${backend}" }]
        healthCheck: { interval: 1s }
`,
    "test.yaml",
  ).config;
}

declare global {
  // What the page exposes for tests (`globalThis` is the page's window there).
  var l4pDashboard: {
    state: string;
    status: { entryPoints: Record<string, { connectionsOpen: number }> } | null;
    charts: Record<string, { points: number }>;
  };
}

test(
  "dashboard in Chromium: loads cleanly, shows the running config, follows live connections, recovers",
  {
    skip: !CHROMIUM && "needs chromium (apt-get install chromium)",
  },
  async () => {
    const dir = mkdtempSync(`${tmpdir()}/l4p-dashboard-`);
    const backend = await echoServer();
    // With a router and a service left out for their problems: shown, and nothing breaks.
    const proxy: TestProxy = await startProxy(
      parseConfig(
        `entryPoints:
  web: { address: "127.0.0.1:0" }
tcp:
  routers:
    to-echo: { rule: "HostSNI(\`*\`)", service: echo }
    to-nowhere: { rule: "HostSNI(\`x.example\`)", service: nowhere }
  services:
    echo:
      loadBalancer:
        servers: [{ address: "127.0.0.1:${backend.port}" }]
        healthCheck: { interval: 1s }
    broken:
      loadBalancer:
        servers: [{ address: "127.0.0.1" }]
`,
        "test.yaml",
        { isolate: true },
      ).config,
    );
    const history = new LiveHistory(proxy.server.tracker);
    const port = await freePort();
    const address = { hostname: "127.0.0.1", port, text: `127.0.0.1:${port}` };
    let admin = startAdmin(proxy.server, address, { version: "test", history });
    const browser = await puppeteer.launch({
      executablePath: CHROMIUM as string,
      headless: true,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        `--user-data-dir=${dir}/profile`,
      ],
    });
    const clients: net.Socket[] = [];
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
      page.on("pageerror", (e) => errors.push(String(e)));
      await page.setViewport({ width: 1280, height: 900 });
      await page.goto(`http://127.0.0.1:${port}/dashboard/`);
      await page.waitForFunction(() =>
        globalThis.l4pDashboard?.state === "live" && globalThis.l4pDashboard.status
      );
      const text = await page.evaluate(() => document.body.innerText);
      assert.match(text, /to-echo/, "the router is listed");
      assert.match(text, /to-nowhere\s+left out: .*"nowhere" is not defined/, "a left-out router");
      assert.match(text, /broken\s+tcp\s+left out\s+disabled/, "a left-out service");
      assert.match(
        text,
        new RegExp(`echo[\\s\\S]*127\\.0\\.0\\.1:${backend.port}`),
        "the service and its server",
      );

      // The live count rises while connections are held open, and falls after.
      for (let i = 0; i < 3; i++) {
        const c = await connect(proxy.port("web"));
        c.write("x");
        await deadline(new Promise((r) => c.once("data", r)), 5000, "echo");
        clients.push(c);
      }
      await page.waitForFunction(
        () => globalThis.l4pDashboard.status?.entryPoints.web.connectionsOpen === 3,
        { timeout: 10_000 },
      );
      await page.waitForFunction(() => globalThis.l4pDashboard.charts["c-ep-open"]?.points > 1, {
        timeout: 10_000,
      });
      await page.screenshot({ path: `${dir}/dashboard.png` });
      await page.setViewport({ width: 390, height: 844, isMobile: true });
      await page.screenshot({ path: `${dir}/dashboard-phone.png`, fullPage: true });
      for (const c of clients.splice(0)) c.destroy();
      await page.waitForFunction(
        () => globalThis.l4pDashboard.status?.entryPoints.web.connectionsOpen === 0,
        { timeout: 10_000 },
      );
      assert.deepEqual(errors, [], "no console errors while it ran");

      // The admin listener goes away and comes back: the page says so, then goes on.
      admin.close();
      await page.waitForFunction(() => globalThis.l4pDashboard.state === "lost", {
        timeout: 10_000,
      });
      admin = startAdmin(proxy.server, address, { version: "test", history });
      await page.waitForFunction(() => globalThis.l4pDashboard.state === "live", {
        timeout: 15_000,
      });
      const points = await page.evaluate(() => globalThis.l4pDashboard.charts["c-ep-open"].points);
      assert.ok(points > 1, `${points} points after reconnecting`);

      // With a token: the link without the slash (redirected, so its charts load) and the token
      // in the query, which the page carries to its event stream.
      admin.close();
      // The port is free once the listener has gone (the first page sees it go).
      await page.waitForFunction(() => globalThis.l4pDashboard.state === "lost", {
        timeout: 10_000,
      });
      const token = "a-secret-of-sufficient-length";
      admin = startAdmin(proxy.server, address, { version: "test", history, token });
      const tokenPage = await browser.newPage();
      const tokenErrors: string[] = [];
      tokenPage.on("console", (m) => m.type() === "error" && tokenErrors.push(m.text()));
      tokenPage.on("pageerror", (e) => tokenErrors.push(String(e)));
      await tokenPage.goto(`http://127.0.0.1:${port}/dashboard?token=${token}`);
      await tokenPage.waitForFunction(
        () => globalThis.l4pDashboard?.state === "live" && globalThis.l4pDashboard.status,
        { timeout: 15_000 },
      );
      assert.equal(new URL(tokenPage.url()).pathname, "/dashboard/");
      await tokenPage.waitForFunction(
        () => globalThis.l4pDashboard.charts["c-ep-open"]?.points > 1,
        { timeout: 10_000 },
      );
      assert.deepEqual(tokenErrors, [], "no console errors with a token");
    } finally {
      for (const c of clients) c.destroy();
      await browser.close();
      admin.close();
      history.stop();
      proxy.close();
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test("admin token: the API, the dashboard and its event stream refuse requests without it", async () => {
  const backend = await echoServer();
  const proxy = await startProxy(config(backend.port));
  const token = "a-secret-of-sufficient-length";
  const admin = startAdmin(
    proxy.server,
    { hostname: "127.0.0.1", port: 0, text: "127.0.0.1:0" },
    { version: "test", token, publicMetrics: true },
  );
  try {
    const base = `http://127.0.0.1:${admin.addr.port}`;
    for (const path of ["/api/status", "/api/connections", "/api/events", "/dashboard/"]) {
      const none = await fetch(`${base}${path}`);
      assert.equal(none.status, 401, path);
      assert.equal(await none.text(), "unauthorized\n", `${path}: nothing else is said`);
      const wrong = await fetch(`${base}${path}`, { headers: { authorization: "Bearer nope" } });
      assert.equal(wrong.status, 401, path);
      await wrong.body?.cancel();
    }
    const ok = await fetch(`${base}/api/status`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(ok.status, 200);
    assert.equal((await ok.json()).version, "test");
    const page = await fetch(`${base}/dashboard/?token=${token}`);
    assert.equal(page.status, 200);
    await page.body?.cancel();
    const metrics = await fetch(`${base}/metrics`); // publicMetrics
    assert.equal(metrics.status, 200);
    await metrics.body?.cancel();
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
  } finally {
    admin.close();
    proxy.close();
    await backend.close();
  }
});

test("l4p top on a non-TTY prints one snapshot matching /api/status; --json gives the API's JSON", async () => {
  const backend = await echoServer();
  const proxy = await startProxy(config(backend.port));
  const admin = startAdmin(
    proxy.server,
    { hostname: "127.0.0.1", port: 0, text: "127.0.0.1:0" },
    { version: "test" },
  );
  const held: net.Socket[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const c = await connect(proxy.port("web"), "127.0.0.1", `127.0.0.${20 + i}`);
      c.write("hello");
      await deadline(new Promise((r) => c.once("data", r)), 5000, "echo");
      held.push(c);
    }
    const admin_ = `127.0.0.1:${admin.addr.port}`;
    const status = await (await fetch(`http://${admin_}/api/status`)).json();
    const text = runL4p(["top", "--admin", admin_]);
    assert.equal(await deadline(text.exited, 30_000, "l4p top"), 0, text.stderr());
    const out = text.stdout();
    const ep = status.entryPoints.web;
    assert.match(out, new RegExp(`^web\\s+tcp\\s+${ep.listening}\\s+2\\s+2\\s`, "m"), out);
    assert.match(out, new RegExp(`^echo \\(tcp, wrr\\)\\s+up\\s+2\\s`, "m"), out);
    assert.match(out, new RegExp(`^  127\\.0\\.0\\.1:${backend.port}\\s+up\\s+2\\s`, "m"), out);
    assert.match(out, /^127\.0\.0\.20\s+1\s+10$/m, "top clients by bytes (5 each way)");
    const json = runL4p(["top", "--admin", admin_, "--json"]);
    assert.equal(await deadline(json.exited, 30_000, "l4p top --json"), 0, json.stderr());
    const snapshot = JSON.parse(json.stdout());
    assert.deepEqual(Object.keys(snapshot.status.entryPoints), Object.keys(status.entryPoints));
    assert.equal(snapshot.status.entryPoints.web.connectionsOpen, 2);
    assert.equal(snapshot.connections.tcp.length, 2);
    const refused = runL4p(["top", "--admin", "127.0.0.1:9"]);
    assert.equal(await deadline(refused.exited, 30_000, "l4p top, nothing there"), 1);
    assert.match(refused.stderr(), /l4p top: cannot read http:\/\/127\.0\.0\.1:9: /);
    assert.doesNotMatch(refused.stderr(), /Is the computer|Unable to connect/, "in l4p's words");
  } finally {
    for (const c of held) c.destroy();
    admin.close();
    proxy.close();
    await backend.close();
  }
});

/** A raw HTTP/1.1 GET with the headers given (a browser could not set Host): status and head. */
async function rawGet(port: number, path: string, headers: Record<string, string>) {
  const s = await connect(port);
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("");
  s.write(`GET ${path} HTTP/1.1\r\n${lines}connection: close\r\n\r\n`);
  const text = await deadline(
    new Promise<string>((resolve) => {
      let got = "";
      s.on("data", (c: Buffer) => got += c);
      s.on("end", () => resolve(got));
      s.on("error", () => resolve(got));
    }),
    10_000,
    `GET ${path}`,
  );
  s.destroy();
  return { status: Number(text.split(" ")[1]), head: text.split("\r\n\r\n")[0].toLowerCase() };
}

test("admin without a token: only IP, localhost or listed Host names are answered (DNS rebinding)", async () => {
  const backend = await echoServer();
  const proxy = await startProxy(config(backend.port));
  const admin = startAdmin(
    proxy.server,
    { hostname: "127.0.0.1", port: 0, text: "127.0.0.1:0" },
    { version: "test", allowedHosts: ["l4p.internal"] },
  );
  try {
    const port = admin.addr.port;
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, "[::1]", "l4p.internal"]) {
      assert.equal((await rawGet(port, "/api/status", { host })).status, 200, host);
    }
    for (const host of ["attacker.example", `attacker.example:${port}`, "l4p.internal.evil"]) {
      assert.equal((await rawGet(port, "/api/status", { host })).status, 403, host);
    }
  } finally {
    admin.close();
    proxy.close();
    await backend.close();
  }
});

test("admin token: Bearer in any case; ?token= only where a browser needs it; /metrics guarded", async () => {
  const backend = await echoServer();
  const proxy = await startProxy(config(backend.port));
  const token = "a-secret-of-sufficient-length";
  const admin = startAdmin(
    proxy.server,
    { hostname: "127.0.0.1", port: 0, text: "127.0.0.1:0" },
    { version: "test", token },
  );
  try {
    const base = `http://127.0.0.1:${admin.addr.port}`;
    for (const scheme of ["Bearer", "bearer", "BEARER"]) {
      const r = await fetch(`${base}/api/status`, {
        headers: { authorization: `${scheme} ${token}` },
      });
      assert.equal(r.status, 200, scheme);
      await r.body?.cancel();
    }
    // The API takes the token as a header only: a URL carrying it leaks to logs and Referers.
    for (const path of ["/api/status", "/api/connections", "/metrics"]) {
      const r = await fetch(`${base}${path}?token=${token}`);
      assert.equal(r.status, 401, path);
      await r.body?.cancel();
    }
    const events = await fetch(`${base}/api/events?token=${token}`);
    assert.equal(events.status, 200);
    await events.body?.cancel();
    // Without publicMetrics, /metrics needs the token like the rest.
    const metrics = await fetch(`${base}/metrics`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(metrics.status, 200);
    await metrics.body?.cancel();
    // Every answer says what it is; the dashboard may not be framed; /dashboard redirects.
    const head = (await rawGet(admin.addr.port, `/dashboard?token=${token}`, { host: "127.0.0.1" }))
      .head;
    assert.match(head, /^http\/1\.1 308/);
    assert.match(head, new RegExp(`\r\nlocation: /dashboard/\\?token=${token}`));
    const page = await rawGet(admin.addr.port, `/dashboard/?token=${token}`, { host: "127.0.0.1" });
    assert.match(page.head, /x-content-type-options: nosniff/);
    assert.match(page.head, /frame-ancestors 'none'/);
    const status = await rawGet(admin.addr.port, "/api/status", {
      host: "127.0.0.1",
      authorization: `Bearer ${token}`,
    });
    assert.match(status.head, /x-content-type-options: nosniff/);
  } finally {
    admin.close();
    proxy.close();
    await backend.close();
  }
});

test("admin: an event-stream client that never reads is dropped once it holds too much", async () => {
  const streams = new EventStreams();
  const history = new LiveHistory(new TrafficTracker());
  // 400 KB a status: three unread exceed MAX_UNREAD (1 MiB).
  const big = { pad: "x".repeat(400_000) };
  const response = streams.respond(history, () => big);
  assert.equal(streams.size, 1);
  await waitFor(() => streams.size === 0, 20_000, "the unread stream dropped");
  await response.body?.cancel();
});

test("admin token files and flags: 16 characters at least; l4p tcp takes --token-file", async () => {
  const dir = mkdtempSync(`${tmpdir()}/l4p-token-`);
  const backend = await echoServer();
  try {
    writeFileSync(`${dir}/short`, "too-short\n");
    writeFileSync(`${dir}/good`, "a-secret-of-sufficient-length\n");
    const bad = runL4p([
      "tcp",
      "127.0.0.1:0",
      `127.0.0.1:${backend.port}`,
      "--token-file",
      `${dir}/short`,
    ]);
    assert.equal(await deadline(bad.exited, 15_000, "exit"), 2);
    assert.match(bad.stderr(), /--token-file: the token in .*short has fewer than 16 characters/);
    const metrics = await freePort();
    const l4p = runL4p([
      "tcp",
      "127.0.0.1:0",
      `127.0.0.1:${backend.port}`,
      "--metrics",
      `127.0.0.1:${metrics}`,
      "--token-file",
      `${dir}/good`,
    ]);
    try {
      await l4p.waitForLine(/admin listening .*token=required/);
      assert.equal((await fetch(`http://127.0.0.1:${metrics}/api/status`)).status, 401);
      const ok = await fetch(`http://127.0.0.1:${metrics}/api/status`, {
        headers: { authorization: "Bearer a-secret-of-sufficient-length" },
      });
      assert.equal(ok.status, 200);
      await ok.body?.cancel();
    } finally {
      l4p.kill("SIGKILL");
    }
    // In a file: the same minimum, located; and a listener open to the network warns.
    assert.throws(
      () =>
        parseConfig(
          `entryPoints:\n  web: { address: "127.0.0.1:0" }\nmetrics: { address: "0.0.0.0:9100", token: short }\n`,
          `${dir}/l4p.yaml`,
        ),
      /metrics\.token: a token needs at least 16 characters/,
    );
    const { notes } = parseConfig(
      `entryPoints:\n  web: { address: "127.0.0.1:0" }\nmetrics: { address: "0.0.0.0:9100" }\n`,
      `${dir}/l4p.yaml`,
    );
    assert.match(notes.map((n) => n.message).join("\n"), /answers anyone who can reach it/);
  } finally {
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
