import assert from "node:assert/strict";
import { test } from "node:test";
import { adHocTcpConfig } from "../src/config/adhoc.ts";
import {
  blackhole,
  connect,
  deadline,
  echoServer,
  ended,
  hashToEnd,
  netServer,
  pattern,
  readBytes,
  readToEnd,
  sha256,
  startProxy,
  waitFor,
} from "./_helpers.ts";

function proxyTo(ports: number[], extra: { terminationDelay?: number; dialTimeout?: number } = {}) {
  return startProxy(adHocTcpConfig({
    listen: "127.0.0.1:0",
    targets: ports.map((p) => `127.0.0.1:${p}`),
    ...extra,
  }));
}

test("small payloads arrive byte-exact in both directions", async () => {
  const echo = await echoServer();
  const proxy = await proxyTo([echo.port]);
  try {
    const client = await connect(proxy.port("tcp"));
    const got = readToEnd(client);
    client.end("hello, l4p\n");
    assert.equal((await deadline(got, 5000, "echo")).toString(), "hello, l4p\n");
    await waitFor(() => proxy.server.tracker.live.size === 0, 5000, "connection closed");
    const t = proxy.server.tracker.entryPoints.get("tcp")!;
    assert.equal(t.opened, 1);
    assert.equal(t.closed, 1);
    assert.equal(t.bytesIn, 11);
    assert.equal(t.bytesOut, 11);
  } finally {
    proxy.close();
    await echo.close();
  }
});

test("64 MiB each way arrive byte-exact", async () => {
  const size = 64 * 1024 * 1024;
  const up = pattern(size, 7);
  const down = pattern(size, 11);
  let received: Promise<{ length: number; sha256: string }> | undefined;
  const backend = await netServer((socket) => {
    received = hashToEnd(socket);
    received.then(() => socket.end());
    socket.write(down);
  });
  const proxy = await proxyTo([backend.port]);
  try {
    const client = await connect(proxy.port("tcp"));
    const got = hashToEnd(client);
    client.end(up);
    assert.deepEqual(await deadline(got, 60_000, "64 MiB down"), {
      length: size,
      sha256: sha256(down),
    });
    await waitFor(() => received !== undefined, 5000, "backend connection");
    assert.deepEqual(await deadline(received!, 10_000, "64 MiB up"), {
      length: size,
      sha256: sha256(up),
    });
    await waitFor(() => proxy.server.tracker.live.size === 0, 5000, "connection closed");
    const t = proxy.server.tracker.services.get("targets")!;
    assert.equal(t.bytesIn, size);
    assert.equal(t.bytesOut, size);
  } finally {
    proxy.close();
    await backend.close();
  }
});

test("many concurrent connections each get their own bytes back", async () => {
  const echo = await echoServer();
  const proxy = await proxyTo([echo.port]);
  try {
    const n = 200;
    const results = await deadline(
      Promise.all(Array.from({ length: n }, async (_, i) => {
        const client = await connect(proxy.port("tcp"));
        const payload = pattern(10_000 + i, i + 1);
        const got = readToEnd(client);
        client.end(payload);
        return sha256(await got) === sha256(payload);
      })),
      30_000,
      "200 echoes",
    );
    assert.equal(results.filter(Boolean).length, n);
    await waitFor(() => proxy.server.tracker.live.size === 0, 10_000, "all closed");
    assert.equal(proxy.server.tracker.entryPoints.get("tcp")!.closed, n);
  } finally {
    proxy.close();
    await echo.close();
  }
});

test("half-close: backend answer after client EOF reaches the client", async () => {
  // The backend answers only once it has read the client's end of stream.
  const backend = await netServer((socket) => {
    const chunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on(
      "end",
      () => socket.end(`got ${Buffer.concat(chunks).length} bytes: ${Buffer.concat(chunks)}`),
    );
  });
  const proxy = await proxyTo([backend.port], { terminationDelay: -1 });
  try {
    const client = await connect(proxy.port("tcp"));
    const got = readToEnd(client);
    client.end("question");
    assert.equal(
      (await deadline(got, 5000, "answer after EOF")).toString(),
      "got 8 bytes: question",
    );
  } finally {
    proxy.close();
    await backend.close();
  }
});

