/**
 * traefik's Docker provider: containers' labels, read from a real Docker daemon (dockerd on a
 * unix socket of its own, no network; the image is imported from busybox, not pulled), route
 * real connections to the containers (busybox httpd on loopback ports), and follow containers
 * that start and stop.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import process from "node:process";
import { test } from "node:test";
import { containersToTree, type DockerContainer } from "../src/providers/docker.ts";
import { deadline, freePort, peerOrSkip, runL4p } from "./_helpers.ts";

test("labels to configuration: traefik's defaults for services, servers and routers", () => {
  const running = (c: Partial<DockerContainer>): DockerContainer => ({
    Id: "0123456789abcdef",
    State: "running",
    Status: "Up 1 minute",
    HostConfig: { NetworkMode: "bridge" },
    NetworkSettings: { Networks: { bridge: { IPAddress: "172.17.0.5" } } },
    ...c,
  });
  const { tree, problems } = containersToTree([
    // A router without a service: the container's own, named after it, on its one port.
    running({
      Names: ["/pg_primary"],
      Labels: {
        "traefik.tcp.routers.pg.rule": "HostSNI(`*`)",
        "traefik.tcp.routers.pg.entrypoints": "db, db2",
      },
      Ports: [{ PrivatePort: 5432, Type: "tcp" }],
    }),
    // Two containers naming one service: both are its servers; host network: loopback.
    running({
      Names: ["/dns1"],
      Labels: { "traefik.udp.services.dns.loadbalancer.server.port": "53" },
      HostConfig: { NetworkMode: "host" },
    }),
    running({
      Names: ["/dns2"],
      Labels: {
        "traefik.udp.services.dns.loadbalancer.server.port": "5353",
        "traefik.docker.network": "back",
      },
      NetworkSettings: {
        Networks: { front: { IPAddress: "10.0.0.2" }, back: { IPAddress: "10.1.0.2" } },
      },
    }),
    // Left out: disabled, stopped, not yet healthy; and one with no port, said why.
    running({
      Names: ["/off"],
      Labels: { "traefik.enable": "false", "traefik.tcp.routers.x.rule": "HostSNI(`*`)" },
    }),
    running({
      Names: ["/stopped"],
      State: "exited",
      Labels: { "traefik.tcp.routers.y.rule": "HostSNI(`*`)" },
    }),
    running({
      Names: ["/starting"],
      Status: "Up 2 seconds (health: starting)",
      Labels: { "traefik.tcp.routers.z.rule": "HostSNI(`*`)" },
    }),
    running({ Names: ["/noport"], Labels: { "traefik.tcp.routers.w.rule": "HostSNI(`*`)" } }),
    // HTTP labels are layer 7: nothing.
    running({ Names: ["/web"], Labels: { "traefik.http.routers.web.rule": "Host(`a`)" } }),
  ], { exposedByDefault: true });
  assert.deepEqual(tree, {
    tcp: {
      routers: { pg: { rule: "HostSNI(`*`)", entrypoints: ["db", "db2"], service: "pg-primary" } },
      services: { "pg-primary": { loadBalancer: { servers: [{ address: "172.17.0.5:5432" }] } } },
    },
    udp: {
      services: {
        dns: {
          loadbalancer: { servers: [{ address: "127.0.0.1:53" }, { address: "10.1.0.2:5353" }] },
        },
      },
    },
  });
  assert.deepEqual(problems, [
    "container noport: service noport: no port (set traefik.<tcp|udp>.services.noport.loadbalancer.server.port); its labels are left out",
  ]);
  // exposedByDefault false: only traefik.enable=true.
  const only = containersToTree([
    running({
      Names: ["/a"],
      Labels: { "traefik.tcp.routers.a.rule": "HostSNI(`*`)" },
      Ports: [{ PrivatePort: 1 }],
    }),
    running({
      Names: ["/b"],
      Labels: { "traefik.enable": "true", "traefik.tcp.routers.b.rule": "HostSNI(`*`)" },
      Ports: [{ PrivatePort: 2 }],
    }),
  ], { exposedByDefault: false }).tree;
  assert.deepEqual(Object.keys((only.tcp as { routers: object }).routers), ["b"]);
});

const DOCKERD = peerOrSkip("dockerd");
const BUSYBOX = peerOrSkip("busybox");
const ROOT = process.getuid?.() === 0;

/** A request to the Engine API on `socket`; the answer's status and body. */
function engine(
  socket: string,
  method: string,
  path: string,
  body?: Buffer | object,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined
      ? undefined
      : Buffer.isBuffer(body)
      ? body
      : Buffer.from(JSON.stringify(body));
    const req = http.request({
      socketPath: socket,
      method,
      path,
      headers: data
        ? {
          "content-type": Buffer.isBuffer(body) ? "application/x-tar" : "application/json",
          "content-length": data.length,
        }
        : {},
    }, (res) => {
      let text = "";
      res.on("data", (c) => text += c);
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on("error", reject);
    req.end(data);
  });
}

/** Retries `check` (a real retry: each try asks again) until it holds or `ms` pass. */
async function eventually(check: () => Promise<boolean>, ms: number, what: string) {
  const end = Date.now() + ms;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The body a GET through `port` returns, or undefined when the connection gives none. */
function get(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = http.get(
      { host: "127.0.0.1", port, path: "/", timeout: 3000, agent: false },
      (res) => {
        let text = "";
        res.on("data", (c) => text += c);
        res.on("end", () => resolve(text.trim()));
        res.on("error", () => resolve(undefined));
      },
    );
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(undefined));
  });
}

