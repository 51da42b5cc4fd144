/**
 * Benchmarks l4p (on Deno and on Bun) against a direct connection and peer proxies (HAProxy,
 * nginx stream, socat), one after another in the same run, and prints absolute figures and
 * ratios to direct.
 *
 *   deno run -A scripts/bench.ts [--install] [--json] [--only NAMES] [--workloads WORDS]
 *                                [--workers N | --cores N] [--rounds N] [--quick] [--limits]
 *                                [--help]
 *
 * --only l4p-bun,nginx runs those subjects (and direct; bare-bun and bare-deno, bare proxies that
 * show each runtime's floor, run only when named); --workloads memory,udp runs the
 * workloads whose names contain those words.
 *
 * Workloads: single-stream TCP throughput both ways (iperf3), kept-alive request/response
 * (redis-benchmark PING against redis-server, 50 clients), a new connection per request
 * (scripts/connload.c, 50 at a time, the client closing or resetting; with the proxy's CPU per
 * connection), UDP
 * request/response (dnsperf against dnsmasq; lost queries that dnsmasq's own socket dropped are
 * counted apart), RSS per idle proxied connection (4 000 of them; the lowest RSS over 12 s, so a
 * garbage-collected runtime is seen after it has collected), and the latency of a one-client
 * ping-pong (redis-benchmark, p50/p99), and TLS termination (the same ECDSA P-256 certificate
 * everywhere): new handshakes per second (two `openssl s_time -new` clients) and bulk
 * throughput (socat's OpenSSL client sending 1 GiB). TLS has no direct run: those rows give the
 * ratio to the best peer. Every peer runs single process, single thread, defaults otherwise.
 * --limits gives l4p's plain TCP subjects maxConnections, inFlightConn and connRateLimit, set
 * too high to refuse anything: what the limits cost a connection (with --workers N, the group's).
 * Loopback only.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { dnsmasqArgs, etcdArgs, redisArgs } from "./peer_args.ts";
// A ClientHello with a server name, as the tests build it.
import { buildHello } from "../tests/_hello.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url).href);
const { values: opts } = parseArgs({
  args: process.argv.slice(2),
  options: {
    install: { type: "boolean" },
    json: { type: "boolean" },
    only: { type: "string" },
    workloads: { type: "string" },
    workers: { type: "string", default: "1" },
    cores: { type: "string" },
    quick: { type: "boolean" },
    rounds: { type: "string", default: "1" },
    limits: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  },
});
if (opts.help) {
  // The usage is this file's opening comment.
  const source = readFileSync(fileURLToPath(import.meta.url), "utf8");
  process.stdout.write(
    source.slice(source.indexOf("/**") + 3, source.indexOf("*/")).replace(/^ \* ?/gm, "").trim() +
      "\n",
  );
  process.exit(0);
}
/**
 * --rounds N: each workload measures every subject N times, the order turned by one each round,
 * and reports medians. The machine drifts over a run (the kernel's TIME_WAIT table grows and
 * shrinks with every new-connection run, which moves the kernel's share of a connection by ±10
 * µs); in one round, whoever runs at the worst moment looks worse.
 */
const ROUNDS = Number(opts.rounds);
if (!(Number.isInteger(ROUNDS) && ROUNDS >= 1)) throw new Error(`--rounds ${opts.rounds}: a count`);
/**
 * --cores N: each proxy gets N cores to itself (taskset: cores 0..N-1) and as many processes or
 * threads (l4p --workers N, HAProxy nbthread N, nginx worker_processes N); load generators and
 * backends run on the other cores.
 */
const CORES = opts.cores ? Number(opts.cores) : undefined;
const WORKERS = CORES ?? Number(opts.workers);
const NPROC = Number(spawnSync("nproc", [], { encoding: "utf8" }).stdout.trim()) || 1;
if (CORES !== undefined && !(CORES >= 1 && CORES < NPROC)) {
  throw new Error(
    `--cores ${CORES}: this machine has ${NPROC} cores; leave at least one to the load`,
  );
}
/** Where proxies run, and where everything else does, under --cores. */
const PROXY_CPUS = CORES ? `0-${CORES - 1}` : undefined;
const LOAD_CPUS = CORES ? `${CORES}-${NPROC - 1}` : undefined;
const QUICK = opts.quick ?? false;
const PACKAGES = [
  "iperf3",
  "redis-server",
  "redis-tools",
  "dnsperf",
  "dnsmasq-base",
  "haproxy",
  "nginx",
  "libnginx-mod-stream",
  "socat",
];
const dir = mkdtempSync(`${tmpdir()}/l4p-bench-`);
const children = new Set<ChildProcess>();

function progress(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

function which(name: string): string | undefined {
  for (const d of ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]) {
    if (existsSync(`${d}/${name}`)) return `${d}/${name}`;
  }
  return undefined;
}

function start(cmd: string, args: string[], cpus = LOAD_CPUS): ChildProcess {
  const [file, argv] = cpus ? ["taskset", ["-c", cpus, cmd, ...args]] : [cmd, args];
  const child = spawn(file, argv, { stdio: ["ignore", "ignore", "pipe"], cwd: ROOT });
  let err = "";
  child.stderr!.on("data", (c: Buffer) => err = (err + c.toString()).slice(-2000));
  child.on("exit", (code) => {
    children.delete(child);
    if (code && code !== 0 && !child.killed) progress(`${cmd} exited ${code}: ${err.trim()}`);
  });
  children.add(child);
  return child;
}

function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGKILL");
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitTcp(port: number, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ port, host: "127.0.0.1" });
      s.once("connect", () => (s.destroy(), resolve(true)));
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    await sleep(25);
  }
  throw new Error(`nothing listens on ${port} after ${ms} ms`);
}

let nextPort = 21_000;
function port(): number {
  return nextPort++;
}

