/**
 * traefik's Docker provider: containers' labels, read from a real Docker daemon (dockerd on a
 * unix socket of its own, no network; the image is imported from busybox, not pulled), route
 * real connections to the containers (busybox httpd on loopback ports), and follow containers
 * that start and stop.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import process from "node:process";
import { test } from "node:test";
import { parseConfig } from "../src/config/load.ts";
import { parseConstraint } from "../src/providers/constraints.ts";
import { containersToTree, type DockerContainer } from "../src/providers/docker.ts";
import { makeTlsFixtures } from "./_tls.ts";
import { assemble } from "../scripts/image.ts";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { deadline, freePort, peerOrSkip, ROOT as REPO, runL4p } from "./_helpers.ts";

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
  // allowEmptyServices: a container whose health check is starting or failing is served too,
  // as traefik does; a stopped one still is not.
  const health = (status: string, name: string) =>
    running({
      Names: [`/${name}`],
      Status: status,
      Labels: { [`traefik.tcp.routers.${name}.rule`]: "HostSNI(`*`)" },
      Ports: [{ PrivatePort: 7 }],
    });
  const all = containersToTree([
    health("Up 2 seconds (health: starting)", "starting"),
    health("Up 1 minute (unhealthy)", "sick"),
    { ...health("Exited (0)", "stopped"), State: "exited" },
  ], { exposedByDefault: true, allowEmptyServices: true });
  assert.deepEqual(Object.keys((all.tree.tcp as { routers: object }).routers), [
    "sick",
    "starting",
  ]);
  const healthyOnly = containersToTree([health("Up 1 minute (unhealthy)", "sick")], {
    exposedByDefault: true,
  });
  assert.deepEqual(healthyOnly.tree, {});
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

/**
 * A Docker daemon of the test's own in `dir` (its socket, data and state there; no network,
 * --live-restore so containers outlive a restart), started and stopped at will; `remove`
 * unmounts what it mounted and deletes the folder.
 */
/**
 * A Docker daemon of the test's own in `dir`, on a unix socket, and with `tls` also on a TCP
 * port that asks for a client certificate (--tlsverify), as a remote engine is run.
 */
