/// <reference lib="dom" />
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import type net from "node:net";
import { tmpdir } from "node:os";
import { test } from "node:test";
import puppeteer from "puppeteer-core";
import { startAdmin } from "../src/admin/admin.ts";
import { LiveHistory } from "../src/admin/live.ts";
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
    const proxy: TestProxy = await startProxy(config(backend.port));
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
    assert.match(refused.stderr(), /l4p top: cannot read http:\/\/127\.0\.0\.1:9/);
  } finally {
    for (const c of held) c.destroy();
    admin.close();
    proxy.close();
    await backend.close();
  }
});
