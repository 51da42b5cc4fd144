import assert from "node:assert/strict";
import { test } from "node:test";
import { connect, deadline, netServer, rssOf, runL4p, waitFor } from "./_helpers.ts";

const MiB = 1024 * 1024;

test("slow reader: 256 MiB pass to a slow client while l4p's memory stays bounded", async () => {
  const total = 256 * MiB;
  const chunk = new Uint8Array(MiB).fill(0x5a);
  // The backend pushes as fast as l4p lets it, honouring backpressure itself.
  const backend = await netServer((socket) => {
    socket.on("error", () => {});
    let sent = 0;
    const push = () => {
      while (sent < total) {
        sent += chunk.length;
        if (!socket.write(chunk)) return void socket.once("drain", push);
      }
      socket.end();
    };
    push();
  });
  const l4p = runL4p(["tcp", "127.0.0.1:0", `127.0.0.1:${backend.port}`]);
  const pid = l4p.child.pid!;
  try {
    const [, port] = await l4p.waitForLine(/listening .* address=127\.0\.0\.1:(\d+)/);
    const client = await connect(Number(port));
    let received = 0;
    let baseline = 0;
    let peak = 0;
    const sampler = setInterval(() => {
      if (baseline) peak = Math.max(peak, rssOf(pid));
    }, 25);
    const done = new Promise<void>((resolve, reject) => {
      let nextPause = 8 * MiB;
      client.on("data", (c: Buffer) => {
        received += c.length;
        if (received >= nextPause) {
          if (!baseline) baseline = rssOf(pid);
          nextPause += 4 * MiB;
          // The slow part: stop reading for a while, many times over.
          client.pause();
          setTimeout(() => client.resume(), 25);
        }
      });
      client.once("end", resolve);
      client.once("error", reject);
    });
    await deadline(done, 120_000, "256 MiB through a slow reader").finally(() =>
      clearInterval(sampler)
    );
    assert.equal(received, total);
    const growth = peak - baseline;
    // Without backpressure l4p would hold most of the 256 MiB; with it, a few chunks.
    assert.ok(growth < 48 * MiB, `l4p grew by ${(growth / MiB).toFixed(1)} MiB`);
  } finally {
    l4p.kill("SIGKILL");
    await backend.close();
  }
});

test("idle connections cost l4p little memory each", async () => {
  const backend = await netServer((socket) => socket.on("error", () => {}));
  const l4p = runL4p(["tcp", "127.0.0.1:0", `127.0.0.1:${backend.port}`]);
  const pid = l4p.child.pid!;
  const clients = [];
  try {
    const [, port] = await l4p.waitForLine(/listening .* address=127\.0\.0\.1:(\d+)/);
    // Warm up, so the runtime's own start-up allocations are not counted.
    for (let i = 0; i < 50; i++) clients.push(await connect(Number(port)));
    await waitFor(() => backend.sockets.length === 50, 10_000, "warm-up connections");
    const before = rssOf(pid);
    const n = 1000;
    for (let i = 0; i < n; i++) clients.push(await connect(Number(port)));
    await waitFor(
      () => backend.sockets.length === 50 + n,
      20_000,
      "idle connections reach the backend",
    );
    const perConn = (rssOf(pid) - before) / n;
    // Reported for the record; the bound is loose so that GC timing cannot make it flaky.
    console.log(`idle proxied connection: ${(perConn / 1024).toFixed(1)} KiB`);
    assert.ok(perConn < 64 * 1024, `${(perConn / 1024).toFixed(1)} KiB per idle connection`);
  } finally {
    for (const c of clients) c.destroy();
    l4p.kill("SIGKILL");
    await backend.close();
  }
});
