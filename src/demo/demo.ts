/** `l4p demo`: two small backends on loopback and l4p in front, so a newcomer sees traffic flow. */
import { formatAddr } from "../config/address.ts";
import { parseConfig } from "../config/load.ts";
import type { Config } from "../config/model.ts";
import type { Logger } from "../log/logger.ts";
import type { DatagramSocket, Runtime, TcpConn, TcpListener } from "../runtime/types.ts";
import type { L4pServer } from "../server/server.ts";

/**
 * The configuration the demo runs, an ordinary l4p file: `DEMO_A` and `DEMO_B` stand for the
 * ports the built-in backends get (TCP and UDP alike), `DEMO_LISTEN` for `--listen`.
 */
export const DEMO_CONFIG = `# l4p demo: TCP and UDP on one port number, each with two servers.
entryPoints:
  demo-tcp:
    address: "DEMO_LISTEN"
  demo-udp:
    address: "DEMO_LISTEN/udp"
    udp:
      timeout: 30s
udp:
  routers:
    demo:
      entryPoints: [demo-udp]
      service: demo
  services:
    demo:
      loadBalancer:
        servers:
          - address: "127.0.0.1:DEMO_A"   # built-in backend A
          - address: "127.0.0.1:DEMO_B"   # built-in backend B
tcp:
  routers:
    demo:
      entryPoints: [demo-tcp]
      rule: "HostSNI(\`*\`)"
      service: demo
  services:
    demo:
      loadBalancer:
        servers:
          - address: "127.0.0.1:DEMO_A"   # built-in backend A
          - address: "127.0.0.1:DEMO_B"   # built-in backend B
        serversTransport: demo
  serversTransports:
    demo:
      dialTimeout: 2s
      terminationDelay: 100ms
`;

/** The running demo backends and the configuration that fronts them. */
export interface Demo {
  /** The demo's configuration file, with the real ports filled in. */
  text: string;
  config: Config;
  banner(server: L4pServer): string;
  close(): void;
}

const encoder = new TextEncoder();

/** A backend that greets with its name and echoes every line back in upper case. */
function startBackend(runtime: Runtime, name: string, logger: Logger, port = 0): TcpListener {
  return runtime.listen({ hostname: "127.0.0.1", port }, (conn) => {
    serveBackend(conn, name).catch((error) =>
      logger.debug("demo backend connection failed", { backend: name, error: String(error) })
    );
  });
}

/** The UDP side of a backend, on the same port number: each datagram comes back upper-cased. */
function startUdpBackend(runtime: Runtime, name: string, port: number): Promise<DatagramSocket> {
  const decoder = new TextDecoder();
  const socket: Promise<DatagramSocket> = runtime.bindDatagram({
    hostname: "127.0.0.1",
    port,
    onMessage(data, from) {
      const text = `${name}: ${decoder.decode(data).toUpperCase()}`;
      // A demo answer that cannot be sent is simply lost, as UDP allows.
      socket.then((s) => s.send(encoder.encode(text), from, () => {}));
    },
  });
  return socket;
}

async function serveBackend(conn: TcpConn, name: string): Promise<void> {
  const w = conn.write(encoder.encode(`hello from demo backend ${name}; type a line\n`));
  if (w) await w;
  const decoder = new TextDecoder();
  for (;;) {
    const chunk = await conn.read();
    if (chunk === null) break;
    const text = decoder.decode(chunk, { stream: true });
    const out = conn.write(encoder.encode(`${name}: ${text.toUpperCase()}`));
    if (out) await out;
  }
  conn.closeWrite();
  conn.close();
}

/** Starts the demo backends and returns the configuration to run in front of them. */
export async function startDemo(runtime: Runtime, logger: Logger, listen: string): Promise<Demo> {
  const a = startBackend(runtime, "A", logger);
  const b = startBackend(runtime, "B", logger);
  let udp: DatagramSocket[];
  try {
    udp = [
      await startUdpBackend(runtime, "A", a.addr.port),
      await startUdpBackend(runtime, "B", b.addr.port),
    ];
  } catch (error) {
    a.close();
    b.close();
    throw error;
  }
  const text = DEMO_CONFIG.replaceAll("DEMO_LISTEN", listen)
    .replaceAll("DEMO_A", String(a.addr.port))
    .replaceAll("DEMO_B", String(b.addr.port));
  let config: Config;
  try {
    config = parseConfig(text, "(demo)").config;
  } catch (error) {
    a.close();
    b.close();
    for (const s of udp) s.close();
    throw error;
  }
  return {
    text,
    config,
    banner(l4p) {
      const shown = (entryPoint: string) => {
        const at = l4p.addressOf(entryPoint);
        const where = at ? formatAddr(at).replace(/^0\.0\.0\.0:/, "127.0.0.1:") : listen;
        const colon = where.lastIndexOf(":");
        return `${where.slice(0, colon)} ${where.slice(colon + 1)}`;
      };
      return `
l4p demo: two backends (A and B) behind l4p, TCP and UDP, balanced round robin.
Try it from another terminal; each connection (or UDP client) lands on the next backend:

  nc ${shown("demo-tcp")}        # TCP
  nc -u ${shown("demo-udp")}     # UDP: each client address is a session

Type a line and the backend echoes it back in upper case. Ctrl-C stops the demo.
This is an ordinary l4p configuration: \`l4p demo --print-config\` shows it.

`;
    },
    close() {
      a.close();
      b.close();
      for (const s of udp) s.close();
    },
  };
}
