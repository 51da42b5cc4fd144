import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../src/config/load.ts";
import {
  connect,
  deadline,
  ended,
  netServer,
  readToEnd,
  runL4p,
  startProxy,
  waitFor,
} from "./_helpers.ts";
import { HAPROXY, NGINX, startHaproxy, startNginx } from "./_peers.ts";

const needNginx = !NGINX &&
  "needs nginx with the stream module (apt-get install nginx libnginx-mod-stream)";
const needBoth = needNginx || (!HAPROXY && "needs haproxy (apt-get install haproxy)");

/** nginx answering each connection with the client address its PROXY header carried. */
const whoAmI = () =>
  startNginx("proxy_protocol", 'return "$proxy_protocol_addr:$proxy_protocol_port\\n";');

function config(entryPoint: string, servicePort: number, version?: 1 | 2) {
  return parseConfig(
    `entryPoints:
  web:
    address: "127.0.0.1:0"
${entryPoint}
tcp:
  routers:
    r: { rule: "HostSNI(\`*\`)", service: s }
  services:
    s:
      loadBalancer:
        servers: [{ address: "127.0.0.1:${servicePort}" }]
        serversTransport: t
  serversTransports:
    t:
      ${version ? `proxyProtocol: { version: ${version} }` : "dialTimeout: 5s"}
`,
    "pp.yaml",
  ).config;
}

for (const version of [1, 2] as const) {
  test(`proxy protocol v${version}: nginx behind l4p sees the client's real address and port`, {
    skip: needNginx,
  }, async () => {
    const nginx = await whoAmI();
    const proxy = await startProxy(config("", nginx.port, version));
    try {
      const client = await connect(proxy.port("web"));
      const answer = (await deadline(readToEnd(client), 5000, "nginx's answer")).toString();
      assert.equal(answer, `127.0.0.1:${client.localPort}\n`, nginx.log());
    } finally {
      proxy.close();
      nginx.stop();
    }
  });
}

for (const [haproxyOption, onward] of [["send-proxy", 2], ["send-proxy-v2", 1]] as const) {
  test(
    `proxy protocol: HAProxy ${haproxyOption} → l4p (trusted) → nginx keeps the original client`,
    {
      skip: needBoth,
    },
    async () => {
      const nginx = await whoAmI();
      const proxy = await startProxy(
        config('    proxyProtocol: { trustedIPs: ["127.0.0.1/32"] }', nginx.port, onward),
      );
      const haproxy = await startHaproxy(proxy.port("web"), haproxyOption);
      try {
        for (let i = 0; i < 3; i++) {
          const client = await connect(haproxy.port);
          const answer = (await deadline(readToEnd(client), 5000, "answer through HAProxy and l4p"))
            .toString();
          // The client's own port, not HAProxy's nor l4p's outgoing one.
          assert.equal(answer, `127.0.0.1:${client.localPort}\n`, haproxy.log() + nginx.log());
        }
        assert.ok(proxy.lines.some((l) => l.includes("PROXY header accepted")));
      } finally {
        haproxy.stop();
        proxy.close();
        nginx.stop();
      }
    },
  );
}

test("proxy protocol: a header from an untrusted source closes that connection", async () => {
  let backendGot = "";
  const backend = await netServer((s) => s.on("data", (c: Buffer) => backendGot += c.toString()));
  const proxy = await startProxy(
    config('    proxyProtocol: { trustedIPs: ["10.0.0.0/8"] }', backend.port),
  );
  try {
    for (
      const pieces of [["PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\nhello"], [
        "PRO",
        "XY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
      ]]
    ) {
      const client = await connect(proxy.port("web"));
      client.on("error", () => {});
      for (const p of pieces) {
        client.write(p);
        await new Promise((r) => setTimeout(r, 20)); // separate segments, to test the split
      }
      await deadline(ended(client), 5000, "untrusted connection closed");
    }
    await waitFor(() => proxy.server.tracker.live.size === 0, 5000, "records closed");
    assert.equal(backendGot, "", "no forged header reached the backend");
    assert.equal(
      proxy.lines.filter((l) => l.includes("PROXY header from an untrusted source")).length,
      2,
    );
    // Plain bytes from the same untrusted source pass.
    const plain = await connect(proxy.port("web"));
    plain.write("just bytes");
    await waitFor(() => backendGot === "just bytes", 5000, "plain bytes forwarded");
    plain.destroy();
  } finally {
    proxy.close();
    await backend.close();
  }
});

