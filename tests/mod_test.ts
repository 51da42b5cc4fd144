import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import * as l4p from "../mod.ts";
import { connect, deadline, echoServer, readToEnd } from "./_helpers.ts";

test("the library API starts a server from a configuration text and proxies through it", async () => {
  const echo = await echoServer();
  const { config } = l4p.parseConfig(
    `entryPoints: { web: { address: "127.0.0.1:0" } }
tcp:
  routers: { r: { rule: "HostSNI(\`*\`)", service: s } }
  services: { s: { loadBalancer: { servers: [{ address: "127.0.0.1:${echo.port}" }] } } }
`,
    "inline.yaml",
  );
  const server = new l4p.L4pServer({
    runtime: await l4p.loadRuntime(),
    logger: new l4p.Logger({ level: "error" }),
  });
  await server.start(config);
  try {
    const client = await connect(server.addressOf("web")!.port);
    const got = readToEnd(client);
    client.end("via mod.ts");
    assert.equal((await deadline(got, 5000, "echo")).toString(), "via mod.ts");
  } finally {
    server.close();
    await echo.close();
  }
});

test("server.close() resolves once its ports refuse connections", async () => {
  const { config } = l4p.parseConfig(
    `entryPoints: { web: { address: "127.0.0.1:0" } }
tcp:
  routers: { r: { rule: "HostSNI(\`*\`)", service: s } }
  services: { s: { loadBalancer: { servers: [{ address: "127.0.0.1:9" }] } } }
`,
    "inline.yaml",
  );
  const server = new l4p.L4pServer({
    runtime: await l4p.loadRuntime(),
    logger: new l4p.Logger({ level: "error" }),
  });
  await server.start(config);
  const port = server.addressOf("web")!.port;
  await server.close();
  // A connect that blocks this process, so the runtime gets no event-loop turn in between: on
  // Deno the port kept accepting until the cancelled accept had been polled.
  const probe = spawnSync("python3", [
    "-c",
    `import socket,sys; sys.exit(socket.socket().connect_ex(("127.0.0.1", ${port})) == 0)`,
  ]);
  assert.equal(probe.status, 0, `port ${port} still accepted a connection after close()`);
});
