/// <reference lib="deno.unstable" />
/**
 * A real QUIC server or client for the tests, on Deno's QUIC (`--unstable-net`), run as its own
 * process by the tests of either runtime:
 *
 *   deno run -A --unstable-net tests/_quic_peer.ts server PORT NAME CERT KEY
 *     answers each bidirectional stream with `NAME:` and what the stream said; prints
 *     "listening" once it does.
 *   deno run -A --unstable-net tests/_quic_peer.ts client PORT SERVERNAME CA
 *     connects to 127.0.0.1:PORT for SERVERNAME (verified against CA), says "ping" on a stream,
 *     prints the answer.
 */
const [mode, port, name, a, b] = Deno.args;
const ALPN = ["l4p-test"];
const text = new TextEncoder();

if (mode === "server") {
  const endpoint = new Deno.QuicEndpoint({ hostname: "127.0.0.1", port: Number(port) });
  const listener = endpoint.listen({
    cert: Deno.readTextFileSync(a),
    key: Deno.readTextFileSync(b),
    alpnProtocols: ALPN,
  });
  console.log("listening");
  for await (const incoming of listener) {
    (async () => {
      const conn = await incoming.accept();
      for await (const stream of conn.incomingBidirectionalStreams) {
        const said = await new Response(stream.readable).text();
        const w = stream.writable.getWriter();
        await w.write(text.encode(`${name}:${said}`));
        await w.close();
      }
    })().catch(() => {});
  }
} else {
  const conn = await Deno.connectQuic({
    hostname: "127.0.0.1",
    port: Number(port),
    serverName: name,
    caCerts: [Deno.readTextFileSync(a)],
    alpnProtocols: ALPN,
  });
  const stream = await conn.createBidirectionalStream();
  const w = stream.writable.getWriter();
  await w.write(text.encode("ping"));
  await w.close();
  console.log(await new Response(stream.readable).text());
  conn.close();
  Deno.exit(0);
}