/** Runs a command to completion; resolves to its stdout. */
function run(cmd: string, args: string[], timeoutMs = 120_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const [file, argv] = LOAD_CPUS ? ["taskset", ["-c", LOAD_CPUS, cmd, ...args]] : [cmd, args];
    const child = spawn(file, argv, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout!.on("data", (c: Buffer) => out += c.toString());
    child.stderr!.on("data", (c: Buffer) => err += c.toString());
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else {reject(
          new Error(
            `${cmd} ${args.join(" ")} exited ${code}: ${err.slice(-500)}${out.slice(-500)}`,
          ),
        );}
    });
  });
}

/**
 * The lowest RSS seen over `ms`, sampled every 250 ms. A garbage-collected runtime frees the
 * garbage of a burst of connections on its own timer, seconds later; what an idle connection
 * costs is what stays. Peers written in C hold steady, so the window changes nothing for them.
 */
async function settledRss(total: () => number, ms: number): Promise<number> {
  let least = Infinity;
  const end = Date.now() + ms;
  while (Date.now() < end) {
    await sleep(250);
    least = Math.min(least, total());
  }
  return least;
}

function rss(pid: number): number {
  try {
    const m = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+) kB/);
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Proxies under test: each forwards LISTEN → TARGET for TCP or UDP.

interface Proxy {
  port: number;
  pids: () => number[];
  stop(): Promise<void>;
}

/**
 * `tls`: terminate TLS with the bench certificate, forward plain TCP. `sniN`: route by the
 * ClientHello's server name among N names (routers, map entries), each of them to the target;
 * `wildN` the same with every tenth name a wildcard (`*.wI.example`).
 */
type ProxyKind = "tcp" | "udp" | "tls" | `sni${number}` | `wild${number}`;

/** How many server names a `sniN` or `wildN` kind routes among; 0 for the others. */
const namesOf = (kind: ProxyKind) => Number(kind.match(/^(?:sni|wild)(\d+)$/)?.[1] ?? 0);
/** The `i`th server name of a kind: with wildcards, every tenth is one. */
const nameOf = (kind: ProxyKind, i: number) =>
  kind.startsWith("wild") && i % 10 === 9 ? `*.w${i}.example` : `customer${i}.example`;
/** What the client asks for: the last name, or a name under the last wildcard. */
const askedOf = (kind: ProxyKind) => {
  const n = namesOf(kind);
  return kind.startsWith("wild")
    ? `x.w${n - 1 - ((n - 1 - 9) % 10 + 10) % 10}.example`
    : nameOf(kind, n - 1);
};

interface Subject {
  name: string;
  available: () => string | undefined; // why not, when not
  start(kind: ProxyKind, target: number): Promise<Proxy>;
}

function l4p(runtime: "deno" | "bun"): Subject {
  const bin = `${ROOT}node_modules/.bin/${runtime}`;
  return {
    name: `l4p-${runtime}`,
    available: () => (existsSync(bin) ? undefined : `${bin} missing (npm ci)`),
    async start(kind, target) {
      const p = port();
      const args = runtime === "deno" ? ["run", "-A", "cli.ts"] : ["cli.ts"];
      if (kind === "tls") {
        const cfg = `${dir}/l4p-tls-${p}.yaml`;
        writeFileSync(
          cfg,
          `entryPoints:\n  tls: { address: "127.0.0.1:${p}" }\ntcp:\n  routers:\n` +
            `    r: { rule: "HostSNI(\`*\`)", service: s, tls: {} }\n  services:\n` +
            `    s: { loadBalancer: { servers: [{ address: "127.0.0.1:${target}" }] } }\n` +
            // The default certificate too: s_time sends no SNI, and HAProxy and nginx serve
            // their one certificate to every name.
            `tls:\n  stores:\n    default:\n      defaultCertificate: ` +
            `{ certFile: ${CERT.cert}, keyFile: ${CERT.key} }\n`,
        );
        args.push("run", "-c", cfg, "--log-level", "warn");
      } else if (namesOf(kind)) {
        const cfg = `${dir}/l4p-sni-${p}.yaml`;
        const routers = Array.from(
          { length: namesOf(kind) },
          (_, i) =>
            `    r${i}: { rule: "HostSNI(\`${
              nameOf(kind, i)
            }\`)", service: s, tls: { passthrough: true } }\n`,
        ).join("");
        writeFileSync(
          cfg,
          `entryPoints:\n  tcp: { address: "127.0.0.1:${p}" }\ntcp:\n  routers:\n${routers}` +
            `  services:\n    s: { loadBalancer: { servers: [{ address: "127.0.0.1:${target}" }] } }\n`,
        );
        args.push("run", "-c", cfg, "--log-level", "warn");
      } else if (kind === "tcp" && opts.limits) {
        // --limits: every connection passes maxConnections, inFlightConn and connRateLimit,
        // set too high to refuse any (with --workers, the group's, held by the first process).
        const cfg = `${dir}/l4p-limits-${p}.yaml`;
        writeFileSync(
          cfg,
          `entryPoints:
  tcp: { address: "127.0.0.1:${p}", maxConnections: 100000 }
` +
            `tcp:
  routers:
` +
            `    r: { rule: "HostSNI(\`*\`)", service: s, middlewares: [n, rate] }
` +
            `  middlewares:
    n: { inFlightConn: { amount: 100000 } }
` +
            `    rate: { connRateLimit: { average: 1000000, burst: 1000000 } }
  services:
` +
            `    s: { loadBalancer: { servers: [{ address: "127.0.0.1:${target}" }] } }
`,
        );
        args.push("run", "-c", cfg, "--log-level", "warn");
      } else args.push(kind, `127.0.0.1:${p}`, `127.0.0.1:${target}`, "--log-level", "warn");
      if (WORKERS > 1) args.push("--workers", String(WORKERS));
      const child = start(bin, args, PROXY_CPUS);
      // 100 000 routers take seconds to load.
      if (kind !== "udp") await waitTcp(p, namesOf(kind) ? 120_000 : undefined);
      else await sleep(1500);
      return {
        port: p,
        pids: () => [child.pid!, ...descendants(child.pid!)],
        stop: () => stop(child),
      };
    },
  };
}