test("half-close: client keeps sending after the backend ended its writes", async () => {
  let backendGot = "";
  const backend = await netServer((socket) => {
    socket.end("banner\n"); // the backend is done talking at once
    const chunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("end", () => backendGot = Buffer.concat(chunks).toString());
  });
  const proxy = await proxyTo([backend.port], { terminationDelay: -1 });
  try {
    const client = await connect(proxy.port("tcp"));
    const got = readToEnd(client);
    assert.equal((await deadline(got, 5000, "banner then EOF")).toString(), "banner\n");
    // The client's reading side has ended; its writes still reach the backend.
    client.write("still ");
    client.end("talking");
    await waitFor(() => backendGot !== "", 5000, "backend reads the client's late bytes");
    assert.equal(backendGot, "still talking");
  } finally {
    proxy.close();
    await backend.close();
  }
});

test("terminationDelay: a silent direction is closed after one direction ends", async () => {
  const backends: import("node:net").Socket[] = [];
  const backend = await netServer((socket) => {
    socket.on("error", () => {});
    backends.push(socket); // never answers, never ends its writes
  });
  const proxy = await proxyTo([backend.port], { terminationDelay: 200 });
  const reasons: string[] = [];
  proxy.server.tracker.onClosed((c) => reasons.push(c.reason));
  try {
    const client = await connect(proxy.port("tcp"));
    client.on("error", () => {});
    client.end("bye");
    await deadline(ended(client), 5000, "client closed by termination delay");
    assert.deepEqual(reasons, ["termination delay"]);
    // The backend side is gone too: its writes now fail and its socket closes.
    const b = backends[0];
    const gone = new Promise<void>((resolve) => b.once("close", () => resolve()));
    const poke = setInterval(() => b.writable && b.write("late"), 20);
    await deadline(gone, 5000, "backend connection closed").finally(() => clearInterval(poke));
  } finally {
    proxy.close();
    await backend.close();
  }
});

test("terminationDelay does not cut off a direction that is still carrying bytes", async () => {
  const size = 16 * 1024 * 1024;
  const backend = await netServer((socket) => {
    socket.resume();
    socket.on("end", () => {
      // Trickle the answer slower than the delay would allow in one piece.
      let sent = 0;
      const step = () => {
        if (sent >= size) return socket.end();
        const n = Math.min(1024 * 1024, size - sent);
        sent += n;
        socket.write(new Uint8Array(n), () => setTimeout(step, 30));
      };
      step();
    });
  });
  const proxy = await proxyTo([backend.port], { terminationDelay: 100 });
  try {
    const client = await connect(proxy.port("tcp"));
    const got = readToEnd(client);
    client.end("send it");
    assert.equal((await deadline(got, 20_000, "the whole answer")).length, size);
  } finally {
    proxy.close();
    await backend.close();
  }
});

test("early bytes: a client that writes at once loses nothing", async () => {
  const echo = await echoServer();
  const proxy = await proxyTo([echo.port]);
  try {
    const results = await Promise.all(Array.from({ length: 50 }, async (_, i) => {
      const payload = pattern(100_000, i + 3);
      const net = await import("node:net");
      // Written before the connect completes: node queues it and sends it with the handshake.
      const client = net.connect({
        port: proxy.port("tcp"),
        host: "127.0.0.1",
        allowHalfOpen: true,
      });
      client.end(payload);
      const got = await deadline(readToEnd(client), 10_000, "echo of early bytes");
      return sha256(got) === sha256(payload);
    }));
    assert.deepEqual(results.filter((ok) => !ok), []);
  } finally {
    proxy.close();
    await echo.close();
  }
});

