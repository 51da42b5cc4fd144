/// <reference types="bun-types" />
/**
 * A bare Bun TCP proxy: `Bun.listen` plus `Bun.connect`, half-close and nothing else (no routing,
 * balancing, accounting, timeouts or backpressure). Not part of l4p: the bench's `bare-bun`
 * subject, the floor of what a proxy on Bun costs per connection.
 *
 *   bun scripts/bare_bun.ts LISTEN_PORT TARGET_PORT
 */
type Side = { peer?: Bun.Socket<Side>; pending?: Uint8Array[]; ended?: boolean };

const [port, target] = [Number(process.argv[2]), Number(process.argv[3])];

Bun.listen<Side>({
  hostname: "127.0.0.1",
  port,
  allowHalfOpen: true,
  socket: {
    open(client) {
      client.data = {};
      Bun.connect<Side>({
        hostname: "127.0.0.1",
        port: target,
        allowHalfOpen: true,
        data: { peer: client },
        socket: {
          open(backend) {
            client.data.peer = backend;
            for (const chunk of client.data.pending ?? []) backend.write(chunk);
            if (client.data.ended) backend.shutdown();
          },
          data(_backend, data) {
            client.write(data);
          },
          end(backend) {
            backend.data.ended = true;
            if (client.data.ended) {
              backend.end();
              client.end();
            } else client.shutdown();
          },
          close() {
            client.end();
          },
          error() {},
        },
      }).catch(() => client.end());
    },
    data(client, data) {
      if (client.data.peer) client.data.peer.write(data);
      else (client.data.pending ??= []).push(data);
    },
    end(client) {
      client.data.ended = true;
      const backend = client.data.peer;
      if (!backend) return;
      if (backend.data.ended) {
        backend.end();
        client.end();
      } else backend.shutdown();
    },
    close(client) {
      client.data.peer?.end();
    },
    error() {},
  },
});
