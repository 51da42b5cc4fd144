import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { test } from "node:test";
import { parseConfig } from "../src/config/load.ts";
import { Logger } from "../src/log/logger.ts";
import { loadRuntime } from "../src/runtime/mod.ts";
import { L4pServer } from "../src/server/server.ts";
import type { Hook } from "../src/tcp/middlewares/hook.ts";
import {
  connect,
  deadline,
  freePort,
  netServer,
  peerOrSkip,
  runL4p,
  type UdpPeer,
  udpPeer,
  waitFor,
} from "./_helpers.ts";
import { readmeHookRun } from "./_readme_hook.ts";
import { POSTGRES_BIN, startPostgres } from "./_peers.ts";

const PSQL = peerOrSkip("psql");

/** A backend that answers every connection with its name, and echoes what follows. */
function named(name: string) {
  return netServer((s) => {
    s.on("error", () => {});
    s.write(name);
    s.pipe(s);
  });
}

/** Sends `request`, resolves to the backend's name (its first byte; "" if l4p closed). */
async function first(port: number, request: string): Promise<{ socket: Socket; said: string }> {
  const socket = await connect(port);
  socket.on("error", () => {});
  socket.write(request);
  const said = await deadline(
    new Promise<string>((resolve) => {
      socket.once("data", (d: Buffer) => resolve(d.toString()[0]));
      socket.once("end", () => resolve(""));
      socket.once("close", () => resolve(""));
    }),
    15_000,
    "an answer or a close",
  );
  return { socket, said };
}

const httpTo = (host: string) => `GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`;

/** A folder with `l4p.yaml` and the hook files given. */
function folder(files: Record<string, string>) {
  const dir = mkdtempSync(`${tmpdir()}/l4p-hooks-`);
  for (const [name, text] of Object.entries(files)) writeFileSync(`${dir}/${name}`, text);
  return dir;
}

const yaml = (web: number, admin: number, a: number, b: number, middleware: string) =>
  `entryPoints:
  web: { address: "127.0.0.1:${web}" }
metrics: { address: "127.0.0.1:${admin}" }
tcp:
  routers:
    all: { entryPoints: [web], rule: "HostSNI(\`*\`)", service: a, middlewares: [pick] }
  middlewares:
    pick: { hook: ${middleware} }
  services:
    a: { loadBalancer: { servers: [{ address: "127.0.0.1:${a}" }] } }
    b: { loadBalancer: { servers: [{ address: "127.0.0.1:${b}" }] } }
`;

// Routes an HTTP request by its Host: b.example to b, unknown.example refused, the rest go on.
const BY_HOST = `import type { HookConnection } from "${import.meta.dirname}/../mod.ts";
export default async function (conn: HookConnection) {
  const { protocol, fields } = await conn.detect();
  if (protocol !== "http") return { refuse: "not http" };
  if (fields.host === "unknown.example") return { refuse: "unknown tenant" };
  if (fields.host === "b.example") return { service: "b" };
}
export const throws = () => { throw new Error("boom"); };
export const hangs = () => new Promise(() => {});
export const nowhere = () => ({ service: "nope" });
`;

