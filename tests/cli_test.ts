import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import process from "node:process";
import { test } from "node:test";
import {
  connect,
  deadline,
  echoServer,
  netServer,
  readToEnd,
  ROOT,
  runL4p,
  RUNTIME,
  udpPeer,
} from "./_helpers.ts";
import { makeTlsFixtures } from "./_tls.ts";

test("l4p --help prints usage with examples and exits 0", async () => {
  const l4p = runL4p(["--help"]);
  assert.equal(await deadline(l4p.exited, 15_000, "exit"), 0);
  assert.match(l4p.stdout(), /Usage:/);
  assert.match(l4p.stdout(), /l4p tcp :8080 10\.0\.0\.5:80/);
});

test("l4p --version names l4p and the runtime", async () => {
  const l4p = runL4p(["--version"]);
  assert.equal(await deadline(l4p.exited, 15_000, "exit"), 0);
  assert.match(l4p.stdout(), /^l4p \d+\.\d+\.\d+ \((deno|bun) [\d.]+/);
});

for (
  const [args, message] of [
    [["frobnicate"], /unknown command "frobnicate"/],
    [[], /no command given/],
    [["tcp", ":8080"], /tcp needs LISTEN and at least one TARGET/],
    [["tcp", ":8080", "nohost"], /target "nohost" has no port/],
    [["tcp", ":99999", "127.0.0.1:80"], /listen address ":99999" has a bad port/],
    [["tcp", ":8080", "127.0.0.1:80", "--bogus"], /Unknown option '--bogus'/],
    [
      ["tcp", ":8080", "127.0.0.1:80", "--dial-timeout", "5 parsecs"],
      /--dial-timeout: invalid duration/,
    ],
    [["tcp", ":8080", "127.0.0.1:80", "--log-level", "loud"], /--log-level must be one of/],
    [
      ["tcp", ":8080", "127.0.0.1:80", "--health-interval", "1ns"],
      /--health-interval must be from 10ms to 24h/,
    ],
    [
      ["tcp", ":8080", "127.0.0.1:80", "--drain-timeout", "600h"],
      /--drain-timeout must be from 0ms to 24h/,
    ],
    [["udp", ":5353"], /udp needs LISTEN and at least one TARGET/],
    [["tcp", ":8080", "127.0.0.1:80", "--proxy-protocol", "3"], /--proxy-protocol must be 1 or 2/],
    [
      ["tcp", ":8080", "127.0.0.1:80", "--accept-proxy", "10.0.0.0/99"],
      /--accept-proxy "10\.0\.0\.0\/99" has a bad prefix/,
    ],
    [
      ["udp", ":5353", "127.0.0.1:53", "--max-sessions", "0"],
      /--max-sessions must be a whole number/,
    ],
  ] as const
) {
  test(`bad arguments exit 2 with one clear line: ${args.join(" ") || "(none)"}`, async () => {
    const l4p = runL4p([...args]);
    assert.equal(await deadline(l4p.exited, 15_000, "exit"), 2);
    const first = l4p.stderr().split("\n")[0];
    assert.match(first, /^l4p: /);
    assert.match(first, message);
    assert.equal(l4p.stderr().split("\n")[1], "Run 'l4p --help' for usage.");
    assert.doesNotMatch(l4p.stderr(), /Usage:/, "one line and a pointer, not the whole help");
  });
}

test("a port already in use prints a clear error and exits 1", async () => {
  const taken = await netServer(() => {});
  try {
    const l4p = runL4p(["tcp", `127.0.0.1:${taken.port}`, "127.0.0.1:9"]);
    assert.equal(await deadline(l4p.exited, 15_000, "exit"), 1);
    assert.equal(
      l4p.stderr().trim(),
      `l4p: entrypoint "tcp" cannot listen on 127.0.0.1:${taken.port}: the address is already in use`,
    );
  } finally {
    await taken.close();
  }
});

test("l4p tcp forwards, logs one line per listener, and stops cleanly on SIGTERM", async () => {
  const echo = await echoServer();
  const l4p = runL4p(["tcp", "127.0.0.1:0", `127.0.0.1:${echo.port}`]);
  try {
    const [, port] = await l4p.waitForLine(
      /listening entryPoint=tcp protocol=tcp address=127\.0\.0\.1:(\d+)/,
    );
    assert.match(l4p.stderr(), new RegExp(`forwardsTo="tcp→127\\.0\\.0\\.1:${echo.port} `));
    const client = await connect(Number(port));
    const got = readToEnd(client);
    client.end("through the command");
    assert.equal((await deadline(got, 5000, "echo")).toString(), "through the command");
    l4p.kill("SIGTERM");
    assert.equal(await deadline(l4p.exited, 10_000, "exit after SIGTERM"), 0);
  } finally {
    l4p.kill("SIGKILL");
    await echo.close();
  }
});

test("l4p demo serves its built-in backends, alternating between them", async () => {
  const l4p = runL4p(["demo", "--listen", "127.0.0.1:0"]);
  try {
    const [, port] = await l4p.waitForLine(/nc 127\.0\.0\.1 (\d+)/);
    const names = [];
    for (let i = 0; i < 2; i++) {
      const client = await connect(Number(port));
      const got = readToEnd(client);
      client.end("hi\n");
      const text = (await deadline(got, 5000, "demo answer")).toString();
      const m = text.match(/^hello from demo backend (A|B); type a line\n\1: HI\n$/);
      assert.ok(m, text);
      names.push(m[1]);
    }
    assert.deepEqual([...names].sort(), ["A", "B"]);
    const [, udpPort] = await l4p.waitForLine(/nc -u 127\.0\.0\.1 (\d+)/);
    const client = await udpPeer();
    try {
      await client.send("hi", Number(udpPort));
      assert.match((await client.next()).data.toString(), /^(A|B): HI$/);
    } finally {
      client.close();
    }
  } finally {
    l4p.kill("SIGKILL");
  }
});

test("l4p udp forwards datagrams with --timeout and --max-sessions", async () => {
  const backend = await udpPeer((peer, data, port) => peer.send(data, port));
  const l4p = runL4p([
    "udp",
    "127.0.0.1:0",
    `127.0.0.1:${backend.port}`,
    "--timeout",
    "5s",
    "--max-sessions",
    "7",
  ]);
  const client = await udpPeer();
  try {
    const [, port] = await l4p.waitForLine(
      /listening entryPoint=udp protocol=udp address=127\.0\.0\.1:(\d+)/,
    );
    assert.match(l4p.stderr(), /\(timeout 5s, maxSessions 7\)/);
    await client.send("datagram", Number(port));
    assert.equal((await client.next()).data.toString(), "datagram");
  } finally {
    client.close();
    backend.close();
    l4p.kill("SIGKILL");
  }
});

test(
  "Deno without a permission: one line naming the flag; with the documented flags a TLS configuration runs",
  {
    skip: RUNTIME !== "deno" && "Deno's permissions",
  },
  async () => {
    const fx = makeTlsFixtures(["a.example"]);
    const cert = fx.server("a.example");
    writeFileSync(
      `${fx.dir}/l4p.yaml`,
      `entryPoints:
  websecure: { address: "127.0.0.1:0" }
tcp:
  routers:
    r: { rule: "HostSNI(\`a.example\`)", service: s, tls: {} }
  services:
    s: { loadBalancer: { servers: [{ address: "127.0.0.1:9" }] } }
tls:
  certificates: [{ certFile: ${cert.cert}, keyFile: ${cert.key} }]
`,
    );
    const deno = process.execPath;
    try {
      const denied = runL4p(
        ["run", "--allow-net", "--allow-read", `${ROOT}cli.ts`, "run", "-c", `${fx.dir}/l4p.yaml`],
        deno,
      );
      assert.equal(await deadline(denied.exited, 30_000, "exit"), 1);
      assert.match(
        denied.stderr(),
        /^l4p: Requires env access .*--allow-env flag .*docs\/deno\.md/,
      );
      assert.equal(denied.stderr().trim().split("\n").length, 1, denied.stderr());
      const allowed = runL4p([
        "run",
        "--allow-net",
        "--allow-env",
        `--allow-read=${fx.dir}`,
        `${ROOT}cli.ts`,
        "run",
        "-c",
        `${fx.dir}/l4p.yaml`,
      ], deno);
      try {
        await allowed.waitForLine(/listening entryPoint=websecure/);
      } finally {
        allowed.kill("SIGKILL");
      }
    } finally {
      rmSync(fx.dir, { recursive: true, force: true });
    }
  },
);

test("every help text fits 80 columns", async () => {
  for (const command of ["", "run", "check", "tcp", "udp", "kv", "top", "demo"]) {
    const l4p = runL4p([...(command ? [command] : []), "--help"]);
    assert.equal(await deadline(l4p.exited, 15_000, "help"), 0);
    const long = l4p.stdout().split("\n").filter((l) => [...l].length > 80);
    assert.deepEqual(long, [], `l4p ${command} --help`);
  }
});
