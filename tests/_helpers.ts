/**
 * Test helpers. Peers (echo servers, clients) use `node:net`, which both runtimes implement
 * independently of l4p's own runtime layer, so a bug there cannot hide itself.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import dgram from "node:dgram";
import net from "node:net";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { dnsmasqArgs } from "../scripts/peer_args.ts";
import type { Config } from "../src/config/model.ts";
import { Logger } from "../src/log/logger.ts";
import { loadRuntime } from "../src/runtime/mod.ts";
import { L4pServer } from "../src/server/server.ts";

/** The repository root. */
export const ROOT = fileURLToPath(new URL("..", import.meta.url).href);

/** Which runtime runs the tests. */
export const RUNTIME = process.versions.bun ? "bun" : "deno";

/** Fails with `what` if `promise` has not settled within `ms`. */
export function deadline<T>(
  promise: Promise<T>,
  ms: number,
  what: string | (() => string),
): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const said = typeof what === "function" ? what() : what;
      reject(new Error(`timed out after ${ms} ms: ${said}`));
    }, ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * This process's environment without HTTP proxy settings: a peer on loopback is reached
 * directly, whatever proxy the machine running the tests sets for the outside world.
 */
export function envWithoutProxy(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^(https?|all|no)_proxy$/i.test(k)),
  );
}

/** Polls `check` (every 10 ms) until it returns true; fails after `ms`. */
export async function waitFor(check: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A `node:net` server on loopback, port 0. */
export interface NetServer {
  port: number;
  server: net.Server;
  /** Every connection accepted so far. */
  sockets: net.Socket[];
  close(): Promise<void>;
}

/** Starts a `node:net` server with half-open sockets allowed. */
export function netServer(onConn: (socket: net.Socket) => void): Promise<NetServer> {
  const sockets: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.push(socket);
    onConn(socket);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      resolve({
        port,
        server,
        sockets,
        close: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      });
    });
  });
}

/** An echo server: every byte comes back; a half-close is answered with a half-close. */
export function echoServer(): Promise<NetServer> {
  return netServer((socket) => {
    socket.on("error", () => {});
    socket.pipe(socket);
  });
}

/** Connects a `node:net` client with half-open allowed (from `localAddress`, if given). */
export function connect(
  port: number,
  host = "127.0.0.1",
  localAddress?: string,
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host, localAddress, allowHalfOpen: true });
    socket.once("connect", () => {
      socket.off("error", reject);
      resolve(socket);
    });
    socket.once("error", reject);
  });
}

/** Reads until the peer ends its writes; resolves to everything received. */
export function readToEnd(socket: net.Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.once("end", () => resolve(Buffer.concat(chunks)));
    socket.once("error", reject);
  });
}

/** Reads until the peer ends its writes, hashing as it goes; resolves to the count and hash. */
export function hashToEnd(socket: net.Socket): Promise<{ length: number; sha256: string }> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    let length = 0;
    socket.on("data", (c: Buffer) => {
      hash.update(c);
      length += c.length;
    });
    socket.once("end", () => resolve({ length, sha256: hash.digest("hex") }));
    socket.once("error", reject);
  });
}

/** Resolves once `socket` is fully closed. */
export function closed(socket: net.Socket): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => socket.once("close", () => resolve()));
}

/**
 * Resolves once the peer has ended its writes or the socket has closed or failed: what a client
 * sees when l4p closes its connection (with half-open allowed, `close` alone would wait for our
 * own end too).
 */
export function ended(socket: net.Socket): Promise<void> {
  if (socket.destroyed || socket.readableEnded) return Promise.resolve();
  return new Promise((resolve) => {
    socket.once("end", () => resolve());
    socket.once("close", () => resolve());
    socket.once("error", () => resolve());
  });
}

/** Reads exactly `n` bytes (or fails at end of stream). */
export function readBytes(socket: net.Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const onData = (c: Buffer) => {
      chunks.push(c);
      got += c.length;
      if (got >= n) {
        socket.off("data", onData);
        socket.off("end", onEnd);
        const all = Buffer.concat(chunks);
        if (all.length > n) socket.unshift(all.subarray(n));
        resolve(all.subarray(0, n));
      }
    };
    const onEnd = () => reject(new Error(`stream ended after ${got} of ${n} bytes`));
    socket.on("data", onData);
    socket.once("end", onEnd);
  });
}