/** The bench's certificate: ECDSA P-256, self-signed, for every TLS subject. */
const CERT = { cert: `${dir}/bench.pem`, key: `${dir}/bench.key`, both: `${dir}/bench-both.pem` };
function makeCertificate(): void {
  spawnSync("openssl", ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", CERT.key]);
  spawnSync("openssl", [
    "req",
    "-x509",
    "-new",
    "-key",
    CERT.key,
    "-subj",
    "/CN=bench.example",
    "-days",
    "2",
    "-out",
    CERT.cert,
  ]);
  writeFileSync(CERT.both, readFileSync(CERT.cert, "utf8") + readFileSync(CERT.key, "utf8"));
}

function descendants(pid: number): number[] {
  const r = spawnSync("pgrep", ["-P", String(pid)], { encoding: "utf8" });
  return (r.stdout ?? "").split("\n").filter(Boolean).map(Number);
}

const haproxy: Subject = {
  name: "haproxy",
  available: () => (which("haproxy") ? undefined : "haproxy not installed"),
  async start(kind, target) {
    if (kind === "udp") throw new Error("HAProxy does not proxy UDP");
    const p = port();
    const cfg = `${dir}/haproxy-${p}.cfg`;
    const ssl = kind === "tls" ? ` ssl crt ${CERT.both}` : "";
    const names = namesOf(kind);
    const head =
      `global\n  maxconn 9000\n  nbthread ${WORKERS}\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n`;
    if (names) {
      // HAProxy's way with many names: one map lookup of the ClientHello's server name; for
      // wildcards, a map of suffixes (map_end), looked up when the exact map has no entry.
      const all = Array.from({ length: names }, (_, i) => nameOf(kind, i));
      const map = `${dir}/haproxy-${p}.map`;
      const wild = `${dir}/haproxy-${p}-wild.map`;
      writeFileSync(map, all.filter((n) => !n.startsWith("*")).map((n) => `${n} be\n`).join(""));
      writeFileSync(
        wild,
        all.filter((n) => n.startsWith("*")).map((n) => `${n.slice(1)} be\n`).join(""),
      );
      writeFileSync(
        cfg,
        head +
          `frontend fe\n  bind 127.0.0.1:${p}\n  tcp-request inspect-delay 5s\n` +
          `  tcp-request content accept if { req.ssl_hello_type 1 }\n` +
          `  use_backend %[req.ssl_sni,lower,map(${map})] if { req.ssl_sni,lower,map(${map}) -m found }\n` +
          `  use_backend %[req.ssl_sni,lower,map_end(${wild})]\n` +
          `backend be\n  server s 127.0.0.1:${target}\n`,
      );
    } else {
      writeFileSync(
        cfg,
        head + `listen bench\n  bind 127.0.0.1:${p}${ssl}\n  server s 127.0.0.1:${target}\n`,
      );
    }
    const child = start(which("haproxy")!, ["-db", "-f", cfg], PROXY_CPUS);
    await waitTcp(p);
    return { port: p, pids: () => [child.pid!], stop: () => stop(child) };
  },
};

const nginx: Subject = {
  name: "nginx",
  available: () => (which("nginx") ? undefined : "nginx not installed"),
  async start(kind, target) {
    if (namesOf(kind)) throw new Error("not set up for routing by name here (HAProxy's map is)");
    const p = port();
    const prefix = mkdtempSync(`${dir}/nginx-`);
    const module = "/usr/lib/nginx/modules/ngx_stream_module.so";
    writeFileSync(
      `${prefix}/nginx.conf`,
      `${existsSync(module) ? `load_module ${module};` : ""}
daemon off; master_process ${
        WORKERS > 1 ? "on" : "off"
      }; worker_processes ${WORKERS}; pid ${prefix}/nginx.pid; error_log stderr error;
worker_rlimit_nofile 20000;
events { worker_connections 20000; }
stream {
  server {
    listen 127.0.0.1:${p}${kind === "udp" ? " udp" : kind === "tls" ? " ssl" : ""};
    ${kind === "tls" ? `ssl_certificate ${CERT.cert}; ssl_certificate_key ${CERT.key};` : ""}
    proxy_pass 127.0.0.1:${target};
    ${kind === "udp" ? "proxy_responses 1; proxy_timeout 3s;" : ""}
  }
}
`,
    );
    const child = startNginx(prefix, PROXY_CPUS);
    if (kind !== "udp") await waitTcp(p);
    else await sleep(500);
    return {
      port: p,
      pids: () => [child.pid!, ...descendants(child.pid!)],
      stop: () => stop(child),
    };
  },
};

const socat: Subject = {
  name: "socat",
  available: () => (which("socat") ? undefined : "socat not installed"),
  async start(kind, target) {
    if (kind !== "tcp" && kind !== "udp") throw new Error("plain TCP and UDP only");
    const p = port();
    const proto = kind.toUpperCase();
    const child = start(which("socat")!, [
      `${proto}-LISTEN:${p},bind=127.0.0.1,fork,reuseaddr`,
      `${proto}:127.0.0.1:${target}`,
    ], PROXY_CPUS);
    if (kind === "tcp") await waitTcp(p);
    else await sleep(300);
    return {
      port: p,
      pids: () => [child.pid!, ...descendants(child.pid!)],
      stop: () => stop(child),
    };
  },
};

/**
 * A bare proxy on one runtime (scripts/bare_bun.ts, scripts/bare_deno.ts), TCP only: the floor of
 * what any proxy on that runtime costs, so that l4p's own share can be told from the runtime's.
 * Run only when named: `--only l4p-bun,bare-bun,haproxy`.
 */
function bare(runtime: "deno" | "bun"): Subject {
  const bin = `${ROOT}node_modules/.bin/${runtime}`;
  return {
    name: `bare-${runtime}`,
    available: () => (existsSync(bin) ? undefined : `${bin} missing (npm ci)`),
    async start(kind, target) {
      if (kind !== "tcp") throw new Error("a floor for plain TCP only");
      const p = port();
      const script = `${ROOT}scripts/bare_${runtime}.ts`;
      const args = runtime === "deno" ? ["run", "-A", script] : [script];
      const child = start(bin, [...args, String(p), String(target)], PROXY_CPUS);
      await waitTcp(p);
      return { port: p, pids: () => [child.pid!], stop: () => stop(child) };
    },
  };
}

const direct: Subject = {
  name: "direct",
  available: () => undefined,
  start: (kind, target) =>
    kind === "tls"
      ? Promise.reject(new Error("no TLS without a terminator"))
      : Promise.resolve({ port: target, pids: () => [], stop: () => Promise.resolve() }),
};

const SUBJECTS: Subject[] = [direct, l4p("deno"), l4p("bun"), haproxy, nginx, socat];
/** Subjects run only when `--only` names them. */
const ON_REQUEST: Subject[] = [bare("deno"), bare("bun")];

// ---------------------------------------------------------------------------------------------
// Workloads: each measures one number for one subject (higher is better unless noted).

interface Workload {
  name: string;
  /** The programs it runs (load generators, backends): asked for only when it is chosen. */
  needs: string[];
  unit: string;
  /** Lower is better (memory, latency). */
  lower?: boolean;
  kind: ProxyKind;
  setup(): Promise<{ target: number; teardown(): Promise<void> }>;
  /**
   * The same load for a moment before the measured run, its CPU not counted: a fresh l4p
   * compiles its hot code (JIT, on threads whose CPU is the process's) in its first seconds,
   * which a proxy that runs for days does once; counted, it added several µs to each of the
   * first 50 000 connections. C peers have nothing to warm up, and lose nothing by it.
   */
  warmUp?(proxy: Proxy): Promise<unknown>;
  /** The figure, or the figure and how many operations it took (for CPU per operation). */
  measure(
    proxy: Proxy,
    subject: Subject,
  ): Promise<number | { value: number; ops: number } | undefined>;
}

const CLK_TCK = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) ||
  100;