test("hooks: a TypeScript function routes, refuses or lets go on; what fails refuses its own connection", async () => {
  const [a, b] = [await named("a"), await named("b")];
  const [web, admin] = [await freePort(), await freePort()];
  const dir = folder({
    "pick.ts": BY_HOST,
    "l4p.yaml": yaml(web, admin, a.port, b.port, "{ file: ./pick.ts }"),
  });
  const l4p = runL4p(["run", "-c", `${dir}/l4p.yaml`]);
  const open: Socket[] = [];
  try {
    await l4p.waitForLine(/listening entryPoint=web/, 30_000);
    await l4p.waitForLine(/admin listening/, 30_000);
    const ask = async (host: string) => {
      const r = await first(web, httpTo(host));
      open.push(r.socket);
      return r.said;
    };
    assert.equal(await ask("a.example"), "a", "nothing answered: the router's service");
    assert.equal(await ask("b.example"), "b", "{ service: b }");
    assert.equal(await ask("unknown.example"), "", "{ refuse }");
    assert.equal((await first(web, "SSH-2.0-x\r\n")).said, "", "not http");
    // The same file's other exports, one at a time, by a reload.
    for (
      const [name, result] of [["throws", "error"], ["hangs", "timeout"], ["nowhere", "error"]]
    ) {
      writeFileSync(
        `${dir}/l4p.yaml`,
        yaml(web, admin, a.port, b.port, `{ file: ./pick.ts, export: ${name}, timeout: 300ms }`),
      );
      const reloaded = (l4p.stderr().match(/configuration reloaded/g) ?? []).length;
      await waitFor(
        () => (l4p.stderr().match(/configuration reloaded/g) ?? []).length > reloaded,
        15_000,
        `reloaded for ${name}`,
      );
      assert.equal(await ask("a.example"), "", `${name}: refused`);
      const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
      assert.match(
        metrics,
        new RegExp(
          `^l4p_tcp_hook_calls_total\\{router="all",middleware="pick",result="${result}"\\} [1-9]`,
          "m",
        ),
        name,
      );
    }
    assert.match(l4p.stderr(), /routing hook failed; connection refused .*error=boom/);
    assert.match(l4p.stderr(), /error="no answer within 300 ms"/);
    // The connections let through earlier were not touched by any of it.
    for (const s of open.filter((s) => !s.destroyed && s.readyState === "open")) {
      s.write("still");
      const echoed = await deadline(
        new Promise<string>((r) => s.once("data", (d: Buffer) => r(d.toString()))),
        10_000,
        "an echo",
      );
      assert.match(echoed, /still/);
    }
  } finally {
    for (const s of open) s.destroy();
    l4p.kill("SIGKILL");
    await l4p.exited;
    await a.close();
    await b.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("hooks: a hook file saved while connections flow is loaded again; live connections keep theirs", async () => {
  const [a, b] = [await named("a"), await named("b")];
  const [web, admin] = [await freePort(), await freePort()];
  const dir = folder({
    "pick.ts": `export default () => ({ service: "a" });\n`,
    "l4p.yaml": yaml(web, admin, a.port, b.port, "{ file: ./pick.ts }"),
  });
  const l4p = runL4p(["run", "-c", `${dir}/l4p.yaml`]);
  try {
    await l4p.waitForLine(/listening entryPoint=web/, 30_000);
    const held = await first(web, "x");
    assert.equal(held.said, "a");
    writeFileSync(`${dir}/pick.ts`, `export default () => ({ service: "b" });\n`);
    await l4p.waitForLine(/configuration reloaded .*why="hook changed"/, 15_000);
    assert.equal((await first(web, "x")).said, "b", "the saved hook decides");
    held.socket.write("more");
    const echoed = await deadline(
      new Promise<string>((r) => held.socket.on("data", (d: Buffer) => r(d.toString()))),
      10_000,
      "the held connection still echoes",
    );
    assert.match(echoed, /more/);
    held.socket.destroy();
    // A hook saved broken is refused like a broken file: the one in force stays.
    writeFileSync(`${dir}/pick.ts`, `export default () => ({ service: "b" }\n`);
    await l4p.waitForLine(/configuration refused; the running one stays in force/, 15_000);
    await l4p.waitForLine(/tcp\.middlewares\.pick\.hook\.file: .*pick\.ts does not load/);
    assert.equal((await first(web, "x")).said, "b");
  } finally {
    l4p.kill("SIGKILL");
    await l4p.exited;
    await a.close();
    await b.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("hooks: l4p check says where a hook that does not load is named", async () => {
  const dir = folder({
    "pick.ts": `export const other = () => undefined;\n`,
    "l4p.yaml": `entryPoints:
  web: { address: "127.0.0.1:1" }
tcp:
  routers:
    all: { rule: "HostSNI(\`*\`)", service: a, middlewares: [missing, wrong] }
  middlewares:
    missing: { hook: { file: ./gone.ts } }
    wrong: { hook: { file: ./pick.ts, export: pick } }
  services:
    a: { loadBalancer: { servers: [{ address: "127.0.0.1:9" }] } }
`,
  });
  try {
    const check = runL4p(["check", `${dir}/l4p.yaml`]);
    assert.equal(await deadline(check.exited, 30_000, "check"), 1);
    const out = check.stderr();
    assert.match(
      out,
      /l4p\.yaml:7:\d+: tcp\.middlewares\.missing\.hook\.file: cannot read .*gone\.ts: ENOENT/,
    );
    assert.match(
      out,
      /l4p\.yaml:8:\d+: tcp\.middlewares\.wrong\.hook\.file: .*pick\.ts exports no function "pick" \(it exports other\)/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("hooks: an embedder gives a hook in code, without a file", async () => {
  const [a, b] = [await named("a"), await named("b")];
  const seen: string[] = [];
  const pick: Hook = (conn) => {
    seen.push(`${conn.entryPoint} ${conn.router} ${conn.client.address}`);
    return { service: "b" };
  };
  const server = new L4pServer({
    runtime: await loadRuntime(),
    logger: new Logger({ write: () => {} }),
    hooks: { pick },
  });
  const { config } = parseConfig(
    yaml(0, 0, a.port, b.port, "{ export: pick }").replace(/metrics:.*\n/, ""),
    "embedded.yaml",
  );
  await server.start(config);
  try {
    assert.equal((await first(server.addressOf("web")!.port, "x")).said, "b");
    assert.deepEqual(seen, ["web all 127.0.0.1"]);
  } finally {
    await server.close();
    await a.close();
    await b.close();
  }
});

test(
  "hooks: Postgres connections go to the server that holds their database (real psql, two real postgres)",
  { skip: (!POSTGRES_BIN || !PSQL) && "needs postgresql and psql (apt-get install postgresql)" },
  async () => {
    const [alpha, beta] = [await startPostgres("alpha"), await startPostgres("beta")];
    const web = await freePort();
    const dir = folder({
      "by_database.ts": `import type { HookConnection } from "${import.meta.dirname}/../mod.ts";
// A plaintext startup message names its database: beta is on its own server.
export default async function (conn: HookConnection) {
  const { protocol, fields } = await conn.detect();
  if (protocol !== "postgres") return { refuse: "not postgres" };
  if (fields.database === "beta") return { service: "beta" };
}
`,
      "l4p.yaml": `entryPoints:
  pg: { address: "127.0.0.1:${web}" }
tcp:
  routers:
    pg: { rule: "HostSNI(\`*\`)", service: alpha, middlewares: [byDatabase] }
  middlewares:
    byDatabase: { hook: { file: ./by_database.ts } }
  services:
    alpha: { loadBalancer: { servers: [{ address: "127.0.0.1:${alpha.port}" }] } }
    beta: { loadBalancer: { servers: [{ address: "127.0.0.1:${beta.port}" }] } }
`,
    });
    const l4p = runL4p(["run", "-c", `${dir}/l4p.yaml`]);
    // The server's port, asked of whichever server psql reached through l4p.
    const portOf = (database: string) =>
      new Promise<string>((resolve, reject) => {
        execFile(
          PSQL as string,
          [
            "-h",
            "127.0.0.1",
            "-p",
            String(web),
            "-U",
            "postgres",
            "-d",
            database,
            "-Atc",
            "show port",
          ],
          // A plaintext start: with TLS first, the database is inside the encrypted part.
          {
            env: { ...process.env, PGSSLMODE: "disable", PGGSSENCMODE: "disable" },
            timeout: 20_000,
          },
          (error, out, err) =>
            error ? reject(new Error(`${error.message}\n${err}`)) : resolve(out.trim()),
        );
      });
    try {
      await l4p.waitForLine(/listening entryPoint=pg/, 30_000);
      assert.equal(await portOf("alpha"), String(alpha.port));
      assert.equal(await portOf("beta"), String(beta.port));
      assert.equal(await portOf("alpha"), String(alpha.port));
    } finally {
      l4p.kill("SIGKILL");
      await l4p.exited;
      alpha.stop();
      beta.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test("hooks: the example of docs/hooks.md lets an active tenant through and refuses another", async () => {
  const got = await readmeHookRun((config, env) =>
    runL4p(["run", "-c", config], undefined, undefined, env)
  );
  assert.deepEqual(got, { "acme.example.com": "oo", "gone.example.com": "" });
});

test("hooks on UDP: asked once per new session, with its first datagram; the session keeps the answer", async () => {
  const a = await udpPeer((peer, data, from) => void peer.send(`a:${data}`, from));
  const b = await udpPeer((peer, data, from) => void peer.send(`b:${data}`, from));
  const [port, admin] = [await freePort(), await freePort()];
  const dir = folder({
    "session.ts": `import type { HookSession } from "${import.meta.dirname}/../mod.ts";
let calls = 0;
export default (s: HookSession) => {
  calls++;
  const first = new TextDecoder().decode(s.first);
  if (first === "calls") return { refuse: String(calls) };
  if (first.startsWith("to-b")) return { service: "b" };
  if (first === "refuse") return { refuse: "asked to" };
};
`,
    "l4p.yaml": `entryPoints:
  u: { address: "127.0.0.1:${port}/udp" }
metrics: { address: "127.0.0.1:${admin}" }
udp:
  routers:
    all: { service: a, middlewares: [pick] }
  middlewares:
    pick: { hook: { file: ./session.ts } }
  services:
    a: { loadBalancer: { servers: [{ address: "127.0.0.1:${a.port}" }] } }
    b: { loadBalancer: { servers: [{ address: "127.0.0.1:${b.port}" }] } }
`,
  });
  const l4p = runL4p(["run", "-c", `${dir}/l4p.yaml`]);
  const clients: UdpPeer[] = [];
  try {
    await l4p.waitForLine(/listening entryPoint=u/, 30_000);
    await l4p.waitForLine(/admin listening/, 30_000);
    const ask = async (first: string, then?: string) => {
      const c = await udpPeer();
      clients.push(c);
      await c.send(first, port);
      if (then !== undefined) await c.send(then, port);
      const got: string[] = [];
      for (let i = 0; i < (then === undefined ? 1 : 2); i++) {
        got.push(await c.next(2000).then((d) => d.data.toString(), () => "(none)"));
      }
      return got.sort(); // UDP keeps no order: the echo's two answers may cross
    };
    assert.deepEqual(await ask("hello", "again"), ["a:again", "a:hello"], "nothing: the service");
    assert.deepEqual(
      await ask("to-b", "more"),
      ["b:more", "b:to-b"],
      "{ service: b }, for the session",
    );
    assert.deepEqual(await ask("refuse"), ["(none)"], "{ refuse }");
    const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
    for (const result of ["pass", "service", "refuse"]) {
      assert.match(
        metrics,
        new RegExp(
          `^l4p_udp_hook_calls_total\\{router="all",middleware="pick",result="${result}"\\} 1$`,
          "m",
        ),
      );
    }
  } finally {
    for (const c of clients) c.close();
    l4p.kill("SIGKILL");
    await l4p.exited;
    a.close();
    b.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("hooks on UDP: a refused client is not asked again while it keeps sending, only once quiet", async () => {
  const a = await udpPeer((peer, data, from) => void peer.send(`a:${data}`, from));
  const [port, admin] = [await freePort(), await freePort()];
  const dir = folder({
    "session.ts": `export default (s: { first: Uint8Array }) =>
  new TextDecoder().decode(s.first) === "refuse" ? { refuse: "asked to" } : undefined;
`,
    "l4p.yaml": `entryPoints:
  u: { address: "127.0.0.1:${port}/udp", udp: { timeout: 4s } }
metrics: { address: "127.0.0.1:${admin}" }
udp:
  routers:
    all: { service: a, middlewares: [pick] }
  middlewares:
    pick: { hook: { file: ./session.ts } }
  services:
    a: { loadBalancer: { servers: [{ address: "127.0.0.1:${a.port}" }] } }
`,
  });
  const l4p = runL4p(["run", "-c", `${dir}/l4p.yaml`]);
  const refused = await udpPeer();
  const other = await udpPeer();
  const metric = async (re: RegExp) => {
    const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
    return Number(text.match(re)?.[1] ?? 0);
  };
  const refusals = () =>
    metric(/^l4p_udp_hook_calls_total\{router="all",middleware="pick",result="refuse"\} (\d+)$/m);
  const dropped = () =>
    metric(/^l4p_udp_entrypoint_dropped_datagrams_total\{entrypoint="u"\} (\d+)$/m);
  const until = async (check: () => Promise<boolean>, what: string) => {
    for (const end = Date.now() + 15_000; !await check();) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  try {
    await l4p.waitForLine(/listening entryPoint=u/, 30_000);
    await l4p.waitForLine(/admin listening/, 30_000);
    await refused.send("refuse", port);
    await until(async () => await refusals() === 1, "the hook refuses");
    const before = await dropped();
    for (let i = 0; i < 5; i++) await refused.send("refuse", port);
    await until(async () => await dropped() >= before + 5, "five datagrams dropped");
    assert.equal(await refusals(), 1, "not asked again while the client keeps sending");
    // Another client is not affected.
    await other.send("hello", port);
    assert.equal((await other.next(5000)).data.toString(), "a:hello");
    // Quiet for longer than the entrypoint's timeout: the next datagram asks again.
    await new Promise((r) => setTimeout(r, 5000));
    await refused.send("refuse", port);
    await until(async () => await refusals() === 2, "asked again after quiet");
  } finally {
    refused.close();
    other.close();
    l4p.kill("SIGKILL");
    await l4p.exited;
    a.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
