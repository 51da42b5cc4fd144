/**
 * scale: l4p with a large configuration, end to end, on each runtime: N passthrough HostSNI
 * routers over N/100 services (a fleet of customer domains). Measures how long `l4p check`
 * takes, how long until `l4p run` listens and its resident size then (and per router), how long
 * a reload of a one-line change takes, and the longest a client waited for a connection to be
 * answered while that reload ran (the event loop's longest pause, as a client sees it).
 *
 *   deno run -A scripts/scale.ts [ROUTERS] [--only deno|bun] [--store redis]
 *
 * Default 100 000 routers. Loopback only; a backend of its own answers every connection. With
 * `--store redis` the routers and services live in a Redis of its own (written by `l4p kv put`),
 * the file holds only the entrypoint and the provider, and the change is one key set in Redis:
 * how long until it is in force, and the longest wait of a connection meanwhile.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { buildHello } from "../tests/_hello.ts";
import { redisArgs } from "./peer_args.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url).href);
const args = process.argv.slice(2);
const N = Number(args.find((a) => /^\d+$/.test(a)) ?? 100_000);
const only = args.includes("--only") ? args[args.indexOf("--only") + 1] : undefined;
const store = args.includes("--store") ? args[args.indexOf("--store") + 1] : undefined;
if (store !== undefined && store !== "redis") throw new Error("--store takes redis");
const dir = mkdtempSync(`${tmpdir()}/l4p-scale-`);

const backend = net.createServer((s) => {
  s.on("error", () => {});
  s.end("ok\n");
});
await new Promise<void>((r) => backend.listen(0, "127.0.0.1", () => r()));
const backendPort = (backend.address() as net.AddressInfo).port;

function config(port: number, variant: number): string {
  const lines = ["entryPoints:", `  web: { address: "127.0.0.1:${port}" }`, "tcp:", "  routers:"];
  for (let i = 0; i < N; i++) {
    const service = i === 0 ? `s${variant % 100}` : `s${i % (N / 100)}`;
    lines.push(
      `    r${i}: { rule: "HostSNI(\`customer${i}.example\`)", service: ${service}, tls: { passthrough: true } }`,
    );
  }
  lines.push("  services:");
  for (let i = 0; i < N / 100; i++) {
    lines.push(
      `    s${i}: { loadBalancer: { servers: [{ address: "127.0.0.1:${backendPort}" }] } }`,
    );
  }
  return lines.join("\n") + "\n";
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** One connection with a ClientHello for the last name: ms until the backend's answer. */
function roundTrip(port: number, hello: Uint8Array): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const c = net.connect(port, "127.0.0.1", () => c.write(hello));
    c.on("error", () => resolve(Infinity));
    c.once("data", () => {
      resolve(performance.now() - t0);
      c.destroy();
    });
  });
}

