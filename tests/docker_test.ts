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
import { parseConfig } from "../src/config/load.ts";
import { parseConstraint } from "../src/providers/constraints.ts";
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

test("constraints: traefik's Label, LabelRegex, &&, ||, ! and parentheses; a bad one is a located error", () => {
  const labels = { team: "edge", env: "prod-eu", "traefik.enable": "true" };
  for (
    const [expr, want] of [
      ["Label(`team`, `edge`)", true],
      ["Label(`team`, `core`)", false],
      ["LabelRegex(`env`, `^prod`)", true],
      ["LabelRegex(`env`, `eu`)", true], // unanchored, as Go's MatchString
      ["Label(`team`, `edge`) && !LabelRegex(`env`, `^dev`)", true],
      ["Label(`team`, `core`) || Label(`env`, `prod-eu`)", true],
      ["!(Label(`team`, `edge`) || Label(`x`, `y`)) && Label(`team`, `edge`)", false],
      ["Label(`missing`, ``)", true], // an absent label reads as empty
      ['Label("team", "edge")', true],
    ] as const
  ) assert.equal(parseConstraint(expr)(labels), want, expr);
  assert.throws(() => parseConstraint("Label(`team`)"), /at character 13: expected ,/);
  assert.throws(
    () => parseConstraint("Tag(`x`)"),
    /unknown function Tag \(Label and LabelRegex are\)/,
  );
  assert.throws(() => parseConstraint("LabelRegex(`a`, `(`)"), /at character 17: not a regexp/);
  assert.throws(() => parseConstraint("Label(`a`, `b`) &&"), /expected Label/);
  assert.throws(
    () =>
      parseConfig(
        `entryPoints: { e: { address: "127.0.0.1:0" } }\nproviders:\n  docker: { constraints: "Label(\`a\`" }\n`,
        "c.yaml",
      ),
    /c\.yaml:3:\d+: providers\.docker\.constraints: at character 10: expected ,/,
  );
  // In the provider: only the containers the expression keeps.
  const container = (name: string, team: string): DockerContainer => ({
    Id: name,
    Names: [`/${name}`],
    State: "running",
    HostConfig: { NetworkMode: "host" },
    Labels: { team, [`traefik.tcp.routers.${name}.rule`]: "HostSNI(`*`)" },
    Ports: [{ PrivatePort: 80 }],
  });
  const { tree } = containersToTree([container("a", "edge"), container("b", "core")], {
    exposedByDefault: true,
    constraints: "Label(`team`, `edge`)",
  });
  assert.deepEqual(Object.keys((tree.tcp as { routers: object }).routers), ["a"]);
});