/** CPU time (user + system, reaped children included) of processes, in seconds. */
function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      // Fields after the command's closing parenthesis: utime is the 12th, then stime, cutime, cstime.
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    } catch {
      // Gone: its time went to its parent's cutime/cstime, counted there.
    }
  }
  return ticks / CLK_TCK;
}

function iperf(reverse: boolean): Workload {
  let server: ChildProcess | undefined;
  let target = 0;
  return {
    name: `tcp stream ${reverse ? "backend→client" : "client→backend"} (iperf3)`,
    needs: ["iperf3"],
    unit: "Gbit/s",
    kind: "tcp",
    async setup() {
      target = port();
      server = start(which("iperf3")!, ["-s", "-p", String(target), "-B", "127.0.0.1"]);
      await waitTcp(target);
      return { target, teardown: () => stop(server) };
    },
    async measure(proxy) {
      const args = ["-c", "127.0.0.1", "-p", String(proxy.port), "-t", QUICK ? "2" : "4", "-J"];
      if (reverse) args.push("-R");
      // The server takes a moment to finish the previous test ("busy"): try again, briefly.
      for (let attempt = 0;; attempt++) {
        const out = JSON.parse(
          await run(which("iperf3")!, args).catch((e) => JSON.stringify({ error: e.message })),
        );
        if (out.end?.sum_received) return out.end.sum_received.bits_per_second / 1e9;
        if (attempt >= 5) throw new Error(String(out.error ?? "no result"));
        await sleep(500);
      }
    },
  };
}

/** redis-benchmark's PING tests through `port`. */
function redisPings(port: number, args: string[]): Promise<string> {
  return run(which("redis-benchmark")!, [
    "-h",
    "127.0.0.1",
    "-p",
    String(port),
    "-t",
    "ping",
    ...args,
  ]);
}

