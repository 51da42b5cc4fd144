/**
 * Hostile input that once stalled or crashed l4p: a ClientHello against a backtracking-prone
 * HostSNIRegexp, and rules nested or chained past what a recursive parser or matcher survives.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { test } from "node:test";
import { ConfigError, parseConfig } from "../src/config/load.ts";
import { buildHello } from "./_hello.ts";
import { connect, deadline, echoServer, runL4p, startProxy } from "./_helpers.ts";

/** Sends `bytes` and resolves once l4p closes the connection. */
async function sendAndWaitForClose(port: number, bytes: Uint8Array): Promise<void> {
  const s = await connect(port);
  s.on("error", () => {});
  s.on("data", () => {});
  const closed = new Promise<void>((resolve) => s.once("close", () => resolve()));
  s.end(bytes);
  await closed;
}

test("hostile: SNIs built to make HostSNIRegexp backtrack cost the process nothing", async () => {
  const backend = await echoServer();
  const proxy = await startProxy(
    parseConfig(
      `entryPoints:
  web: { address: "127.0.0.1:0" }
tcp:
  routers:
    shop: { rule: "HostSNIRegexp(\`^(.+\\\\.)+example\\\\.com$\`)", service: echo, tls: { passthrough: true } }
    plain: { rule: "ClientIP(\`127.0.0.0/8\`)", service: echo, priority: 1 }
  services:
    echo: { loadBalancer: { servers: [{ address: "127.0.0.1:${backend.port}" }] } }
`,
      "hostile.yaml",
    ).config,
  );
  try {
    const port = proxy.port("web");
    // Each of these took a backtracking engine seconds to minutes; with RE2 they are routed
    // (to the ClientIP router: the regexp does not match) at once.
    const hellos = Array.from({ length: 100 }, () => buildHello("a.".repeat(126) + "!"));
    await deadline(
      Promise.all(hellos.map((h) => sendAndWaitForClose(port, h))),
      30_000,
      "hostile hellos answered",
    );
    // The event loop is free: a plain client is served.
    const c = await connect(port);
    const echoed = new Promise<string>((resolve) => c.once("data", (d) => resolve(String(d))));
    c.write("still here");
    assert.equal(await deadline(echoed, 10_000, "echo after hostile hellos"), "still here");
    c.destroy();
  } finally {
    proxy.close();
    await backend.close();
  }
});

/** A one-router configuration with `rule`. */
function withRule(rule: string): string {
  return `entryPoints:
  web: { address: "127.0.0.1:0" }
tcp:
  routers:
    r: { rule: "${rule}", service: s }
  services:
    s: { loadBalancer: { servers: [{ address: "127.0.0.1:9" }] } }
`;
}

test("hostile: a rule nested 5 000 deep is the same located error for check and run", async () => {
  const deep = "(".repeat(5000) + "HostSNI(`*`)" + ")".repeat(5000);
  assert.throws(() => parseConfig(withRule(deep), "deep.yaml"), (e: unknown) => {
    assert.ok(e instanceof ConfigError, String(e));
    assert.match(e.message, /deep\.yaml:5:\d+: .*nested more than 64 deep/);
    return true;
  });
  const dir = mkdtempSync(`${tmpdir()}/l4p-deep-`);
  try {
    writeFileSync(`${dir}/deep.yaml`, withRule(deep));
    const check = runL4p(["check", `${dir}/deep.yaml`]);
    assert.equal(await deadline(check.exited, 30_000, "l4p check"), 1, check.stderr());
    assert.match(check.stderr(), /deep\.yaml:5:\d+: .*nested more than 64 deep/);
    // run says the same of the router, leaves it out and serves the rest (here: nothing).
    const run = runL4p(["run", "-c", `${dir}/deep.yaml`]);
    try {
      await run.waitForLine(
        /left out of the configuration.*item=tcp\.routers\.r .*nested more than 64 deep/,
      );
      assert.doesNotMatch(run.stderr(), /call stack/i);
    } finally {
      run.kill("SIGKILL");
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("hostile: a rule of 20 000 names joined by || loads, starts and routes", async () => {
  const backend = await echoServer();
  const names = Array.from({ length: 20_000 }, (_, i) => `HostSNI(\`h${i}.test\`)`);
  const proxy = await startProxy(
    parseConfig(
      withRule(names.join(" || ")).replace("127.0.0.1:9", `127.0.0.1:${backend.port}`),
      "long.yaml",
    )
      .config,
  );
  try {
    await sendAndWaitForClose(proxy.port("web"), buildHello("h19999.test"));
    assert.equal(backend.sockets.length, 1, "the last name was routed to the backend");
  } finally {
    proxy.close();
    await backend.close();
  }
});