test(
  "providers.docker: a real daemon's containers are routed by their labels; started and stopped ones are followed",
  {
    skip: (!DOCKERD || !BUSYBOX) ? "needs dockerd and busybox" : !ROOT && "dockerd needs root",
  },
  async () => {
    const dir = mkdtempSync(`${tmpdir()}/l4p-docker-`);
    const socket = `${dir}/docker.sock`;
    const daemon = spawn(DOCKERD as string, [
      "-H",
      `unix://${socket}`,
      "--data-root",
      `${dir}/data`,
      "--exec-root",
      `${dir}/exec`,
      "--pidfile",
      `${dir}/docker.pid`,
      "--iptables=false",
      "--bridge=none",
      "--storage-driver=vfs",
    ], { stdio: ["ignore", "ignore", "pipe"] });
    let daemonLog = "";
    daemon.stderr.on("data", (c) => daemonLog = (daemonLog + c).slice(-4000));
    const started: string[] = [];
    let l4p: ReturnType<typeof runL4p> | undefined;
    try {
      await eventually(
        async () => (await engine(socket, "GET", "/_ping")).status === 200,
        60_000,
        "dockerd",
      ).catch((e) => {
        throw new Error(`${e.message}; dockerd said: ${daemonLog}`);
      });
      // An image of busybox alone, with a page per container written at start.
      const root = `${dir}/image`;
      mkdirSync(`${root}/bin`, { recursive: true });
      execFileSync("cp", [BUSYBOX as string, `${root}/bin/busybox`]);
      const tar = execFileSync("tar", ["-C", root, "-c", "."], { maxBuffer: 64 * 1024 * 1024 });
      const imported = await engine(
        socket,
        "POST",
        "/v1.41/images/create?fromSrc=-&repo=l4pbox&tag=t",
        tar,
      );
      assert.equal(imported.status, 200, imported.text);
      const run = async (name: string, port: number, labels: Record<string, string>) => {
        const created = await engine(socket, "POST", `/v1.41/containers/create?name=${name}`, {
          Image: "l4pbox:t",
          Cmd: [
            "/bin/busybox",
            "sh",
            "-c",
            `mkdir -p /www && echo ${name} > /www/index.html && exec /bin/busybox httpd -f -p 127.0.0.1:${port} -h /www`,
          ],
          Labels: labels,
          HostConfig: { NetworkMode: "host" },
        });
        assert.equal(created.status, 201, created.text);
        const id = JSON.parse(created.text).Id as string;
        started.push(id);
        const start = await engine(socket, "POST", `/v1.41/containers/${id}/start`);
        assert.equal(start.status, 204, start.text);
        return id;
      };
      const [a, b, portOne, portTwo] = [
        await freePort(),
        await freePort(),
        await freePort(),
        await freePort(),
      ];
      const one = await run(`one`, portOne, {
        "traefik.enable": "true",
        "traefik.tcp.routers.one.rule": "HostSNI(`*`)",
        "traefik.tcp.routers.one.entrypoints": "a",
        "traefik.tcp.services.one.loadbalancer.server.port": String(portOne),
      });
      // Not enabled (exposedByDefault: false): never served.
      await run(`hidden`, await freePort(), { "traefik.tcp.routers.hidden.rule": "HostSNI(`*`)" });
      // No port anywhere: left out, said once.
      await run(`noport`, await freePort(), {
        "traefik.enable": "true",
        "traefik.tcp.routers.noport.rule": "HostSNI(`*`)",
        "traefik.tcp.routers.noport.entrypoints": "b",
      });
      writeFileSync(
        `${dir}/traefik.yml`,
        `entryPoints:
  a: { address: "127.0.0.1:${a}" }
  b: { address: "127.0.0.1:${b}" }
providers:
  providersThrottleDuration: 100ms
  docker:
    endpoint: "unix://${socket}"
    exposedByDefault: false
`,
      );
      l4p = runL4p(["run", "-c", `${dir}/traefik.yml`]);
      await l4p.waitForLine(/listening .*entryPoint=b/);
      await eventually(async () => (await get(a)) === "one", 30_000, "container one through a");
      assert.match(
        l4p.stderr(),
        /provider items left out .*container noport: service noport: no port/,
      );
      // A container started now is served once the daemon says so.
      await run(`two`, portTwo, {
        "traefik.enable": "true",
        "traefik.tcp.routers.two.rule": "HostSNI(`*`)",
        "traefik.tcp.routers.two.entrypoints": "b",
        "traefik.tcp.services.two.loadbalancer.server.port": String(portTwo),
      });
      await eventually(async () => (await get(b)) === "two", 30_000, "container two through b");
      // A container removed is no longer routed to.
      const removed = await engine(socket, "DELETE", `/v1.41/containers/${one}?force=true`);
      assert.equal(removed.status, 204, removed.text);
      await eventually(async () => (await get(a)) === undefined, 30_000, "one's router gone");
      assert.equal(await get(b), "two", "the other container's router is untouched");
      assert.doesNotMatch(l4p.stderr(), /hidden/);
    } finally {
      l4p?.kill("SIGTERM");
      if (l4p) await deadline(l4p.exited, 20_000, "l4p exits").catch(() => l4p?.kill("SIGKILL"));
      for (const id of started) {
        await engine(socket, "DELETE", `/v1.41/containers/${id}?force=true`).catch(() => {});
      }
      daemon.kill("SIGTERM");
      await new Promise((r) => daemon.exitCode !== null ? r(null) : daemon.once("exit", r));
      // What dockerd mounted under its folders (its network namespace), deepest first.
      const mounts = readFileSync("/proc/mounts", "utf8").split("\n").map((l) => l.split(" ")[1])
        .filter((m) => m?.startsWith(`${dir}/`)).sort().reverse();
      for (const m of mounts) {
        try {
          execFileSync("umount", [m], { stdio: "ignore" });
        } catch { /* already gone */ }
      }
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
