import { Buffer } from "node:buffer";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import http from "node:http";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type net from "node:net";
import { tmpdir } from "node:os";
import { test } from "node:test";
import { parse as parseYaml } from "yaml";
import { ConfigError, formatProblem, parseConfig } from "../src/config/load.ts";
import { kvToTree, kvToTreeInSlices, treeToKv } from "../src/providers/kv.ts";
import { etcdArgs, redisArgs } from "../scripts/peer_args.ts";
import { makeTlsFixtures } from "./_tls.ts";
import {
  ETCD_PAGE,
  EtcdStore,
  type KvStore,
  prefixEnd,
  RedisStore,
} from "../src/providers/store.ts";
import {
  connect,
  deadline,
  docExample,
  freePort,
  type L4pProcess,
  type NetServer,
  netServer,
  peerOrSkip,
  ROOT,
  runL4p,
  waitFor,
} from "./_helpers.ts";

const ETCD = peerOrSkip("etcd");

/** Polls an async `check` every 50 ms until it is true; fails after `ms`. */
async function eventually(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
const REDIS = peerOrSkip("redis-server");

test("kv layout: pairs to a tree (numbers, booleans, lists) and back", () => {
  const pairs: [string, string][] = [
    ["l4p/tcp/routers/web/rule", "HostSNI(`*`)"],
    ["l4p/tcp/routers/web/service", "app"],
    ["l4p/tcp/routers/web/entryPoints/0", "web"],
    ["l4p/tcp/services/app/loadBalancer/servers/1/address", "10.0.0.2:80"],
    ["l4p/tcp/services/app/loadBalancer/servers/0/address", "10.0.0.1:80"],
    ["l4p/tcp/services/app/loadBalancer/servers/0/weight", "3"],
    ["l4p/tcp/routers/web/tls/passthrough", "true"],
    ["l4p/entryPoints/web/address", ":80"],
    ["other/tcp/routers/x/rule", "ignored"],
  ];
  const part = kvToTree(pairs, "l4p", "etcd");
  assert.deepEqual(part.tree, {
    tcp: {
      routers: {
        web: {
          rule: "HostSNI(`*`)",
          service: "app",
          entryPoints: ["web"],
          tls: { passthrough: true },
        },
      },
      services: {
        app: {
          loadBalancer: {
            servers: [{ address: "10.0.0.1:80", weight: 3 }, { address: "10.0.0.2:80" }],
          },
        },
      },
    },
  });
  assert.deepEqual(part.stray, ["l4p/entryPoints/web/address"]);
  const back = kvToTree(treeToKv(part.tree, "l4p"), "l4p", "etcd");
  assert.deepEqual(back.tree, part.tree);
});

/** A box's own file: its entrypoint (and anything else per box). */
const BOX = `entryPoints:
  web: { address: "127.0.0.1:8080" }
`;

function problems(yaml: string, pairs: [string, string][]): string[] {
  try {
    parseConfig(yaml, "box.yaml", {}, [kvToTree(pairs, "l4p", "etcd")]);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems.map(formatProblem);
    throw error;
  }
  return [];
}

test("a large tree is built a slice at a time, the event loop let run between slices, to the same tree", async () => {
  const pairs: [string, string][] = [];
  for (let i = 0; i < 2500; i++) {
    pairs.push([`l4p/tcp/routers/r${i}/rule`, `HostSNI(\`h${i}.example\`)`]);
    pairs.push([`l4p/tcp/services/s${i}/loadBalancer/servers/0/address`, `10.0.0.${i % 250}:80`]);
    pairs.push([`l4p/tcp/services/s${i}/loadBalancer/servers/1/address`, `10.0.1.${i % 250}:80`]);
  }
  let pauses = 0;
  let timerRan = 0;
  const part = await kvToTreeInSlices(pairs, "l4p", "etcd", async () => {
    pauses++;
    const before = timerRan;
    setTimeout(() => timerRan++, 0);
    await new Promise((r) => setTimeout(r, 2));
    assert.ok(timerRan > before, "a timer set before the pause ran during it");
  });
  assert.equal(pauses, 7, "7 500 pairs in slices of 1 000: 7 pauses");
  assert.deepEqual(part, kvToTree(pairs, "l4p", "etcd"));
});

test("a store's bad value is refused with an error that names its key; a name in both is located in both", () => {
  const good: [string, string][] = [
    ["l4p/tcp/routers/r/rule", "HostSNI(`*`)"],
    ["l4p/tcp/routers/r/service", "app"],
    ["l4p/tcp/services/app/loadBalancer/servers/0/address", "10.0.0.1:80"],
    ["l4p/tcp/services/app/loadBalancer/servers/1/address", "10.0.0.2"],
  ];
  assert.deepEqual(problems(BOX, good), [
    "l4p/tcp/services/app/loadBalancer/servers/1/address: has no port (write host:port)",
  ]);
  const typo: [string, string][] = [...good.slice(0, 3), ["l4p/tcp/routers/r/servce", "app"]];
  assert.deepEqual(problems(BOX, typo), [
    'l4p/tcp/routers/r/servce: unknown key; did you mean "service"?',
  ]);
  assert.deepEqual(
    problems(
      BOX +
        `tcp:\n  services:\n    app: { loadBalancer: { servers: [{ address: "10.0.0.9:80" }] } }\n`,
      good.slice(0, 3),
    ),
    ["box.yaml:5:10: tcp.services.app: also defined in etcd at l4p/tcp/services/app"],
  );
});

/** A backend that answers every connection with its name, then streams if asked. */
function named(name: string): Promise<NetServer> {
  return netServer((s) => {
    s.on("error", () => {});
    s.once("data", (d: Buffer) => {
      if (d.toString() !== "stream") return void s.end(name);
      const t = setInterval(() => s.write(name), 20);
      s.on("close", () => clearInterval(t));
    });
  });
}

async function ask(port: number): Promise<string> {
  const c = await connect(port).catch(() => undefined);
  if (!c) return "(refused)";
  c.on("error", () => {});
  let got = "";
  const done = new Promise<string>((resolve) => {
    c.on("data", (d: Buffer) => got += d);
    c.once("end", () => resolve(got));
    c.once("close", () => resolve(got));
  });
  c.write("hi");
  const out = await deadline(done, 5000, "an answer");
  c.destroy();
  return out;
}

/** Three l4p processes on this box's file: one on Deno, two on Bun. */
function fleet(files: string[]): L4pProcess[] {
  const bin = `${ROOT}node_modules/.bin`;
  return files.map((file, i) =>
    i === 0
      ? runL4p(["run", "-A", "--quiet", `${ROOT}cli.ts`, "run", "-c", file], `${bin}/deno`)
      : runL4p([`${ROOT}cli.ts`, "run", "-c", file], `${bin}/bun`)
  );
}

/** The shared part: service `app` on `server`, a router for every connection. */
function shared(root: string, server: number): [string, string][] {
  return [
    [`${root}/tcp/routers/r/rule`, "HostSNI(`*`)"],
    [`${root}/tcp/routers/r/service`, "app"],
    [`${root}/tcp/services/app/loadBalancer/servers/0/address`, `127.0.0.1:${server}`],
  ];
}

/**
 * What both stores must do: three boxes follow a change, keep an established connection,
 * refuse a bad value naming its key, and keep serving while the store is down.
 */
async function fleetScenario(
  store: KvStore,
  providers: string,
  server: { stop(): Promise<void>; start(): Promise<void> },
  root = "l4p",
) {
  const a = await named("A");
  const b = await named("B");
  const dir = mkdtempSync(`${tmpdir()}/l4p-fleet-`);
  const ports = [await freePort(), await freePort(), await freePort()];
  const adminPort = await freePort();
  const files = ports.map((p, i) => {
    const f = `${dir}/box${i}.yaml`;
    const metrics = i === 0 ? `metrics: { address: "127.0.0.1:${adminPort}" }\n` : "";
    writeFileSync(
      f,
      `entryPoints:\n  web: { address: "127.0.0.1:${p}" }\n${metrics}providers:\n${providers}\n`,
    );
    return f;
  });
  const provider = async () =>
    (await (await fetch(`http://127.0.0.1:${adminPort}/api/status`)).json()).providers[0];
  await store.replace(shared(root, a.port));
  const boxes = fleet(files);
  let stream: net.Socket | undefined;
  try {
    await Promise.all(boxes.map((b) => b.waitForLine(/listening entryPoint=web/, 30_000)));
    for (const p of ports) assert.equal(await ask(p), "A", `box on ${p} serves from the store`);

    // An established connection through box 0, streaming from A.
    stream = await connect(ports[0]);
    let streamed = 0;
    stream.on("data", (d: Buffer) => streamed += d.length);
    stream.write("stream");
    await waitFor(() => streamed > 0, 5000, "the stream flows");

    // One key changes: every box moves new connections to B.
    await store.replace(shared(root, b.port));
    const changed = Date.now();
    for (const p of ports) {
      await eventually(async () => await ask(p) === "B", 10_000, `box on ${p} to B`);
    }
    const tookMs = Date.now() - changed;
    const before = streamed;
    await waitFor(() => streamed > before, 5000, "the established stream still flows");

    // A bad value: as traefik does, the service (and the router that needs it) is left out
    // on every box, the error naming the key; the status API shows it disabled with it.
    const bad = shared(root, b.port);
    bad[2] = [bad[2][0], "127.0.0.1"];
    await store.replace(bad);
    for (const box of boxes) {
      await box.waitForLine(
        new RegExp(
          `left out of the configuration.*item=tcp\\.services\\.app .*${root}/tcp/services/app/loadBalancer/servers/0/address: has no port`,
        ),
        10_000,
      );
    }
    const status = await (await fetch(`http://127.0.0.1:${adminPort}/api/status`)).json();
    assert.equal(status.tcp.services.app.status, "disabled");
    assert.match(status.tcp.services.app.error, /servers\/0\/address: has no port/);
    assert.equal(status.tcp.routers.r.status, "disabled");

    const up = await provider();
    assert.equal(up.connected, true);
    assert.ok(up.revision, "the revision last read is shown");
    assert.equal(
      up.appliedRevision,
      up.revision,
      "the revision is in force, less what is left out",
    );
    const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    assert.match(metrics, /^l4p_provider_up\{provider="(etcd|redis)"\} 1$/m);
    assert.match(metrics, /^l4p_config_left_out_items 2$/m);
    // Put right: B again everywhere.
    await store.replace(shared(root, b.port));
    for (const p of ports) {
      await eventually(async () => await ask(p) === "B", 10_000, `box on ${p} back to B`);
    }
    // What the store holds says where it came from.
    const fixed = await (await fetch(`http://127.0.0.1:${adminPort}/api/status`)).json();
    assert.match(fixed.tcp.routers.r.provider, /^(etcd|redis)$/);

    // The store goes away: every box keeps the last good configuration, and says so.
    await server.stop();
    for (const p of ports) assert.equal(await ask(p), "B");
    await eventually(
      async () => (await provider()).connected === false,
      15_000,
      "the store shown down",
    );
    assert.ok((await provider()).lastError, "the last error is shown");
    // It comes back with a change: applied.
    await server.start();
    // The test's own client reconnects too: write once it can.
    await eventually(
      () => store.replace(shared(root, a.port)).then(() => true, () => false),
      30_000,
      "the store written again",
    );
    for (const p of ports) {
      await eventually(async () => await ask(p) === "A", 30_000, `box on ${p} back to A`);
    }
    const back = await provider();
    assert.equal(back.appliedRevision, back.revision, "a good revision is in force");
    return tookMs;
  } finally {
    stream?.destroy();
    for (const box of boxes) box.kill("SIGKILL");
    await a.close();
    await b.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** etcd on loopback, stoppable and restartable on the same data. */
async function startEtcd(dir: string, tls?: { cert: string; key: string; ca: string }) {
  const [client, peer] = [await freePort(), await freePort()];
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn(ETCD as string, etcdArgs("test", `${dir}/etcd`, client, peer, tls), {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let log = "";
    child.stderr!.on("data", (d: Buffer) => log += d);
    await waitFor(
      () => /ready to serve client requests|serving insecure client requests/.test(log),
      20_000,
      "etcd ready",
    );
  };
  const stop = () =>
    new Promise<void>((resolve) => {
      if (!child || child.exitCode !== null) return resolve();
      child.once("exit", () => resolve());
      child.kill("SIGKILL");
    });
  await start();
  const url = tls ? `https://localhost:${client}` : `http://127.0.0.1:${client}`;
  return { url, start, stop };
}

test("etcd: three boxes (Deno and Bun) follow one store: changes, bad values, outages", {
  skip: !ETCD && "needs etcd (apt-get install etcd-server)",
}, async () => {
  const dir = mkdtempSync(`${tmpdir()}/l4p-etcd-`);
  const etcd = await startEtcd(dir);
  const store = new EtcdStore([etcd.url], "l4p");
  try {
    const ms = await fleetScenario(store, `  etcd: { endpoints: ["${etcd.url}"] }`, etcd);
    console.log(`etcd: a key change reached all three boxes in ${ms} ms`);
  } finally {
    await store.close();
    await etcd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test(
  "etcd: a tree larger than a read page comes whole, in key order, one revision; other roots stay out",
  {
    skip: !ETCD && "needs etcd (apt-get install etcd-server)",
  },
  async () => {
    const dir = mkdtempSync(`${tmpdir()}/l4p-etcd-`);
    const etcd = await startEtcd(dir);
    const store = new EtcdStore([etcd.url], "l4p");
    const other = new EtcdStore([etcd.url], "l4p2");
    try {
      const n = ETCD_PAGE * 2 + 500;
      const pairs: [string, string][] = Array.from(
        { length: n },
        (_, i) => [`l4p/tcp/services/s${String(i).padStart(5, "0")}/weight`, String(i)],
      );
      await store.replace(pairs);
      // "l4p2/…" sorts after every "l4p/…" key: a read of l4p must stop before it.
      await other.replace([["l4p2/tcp/services/x/weight", "1"]]);
      const { pairs: read, revision } = await store.list();
      assert.equal(read.length, n, "every page read");
      assert.deepEqual(read, pairs, "in key order, nothing twice");
      assert.ok(Number(revision) > 0);
      assert.deepEqual(prefixEnd("l4p/"), Buffer.from("l4p0"));
    } finally {
      await store.close();
      await other.close();
      await etcd.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test("Redis: three boxes follow one store through keyspace notifications", {
  skip: !REDIS && "needs redis-server",
}, async () => {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const server = {
    start: async () => {
      child = spawn(REDIS as string, redisArgs(port), { stdio: "ignore" });
      await eventually(
        () => connect(port).then((c) => (c.destroy(), true), () => false),
        10_000,
        "redis",
      );
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (!child || child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGKILL");
      }),
  };
  await server.start();
  const store = new RedisStore(`127.0.0.1:${port}`, "traefik", 0);
  try {
    // traefik's own tree works with rootKey: traefik.
    const ms = await fleetScenario(
      store,
      `  redis: { endpoints: ["127.0.0.1:${port}"], rootKey: traefik }`,
      server,
      "traefik",
    );
    console.log(`redis: a key change reached all three boxes in ${ms} ms`);
  } finally {
    await store.close();
    await server.stop();
  }
});

test(
  "l4p kv put, kv get and check --etcd: the example of docs/fleet.md round-trips through the store",
  {
    skip: !ETCD && "needs etcd (apt-get install etcd-server)",
  },
  async () => {
    const dir = mkdtempSync(`${tmpdir()}/l4p-kv-`);
    const etcd = await startEtcd(dir);
    try {
      const example = docExample("fleet");
      writeFileSync(`${dir}/shared.yaml`, example);
      const put = runL4p(["kv", "put", `${dir}/shared.yaml`, "--etcd", etcd.url]);
      assert.equal(await deadline(put.exited, 30_000, "kv put"), 0, put.stderr());
      assert.match(put.stdout(), /wrote \d+ keys under l4p\//);
      const get = runL4p(["kv", "get", "--etcd", etcd.url]);
      assert.equal(await deadline(get.exited, 30_000, "kv get"), 0, get.stderr());
      const expected = parseYaml(example);
      assert.deepEqual(parseYaml(get.stdout()), { tcp: expected.tcp });
      // A box's own file, checked with what the store holds.
      writeFileSync(`${dir}/box.yaml`, 'entryPoints:\n  db: { address: "127.0.0.1:5432" }\n');
      const check = runL4p(["check", `${dir}/box.yaml`, "--etcd", etcd.url]);
      assert.equal(await deadline(check.exited, 30_000, "check --etcd"), 0, check.stderr());
      assert.match(check.stdout(), /routers in match order: db \[HostSNI\(`\*`\) → db\]/);
      // A bad value in the store: check says which key.
      const store = new EtcdStore([etcd.url], "l4p");
      const { pairs } = await store.list();
      await store.replace(
        pairs.map(([k, v]) => [k, k.endsWith("servers/1/address") ? "10.0.0.6" : v]),
      );
      await store.close();
      const bad = runL4p(["check", `${dir}/box.yaml`, "--etcd", etcd.url]);
      assert.equal(await deadline(bad.exited, 30_000, "check --etcd, bad"), 1);
      assert.match(
        bad.stderr(),
        /^l4p\/tcp\/services\/db\/loadBalancer\/servers\/1\/address: has no port/m,
      );
      // A tree over etcd's 128 operations a transaction is written in steps, and says so.
      const routers = Array.from(
        { length: 60 },
        (_, i) =>
          `    r${i}: { entryPoints: [db], rule: "HostSNI(\`h${i}.example\`)", service: s${i} }`,
      );
      const services = Array.from(
        { length: 60 },
        (_, i) => `    s${i}: { loadBalancer: { servers: [{ address: "10.0.1.${i}:80" }] } }`,
      );
      writeFileSync(
        `${dir}/large.yaml`,
        'entryPoints:\n  db: { address: "127.0.0.1:5432" }\ntcp:\n  routers:\n' +
          routers.join("\n") + "\n  services:\n" + services.join("\n") + "\n",
      );
      const large = runL4p(["kv", "put", `${dir}/large.yaml`, "--etcd", etcd.url]);
      assert.equal(await deadline(large.exited, 30_000, "kv put, large"), 0, large.stderr());
      assert.match(large.stdout(), /wrote 240 keys/);
      assert.match(large.stderr(), /written in steps/);
      const after = runL4p(["kv", "get", "--etcd", etcd.url]);
      assert.equal(await deadline(after.exited, 30_000, "kv get, large"), 0, after.stderr());
      const tree = parseYaml(after.stdout());
      assert.equal(Object.keys(tree.tcp.routers).length, 60);
      assert.equal(tree.tcp.services.s59.loadBalancer.servers[0].address, "10.0.1.59:80");
      assert.equal(tree.tcp.routers.db, undefined, "the old tree's keys are gone");
    } finally {
      await etcd.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  "TLS to the stores: etcd with a client certificate, Redis over TLS; l4p kv and a box use both",
  {
    skip: (!ETCD || !REDIS) && "needs etcd and redis-server",
  },
  async () => {
    const fx = makeTlsFixtures(["localhost"]);
    const server = fx.server("localhost");
    const etcd = await startEtcd(fx.dir, { ...server, ca: fx.ca });
    const redisPort = await freePort();
    const redis = spawn(REDIS as string, redisArgs(redisPort, { ...server, ca: fx.ca }), {
      stdio: "ignore",
    });
    const [a, b] = [await named("from-etcd"), await named("from-redis")];
    const [pa, pb] = [await freePort(), await freePort()];
    let box: L4pProcess | undefined;
    try {
      await eventually(
        () => connect(redisPort).then((c) => (c.destroy(), true), () => false),
        10_000,
        "redis",
      );
      const client = [
        "--store-ca",
        fx.ca,
        "--store-cert",
        fx.client.cert,
        "--store-key",
        fx.client.key,
      ];
      const part = (ep: string, port: number) =>
        `entryPoints:\n  ${ep}: { address: "127.0.0.1:${port}" }\ntcp:\n  routers:\n` +
        `    ${ep}: { entryPoints: [${ep}], rule: "HostSNI(\`*\`)", service: ${ep} }\n` +
        `  services:\n    ${ep}: { loadBalancer: { servers: [{ address: "127.0.0.1:${port}" }] } }\n`;
      writeFileSync(`${fx.dir}/a.yaml`, part("a", a.port));
      writeFileSync(`${fx.dir}/b.yaml`, part("b", b.port));
      const puts = [
        runL4p(["kv", "put", `${fx.dir}/a.yaml`, "--etcd", etcd.url, ...client]),
        runL4p([
          "kv",
          "put",
          `${fx.dir}/b.yaml`,
          "--redis",
          `rediss://localhost:${redisPort}`,
          ...client,
        ]),
      ];
      for (const put of puts) {
        assert.equal(await deadline(put.exited, 30_000, "kv put over TLS"), 0, put.stderr());
      }
      // A box that reads both, over TLS, with its client certificate.
      const tls = `tls: { ca: l4p-test-ca.pem, cert: client.pem, key: client.key }`;
      writeFileSync(
        `${fx.dir}/box.yaml`,
        `entryPoints:\n  a: { address: "127.0.0.1:${pa}" }\n  b: { address: "127.0.0.1:${pb}" }\n` +
          `providers:\n  etcd: { endpoints: ["${etcd.url}"], ${tls} }\n` +
          `  redis: { endpoints: ["localhost:${redisPort}"], ${tls} }\n`,
      );
      const check = runL4p(["check", `${fx.dir}/box.yaml`]);
      assert.equal(await deadline(check.exited, 30_000, "check"), 0, check.stderr());
      box = runL4p(["run", "-c", `${fx.dir}/box.yaml`]);
      await eventually(async () => (await ask(pa)) === "from-etcd", 20_000, "etcd's route");
      await eventually(async () => (await ask(pb)) === "from-redis", 20_000, "redis's route");
      // What cannot work is refused at its key.
      writeFileSync(
        `${fx.dir}/bad.yaml`,
        `providers:\n  etcd:\n    endpoints: ["https://127.0.0.1:2379"]\n` +
          `    tls: { ca: l4p-test-ca.pem, cert: client.pem, insecureSkipVerify: true }\n`,
      );
      const bad = runL4p(["check", `${fx.dir}/bad.yaml`]);
      assert.equal(await deadline(bad.exited, 30_000, "check, bad"), 1);
      const errors = bad.stderr();
      assert.match(
        errors,
        /bad\.yaml:3:\d+: providers\.etcd\.endpoints\[0\]: over TLS, write the etcd endpoint with a host name/,
      );
      assert.match(errors, /providers\.etcd\.tls\.key: cert and key go together/);
      assert.match(errors, /providers\.etcd\.tls\.insecureSkipVerify: not available for etcd/);
      writeFileSync(
        `${fx.dir}/missing.yaml`,
        `providers:\n  redis: { endpoints: ["localhost:6379"], tls: { ca: missing.pem } }\n`,
      );
      const missing = runL4p(["check", `${fx.dir}/missing.yaml`]);
      assert.equal(await deadline(missing.exited, 30_000, "check, missing"), 1);
      assert.match(missing.stderr(), /providers\.redis\.tls\.ca: cannot read missing\.pem/);
    } finally {
      box?.kill();
      await box?.exited;
      await a.close();
      await b.close();
      redis.kill("SIGKILL");
      await etcd.stop();
      rmSync(fx.dir, { recursive: true, force: true });
    }
  },
);

test(
  "etcd: l4p run starts a file whose router names a service only the store holds, as check does",
  {
    skip: !ETCD && "needs etcd (apt-get install etcd-server)",
  },
  async () => {
    const dir = mkdtempSync(`${tmpdir()}/l4p-etcd-`);
    const etcd = await startEtcd(dir);
    const store = new EtcdStore([etcd.url], "l4p");
    const a = await named("A");
    const port = await freePort();
    const file = `${dir}/box.yaml`;
    writeFileSync(
      file,
      `entryPoints:
  web: { address: "127.0.0.1:${port}" }
providers:
  etcd: { endpoints: ["${etcd.url}"] }
tcp:
  routers:
    r: { rule: "HostSNI(\`*\`)", service: svc }
`,
    );
    let l4p: L4pProcess | undefined;
    try {
      await store.replace([
        ["l4p/tcp/services/svc/loadBalancer/servers/0/address", `127.0.0.1:${a.port}`],
      ]);
      const check = runL4p(["check", file, "--etcd", etcd.url]);
      assert.equal(await deadline(check.exited, 30_000, "check"), 0, check.stderr());
      l4p = runL4p(["run", "-c", file]);
      await l4p.waitForLine(/listening entryPoint=web/, 30_000);
      assert.equal(await ask(port), "A");
    } finally {
      l4p?.kill("SIGKILL");
      await a.close();
      await store.close();
      await etcd.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test("a store that is not there: one line in l4p's words, no client library's stack", async () => {
  for (const flag of [["--redis", "redis://127.0.0.1:1"], ["--etcd", "http://127.0.0.1:1"]]) {
    const l4p = runL4p(["kv", "get", ...flag]);
    assert.equal(await deadline(l4p.exited, 30_000, "kv get"), 1);
    assert.equal(
      l4p.stderr(),
      "l4p: the store: cannot connect (" +
        (flag[0] === "--redis" ? "the connection closed" : "ECONNREFUSED") + ")\n",
    );
  }
});

test("providers.http: polled, a change applied within a poll, a 500 or a bad body keeps the last good, a 304 applies nothing", async () => {
  const [a, b] = [await named("A"), await named("B")];
  const conf = (port: number) =>
    JSON.stringify({
      http: { routers: { web: { rule: "Host(`x`)", service: "w" } } },
      tcp: {
        routers: { r: { rule: "HostSNI(`*`)", service: "app" } },
        services: { app: { loadBalancer: { servers: [{ address: `127.0.0.1:${port}` }] } } },
      },
    });
  let body = conf(a.port);
  let status = 200;
  let notModified = 0;
  const control = http.createServer((req, res) => {
    const etag = `"${createHash("sha256").update(body).digest("hex").slice(0, 8)}"`;
    if (status !== 200) return res.writeHead(status).end("broken");
    if (req.headers["if-none-match"] === etag) {
      notModified++;
      return res.writeHead(304).end();
    }
    res.writeHead(200, { "content-type": "application/json", etag }).end(body);
  });
  await new Promise<void>((r) => control.listen(0, "127.0.0.1", () => r()));
  const controlPort = (control.address() as net.AddressInfo).port;
  const dir = mkdtempSync(`${tmpdir()}/l4p-http-`);
  const port = await freePort();
  const admin = await freePort();
  writeFileSync(
    `${dir}/box.yaml`,
    `entryPoints:
  web: { address: "127.0.0.1:${port}" }
metrics: { address: "127.0.0.1:${admin}" }
providers:
  http: { endpoint: "http://127.0.0.1:${controlPort}/config", pollInterval: 200ms }
`,
  );
  const l4p = runL4p(["run", "-c", `${dir}/box.yaml`]);
  try {
    await l4p.waitForLine(/listening entryPoint=web/, 30_000);
    await l4p.waitForLine(/admin listening/, 30_000);
    await eventually(async () => await ask(port) === "A", 10_000, "served from the control plane");
    // Unchanged: the control plane answers 304, and nothing is applied again.
    await waitFor(() => notModified >= 3, 10_000, "304 answers");
    assert.equal((l4p.stderr().match(/configuration reloaded/g) ?? []).length, 0);
    // Changed: in force within a poll or two.
    body = conf(b.port);
    await eventually(async () => await ask(port) === "B", 10_000, "the change applied");
    // Broken: a 500, then a body that does not read; the last good stays.
    status = 500;
    await l4p.waitForLine(/answered 500/, 10_000);
    assert.equal(await ask(port), "B");
    status = 200;
    body = "{ not json";
    // One outage is logged once; the status API says what went wrong last.
    const provider = async () =>
      (await (await fetch(`http://127.0.0.1:${admin}/api/status`)).json()).providers[0];
    await eventually(
      async () => /neither JSON nor YAML/.test((await provider()).lastError ?? ""),
      15_000,
      "the bad body seen",
    );
    assert.equal((await provider()).provider, "http");
    assert.equal(await ask(port), "B");
  } finally {
    l4p.kill("SIGKILL");
    control.close();
    await a.close();
    await b.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