/** Deterministic pseudo-random bytes, so large payloads are cheap to make and check. */
export function pattern(size: number, seed = 1): Uint8Array {
  const out = new Uint8Array(size);
  const words = new Uint32Array(out.buffer, 0, size >>> 2);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  for (let i = words.length * 4; i < size; i++) out[i] = i & 0xff;
  return out;
}

/** SHA-256 of some bytes, as hex. */
export function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** An in-process l4p with a quiet logger whose lines are kept for assertions. */
export interface TestProxy {
  server: L4pServer;
  /** The port of entrypoint `name`. */
  port(name: string): number;
  lines: string[];
  close(): void;
}

/** Starts an in-process l4p on the runtime running the tests. */
export async function startProxy(
  config: Config,
  random: (() => number) | null = null,
): Promise<TestProxy> {
  const lines: string[] = [];
  const logger = new Logger({ level: "debug", write: (line) => lines.push(line) });
  const server = new L4pServer({ runtime: await loadRuntime(), logger, random });
  await server.start(config);
  return {
    server,
    lines,
    port: (name) => server.addressOf(name)!.port,
    close: () => server.close(),
  };
}

/** A running l4p command in a child process. */
export interface L4pProcess {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves to the exit code. */
  exited: Promise<number | null>;
  /** Resolves once stderr has a line matching `re`, to its match. */
  waitForLine(re: RegExp, ms?: number): Promise<RegExpMatchArray>;
  kill(signal?: NodeJS.Signals): void;
}

/** The command line that runs l4p's CLI from source on the current runtime. */
export function cliCommand(args: string[]): [string, string[]] {
  const cli = `${ROOT}cli.ts`;
  return RUNTIME === "bun"
    ? [process.execPath, [cli, ...args]]
    : [process.execPath, ["run", "-A", "--quiet", cli, ...args]];
}

/**
 * Starts an l4p process; `command` defaults to the CLI from source on this runtime, `cwd` to
 * the repository, `env` to this process's.
 */
export function runL4p(
  args: string[],
  command?: string,
  cwd = ROOT,
  env: NodeJS.ProcessEnv = process.env,
): L4pProcess {
  const [file, argv] = command ? [command, args] : cliCommand(args);
  const child = spawn(file, argv, { stdio: ["ignore", "pipe", "pipe"], cwd, env });
  let out = "";
  let err = "";
  const waiters: (() => void)[] = [];
  child.stdout!.on("data", (c: Buffer) => {
    out += c.toString();
    for (const w of waiters) w();
  });
  child.stderr!.on("data", (c: Buffer) => {
    err += c.toString();
    for (const w of waiters) w();
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => {
      for (const w of waiters) w();
      resolve(code);
    })
  );
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitForLine(re, ms = 15_000) {
      return deadline(
        new Promise((resolve, reject) => {
          const check = () => {
            const m = err.match(re) ?? out.match(re);
            if (m) resolve(m);
            else if (child.exitCode !== null || child.signalCode !== null) {
              const how = child.signalCode ?? child.exitCode;
              reject(new Error(`l4p exited (${how}) before ${re}:\n${err}${out}`));
            }
          };
          waiters.push(check);
          check();
        }),
        ms,
        // Read when the time is up: what l4p said while it was waited for.
        () => `l4p output matching ${re}; got:\n${err}${out}`,
      );
    },
    // process.kill rather than child.kill: Deno's child.kill reports the exit as killed by that
    // signal even when the child handled it and exited 0.
    kill: (signal = "SIGTERM") => {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, signal);
    },
  };
}

/**
 * Kills `pid` and every process under it (SIGKILL), children first found from /proc. For
 * launchers such as `bunx`, which run l4p as a child of their own: killing the launcher alone
 * leaves l4p running, adopted by init.
 */
export function killTree(pid: number): void {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // gone meanwhile
    }
    // The command name, in parentheses, may hold spaces: the fields after it are fixed.
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
  }
  const all: number[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) walk(c);
    all.push(p);
  };
  walk(pid);
  for (const p of all) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
}