/** A redis-server of its own on a free loopback port, without persistence. */
async function startRedis(): Promise<{ port: number; url: string; stop: () => void }> {
  const port = await freePort();
  const child = spawn("redis-server", redisArgs(port), { stdio: "ignore" });
  for (let i = 0; i < 100; i++) {
    const r = spawnSync("redis-cli", ["-p", String(port), "PING"], { encoding: "utf8" });
    if (r.stdout.trim() === "PONG") break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return { port, url: `redis://127.0.0.1:${port}`, stop: () => child.kill("SIGKILL") };
}

/** A process's resident size now (VmRSS), or the most it has had (VmHWM), in bytes. */
const rssOf = (pid: number, which: "VmRSS" | "VmHWM" = "VmRSS") => {
  const m = readFileSync(`/proc/${pid}/status`, "utf8").match(new RegExp(`${which}:\\s+(\\d+) kB`));
  return m ? Number(m[1]) * 1024 : 0;
};
const mb = (b: number) => `${(b / 1048576).toFixed(0)} MB`;

console.log(`${N} routers over ${N / 100} services`);
for (const runtime of ["bun", "deno"] as const) {
  if (only && only !== runtime) continue;
  const bin = `${ROOT}node_modules/.bin/${runtime}`;
  const cli = runtime === "deno" ? ["run", "-A", `${ROOT}cli.ts`] : [`${ROOT}cli.ts`];
  const port = await freePort();
  const file = `${dir}/l4p-${runtime}.yaml`;
  writeFileSync(file, config(port, 0));
  const sizeMb = (readFileSync(file).length / 1e6).toFixed(1);
  const redis = store ? await startRedis() : undefined;

  let t0 = performance.now();
  const check = spawnSync(bin, [...cli, "check", file], {
    encoding: "utf8",
    stdio: ["ignore", "ignore", "pipe"],
  });
  const checkS = ((performance.now() - t0) / 1000).toFixed(1);
  if (check.status !== 0) throw new Error(`check failed: ${check.stderr.slice(0, 500)}`);

  let putS = "";
  if (redis) {
    // The routers and services go to the store; the file keeps the entrypoint and names it.
    t0 = performance.now();
    const put = spawnSync(bin, [...cli, "kv", "put", file, "--redis", redis.url], {
      encoding: "utf8",
      stdio: ["ignore", "ignore", "pipe"],
    });
    if (put.status !== 0) throw new Error(`kv put failed: ${put.stderr.slice(0, 500)}`);
    putS = ((performance.now() - t0) / 1000).toFixed(1);
    writeFileSync(
      file,
      `entryPoints:\n  web: { address: "127.0.0.1:${port}" }\n` +
        `providers:\n  redis: { endpoints: ["127.0.0.1:${redis.port}"] }\n` +
        `  providersThrottleDuration: 100ms\n`,
    );
  }

  t0 = performance.now();
  const l4p = spawn(bin, [...cli, "run", "-c", file], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  l4p.stderr!.on("data", (d) => log += d);
  const hello = buildHello(`customer${N - 1}.example`);
  while (!/listening entryPoint=web/.test(log)) await new Promise((r) => setTimeout(r, 20));
  const listenS = ((performance.now() - t0) / 1000).toFixed(1);
  await new Promise((r) => setTimeout(r, 3000)); // settled
  const rss = rssOf(l4p.pid!);

  // A reload of a one-line change while a client keeps connecting: the longest wait it saw.
  let longest = 0;
  let connecting = true;
  const client = (async () => {
    while (connecting) longest = Math.max(longest, await roundTrip(port, hello));
  })();
  await new Promise((r) => setTimeout(r, 1000));
  const before = longest;
  longest = 0;
  const changed = performance.now();
  if (redis) {
    spawnSync("redis-cli", ["-p", String(redis.port), "SET", "l4p/tcp/routers/r0/service", "s1"]);
  } else {
    writeFileSync(file, config(port, 1));
  }
  while (!/configuration reloaded/.test(log)) await new Promise((r) => setTimeout(r, 20));
  const inForceMs = performance.now() - changed;
  await new Promise((r) => setTimeout(r, 500));
  connecting = false;
  await client;
  const reloadMs = log.match(/configuration reloaded .*durationMs=(\d+)/)?.[1];
  const peak = rssOf(l4p.pid!, "VmHWM");
  if (redis) {
    console.log(
      `${runtime} (Redis): kv put ${putS} s; listening after ${listenS} s; RSS ${mb(rss)} ` +
        `(peak ${mb(peak)}); ` +
        `one key changed: in force after ${inForceMs.toFixed(0)} ms (reload ${reloadMs} ms); ` +
        `longest connection meanwhile ${longest.toFixed(0)} ms (before: ${before.toFixed(1)} ms)`,
    );
    l4p.kill("SIGKILL");
    redis.stop();
    continue;
  }
  console.log(
    `${runtime}: YAML ${sizeMb} MB; check ${checkS} s; listening after ${listenS} s; RSS ${
      mb(rss)
    } (${(rss / N / 1024).toFixed(1)} KB a router; peak ${
      mb(peak)
    }); reload ${reloadMs} ms; longest connection during it ${longest.toFixed(0)} ms (before: ${
      before.toFixed(1)
    } ms)`,
  );
  l4p.kill("SIGKILL");
}
backend.close();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
