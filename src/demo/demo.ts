/** `l4p demo`: two small backends on loopback and l4p in front, so a newcomer sees traffic flow. */
import { formatAddr, parseHostPort } from "../config/address.ts";
import { type Config, DEFAULTS, emptyConfig } from "../config/model.ts";
import type { Logger } from "../log/logger.ts";
import type { Runtime, TcpConn, TcpListener } from "../runtime/types.ts";
import type { L4pServer } from "../server/server.ts";
import { UsageError } from "../config/adhoc.ts";

/** The running demo backends and the configuration that fronts them. */
export interface Demo {
  config: Config;
  banner(server: L4pServer): string;
  close(): void;
}

const encoder = new TextEncoder();

/** A backend that greets with its name and echoes every line back in upper case. */
function startBackend(runtime: Runtime, name: string, logger: Logger): TcpListener {
  return runtime.listen({ hostname: "127.0.0.1", port: 0 }, (conn) => {
    serveBackend(conn, name).catch((error) =>
      logger.debug("demo backend connection failed", { backend: name, error: String(error) })
    );
  });
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
export function startDemo(runtime: Runtime, logger: Logger, listen: string): Promise<Demo> {
  const address = parseHostPort(listen, true);
  if (typeof address === "string") throw new UsageError(`--listen ${address}`);
  const a = startBackend(runtime, "A", logger);
  const b = startBackend(runtime, "B", logger);
  const config = emptyConfig();
  config.entryPoints["demo-tcp"] = {
    address,
    protocol: "tcp",
    reusePort: false,
    udp: { timeout: DEFAULTS.udpTimeout, maxSessions: DEFAULTS.udpMaxSessions },
  };
  const server = (l: TcpListener) => ({
    address: { ...l.addr, text: formatAddr(l.addr) },
    weight: 1,
  });
  config.tcp.services.demo = { loadBalancer: { servers: [server(a), server(b)] } };
  config.tcp.routers.demo = { entryPoints: ["demo-tcp"], rule: "HostSNI(`*`)", service: "demo" };
  return Promise.resolve({
    config,
    banner(l4p) {
      const at = l4p.addressOf("demo-tcp");
      const where = at ? formatAddr(at).replace(/^0\.0\.0\.0:/, "127.0.0.1:") : listen;
      const [host, port] = [
        where.slice(0, where.lastIndexOf(":")),
        where.slice(where.lastIndexOf(":") + 1),
      ];
      return `
l4p demo: two backends (A and B) behind l4p on ${where}, balanced round robin.
Try it from another terminal; each connection lands on the next backend:

  nc ${host} ${port}

Type a line and the backend echoes it back in upper case. Ctrl-C stops the demo.

`;
    },
    close() {
      a.close();
      b.close();
    },
  });
}