/** Resident set size of a process, in bytes, from /proc. */
export function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const m = status.match(/VmRSS:\s+(\d+) kB/);
  return m ? Number(m[1]) * 1024 : 0;
}

/**
 * A port whose handshakes never complete: a listener with backlog 0 that never accepts, its
 * queue filled by two idle connections, so the kernel drops further SYNs. Made with python3
 * (on every machine of ours) because both runtimes accept on their own.
 */
export async function blackhole(): Promise<{ port: number; close(): void }> {
  const script = `
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(0)
fill = []
for _ in range(2):
    c = socket.socket()
    c.setblocking(False)
    c.connect_ex(s.getsockname())
    fill.append(c)
print(s.getsockname()[1], flush=True)
sys.stdin.read()
`;
  const child = spawn("python3", ["-c", script], { stdio: ["pipe", "pipe", "inherit"] });
  const port = await deadline(
    new Promise<number>((resolve) =>
      child.stdout!.once("data", (c: Buffer) => resolve(Number(c.toString())))
    ),
    5000,
    "python3 blackhole listener",
  );
  return { port, close: () => child.kill() };
}

/** The README and every page under docs/, each as `[path from the root, text]`. */
export function guidePages(): [string, string][] {
  const pages = readdirSync(`${ROOT}docs`).filter((f) => f.endsWith(".md")).sort()
    .map((f) => `docs/${f}`);
  return ["README.md", ...pages].map((p) => [p, readFileSync(`${ROOT}${p}`, "utf8")]);
}

/**
 * An example from the README or a docs/ page (the `lang` block after `<!-- example-NAME -->`), as
 * printed there; each name is used once in all of them.
 */
export function docExample(name = "config", lang = "yaml"): string {
  const marker = new RegExp(`<!-- example-${name} -->\\s*\`\`\`${lang}\\n([\\s\\S]*?)\`\`\``);
  const found = guidePages().flatMap(([, text]) => {
    const m = text.match(marker);
    return m ? [m[1]] : [];
  });
  if (found.length !== 1) {
    throw new Error(`${found.length} ${lang} examples after <!-- example-${name} --> (want one)`);
  }
  return found[0];
}

/**
 * The hook example of docs/hooks.md, as printed, in `dir` (`hooks/tenant.ts` and `l4p.yaml`), with its
 * entrypoint on `port` and its service at `backend`; resolves to the configuration's path.
 */
export function writeReadmeHook(dir: string, port: number, backend: number): string {
  mkdirSync(`${dir}/hooks`, { recursive: true });
  writeFileSync(`${dir}/hooks/tenant.ts`, docExample("hook", "ts"));
  const yaml = docExample("hook-config")
    .replace('":8443"', `"127.0.0.1:${port}"`)
    .replace("10.0.0.5:443", `127.0.0.1:${backend}`);
  writeFileSync(`${dir}/l4p.yaml`, yaml);
  return `${dir}/l4p.yaml`;
}

/** A UDP socket on loopback that queues what it receives. */
export interface UdpPeer {
  socket: dgram.Socket;
  port: number;
  send(data: Uint8Array | string, port: number): Promise<void>;
  /** The next datagram received (and its sender's port), within `ms`. */
  next(ms?: number): Promise<{ data: Buffer; port: number }>;
  received: { data: Buffer; port: number }[];
  close(): void;
}

/** Binds a `node:dgram` socket on 127.0.0.1, port 0. */
export async function udpPeer(
  onMessage?: (peer: UdpPeer, data: Buffer, port: number) => void,
): Promise<UdpPeer> {
  const socket = dgram.createSocket("udp4");
  // An ICMP "port unreachable" for an earlier send (its receiver closed) is no failure here.
  socket.on("error", () => {});
  const received: { data: Buffer; port: number }[] = [];
  const waiters: (() => void)[] = [];
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", () => resolve()));
  const peer: UdpPeer = {
    socket,
    port: (socket.address() as { port: number }).port,
    received,
    send: (data, port) =>
      new Promise((resolve, reject) =>
        socket.send(data, port, "127.0.0.1", (e) => e ? reject(e) : resolve())
      ),
    next(ms = 5000) {
      return deadline(
        new Promise((resolve) => {
          const check = () => {
            if (received.length > 0) resolve(received.shift()!);
            else waiters.push(check);
          };
          check();
        }),
        ms,
        `a datagram on port ${peer.port}`,
      );
    },
    close: () => socket.close(),
  };
  socket.on("message", (data: Buffer, rinfo: dgram.RemoteInfo) => {
    if (onMessage) return onMessage(peer, data, rinfo.port);
    received.push({ data, port: rinfo.port });
    waiters.splice(0).forEach((w) => w());
  });
  return peer;
}