test("a backend that speaks first is heard before the client says anything", async () => {
  const backend = await netServer((socket) => {
    socket.write("220 ready\r\n");
    socket.on("data", (c: Buffer) => socket.end(`echo ${c}`));
  });
  const proxy = await proxyTo([backend.port]);
  try {
    const client = await connect(proxy.port("tcp"));
    assert.equal(
      (await deadline(readBytes(client, 11), 5000, "banner")).toString(),
      "220 ready\r\n",
    );
    const rest = readToEnd(client);
    client.write("x");
    assert.equal((await deadline(rest, 5000, "echo")).toString(), "echo x");
    client.destroy();
  } finally {
    proxy.close();
    await backend.close();
  }
});

test("dial failure: the client is closed promptly and the next connection is served", async () => {
  const refused = await netServer(() => {});
  const deadPort = refused.port;
  await refused.close();
  const proxy = await proxyTo([deadPort]);
  try {
    const client = await connect(proxy.port("tcp"));
    client.on("error", () => {});
    await deadline(ended(client), 5000, "client closed after refused dial");
    assert.ok(
      proxy.lines.some((l) => l.includes("dial failed") && l.includes(`127.0.0.1:${deadPort}`)),
    );
    assert.ok(proxy.lines.some((l) => /client=127\.0\.0\.1:\d+/.test(l)));
    assert.equal(proxy.server.tracker.services.get("targets")!.dialErrors, 1);
    // The listener still works.
    const second = await connect(proxy.port("tcp"));
    second.on("error", () => {});
    await deadline(ended(second), 5000, "second client closed too");
  } finally {
    proxy.close();
  }
});

test("dial timeout: a backend that never answers costs the client only the timeout", async () => {
  const hole = await blackhole();
  const proxy = await proxyTo([hole.port], { dialTimeout: 300 });
  try {
    const client = await connect(proxy.port("tcp"));
    client.on("error", () => {});
    await deadline(ended(client), 5000, "client closed after dial timeout");
    assert.ok(
      proxy.lines.some((l) => l.includes("dial failed") && l.includes("ETIMEDOUT")),
      proxy.lines.join(""),
    );
    assert.equal(proxy.server.tracker.services.get("targets")!.dialErrors, 1);
  } finally {
    proxy.close();
    hole.close();
  }
});

test("a client that leaves while its backend dial is pending: the dial is abandoned", async () => {
  const hole = await blackhole();
  const proxy = await proxyTo([hole.port], { dialTimeout: 20_000 });
  const reasons: string[] = [];
  proxy.server.tracker.onClosed((c) => reasons.push(c.reason));
  try {
    const client = await connect(proxy.port("tcp"));
    await waitFor(() => proxy.lines.some((l) => l.includes("accepted")), 5000, "accept");
    client.destroy(); // leave before any byte, while the dial hangs
    // Well before the 20 s dial timeout, the connection is over and nothing was dialled.
    await waitFor(() => reasons.length === 1, 5000, "connection abandoned");
    assert.deepEqual(reasons, ["client left during dial"]);
    assert.equal(proxy.server.tracker.services.get("targets"), undefined);
  } finally {
    proxy.close();
    hole.close();
  }
});

test("a client that half-closes after sending, during the dial, still gets its answer", async () => {
  const backend = await netServer((socket) => {
    const chunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("end", () => socket.end(Buffer.concat(chunks).toString().toUpperCase()));
  });
  const proxy = await proxyTo([backend.port], { terminationDelay: -1 });
  try {
    const net = await import("node:net");
    const client = net.connect({ port: proxy.port("tcp"), host: "127.0.0.1", allowHalfOpen: true });
    client.end("ping"); // bytes and FIN before the proxy has even dialled
    assert.equal((await deadline(readToEnd(client), 5000, "answer")).toString(), "PING");
  } finally {
    proxy.close();
    await backend.close();
  }
});