test("proxy protocol: a trusted source without a header passes its bytes untouched", async () => {
  const backend = await netServer((s) => s.on("data", (c: Buffer) => s.end(c)));
  const proxy = await startProxy(
    config('    proxyProtocol: { trustedIPs: ["127.0.0.0/8"] }', backend.port),
  );
  try {
    const client = await connect(proxy.port("web"));
    client.write("no header here");
    assert.equal((await deadline(readToEnd(client), 5000, "echo")).toString(), "no header here");
  } finally {
    proxy.close();
    await backend.close();
  }
});

test("proxy protocol: a slow or partial header is cut off at the deadline, others are served", async () => {
  const backend = await netServer((s) => s.on("data", (c: Buffer) => s.end(c)));
  const proxy = await startProxy(
    config('    proxyProtocol: { trustedIPs: ["127.0.0.1"], headerTimeout: 300ms }', backend.port),
  );
  const reasons: string[] = [];
  proxy.server.tracker.onClosed((c) => reasons.push(c.reason));
  try {
    const slow = await connect(proxy.port("web"));
    slow.on("error", () => {});
    slow.write("PROXY TCP4 1.2.3.4 "); // and nothing more
    const silent = await connect(proxy.port("web"));
    silent.on("error", () => {});
    const malformed = await connect(proxy.port("web"));
    malformed.on("error", () => {});
    malformed.write("PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n");
    // A well-behaved client is served at once, while the others wait.
    const good = await connect(proxy.port("web"));
    good.write("PROXY TCP4 203.0.113.9 198.51.100.1 4000 443\r\nping");
    assert.equal((await deadline(readToEnd(good), 5000, "good client's echo")).toString(), "ping");
    await deadline(ended(malformed), 5000, "malformed header closed");
    await deadline(ended(slow), 5000, "slow header cut off");
    await deadline(ended(silent), 5000, "silent client cut off");
    await waitFor(() => reasons.length === 4, 5000, "all four closed");
    assert.deepEqual(
      [...reasons].sort(),
      [
        "PROXY header timeout",
        "PROXY header timeout",
        "malformed PROXY header",
        "termination delay",
      ],
    );
    assert.ok(
      proxy.lines.some((l) => l.includes("malformed PROXY header") && l.includes("bad port")),
    );
  } finally {
    proxy.close();
    await backend.close();
  }
});

test("proxy protocol: the address a trusted header carries is the connection's client", async () => {
  const backend = await netServer((s) => s.on("data", (c: Buffer) => s.end(c)));
  const proxy = await startProxy(config("    proxyProtocol: { insecure: true }", backend.port));
  const clients: string[] = [];
  proxy.server.tracker.onClosed((c) =>
    clients.push(`${c.record.client.hostname}:${c.record.client.port}`)
  );
  try {
    const client = await connect(proxy.port("web"));
    client.write("PROXY TCP6 2001:db8::7 2001:db8::1 5555 443\r\nx");
    assert.equal((await deadline(readToEnd(client), 5000, "echo")).toString(), "x");
    await waitFor(() => clients.length === 1, 5000, "closed");
    assert.deepEqual(clients, ["2001:db8::7:5555"]);
  } finally {
    proxy.close();
    await backend.close();
  }
});

test("proxy protocol: l4p tcp --proxy-protocol 2 --accept-proxy, from the command line", {
  skip: needNginx,
}, async () => {
  const nginx = await whoAmI();
  const l4p = runL4p([
    "tcp",
    "127.0.0.1:0",
    `127.0.0.1:${nginx.port}`,
    "--proxy-protocol",
    "2",
    "--accept-proxy",
    "127.0.0.1/32",
  ]);
  try {
    const [, port] = await l4p.waitForLine(/listening .* address=127\.0\.0\.1:(\d+)/);
    assert.match(l4p.stderr(), /proxyProtocol v2/);
    const client = await connect(Number(port));
    client.write("PROXY TCP4 198.51.100.7 192.0.2.1 31337 443\r\n");
    const answer = (await deadline(readToEnd(client), 5000, "nginx's answer")).toString();
    assert.equal(answer, "198.51.100.7:31337\n");
  } finally {
    l4p.kill("SIGKILL");
    nginx.stop();
  }
});