test("useBindPortIP: the published host address and port where one is bound, else the container's own", () => {
  const c = (ip: string): DockerContainer => ({
    Id: "x",
    Names: ["/db"],
    State: "running",
    NetworkSettings: { Networks: { bridge: { IPAddress: "172.17.0.9" } } },
    Labels: { "traefik.tcp.services.db.loadbalancer.server.port": "5432" },
    Ports: [{ IP: ip, PrivatePort: 5432, PublicPort: 15432, Type: "tcp" }],
  });
  const address = (ip: string, useBindPortIP: boolean) =>
    (containersToTree([c(ip)], { exposedByDefault: true, useBindPortIP }).tree as {
      tcp: { services: { db: { loadbalancer: { servers: { address: string }[] } } } };
    }).tcp.services.db.loadbalancer.servers[0].address;
  assert.equal(address("10.0.0.7", true), "10.0.0.7:15432");
  assert.equal(address("0.0.0.0", true), "172.17.0.9:5432", "bound to every address: its own");
  assert.equal(address("10.0.0.7", false), "172.17.0.9:5432");
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
  "providers.docker: a real daemon's containers are routed by their labels; started, stopped and healed ones are followed, through a daemon restart",
  {
    skip: (!DOCKERD || !BUSYBOX) ? "needs dockerd and busybox" : !ROOT && "dockerd needs root",
  },
  async () => {
    const dir = mkdtempSync(`${tmpdir()}/l4p-docker-`);
    const socket = `${dir}/docker.sock`;
    // --live-restore: containers outlive a daemon that stops, as on a box where dockerd restarts.
    let daemonLog = "";
    const startDaemon = () => {
      const d = spawn(DOCKERD as string, [
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
        "--live-restore",
      ], { stdio: ["ignore", "ignore", "pipe"] });
      d.stderr.on("data", (c) => daemonLog = (daemonLog + c).slice(-4000));
      return d;
    };
    const stopDaemon = async (d: ReturnType<typeof spawn>) => {
      d.kill("SIGTERM");
      await new Promise((r) => d.exitCode !== null ? r(null) : d.once("exit", r));
    };
    let daemon = startDaemon();
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
      const run = async (
        name: string,
        port: number,
        labels: Record<string, string>,
        healthcheck?: object,
      ) => {
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
          Healthcheck: healthcheck,
        });
        assert.equal(created.status, 201, created.text);
        const id = JSON.parse(created.text).Id as string;
        started.push(id);
        const start = await engine(socket, "POST", `/v1.41/containers/${id}/start`);
        assert.equal(start.status, 204, start.text);
        return id;
      };
      const [a, b, c, portOne, portTwo] = [
        await freePort(),
        await freePort(),
        await freePort(),
        await freePort(),
        await freePort(),
      ];
      let [portThree, portSick, portLate] = [0, 0, 0];
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
  c: { address: "127.0.0.1:${c}" }
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
      // A second container naming the same service is its second server.
      await run(`three`, await freePort().then((p) => portThree = p), {
        "traefik.enable": "true",
        "traefik.tcp.services.two.loadbalancer.server.port": String(portThree),
      });
      const seen = new Set<string | undefined>();
      await eventually(
        async () => {
          seen.add(await get(b));
          return seen.has("two") && seen.has("three");
        },
        30_000,
        "both servers of service two",
      );
      // A container whose health check fails is left out until it passes.
      const sick = await run(`sick`, await freePort().then((p) => portSick = p), {
        "traefik.enable": "true",
        "traefik.tcp.routers.sick.rule": "HostSNI(`*`)",
        "traefik.tcp.routers.sick.entrypoints": "c",
        "traefik.tcp.services.sick.loadbalancer.server.port": String(portSick),
      }, {
        Test: ["CMD", "/bin/busybox", "test", "-f", "/ok"],
        Interval: 300_000_000,
        Timeout: 1_000_000_000,
        Retries: 1,
      });
      await eventually(
        async () => {
          const state = JSON.parse(
            (await engine(socket, "GET", `/v1.41/containers/${sick}/json`)).text,
          );
          return state.State?.Health?.Status === "unhealthy";
        },
        30_000,
        "the container found unhealthy",
      );
      await eventually(async () => /store read .*keys=/.test(l4p!.stderr()), 5000, "a read");
      assert.equal(await get(c), undefined, "an unhealthy container gets no traffic");
      const exec = await engine(socket, "POST", `/v1.41/containers/${sick}/exec`, {
        Cmd: ["/bin/busybox", "touch", "/ok"],
      });
      await engine(socket, "POST", `/v1.41/exec/${JSON.parse(exec.text).Id}/start`, {
        Detach: true,
      });
      await eventually(
        async () => (await get(c)) === "sick",
        30_000,
        "the container, healthy, served",
      )
        .catch(async (e) => {
          const state = (await engine(socket, "GET", `/v1.41/containers/${sick}/json`)).text;
          throw new Error(
            `${e.message}: ${exec.text} ${state.slice(0, 1500)}\n${l4p!.stderr().slice(-3000)}`,
          );
        });
      // The daemon stops: l4p keeps serving what it had; back, it catches up.
      await stopDaemon(daemon);
      await l4p.waitForLine(/store unreachable; the last good configuration stays/, 30_000);
      assert.equal(await get(c), "sick", "served while the daemon is away");
      daemon = startDaemon();
      await eventually(
        async () => (await engine(socket, "GET", "/_ping")).status === 200,
        60_000,
        "dockerd again",
      );
      await run(`late`, await freePort().then((p) => portLate = p), {
        "traefik.enable": "true",
        "traefik.tcp.routers.late.rule": "HostSNI(`*`)",
        "traefik.tcp.routers.late.entrypoints": "a",
        "traefik.tcp.services.late.loadbalancer.server.port": String(portLate),
      });
      await eventually(
        async () => (await get(a)) === "late",
        30_000,
        "a container after the restart",
      );
    } finally {
      l4p?.kill("SIGTERM");
      if (l4p) await deadline(l4p.exited, 20_000, "l4p exits").catch(() => l4p?.kill("SIGKILL"));
      for (const id of started) {
        await engine(socket, "DELETE", `/v1.41/containers/${id}?force=true`).catch(() => {});
      }
      await stopDaemon(daemon);
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
