/**
 * A bare Deno TCP proxy: `Deno.listen` plus `Deno.connect`, a read-write loop each way with
 * half-close, and nothing else (no routing, balancing, accounting or timeouts). Not part of l4p:
 * the bench's `bare-deno` subject, the floor of what a proxy on Deno costs per connection.
 *
 *   deno run -A scripts/bare_deno.ts LISTEN_PORT TARGET_PORT
 */
const [port, target] = [Number(Deno.args[0]), Number(Deno.args[1])];

async function pump(from: Deno.TcpConn, to: Deno.TcpConn): Promise<void> {
  const buf = new Uint8Array(16384);
  try {
    for (;;) {
      const n = await from.read(buf);
      if (n === null) break;
      let off = 0;
      while (off < n) off += await to.write(buf.subarray(off, n));
    }
  } catch {
    // A reset: both sides are closed below.
  }
  await to.closeWrite().catch(() => {});
}

async function serve(client: Deno.TcpConn): Promise<void> {
  let backend: Deno.TcpConn;
  try {
    backend = await Deno.connect({ hostname: "127.0.0.1", port: target });
  } catch {
    client.close();
    return;
  }
  await Promise.all([pump(client, backend), pump(backend, client)]);
  client.close();
  backend.close();
}

for await (const client of Deno.listen({ hostname: "127.0.0.1", port })) serve(client);
