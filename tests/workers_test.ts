import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
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