function redisWorkload(
  name: string,
  unit: string,
  args: string[],
  pick: (row: Record<string, number>) => number,
  lower = false,
): Workload {
  return {
    name,
    needs: ["redis-server", "redis-benchmark"],
    unit,
    lower,
    kind: "tcp",
    setup: redisBackend,
    async warmUp(proxy) {
      await redisPings(proxy.port, ["-c", "50", "-n", QUICK ? "10000" : "50000", "-q"]);
    },
    async measure(proxy) {
      const out = await redisPings(proxy.port, ["--csv", ...args]);
      const lines = out.trim().split("\n").map((l) => l.split(",").map((c) => c.replace(/"/g, "")));
      const header = lines[0];
      const row = lines.find((l) => l[0] === "PING_MBULK") ?? lines[1];
      const value = pick(Object.fromEntries(header.map((h, i) => [h, Number(row[i])])));
      // -t ping runs PING_INLINE and PING_MBULK: twice -n requests.
      const n = Number(args[args.indexOf("-n") + 1]);
      return lower ? value : { value, ops: 2 * n };
    },
  };
}

const udpWorkload: Workload = (() => {
  let server: ChildProcess | undefined;
  let serverPort = 0;
  const queries = `${dir}/queries.txt`;
  return {
    name: "udp request/response (dnsperf → dnsmasq)",
    needs: ["dnsperf", "dnsmasq"],
    unit: "queries/s",
    kind: "udp",
    async setup() {
      writeFileSync(
        queries,
        Array.from({ length: 1000 }, (_, i) => `q${i}.l4p.test A`).join("\n") + "\n",
      );
      const target = serverPort = port();
      server = start(which("dnsmasq")!, [
        ...dnsmasqArgs(target, { "l4p.test": "127.0.0.7" }),
        "--cache-size=10000",
      ]);
      await sleep(300);
      return { target, teardown: () => stop(server) };
    },
    async measure(proxy) {
      const dropsBefore = udpDrops(serverPort);
      const out = await run(which("dnsperf")!, [
        "-s",
        "127.0.0.1",
        "-p",
        String(proxy.port),
        "-d",
        queries,
        "-l",
        QUICK ? "3" : "5",
        "-c",
        "20",
        "-q",
        "200",
        "-t",
        "2",
      ]);
      const qps = Number(out.match(/Queries per second:\s+([\d.]+)/)?.[1]);
      const lost = out.match(/Queries lost:\s+(\d+)/);
      lastLoss = { lost: Number(lost?.[1] ?? 0), atServer: udpDrops(serverPort) - dropsBefore };
      return qps;
    },
  };
})();
let lastLoss = { lost: 0, atServer: 0 };
const udpLoss = new Map<string, { lost: number; atServer: number }>();

/**
 * Datagrams the kernel dropped at the UDP socket bound to `port` (its receive buffer was full),
 * from /proc/net/udp: a lost query may be the DNS server's, not the proxy's.
 */
function udpDrops(port: number): number {
  let drops = 0;
  try {
    for (const line of readFileSync("/proc/net/udp", "utf8").split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 12 && parseInt(f[1].split(":")[1], 16) === port) drops += Number(f.at(-1));
    }
  } catch {
    // Not Linux: no attribution.
  }
  return drops;
}

const memoryWorkload: Workload = (() => {
  let server: net.Server | undefined;
  const held: net.Socket[] = [];
  return {
    name: "memory per idle proxied connection (4000)",
    needs: [],
    unit: "KiB",
    lower: true,
    kind: "tcp",
    async setup() {
      const target = port();
      server = net.createServer((s) => {
        s.on("error", () => {});
        held.push(s);
      });
      await new Promise<void>((r) => server!.listen(target, "127.0.0.1", () => r()));
      return {
        target,
        teardown: async () => {
          for (const s of held.splice(0)) s.destroy();
          await new Promise<void>((r) => server!.close(() => r()));
        },
      };
    },
    async measure(proxy, subject) {
      if (subject.name === "direct") return undefined;
      if (subject.name === "socat") return undefined; // a process per connection: not comparable
      const n = QUICK ? 1000 : 4000;
      const clients: net.Socket[] = [];
      const open = async (count: number) => {
        for (let i = 0; i < count; i++) {
          clients.push(
            await new Promise<net.Socket>((resolve, reject) => {
              const s = net.connect({ port: proxy.port, host: "127.0.0.1" });
              s.once("connect", () => resolve(s));
              s.once("error", reject);
            }),
          );
        }
      };
      const total = () => proxy.pids().reduce((sum, pid) => sum + rss(pid), 0);
      await open(100); // warm-up
      const before = await settledRss(total, QUICK ? 1000 : 3000);
      const heldBefore = held.length;
      await open(n);
      const end = Date.now() + 30_000;
      while (held.length < heldBefore + n && Date.now() < end) await sleep(50);
      const after = await settledRss(total, QUICK ? 4000 : 12_000);
      const mib = (b: number) => (b / 1048576).toFixed(1);
      progress(`  RSS ${mib(before)} MiB → ${mib(after)} MiB over ${n} connections`);
      for (const c of clients) c.destroy();
      return (after - before) / n / 1024;
    },
  };
})();

/**
 * New connections per second, each a PING/PONG round trip with redis-server, made by
 * scripts/connload.c (epoll, one thread) closing normally or with a reset: a generator that
 * costs less than what it measures. 50 connections at a time.
 */
function connloadWorkload(close: "close" | "reset"): Workload {
  return {
    name: `new connections, client ${close === "close" ? "closes" : "resets"} (connload, 50)`,
    needs: ["redis-server", "cc"],
    unit: "conn/s",
    kind: "tcp",
    setup: redisBackend,
    warmUp: (proxy) => connload(proxy, QUICK ? 1 : 2, close),
    measure: (proxy) => connload(proxy, QUICK ? 3 : 5, close),
  };
}

/**
 * Runs scripts/connload.c against `proxy` for `seconds`, 50 connections at a time, each sending
 * `payload` (a file) or PING: the rate of completed round trips, and how many.
 */
async function connload(
  proxy: Proxy,
  seconds: number,
  close: "close" | "reset",
  payload?: string,
): Promise<{ value: number; ops: number }> {
  const out = await run(CONNLOAD, [
    "127.0.0.1",
    String(proxy.port),
    "50",
    String(seconds),
    close,
    ...(payload ? [payload] : []),
  ]);
  const [ok, failed] = out.trim().split(" ").map(Number);
  if (failed > ok / 100) throw new Error(`${failed} of ${ok + failed} failed`);
  return { value: ok / seconds, ops: ok };
}

/**
 * New connections among N routers by server name: each a TLS ClientHello for the last of N
 * names (with wildcards: a name under the last of them), passed through to a backend that answers a line (nginx's stream `return`), made by
 * scripts/connload.c, 50 at a time. l4p with N passthrough HostSNI routers; HAProxy with one
 * map lookup of the server name in a map of N entries.
 */
function routersWorkload(names: number, wildcards = false): Workload {
  const kind: ProxyKind = wildcards ? `wild${names}` : `sni${names}`;
  const hello = `${dir}/hello-${kind}.bin`;
  return {
    name: `new connections among ${names} SNI routers${
      wildcards ? ", 10 % wildcards," : ""
    } (connload, 50)`,
    needs: ["nginx", "cc"],
    unit: "conn/s",
    kind,
    async setup() {
      writeFileSync(hello, buildHello(askedOf(kind)));
      return await okBackend();
    },
    warmUp: (proxy) => connload(proxy, QUICK ? 1 : 2, "close", hello),
    measure: (proxy) => connload(proxy, QUICK ? 3 : 5, "close", hello),
  };
}

/** A backend that answers every connection with one line and closes: nginx's stream `return`. */
async function okBackend(): Promise<{ target: number; teardown: () => Promise<void> }> {
  const target = port();
  const prefix = mkdtempSync(`${dir}/ok-`);
  const module = "/usr/lib/nginx/modules/ngx_stream_module.so";
  writeFileSync(
    `${prefix}/nginx.conf`,
    `${existsSync(module) ? `load_module ${module};` : ""}
daemon off; master_process off; worker_processes 1; pid ${prefix}/nginx.pid; error_log stderr error;
worker_rlimit_nofile 20000;
events { worker_connections 20000; }
stream { server { listen 127.0.0.1:${target}; return "ok\n"; } }
`,
  );
  const server = startNginx(prefix);
  await waitTcp(target);
  return { target, teardown: () => stop(server) };
}

/** nginx in the foreground with `prefix`/nginx.conf (on `cpus`, when given). */
function startNginx(prefix: string, cpus?: string): ChildProcess {
  const args = ["-p", prefix, "-c", `${prefix}/nginx.conf`, "-e", "stderr"];
  return start(which("nginx")!, args, cpus);
}

const CONNLOAD = `${dir}/connload`;
function buildConnload(): void {
  const r = spawnSync("cc", ["-O2", "-o", CONNLOAD, `${ROOT}scripts/connload.c`], {
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`cc scripts/connload.c failed: ${r.stderr}`);
}

/** A workload's backend: a fresh redis-server, stopped by the teardown. */
async function redisBackend(): Promise<{ target: number; teardown: () => Promise<void> }> {
  const target = port();
  const server = redisServer(target);
  await waitTcp(target);
  return { target, teardown: () => stop(server) };
}

/** redis-server on loopback, without persistence, taking many clients: the request backend. */
function redisServer(port: number): ChildProcess {
  return start(which("redis-server")!, [...redisArgs(port), "--maxclients", "20000"]);
}

/** A plain TCP server for TLS workloads: socat writing what it gets to /dev/null. */
async function sink(): Promise<{ target: number; teardown(): Promise<void> }> {
  const target = port();
  const server = start(which("socat")!, [
    "-u",
    `TCP-LISTEN:${target},bind=127.0.0.1,fork,reuseaddr`,
    "OPEN:/dev/null,wronly",
  ]);
  await waitTcp(target);
  return { target, teardown: () => stop(server) };
}

/** New TLS handshakes per second: two `openssl s_time -new` clients at once, added up. */
const handshakes: Workload = {
  name: "TLS handshakes (2× openssl s_time -new)",
  needs: ["openssl", "socat"],
  unit: "hs/s",
  kind: "tls",
  setup: sink,
  async measure(proxy) {
    const seconds = QUICK ? "3" : "6";
    const one = () =>
      run("openssl", ["s_time", "-connect", `127.0.0.1:${proxy.port}`, "-new", "-time", seconds])
        .then((out) => {
          const m = out.match(/(\d+) connections in ([\d.]+)s?;?/);
          if (!m) throw new Error(`s_time: ${out.slice(-200)}`);
          return Number(m[1]) / Number(m[2]);
        });
    const rates = await Promise.all([one(), one()]);
    return rates[0] + rates[1];
  },
};

/** Bulk throughput through termination: socat's OpenSSL client sends 1 GiB of zeros. */
const tlsBulk: Workload = {
  name: "TLS bulk client→backend (socat OPENSSL, 1 GiB)",
  needs: ["socat"],
  unit: "Gbit/s",
  kind: "tls",
  setup: sink,
  async measure(proxy) {
    const mib = QUICK ? 256 : 1024;
    const t0 = process.hrtime.bigint();
    await run("sh", [
      "-c",
      `head -c ${mib}M /dev/zero | ${
        which("socat")
      } -u - OPENSSL:127.0.0.1:${proxy.port},verify=0,snihost=bench.example`,
    ]);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    return (mib * 1048576 * 8) / s / 1e9;
  },
};

const WORKLOADS: Workload[] = [
  iperf(false),
  iperf(true),
  redisWorkload("kept-alive requests (redis PING, 50 clients)", "req/s", [
    "-c",
    "50",
    "-n",
    QUICK ? "100000" : "300000",
    "-P",
    "1",
  ], (r) => r.rps),
  connloadWorkload("close"),
  connloadWorkload("reset"),
  udpWorkload,
  memoryWorkload,
  redisWorkload(
    "added latency p50 (one client ping-pong)",
    "ms",
    ["-c", "1", "-n", QUICK ? "10000" : "30000"],
    (r) => r.p50_latency_ms,
    true,
  ),
  redisWorkload(
    "added latency p99 (one client ping-pong)",
    "ms",
    ["-c", "1", "-n", QUICK ? "10000" : "30000"],
    (r) => r.p99_latency_ms,
    true,
  ),
  handshakes,
  tlsBulk,
  ...(QUICK ? [10, 10_000] : [10, 1000, 10_000, 100_000]).map((n) => routersWorkload(n)),
  ...(QUICK ? [10_000] : [1000, 10_000, 100_000]).map((n) => routersWorkload(n, true)),
];

/**
 * A fleet's store at scale: 2 000 routers and 2 000 services (10 000 keys) in etcd. For each l4p
 * runtime: how long the first read takes, how long until it listens, and how long a one-key
 * change takes to be applied (and how much of that is parsing and applying, which runs on the
 * event loop). Needs etcd (apt-get install etcd-server).
 */
async function fleetBench(): Promise<string> {
  const etcd = which("etcd");
  if (!etcd) return "fleet: n/a (etcd not installed)\n";
  const [client, peer] = [port(), port()];
  start(etcd, etcdArgs("bench", `${dir}/etcd`, client, peer));
  await waitTcp(client, 20_000);
  const { EtcdStore } = await import("../src/providers/store.ts");
  const store = new EtcdStore([`http://127.0.0.1:${client}`], "l4p");
  const pairs: [string, string][] = [];
  for (let i = 0; i < 2000; i++) {
    pairs.push([`l4p/tcp/routers/r${i}/rule`, `HostSNI(\`h${i}.example\`)`]);
    pairs.push([`l4p/tcp/routers/r${i}/service`, `s${i}`]);
    pairs.push([`l4p/tcp/routers/r${i}/entryPoints/0`, "web"]);
    pairs.push([
      `l4p/tcp/services/s${i}/loadBalancer/servers/0/address`,
      `10.0.${i >> 8}.${i & 255}:80`,
    ]);
    pairs.push([`l4p/tcp/services/s${i}/loadBalancer/servers/0/weight`, "1"]);
  }
  await store.replace(pairs);
  const { Etcd3 } = await import("etcd3");
  const etcdClient = new Etcd3({ hosts: [`http://127.0.0.1:${client}`] });
  // Traffic during the changes: one kept-alive client's round trips through l4p to an echo
  // server, so that the longest time l4p's event loop was held shows as the longest round trip.
  const echo = net.createServer((s) => s.on("error", () => {}).pipe(s));
  await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
  const echoPort = (echo.address() as net.AddressInfo).port;
  let out = `\nfleet: 2 000 routers and 2 000 services (${pairs.length} keys) in etcd\n`;
  for (const runtime of ["deno", "bun"] as const) {
    const listen = port();
    const file = `${dir}/fleet-${runtime}.yaml`;
    writeFileSync(
      file,
      `entryPoints:\n  web: { address: "127.0.0.1:${listen}" }\nproviders:\n  etcd: { endpoints: ["http://127.0.0.1:${client}"] }\n` +
        `tcp:\n  routers:\n    ping: { rule: "HostSNI(\`*\`)", service: echo }\n` +
        `  services:\n    echo: { loadBalancer: { servers: [{ address: "127.0.0.1:${echoPort}" }] } }\n`,
    );
    const bin = `${ROOT}node_modules/.bin/${runtime}`;
    const args = runtime === "deno" ? ["run", "-A", "cli.ts"] : ["cli.ts"];
    const child = spawn(bin, [...args, "run", "-c", file], {
      cwd: ROOT,
      stdio: ["ignore", "ignore", "pipe"],
    });
    children.add(child);
    let log = "";
    child.stderr!.on("data", (c: Buffer) => log += c);
    const until = async (re: RegExp, from: number) => {
      const end = Date.now() + 20_000;
      while (!re.test(log.slice(from))) {
        if (Date.now() > end) throw new Error(`no ${re} from l4p-${runtime}`);
        await sleep(5);
      }
    };
    const t0 = Date.now();
    await until(/listening entryPoint=web/, 0);
    const listening = Date.now() - t0;
    const read = Number(log.match(/store read .*durationMs=(\d+)/)?.[1]);
    const pinger = await pingThrough(listen);
    await sleep(1000);
    const idle = pinger.longest();
    const changes: number[] = [];
    const parsing: number[] = [];
    const stalls: number[] = [];
    for (let n = 1; n <= 3; n++) {
      const from = log.length;
      const t = Date.now();
      pinger.longest();
      await etcdClient.put("l4p/tcp/services/s7/loadBalancer/servers/0/address").value(
        `10.9.9.${n}:80`,
      );
      await until(/configuration reloaded .*durationMs=\d+/, from);
      changes.push(Date.now() - t);
      parsing.push(Number(log.slice(from).match(/configuration reloaded .*durationMs=(\d+)/)![1]));
      await sleep(100);
      stalls.push(pinger.longest());
    }
    pinger.stop();
    await stop(child);
    const range = (xs: number[]) => `${Math.min(...xs)}–${Math.max(...xs)}`;
    out += `  l4p-${runtime}: store read in ${read} ms, listening ${listening} ms after start; ` +
      `a one-key change applied in ${range(changes)} ms (${range(parsing)} ms of it parsing and ` +
      `applying); the longest round trip of a client meanwhile ${range(stalls)} ms ` +
      `(idle: ${idle} ms)\n`;
  }
  echo.close();
  await store.close();
  etcdClient.close();
  return out;
}

/**
 * One kept-alive client sending a byte through `port` every millisecond or so and timing each
 * echo; `longest()` gives the longest round trip since it was last asked, in ms.
 */
async function pingThrough(port: number): Promise<{ longest(): number; stop(): void }> {
  const socket = net.connect(port, "127.0.0.1");
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  socket.setNoDelay(true);
  let longest = 0;
  let stopped = false;
  let sent = 0;
  const ping = () => {
    if (stopped) return;
    sent = performance.now();
    socket.write("p");
  };
  socket.on("data", () => {
    longest = Math.max(longest, performance.now() - sent);
    setTimeout(ping, 1);
  });
  socket.on("error", () => {});
  ping();
  return {
    longest() {
      // A round trip still out counts for as long as it has been out.
      const now = Math.round(Math.max(longest, performance.now() - sent));
      longest = 0;
      return now;
    },
    stop() {
      stopped = true;
      socket.destroy();
    },
  };
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  if (opts.install) {
    const missing = PACKAGES.filter((p) => spawnSync("dpkg", ["-s", p]).status !== 0);
    if (missing.length) {
      progress(`installing ${missing.join(" ")}`);
      spawnSync("apt-get", ["update", "-qq"], { stdio: "inherit" });
      const r = spawnSync("apt-get", [
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        ...missing,
      ], {
        stdio: "inherit",
        env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
      });
      if (r.status !== 0) throw new Error("apt-get install failed");
    }
  }
  const wantedNames = opts.workloads?.split(",");
  const chosen = WORKLOADS.filter((w) =>
    !wantedNames || wantedNames.some((x) => w.name.includes(x))
  );
  // Only what the chosen workloads run is asked for (the peer proxies say so themselves).
  const absent = [...new Set(chosen.flatMap((w) => w.needs))].filter((p) => !which(p));
  if (absent.length) {
    throw new Error(`missing: ${absent.join(", ")}; run with --install (apt-get) or install them`);
  }
  if (chosen.some((w) => w.kind === "tls")) makeCertificate();
  if (chosen.some((w) => w.needs.includes("cc"))) buildConnload();
  if (opts.workloads?.split(",").includes("fleet")) {
    process.stdout.write(await fleetBench());
    if (opts.workloads === "fleet") return;
  }
  const only = opts.only?.split(",");
  const subjects = [...SUBJECTS, ...ON_REQUEST].filter((s) =>
    only ? s.name === "direct" || only.includes(s.name) : SUBJECTS.includes(s)
  );
  const results: Record<string, Record<string, number | string>> = {};
  const cpuPerOp: Record<string, Record<string, number>> = {};
  const wanted = opts.workloads?.split(",");
  for (const w of WORKLOADS) {
    if (wanted && !wanted.some((x) => w.name.includes(x))) continue;
    results[w.name] = {};
    const values: Record<string, number[]> = {};
    const cpus: Record<string, number[]> = {};
    const { target, teardown } = await w.setup();
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const order = subjects.map((_, i) => subjects[(i + round) % subjects.length]);
        for (const s of order) {
          if (typeof results[w.name][s.name] === "string") continue; // unavailable or failed
          const why = s.available();
          if (why) {
            results[w.name][s.name] = `n/a: ${why}`;
            continue;
          }
          progress(`${w.name}: ${s.name}${ROUNDS > 1 ? ` (round ${round + 1})` : ""}`);
          let proxy: Proxy | undefined;
          try {
            proxy = await s.start(w.kind, target);
            if (w.warmUp && s.name !== "direct") await w.warmUp(proxy);
            const pids = proxy.pids();
            const cpuBefore = cpuSeconds(pids);
            const result = await w.measure(proxy, s);
            const cpu = cpuSeconds([...new Set([...pids, ...proxy.pids()])]) - cpuBefore;
            const value = typeof result === "object" ? result.value : result;
            if (value === undefined) {
              results[w.name][s.name] = "n/a";
              continue;
            }
            (values[s.name] ??= []).push(value);
            if (typeof result === "object" && s.name !== "direct") {
              (cpus[s.name] ??= []).push((cpu / result.ops) * 1e6);
            }
            if (w === udpWorkload) udpLoss.set(s.name, lastLoss);
          } catch (error) {
            results[w.name][s.name] = `n/a: ${
              (error as Error).message.split("\n")[0].slice(0, 60)
            }`;
          } finally {
            await proxy?.stop();
          }
        }
      }
    } finally {
      await teardown();
    }
    for (const [name, vs] of Object.entries(values)) {
      if (typeof results[w.name][name] === "string") continue;
      results[w.name][name] = median(vs);
      if (cpus[name]) (cpuPerOp[w.name] ??= {})[name] = median(cpus[name]);
    }
  }
  if (opts.json) {
    process.stdout.write(
      JSON.stringify(
        { workers: WORKERS, cores: CORES, results, cpuPerOp, udpLoss: Object.fromEntries(udpLoss) },
        null,
        2,
      ) +
        "\n",
    );
  } else {
    process.stdout.write(table(results, cpuPerOp, subjects.map((s) => s.name)));
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** The peers l4p is held against. */
const PEER_NAMES = ["haproxy", "nginx", "socat"];

function table(
  results: Record<string, Record<string, number | string>>,
  cpuPerOp: Record<string, Record<string, number>>,
  names: string[],
): string {
  let out = `\nl4p benchmark (${WORKERS} worker${WORKERS > 1 ? "s" : ""}${
    CORES ? `, proxies pinned to ${CORES} core${CORES > 1 ? "s" : ""}` : ""
  }${
    ROUNDS > 1 ? `; medians of ${ROUNDS} rounds` : ""
  }; (x) = ratio to direct, (p) = ratio to the best peer)\n\n`;
  const width = 26;
  out += "workload".padEnd(56) + names.map((n) => n.padStart(width)).join("") + "\n";
  const row = (label: string, values: Record<string, number | string>, lower = false) => {
    const base = typeof values.direct === "number" ? values.direct : undefined;
    const peers = PEER_NAMES.map((n) => values[n]).filter((v): v is number =>
      typeof v === "number"
    );
    const best = peers.length ? (lower ? Math.min(...peers) : Math.max(...peers)) : undefined;
    let line = label.padEnd(56);
    for (const n of names) {
      const v = values[n];
      let cell: string;
      if (typeof v !== "number") cell = String(v ?? "").slice(0, width - 2);
      else {
        const parts: string[] = [];
        if (base && n !== "direct") {
          parts.push(lower ? `+${fmt(v - base)}` : `${(v / base).toFixed(2)}x`);
        }
        if (best && n.startsWith("l4p")) {
          parts.push(`${(lower ? best / v : v / best).toFixed(2)}p`);
        }
        cell = parts.length ? `${fmt(v)} (${parts.join(" ")})` : fmt(v);
        const loss = udpLoss.get(n);
        if (label.startsWith(udpWorkload.name)) {
          cell += loss ? ` L${loss.lost} D${loss.atServer}` : " L?";
        }
      }
      line += cell.padStart(width);
    }
    return line + "\n";
  };
  for (const w of WORKLOADS) {
    if (!results[w.name]) continue;
    out += row(`${w.name} [${w.unit}]`, results[w.name], w.lower);
    if (cpuPerOp[w.name]) {
      out += row(`  CPU per operation of the proxy [µs]`, cpuPerOp[w.name], true);
    }
  }
  return out +
    "\nUDP cells end in L<queries lost> D<datagrams dnsmasq's own socket dropped (its receive buffer" +
    " was full)>.\nLatency cells show the added time over direct. (p) compares with the best of " +
    "HAProxy, nginx and socat\n(lower is better for memory, latency and CPU: there (p) = best / value).\n";
}

function fmt(v: number): string {
  return v >= 1000 ? Math.round(v).toString() : v >= 10 ? v.toFixed(1) : v.toFixed(3);
}

main().then(
  () => cleanup(0),
  (error) => {
    process.stderr.write(`bench: ${(error as Error).message}\n`);
    cleanup(1);
  },
);

function cleanup(code: number): void {
  for (const c of children) c.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
  process.exit(code);
}
