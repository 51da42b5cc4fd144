/**
 * Real peers for interop tests: nginx (stream module) and HAProxy, each started on loopback from
 * a configuration written to a temporary folder, single-process, in the foreground.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { deadline, freePort, peerOrSkip } from "./_helpers.ts";

/** A running peer. */
export interface Peer {
  port: number;
  child: ChildProcess;
  log: () => string;
  stop(): void;
}

/** Resolves once `port` on loopback accepts a TCP connection. */
export async function waitForPort(port: number, ms = 10_000, what = `port ${port}`): Promise<void> {
  await deadline(
    (async () => {
      for (;;) {
        const ok = await new Promise<boolean>((resolve) => {
          const s = net.connect({ port, host: "127.0.0.1" });
          s.once("connect", () => {
            s.destroy();
            resolve(true);
          });
          s.once("error", () => resolve(false));
        });
        if (ok) return;
        await new Promise((r) => setTimeout(r, 20));
      }
    })(),
    ms,
    what,
  );
}

function start(command: string, args: string[], dir: string, port: number): Promise<Peer> {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], cwd: dir });
  let log = "";
  child.stdout!.on("data", (c: Buffer) => log += c.toString());
  child.stderr!.on("data", (c: Buffer) => log += c.toString());
  const peer: Peer = {
    port,
    child,
    log: () => log,
    stop() {
      child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return waitForPort(port, 10_000, `${command} on ${port}`).then(() => peer, (error) => {
    peer.stop();
    throw new Error(`${error.message}\n${log}`);
  });
}

/** The nginx binary and its stream module, when installed. */
export const NGINX = peerOrSkip("nginx");
const STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so";

/**
 * nginx with one `stream` server on a free port: `listen` options (say `proxy_protocol`) and the
 * server's directives are the caller's.
 */
export async function startNginx(listenOptions: string, directives: string): Promise<Peer> {
  if (!NGINX) throw new Error("nginx is not installed");
  const dir = mkdtempSync(`${tmpdir()}/l4p-nginx-`);
  const port = await freePort();
  const load = existsSync(STREAM_MODULE) ? `load_module ${STREAM_MODULE};` : "";
  writeFileSync(
    `${dir}/nginx.conf`,
    `${load}
daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log stderr warn;
events { worker_connections 256; }
stream {
  server {
    listen 127.0.0.1:${port} ${listenOptions};
    ${directives}
  }
}
`,
  );
  return start(NGINX, ["-p", dir, "-c", `${dir}/nginx.conf`, "-e", "stderr"], dir, port);
}

/** The HAProxy binary, when installed. */
export const HAPROXY = peerOrSkip("haproxy");

/** HAProxy in TCP mode on a free port, forwarding to one server with `serverOptions`. */
export async function startHaproxy(serverPort: number, serverOptions: string): Promise<Peer> {
  if (!HAPROXY) throw new Error("haproxy is not installed");
  const dir = mkdtempSync(`${tmpdir()}/l4p-haproxy-`);
  const port = await freePort();
  writeFileSync(
    `${dir}/haproxy.cfg`,
    `global
  maxconn 256
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
listen front
  bind 127.0.0.1:${port}
  server backend 127.0.0.1:${serverPort} ${serverOptions}
`,
  );
  return start(HAPROXY, ["-db", "-f", `${dir}/haproxy.cfg`], dir, port);
}

/** The openssl command, when installed. */
export const OPENSSL = peerOrSkip("openssl");

/** A self-signed certificate for `name` (CN and SAN), written to `dir`. */
export function makeCert(dir: string, name: string): { cert: string; key: string } {
  if (!OPENSSL) throw new Error("openssl is not installed");
  const cert = `${dir}/${name}.crt`;
  const key = `${dir}/${name}.key`;
  const r = spawnSync(OPENSSL, [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-days",
    "2",
    "-subj",
    `/CN=${name}`,
    "-addext",
    `subjectAltName=DNS:${name}`,
    "-keyout",
    key,
    "-out",
    cert,
  ], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`openssl req failed: ${r.stderr}`);
  return { cert, key };
}

/** `openssl s_server` with a certificate for `name`, offering `alpn` when given. */
export async function startTlsServer(name: string, alpn?: string): Promise<Peer> {
  if (!OPENSSL) throw new Error("openssl is not installed");
  const dir = mkdtempSync(`${tmpdir()}/l4p-tls-`);
  const { cert, key } = makeCert(dir, name);
  const port = await freePort();
  const args = [
    "s_server",
    "-accept",
    `127.0.0.1:${port}`,
    "-cert",
    cert,
    "-key",
    key,
    "-www",
    "-quiet",
  ];
  if (alpn) args.push("-alpn", alpn);
  return start(OPENSSL, args, dir, port);
}

/** What `openssl s_client` saw: the server certificate's subject and the ALPN agreed. */
export interface TlsClientResult {
  subject: string | undefined;
  alpn: string | undefined;
  output: string;
}

/** Connects with `openssl s_client` (SNI `servername` unless undefined, ALPN `alpn`) and hangs up. */
export function tlsClient(
  port: number,
  servername?: string,
  alpn?: string,
): Promise<TlsClientResult> {
  if (!OPENSSL) throw new Error("openssl is not installed");
  const args = ["s_client", "-connect", `127.0.0.1:${port}`];
  args.push(...(servername ? ["-servername", servername] : ["-noservername"]));
  if (alpn) args.push("-alpn", alpn);
  const child = spawn(OPENSSL, args, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (c: Buffer) => output += c.toString());
  child.stderr!.on("data", (c: Buffer) => output += c.toString());
  return deadline(
    new Promise<TlsClientResult>((resolve) =>
      child.once("exit", () =>
        resolve({
          subject: output.match(/^subject=\s*CN\s*=\s*(\S+)/m)?.[1],
          alpn: output.match(/^ALPN protocol: (\S+)/m)?.[1],
          output,
        }))
    ),
    10_000,
    `openssl s_client to ${port}`,
  ).finally(() => child.kill("SIGKILL"));
}

/** The ClientHello bytes `openssl s_client` sends for `servername` and `alpn`. */
export async function captureClientHello(servername?: string, alpn?: string): Promise<Uint8Array> {
  if (!OPENSSL) throw new Error("openssl is not installed");
  let bytes = Buffer.alloc(0);
  let done: () => void = () => {};
  const complete = new Promise<void>((r) => done = r);
  const server = net.createServer((s) => {
    s.on("data", (c: Buffer) => {
      bytes = Buffer.concat([bytes, c]);
      // One handshake record holding the whole hello, as OpenSSL sends it.
      if (bytes.length >= 5 && bytes.length >= 5 + bytes.readUInt16BE(3)) done();
    });
    s.on("error", () => {});
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const args = ["s_client", "-connect", `127.0.0.1:${port}`];
  args.push(...(servername ? ["-servername", servername] : ["-noservername"]));
  if (alpn) args.push("-alpn", alpn);
  const child = spawn(OPENSSL, args, { stdio: ["pipe", "ignore", "ignore"] });
  try {
    await deadline(complete, 10_000, "a ClientHello from openssl");
  } finally {
    child.kill("SIGKILL");
    server.close();
  }
  return new Uint8Array(bytes.subarray(0, 5 + bytes.readUInt16BE(3)));
}

/** Debian's PostgreSQL server programs (package postgresql), if installed. */
export const POSTGRES_BIN: string | false = (() => {
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root)
    ? spawnSync("ls", [root], { encoding: "utf8" }).stdout.split("\n").filter(Boolean)
    : [];
  const bin = versions.map((v) => `${root}/${v}/bin`).find((b) => existsSync(`${b}/postgres`));
  if (bin) return bin;
  if (process.env.CI) {
    throw new Error("postgres is not installed; .ci/run should have installed it");
  }
  return false;
})();

/**
 * A PostgreSQL server on a loopback port, in a temporary folder, with database `database` and
 * trust authentication. initdb and postgres refuse root: they run as the user `postgres`.
 */
export async function startPostgres(database: string): Promise<Peer> {
  const dir = mkdtempSync(`${tmpdir()}/l4p-pg-`);
  spawnSync("chown", ["postgres:postgres", dir]);
  const as = (args: string[]) =>
    spawnSync("runuser", ["-u", "postgres", "--", ...args], { encoding: "utf8" });
  const init = as([`${POSTGRES_BIN}/initdb`, "-D", `${dir}/data`, "-A", "trust", "-U", "postgres"]);
  if (init.status !== 0) throw new Error(`initdb: ${init.stderr}`);
  const port = await freePort();
  const child = spawn("runuser", [
    "-u",
    "postgres",
    "--",
    `${POSTGRES_BIN}/postgres`,
    "-D",
    `${dir}/data`,
    "-p",
    String(port),
    "-k",
    dir,
    "-c",
    "listen_addresses=127.0.0.1",
  ], { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stdout!.on("data", (d) => log += d);
  child.stderr!.on("data", (d) => log += d);
  await waitForPort(port, 30_000, `postgres on ${port}`);
  const created = as([`${POSTGRES_BIN}/createdb`, "-h", dir, "-p", String(port), database]);
  if (created.status !== 0) throw new Error(`createdb: ${created.stderr}`);
  return {
    port,
    child,
    log: () => log,
    stop() {
      // runuser does not pass a signal on: pg_ctl stops the server itself, and waits.
      as([`${POSTGRES_BIN}/pg_ctl`, "-D", `${dir}/data`, "-m", "immediate", "-w", "stop"]);
      child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