/**
 * dnsmasq on 127.0.0.1:`port`, answering A queries for each domain in `answers` with its address
 * (`{"l4p.test": "127.0.0.7"}`), and nothing else (no upstream, no hosts file).
 */
export function startDnsmasq(dnsmasq: string, port: number, answers: Record<string, string>) {
  return spawn(dnsmasq, dnsmasqArgs(port, answers), { stdio: "ignore" });
}

/** The path of an installed program, or undefined. */
export function which(name: string): string | undefined {
  const dirs = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];
  return dirs.map((d) => `${d}/${name}`).find((path) => existsSync(path));
}

/**
 * Whether a test that needs real peer `program` can run. In CI (`CI` set) the peer is required:
 * `.ci/run` installs it, so its absence fails the test instead of skipping it.
 */
export function peerOrSkip(program: string): string | false {
  const path = which(program);
  if (path) return path;
  if (process.env.CI) {
    throw new Error(`${program} is not installed; .ci/run should have installed it`);
  }
  return false;
}

/**
 * Runs `promtool check metrics` (Prometheus's own linter) on `metrics`: its exit code and what it
 * said. Undefined when promtool is not installed (outside CI; `peerOrSkip` fails CI instead).
 */
export async function promtoolCheck(
  metrics: string,
): Promise<{ code: unknown; out: string } | undefined> {
  const promtool = peerOrSkip("promtool");
  if (!promtool) return undefined;
  const check = spawn(promtool, ["check", "metrics"], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  check.stdout!.on("data", (c: Buffer) => out += c);
  check.stderr!.on("data", (c: Buffer) => out += c);
  check.stdin!.end(metrics);
  const code = await deadline(new Promise((r) => check.once("exit", r)), 10_000, "promtool");
  return { code, out };
}

/**
 * A port free on loopback for both TCP and UDP, for a peer that must be told its port. It is
 * chosen below the kernel's ephemeral range, so no socket bound to port 0 can take it before
 * the peer binds it (a freed ephemeral port is handed out again soon).
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const udp = dgram.createSocket("udp4");
    const udpFree = await new Promise<boolean>((resolve) => {
      udp.once("error", () => resolve(false));
      udp.bind(port, "127.0.0.1", () => resolve(true));
    });
    if (!udpFree) continue;
    await new Promise<void>((r) => udp.close(() => r()));
    const server = net.createServer();
    const tcpFree = await new Promise<boolean>((resolve) => {
      server.once("error", () => resolve(false));
      server.listen(port, "127.0.0.1", () => resolve(true));
    });
    if (!tcpFree) continue;
    await new Promise<void>((r) => server.close(() => r()));
    return port;
  }
}

/**
 * The A records `dig` gets for `name` through 127.0.0.1:`port`, asking up to `tries` times until
 * one comes: "" when none did. Only address lines count: on a timeout dig prints
 * ";; communications error …" on stdout, which is no answer (taken for one, it stopped retries
 * on a busy machine).
 */
export async function digA(port: number, name: string, tries = 5): Promise<string> {
  const dig = which("dig");
  if (!dig) throw new Error("dig is not installed");
  for (let i = 0; i < tries; i++) {
    const out = await new Promise<string>((resolve) =>
      execFile(
        dig,
        ["+short", "+tries=1", "+time=2", "-p", String(port), "@127.0.0.1", name],
        (_error, stdout) => resolve(String(stdout ?? "")),
      )
    );
    const addresses = out.split("\n").map((l) => l.trim()).filter((l) =>
      /^\d+\.\d+\.\d+\.\d+$/.test(l)
    );
    if (addresses.length > 0) return addresses.join("\n");
  }
  return "";
}