function daemonIn(dir: string, tls?: { port: number; ca: string; cert: string; key: string }) {
  const socket = `${dir}/docker.sock`;
  let log = "";
  let child: ReturnType<typeof spawn> | undefined;
  const ping = async () => (await engine(socket, "GET", "/_ping")).status === 200;
  return {
    socket,
    async start() {
      child = spawn(DOCKERD as string, [
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
        ...(tls
          ? [
            "-H",
            `tcp://127.0.0.1:${tls.port}`,
            "--tlsverify",
            "--tlscacert",
            tls.ca,
            "--tlscert",
            tls.cert,
            "--tlskey",
            tls.key,
          ]
          : []),
      ], { stdio: ["ignore", "ignore", "pipe"] });
      child.stderr!.on("data", (c) => log = (log + c).slice(-4000));
      await eventually(ping, 60_000, "dockerd").catch((e) => {
        throw new Error(`${e.message}; dockerd said: ${log}`);
      });
    },
    async stop() {
      const d = child;
      if (!d || d.exitCode !== null) return;
      d.kill("SIGTERM");
      await new Promise((r) => d.exitCode !== null ? r(null) : d.once("exit", r));
    },
    /** The busybox image, imported (no registry is reachable): `l4pbox:t`. */
    async importBusybox() {
      const root = `${dir}/image`;
      mkdirSync(`${root}/bin`, { recursive: true });
      execFileSync("cp", [BUSYBOX as string, `${root}/bin/busybox`]);
      const tar = execFileSync("tar", ["-C", root, "-c", "."], { maxBuffer: 64 * 1024 * 1024 });
      const r = await engine(
        socket,
        "POST",
        "/v1.41/images/create?fromSrc=-&repo=l4pbox&tag=t",
        tar,
      );
      assert.equal(r.status, 200, r.text);
    },
    async remove() {
      // Containers first (they outlive the daemon), then what it mounted, deepest first.
      const list = await engine(socket, "GET", "/v1.41/containers/json?all=true").catch(() =>
        undefined
      );
      for (const c of list?.status === 200 ? JSON.parse(list.text) as { Id: string }[] : []) {
        await engine(socket, "DELETE", `/v1.41/containers/${c.Id}?force=true`).catch(() => {});
      }
      await this.stop();
      const mounts = readFileSync("/proc/mounts", "utf8").split("\n").map((l) => l.split(" ")[1])
        .filter((m) => m?.startsWith(`${dir}/`)).sort().reverse();
      for (const m of mounts) {
        try {
          execFileSync("umount", [m], { stdio: "ignore" });
        } catch { /* already gone */ }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

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
    // The engine also listens on TLS, as a remote one does: tcp://127.0.0.1:PORT, --tlsverify.
    const pki = makeTlsFixtures(["127.0.0.1"]);
    const tlsPort = await freePort();
    const docker = daemonIn(dir, { port: tlsPort, ca: pki.ca, ...pki.server("127.0.0.1") });
    const socket = docker.socket;
    let l4p: ReturnType<typeof runL4p> | undefined;
    try {
      await docker.start();
      await docker.importBusybox();
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
        const start = await engine(socket, "POST", `/v1.41/containers/${id}/start`);
        assert.equal(start.status, 204, start.text);
        return id;
      };
      const [a, b, c, admin, portOne, portTwo] = [
        await freePort(),
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
metrics: { address: "127.0.0.1:${admin}" }
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
      // The same engine reached as a remote one, over TLS with a client certificate; and
      // without one, refused by the engine (said, nothing served).
      for (const withClient of [true, false]) {
        const [port, name] = [await freePort(), `remote${withClient ? "" : "-anonymous"}`];
        writeFileSync(
          `${dir}/${name}.yml`,
          `entryPoints:
  a: { address: "127.0.0.1:${port}" }
providers:
  docker:
    endpoint: "tcp://127.0.0.1:${tlsPort}"
    exposedByDefault: false
    tls:
      ca: ${pki.ca}
${withClient ? `      cert: ${pki.client.cert}\n      key: ${pki.client.key}\n` : ""}`,
        );
        const remote = runL4p(["run", "-c", `${dir}/${name}.yml`]);
        try {
          if (withClient) {
            await eventually(async () => (await get(port)) === "one", 30_000, "one over TLS")
              .catch((e) => {
                throw new Error(`${e.message}; l4p said: ${remote.stderr()}`);
              });
          } else {
            await remote.waitForLine(/docker/i, 30_000);
            await remote.waitForLine(/tcp:\/\/127\.0\.0\.1:\d+: /, 30_000);
            assert.equal(await get(port), undefined, "nothing is served without the engine");
          }
        } finally {
          remote.kill("SIGKILL");
          await remote.exited;
        }
      }
      assert.match(
        l4p.stderr(),
        /provider items left out .*container noport: service noport: no port/,
      );
      // …and /api/status lists it with the provider.
      const status = await (await fetch(`http://127.0.0.1:${admin}/api/status`)).json();
      const fromDocker = status.providers.find((p: { provider: string }) =>
        p.provider === "docker"
      );
      assert.equal(fromDocker.connected, true);
      assert.match(fromDocker.leftOut.join("\n"), /container noport: service noport: no port/);
      // l4p check --docker: the file with what the labels make, and who is left out, why.
      const check = runL4p(["check", `${dir}/traefik.yml`, "--docker", `unix://${socket}`]);
      assert.equal(await deadline(check.exited, 30_000, "check --docker"), 0, check.stderr());
      assert.match(check.stdout(), /note: docker: container noport: service noport: no port/);
      assert.match(check.stdout(), /routers in match order: one \[HostSNI\(`\*`\) → one\]/);
      assert.match(check.stdout(), /tcp service one: wrr over 1 server/);
      assert.match(check.stdout(), /traefik\.yml: ok/);
      // Each router and service says where it came from (the dashboard shows one@docker).
      assert.equal(status.tcp.routers.one.provider, "docker");
      assert.equal(status.tcp.services.one.provider, "docker");
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
      await eventually(
        () => Promise.resolve(/store read .*keys=/.test(l4p!.stderr())),
        5000,
        "a read",
      );
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
      await docker.stop();
      await l4p.waitForLine(/store unreachable; the last good configuration stays/, 30_000);
      assert.equal(await get(c), "sick", "served while the daemon is away");
      await docker.start();
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
      await docker.remove();
      rmSync(pki.dir, { recursive: true, force: true });
    }
  },
);

test(
  "the container image: built offline from the binary, it runs as l4p, is healthy, and routes a sibling container by its labels",
  {
    skip: (!DOCKERD || !BUSYBOX) ? "needs dockerd and busybox" : !ROOT && "dockerd needs root",
  },
  async () => {
    const dir = mkdtempSync(`${tmpdir()}/l4p-image-`);
    const docker = daemonIn(`${dir}/docker`);
    mkdirSync(`${dir}/docker`);
    const socket = docker.socket;
    try {
      await docker.start();
      await docker.importBusybox();
      // The build context scripts/image.ts assembles, built by the daemon (no base image).
      assemble(`${dir}/context`);
      const context = execFileSync("tar", ["-C", `${dir}/context`, "-c", "."], {
        maxBuffer: 512 * 1024 * 1024,
      });
      const built = await engine(socket, "POST", "/v1.41/build?t=l4p:test&rm=1", context);
      assert.equal(built.status, 200, built.text);
      assert.doesNotMatch(built.text, /"error"/, built.text);
      const [web, admin, backendPort] = [await freePort(), await freePort(), await freePort()];
      writeFileSync(
        `${dir}/l4p.yaml`,
        `entryPoints:
  web: { address: "127.0.0.1:${web}" }
metrics: { address: "127.0.0.1:${admin}" }
providers:
  providersThrottleDuration: 100ms
  docker: { exposedByDefault: false }
`,
      );
      const create = async (name: string, body: object) => {
        const r = await engine(socket, "POST", `/v1.41/containers/create?name=${name}`, body);
        assert.equal(r.status, 201, r.text);
        const id = JSON.parse(r.text).Id as string;
        const started = await engine(socket, "POST", `/v1.41/containers/${id}/start`);
        assert.equal(started.status, 204, started.text);
        return id;
      };
      const proxy = await create("l4p", {
        Image: "l4p:test",
        // The image's own HEALTHCHECK, on this test's admin port.
        Healthcheck: {
          Test: ["CMD", "/usr/local/bin/l4p", "healthcheck", "--admin", `127.0.0.1:${admin}`],
          Interval: 500_000_000,
          Timeout: 5_000_000_000,
        },
        HostConfig: {
          NetworkMode: "host",
          // The l4p user reads the socket through its group, as --group-add does.
          GroupAdd: [String(statSync(socket).gid)],
          Binds: [
            `${socket}:/var/run/docker.sock:ro`,
            `${dir}/l4p.yaml:/etc/l4p/l4p.yaml:ro`,
          ],
        },
      });
      await create("backend", {
        Image: "l4pbox:t",
        Cmd: [
          "/bin/busybox",
          "sh",
          "-c",
          `mkdir -p /www && echo backend > /www/index.html && exec /bin/busybox httpd -f -p 127.0.0.1:${backendPort} -h /www`,
        ],
        Labels: {
          "traefik.enable": "true",
          "traefik.tcp.routers.site.rule": "HostSNI(`*`)",
          "traefik.tcp.services.site.loadbalancer.server.port": String(backendPort),
        },
        HostConfig: { NetworkMode: "host" },
      });
      const inspect = async () =>
        JSON.parse((await engine(socket, "GET", `/v1.41/containers/${proxy}/json`)).text);
      await eventually(async () => (await get(web)) === "backend", 60_000, "the backend via l4p")
        .catch(async (e) => {
          const logs = await engine(
            socket,
            "GET",
            `/v1.41/containers/${proxy}/logs?stderr=1&stdout=1`,
          );
          throw new Error(`${e.message}: ${logs.text.slice(0, 3000)}`);
        });
      await eventually(
        async () => (await inspect()).State?.Health?.Status === "healthy",
        60_000,
        "the HEALTHCHECK passing",
      );
      const state = await inspect();
      assert.equal(state.Config.User, "65532:65532", "not root");
      const image = JSON.parse((await engine(socket, "GET", "/v1.41/images/l4p:test/json")).text);
      // The binary (about 120 MB) and the C library: nothing else.
      assert.ok(image.Size < 140 * 1024 * 1024, `image size ${image.Size}`);
    } finally {
      await docker.remove();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test("contrib/docker: the compose example's labels and l4p.yaml make a configuration that checks", () => {
  const compose = parseYaml(readFileSync(`${REPO}contrib/docker/compose.yaml`, "utf8")) as {
    services: Record<string, { labels?: Record<string, string> }>;
  };
  const containers: DockerContainer[] = Object.entries(compose.services).map(([name, s], i) => ({
    Id: `${i}`.padStart(12, "0"),
    Names: [`/contrib-${name}-1`],
    State: "running",
    Labels: { ...s.labels, "com.docker.compose.service": name },
    NetworkSettings: { Networks: { contrib_default: { IPAddress: `172.18.0.${i + 2}` } } },
  }));
  const { tree, problems } = containersToTree(containers, { exposedByDefault: false });
  assert.deepEqual(problems, []);
  const file = `${REPO}contrib/docker/l4p.yaml`;
  const base = parseYaml(readFileSync(file, "utf8")) as Record<string, unknown>;
  const { config } = parseConfig(stringifyYaml({ ...base, ...tree }), file);
  assert.deepEqual(Object.keys(config.tcp.routers).sort(), ["cache", "db"]);
  assert.equal(config.tcp.services.db.loadBalancer?.servers[0].address.text, "172.18.0.3:5432");
});
