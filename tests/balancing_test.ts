import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../src/config/load.ts";
import {
  connect,
  deadline,
  docExample,
  type NetServer,
  netServer,
  readToEnd,
  startProxy,
} from "./_helpers.ts";

/** A backend that answers every connection with its name and closes. */
function named(name: string): Promise<NetServer> {
  return netServer((socket) => {
    socket.on("error", () => {});
    socket.end(name);
  });
}

/** An entrypoint `web` whose one router sends everything to service `s` over `servers`. */
function oneService(servers: string[]) {
  return parseConfig(
    `entryPoints:
  web: { address: "127.0.0.1:0" }
tcp:
  routers:
    r: { rule: "HostSNI(\`*\`)", service: s }
  services:
    s:
      loadBalancer:
        servers:
${servers.map((s) => `          - ${s}\n`).join("")}`,
    "test.yaml",
  ).config;
}

/** Opens `n` connections one after another; counts the answers by backend name. */
async function tally(port: number, n: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const client = await connect(port);
    client.on("error", () => {});
    const name = (await deadline(readToEnd(client), 5000, `answer ${i}`)).toString();
    counts[name] = (counts[name] ?? 0) + 1;
    client.destroy();
  }
  return counts;
}

test("weights 3:1 over 400 connections give exactly 300/100", async () => {
  const a = await named("a");
  const b = await named("b");
  const config = oneService([
    `{ address: "127.0.0.1:${a.port}", weight: 3 }`,
    `{ address: "127.0.0.1:${b.port}" }`,
  ]);
  const proxy = await startProxy(config, Math.random);
  try {
    assert.deepEqual(await tally(proxy.port("web"), 400), { a: 300, b: 100 });
  } finally {
    proxy.close();
    await a.close();
    await b.close();
  }
});

test("the README's nested example splits 9:1 between services and 3:1 inside app", async () => {
  const servers = {
    9001: await named("9001"),
    9002: await named("9002"),
    9003: await named("9003"),
  };
  // The README's file as printed, with each fixed port swapped for a free one.
  let text = docExample().replace('"127.0.0.1:8080"', '"127.0.0.1:0"');
  for (const [fixed, s] of Object.entries(servers)) {
    text = text.replace(`127.0.0.1:${fixed}`, `127.0.0.1:${s.port}`);
  }
  const proxy = await startProxy(parseConfig(text, "README.md").config, Math.random);
  try {
    // 40 connections are one full cycle of the outer 9:1 and, inside app, of 3:1 (36 = 9 × 4).
    const counts = await tally(proxy.port("web"), 400);
    assert.deepEqual(counts, { 9001: 270, 9002: 90, 9003: 40 });
    const t = proxy.server.tracker.services;
    assert.equal(t.get("app")!.opened, 360);
    assert.equal(t.get("app-v2")!.opened, 40);
  } finally {
    proxy.close();
    for (const s of Object.values(servers)) await s.close();
  }
});

test("a dead server costs no client a failed connection while another is up", async () => {
  const alive = await named("alive");
  const dead = await netServer(() => {});
  const deadPort = dead.port;
  await dead.close();
  const config = oneService([
    `{ address: "127.0.0.1:${deadPort}" }`,
    `{ address: "127.0.0.1:${alive.port}" }`,
  ]);
  const proxy = await startProxy(config, Math.random);
  try {
    assert.deepEqual(await tally(proxy.port("web"), 20), { alive: 20 });
    // Each connection tried the dead server at most once; the round robin sends it half of them.
    assert.equal(proxy.server.tracker.services.get("s")!.dialErrors, 10);
    assert.equal(proxy.server.tracker.services.get("s")!.opened, 20);
  } finally {
    proxy.close();
    await alive.close();
  }
});
