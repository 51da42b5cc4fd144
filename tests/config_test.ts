import { Ajv2020 } from "ajv/dist/2020.js";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { test } from "node:test";
import { parse as parseYaml } from "yaml";
import { ConfigError, formatProblem, parseConfig, parseConfigInSteps } from "../src/config/load.ts";
import { schemaText } from "../scripts/schema.ts";
import {
  OFF_THREAD_BYTES,
  readDocument,
  readDocumentOffThread,
  ReadError,
} from "../src/config/readers.ts";
import { routerOrder } from "../src/tcp/router_order.ts";
import { describeConfig } from "../src/graph/describe.ts";
import { deadline, docExample, guidePages, ROOT, runL4p } from "./_helpers.ts";

/** The problems `parseConfig` finds, formatted as `l4p check` prints them. */
function problems(yaml: string): string[] {
  try {
    parseConfig(yaml, "l4p.yaml");
  } catch (error) {
    if (error instanceof ConfigError) return error.problems.map(formatProblem);
    throw error;
  }
  return [];
}

const VALID = `entryPoints:
  web:
    address: "127.0.0.1:8080"
tcp:
  routers:
    to-app:
      entryPoints: [web]
      rule: "HostSNI(\`*\`)"
      service: app
  services:
    app:
      loadBalancer:
        servers:
          - address: "127.0.0.1:9001"
`;

test("a valid file passes and fills in traefik's defaults", () => {
  const { config, notes } = parseConfig(VALID, "l4p.yaml");
  assert.deepEqual(notes, []);
  assert.equal(config.entryPoints.web.address.port, 8080);
  assert.equal(config.entryPoints.web.protocol, "tcp");
  assert.deepEqual(config.tcp.services.app.loadBalancer!.servers.map((s) => s.weight), [1]);
  assert.deepEqual(config.tcp.routers["to-app"].entryPoints, ["web"]);
});

const BAD: [string, string, string[]][] = [
  ["YAML syntax", "entryPoints:\n  web:\n    address: [unclosed\n", [
    /^l4p\.yaml:4:1: YAML: Flow sequence in block collection must be sufficiently indented/.source,
  ]],
  ["a key given twice", "entryPoints:\n  web: { address: ':80' }\n  web: { address: ':81' }\n", [
    /^l4p\.yaml:3:3: YAML: Map keys must be unique/.source,
  ]],
  ["an unknown key, with a did-you-mean", VALID.replace("    address:", "    adress:"), [
    "l4p.yaml:2:3: entryPoints.web.address: missing (expected string)",
    'l4p.yaml:3:5: entryPoints.web.adress: unknown key; did you mean "address"?',
  ]],
  ["a wrong type", VALID.replace("- address:", "- weight: lots\n            address:"), [
    'l4p.yaml:14:21: tcp.services.app.loadBalancer.servers[0].weight: expected number, got string "lots"',
  ]],
  ["a bad address", VALID.replace('"127.0.0.1:9001"', '"127.0.0.1"'), [
    "l4p.yaml:14:22: tcp.services.app.loadBalancer.servers[0].address: has no port (write host:port)",
  ]],
  ["a bad duration", VALID + "  serversTransports:\n    t:\n      dialTimeout: 5 parsecs\n", [
    'l4p.yaml:17:20: tcp.serversTransports.t.dialTimeout: invalid duration "5 parsecs": use a number with a unit, like 100ms, 5s, 1m or 1h30m',
  ]],
  ["a router pointing at an undefined service", VALID.replace("service: app", "service: ap"), [
    'l4p.yaml:9:16: tcp.routers.to-app.service: tcp service "ap" is not defined; did you mean "app"?',
  ]],
  ["a router pointing at an undefined entrypoint", VALID.replace("[web]", "[web, websecure]"), [
    'l4p.yaml:7:26: tcp.routers.to-app.entryPoints[1]: entrypoint "websecure" is not defined',
  ]],
  [
    "a weighted service cycle",
    VALID +
    "    a:\n      weighted:\n        services: [{ name: b }]\n    b:\n      weighted:\n        services: [{ name: a }]\n",
    ["l4p.yaml:16:7: tcp.services.a.weighted: weighted services form a cycle: a → b → a"],
  ],
  // An empty file is what a reload may read while an editor writes: taking it would close every
  // listener.
  ["an empty file", "", [
    "l4p.yaml:1:1: entryPoints: no entrypoint is defined; l4p would listen on nothing",
  ]],
  ["an empty server list", VALID.replace(/servers:\n.*\n/, "servers: []\n"), [
    "l4p.yaml:13:18: tcp.services.app.loadBalancer.servers: the server list is empty",
  ]],
  [
    "two entrypoints on one address",
    VALID.replace("tcp:\n", '  also:\n    address: ":8080"\ntcp:\n'),
    ['l4p.yaml:5:14: entryPoints.also.address: entrypoint "web" already listens on tcp 0.0.0.0:8080'],
  ],
  ["a service with neither loadBalancer nor weighted", VALID + "    empty: {}\n", [
    "l4p.yaml:15:12: tcp.services.empty: a service needs exactly one of loadBalancer or weighted",
  ]],
  [
    "a rule that does not parse",
    VALID.replace('"HostSNI(`*`)"', '"HostSNI(`a.test`) && ALPN(h2)"'),
    [
      'l4p.yaml:8:13: tcp.routers.to-app.rule: bad rule: expected a string in backticks, found "h2" at character 27: HostSNI(`a.test`) && ALPN(⟨here⟩h2)',
    ],
  ],
  [
    "a serversTransport that is not defined",
    VALID.replace("        servers:", "        serversTransport: fast\n        servers:"),
    [
      'l4p.yaml:13:27: tcp.services.app.loadBalancer.serversTransport: serversTransport "fast" is not defined',
    ],
  ],
];

/** VALID with middleware `guard` on the router, defined by `body` (indented 6). */
const guarded = (body: string) =>
  VALID.replace("      service: app\n", "      service: app\n      middlewares: [guard]\n") +
  "  middlewares:\n    guard:\n" + body;

/** VALID with `lines` added to the service's loadBalancer (indented 8). */
const balanced = (lines: string) =>
  VALID.replace("        servers:\n", `${lines}        servers:\n`);

const UDP = `entryPoints:
  dns: { address: "127.0.0.1:5353/udp" }
udp:
  routers:
    r: { service: s }
  services:
    s:
      loadBalancer:
        servers: [{ address: "127.0.0.1:53" }]
`;

BAD.push(
  ["an unknown strategy, with a did-you-mean", balanced("        strategy: leastconn\n"), [
    'l4p.yaml:13:19: tcp.services.app.loadBalancer.strategy: expected one of "wrr", "p2c", "leastConn", "hrw", got string "leastconn"; did you mean "leastConn"?',
  ]],
  ["a non-positive health check interval", balanced("        healthCheck: { interval: 0s }\n"), [
    "l4p.yaml:13:34: tcp.services.app.loadBalancer.healthCheck.interval: must be from 10ms to 24h",
  ]],
  ["a threshold below 1", balanced("        healthCheck: { interval: 1s, failsThreshold: 0 }\n"), [
    "l4p.yaml:13:54: tcp.services.app.loadBalancer.healthCheck.failsThreshold: must be at least 1",
  ]],
  [
    "send and sendHex together",
    balanced('        healthCheck: { interval: 1s, send: "x", sendHex: "78" }\n'),
    [
      "l4p.yaml:13:22: tcp.services.app.loadBalancer.healthCheck: give send or sendHex, not both",
    ],
  ],
  ["bad hex", balanced("        healthCheck: { interval: 1s, sendHex: 7g }\n"), [
    "l4p.yaml:13:47: tcp.services.app.loadBalancer.healthCheck.sendHex: expected hex bytes, two digits each (0a1b2c…)",
  ]],
  [
    "a UDP check that expects without sending",
    UDP + '        healthCheck: { interval: 1s, expect: "x" }\n',
    [
      "l4p.yaml:10:22: udp.services.s.loadBalancer.healthCheck: expect without send: a UDP check sends a datagram (send or sendHex) and expects its reply",
    ],
  ],
  ["a strategy UDP does not have", UDP + "        strategy: p2c\n", [
    'l4p.yaml:10:19: udp.services.s.loadBalancer.strategy: expected one of "wrr", "hrw", got string "p2c"',
  ]],
  ["a bad CIDR in ipAllowList", guarded("      ipAllowList: { sourceRange: [10.0.0.0/33] }\n"), [
    "l4p.yaml:18:36: tcp.middlewares.guard.ipAllowList.sourceRange[0]: has a bad prefix length (0-32)",
  ]],
  ["an inFlightConn amount below 1", guarded("      inFlightConn: { amount: 0 }\n"), [
    "l4p.yaml:18:31: tcp.middlewares.guard.inFlightConn.amount: must be at least 1",
  ]],
  [
    "a negative connRateLimit period",
    guarded("      connRateLimit: { average: 5, period: -1s }\n"),
    [
      "l4p.yaml:18:44: tcp.middlewares.guard.connRateLimit.period: must be from 1ms to 24h",
    ],
  ],
  ["an unknown middleware kind", guarded("      ipAlowList: { sourceRange: [10.0.0.0/8] }\n"), [
    "l4p.yaml:17:5: tcp.middlewares.guard: a middleware needs one of ipAllowList, inFlightConn, connRateLimit or hook",
    'l4p.yaml:18:7: tcp.middlewares.guard.ipAlowList: unknown key; did you mean "ipAllowList"?',
  ]],
  [
    "two kinds in one middleware",
    guarded(
      "      inFlightConn: { amount: 1 }\n      ipAllowList: { sourceRange: [10.0.0.0/8] }\n",
    ),
    [
      "l4p.yaml:17:5: tcp.middlewares.guard: a middleware is one kind; this one has ipAllowList and inFlightConn",
    ],
  ],
  [
    "a router naming an undefined middleware",
    guarded("      inFlightConn: { amount: 1 }\n").replace("[guard]", "[gaurd]"),
    [
      'l4p.yaml:10:21: tcp.routers.to-app.middlewares[0]: tcp middleware "gaurd" is not defined; did you mean "guard"?',
    ],
  ],
  [
    "a PROXY protocol version that does not exist",
    VALID.replace("        servers:", "        proxyProtocol: { version: 42 }\n        servers:"),
    [
      "l4p.yaml:13:35: tcp.services.app.loadBalancer.proxyProtocol.version: expected one of 1, 2, got number 42",
    ],
  ],
  [
    "a keep-alive that is no duration",
    VALID.replace('address: "127.0.0.1:8080"', 'address: "127.0.0.1:8080"\n    keepAlive: often'),
    [
      'l4p.yaml:4:16: entryPoints.web.keepAlive: invalid duration "often": use a number with a unit, like 100ms, 5s, 1m or 1h30m',
    ],
  ],
  [
    "a maxConnections below 1",
    VALID.replace('address: "127.0.0.1:8080"', 'address: "127.0.0.1:8080"\n    maxConnections: 0'),
    [
      "l4p.yaml:4:21: entryPoints.web.maxConnections: must be at least 1",
    ],
  ],
);

for (const [kind, yaml, expected] of BAD) {
  test(`config error is located: ${kind}`, () => {
    const got = problems(yaml);
    assert.equal(got.length, expected.length, got.join("\n"));
    expected.forEach((e, i) => {
      if (e.startsWith("^")) assert.match(got[i], new RegExp(e));
      else assert.equal(got[i], e);
    });
  });
}

test("routers with the same priority but disjoint host names are no tie", () => {
  const yaml = VALID.replace(
    "    to-app:",
    '    other:\n      rule: "HostSNI(`b.test`)"\n      service: app\n    to-app:',
  )
    .replace('"HostSNI(`*`)"', '"HostSNI(`a.test`)"');
  assert.deepEqual(problems(yaml), []);
});

test("wildcard routers tie only with names they can take: one label under their domain", () => {
  // Rules of one length (one priority): each pair below could or could not meet.
  const tie = (a: string, b: string) => {
    const { notes } = parseConfig(
      `entryPoints:
  web: { address: "127.0.0.1:1" }
tcp:
  routers:
    a: { rule: "HostSNI(\`${a}\`)", service: s }
    b: { rule: "HostSNI(\`${b}\`)", service: s }
  services:
    s: { loadBalancer: { servers: [{ address: "127.0.0.1:2" }] } }
`,
      "l4p.yaml",
    );
    return notes.some((n) => /same priority/.test(n.message));
  };
  assert.equal(tie("*.a.test", "*.b.test"), false, "two domains");
  assert.equal(tie("*.a.test", "*.A.test"), true, "one domain, any case");
  assert.equal(tie("*.ab.test", "x.ab.test"), true, "a name under the wildcard");
  assert.equal(tie("x.ab.test", "*.ab.test"), true, "either order");
  assert.equal(tie("*.ab.test", "x.zz.test"), false, "a name elsewhere");
  assert.equal(tie("*.b.test", "x.a.b.test"), false, "two labels down: not the wildcard's");
});

test("every problem is reported, not just the first", () => {
  const yaml = VALID.replace("    address:", "    adress:").replace('"127.0.0.1:9001"', '"nope"');
  assert.equal(problems(yaml).length, 3);
});

test("traefik v2's loadBalancer.terminationDelay is accepted, noted, and wins over the transport", () => {
  const yaml = VALID.replace(
    "        servers:",
    "        terminationDelay: 250\n        serversTransport: t\n        servers:",
  ) + "  serversTransports:\n    t:\n      terminationDelay: 1s\n";
  const { config, notes } = parseConfig(yaml, "l4p.yaml");
  assert.equal(notes.length, 1);
  assert.match(
    formatProblem(notes[0]),
    /^l4p\.yaml:13:27: tcp\.services\.app\.loadBalancer\.terminationDelay: traefik v2 form/,
  );
  assert.equal(config.tcp.services.app.loadBalancer!.terminationDelay, 250);
});

test("the published JSON Schema is the validator's own", () => {
  assert.equal(
    readFileSync(`${ROOT}schema/l4p.schema.json`, "utf8"),
    schemaText(),
    "schema/l4p.schema.json is stale: run deno run -A scripts/schema.ts",
  );
});

test("the JSON Schema and the validator agree on shapes, file by file", () => {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  const validate = ajv.compile(JSON.parse(schemaText()));
  // Shape-level documents only: cross-references are beyond what a JSON Schema can say.
  const docs = [
    VALID,
    docExample(),
    docExample("hardening"),
    docExample("quic"),
    docExample("hook-config"),
    VALID.replace("    address:", "    adress:"),
    VALID.replace("- address:", "- weight: lots\n            address:"),
    VALID.replace(/servers:\n.*\n/, "servers: []\n"),
    VALID + "log:\n  level: loud\n",
    VALID + "log:\n  level: debug\n  format: json\n",
    VALID.replace("tcp:\n", "bogus: 1\ntcp:\n"),
  ];
  for (const doc of docs) {
    const byZod = problems(doc).length === 0;
    const bySchema = validate(parseYaml(doc)) as boolean;
    assert.equal(bySchema, byZod, `disagree on:\n${doc}\n${JSON.stringify(validate.errors)}`);
  }
});

test("the QUIC and hook examples of docs/ are valid as printed", () => {
  const quic = parseConfig(docExample("quic"), "docs/proxying.md").config;
  assert.deepEqual(quic.udp.routers.api.rule, "HostSNI(`api.example.com`) && ALPN(`h3`)");
  const hooks = parseConfig(docExample("hook-config"), "docs/hooks.md").config;
  assert.deepEqual(Object.keys(hooks.tcp.middlewares), ["activeTenant"]);
});

test("l4p check notes, at its rule, a router that can never match", () => {
  const { notes } = parseConfig(
    `entryPoints:
  web: { address: "127.0.0.1:1" }
tcp:
  routers:
    odd: { rule: "Protocol(\`ssh\`) && HostSNI(\`a.example\`)", service: s }
  services:
    s: { loadBalancer: { servers: [{ address: "127.0.0.1:2" }] } }
`,
    "l4p.yaml",
  );
  assert.deepEqual(notes.map(formatProblem), [
    "l4p.yaml:5:18: tcp.routers.odd.rule: this rule can never match: HostSNI(`a.example`) needs a TLS ClientHello, which Protocol(`ssh`) is not",
  ]);
});

test("a UDP rule takes what a QUIC ClientHello and the client address say, nothing else", () => {
  const udp = (rule: string) =>
    problems(`entryPoints:
  q: { address: "127.0.0.1:1/udp" }
udp:
  routers:
    r: { rule: "${rule}", service: s }
    other: { service: s }
  services:
    s: { loadBalancer: { servers: [{ address: "127.0.0.1:2" }] } }
`);
  assert.deepEqual(udp("HostSNI(`a.example`) && ClientIP(`10.0.0.0/8`)"), []);
  assert.match(
    udp("Protocol(`ssh`)").join("\n"),
    /udp\.routers\.r\.rule: a UDP rule takes HostSNI/,
  );
  assert.match(udp("HostSNI(`a`").join("\n"), /udp\.routers\.r\.rule: bad rule/);
});

test("the README's example configuration is valid as printed", () => {
  const { config } = parseConfig(docExample(), "README.md");
  assert.deepEqual(Object.keys(config.tcp.services).sort(), ["app", "app-v2", "canary"]);
});

test("traefik's older ipWhiteList is read as ipAllowList, with a note", () => {
  const { config, notes } = parseConfig(
    guarded("      ipWhiteList: { sourceRange: [10.0.0.0/8] }\n"),
    "l4p.yaml",
  );
  assert.deepEqual(config.tcp.middlewares.guard, { ipAllowList: { sourceRange: ["10.0.0.0/8"] } });
  assert.deepEqual(notes.map(formatProblem), [
    "l4p.yaml:18:20: tcp.middlewares.guard.ipWhiteList: traefik's older name, accepted as ipAllowList; traefik v3 calls it ipAllowList",
  ]);
});

test("l4p check passes the hardening example of docs/hardening.md (middlewares, limits, keep-alive)", async () => {
  const dir = mkdtempSync(`${tmpdir()}/l4p-check-`);
  try {
    writeFileSync(`${dir}/edge.yaml`, docExample("hardening"));
    const l4p = runL4p(["check", `${dir}/edge.yaml`]);
    assert.equal(await deadline(l4p.exited, 30_000, "l4p check"), 0, l4p.stderr());
    assert.match(l4p.stdout(), /edge\.yaml: ok/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("every configuration example in the README and docs/ is valid as printed", () => {
  let checked = 0;
  for (const [page, text] of guidePages()) {
    const blocks = [...text.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1])
      // Examples that name certificate or hook files are checked with the files in place
      // (tls_termination_test, hooks_test).
      .filter((b) => b.includes("entryPoints:") && !b.includes("certFile") && !b.includes("hook:"));
    for (const block of blocks) assert.deepEqual(problems(block), [], `${page}:\n${block}`);
    checked += blocks.length;
  }
  assert.ok(checked >= 10, `${checked} examples`);
});

test("l4p check prints every problem with file:line:column and exits 1", async () => {
  const dir = mkdtempSync(`${tmpdir()}/l4p-cfg-`);
  try {
    const file = `${dir}/l4p.yaml`;
    writeFileSync(file, VALID.replace("service: app", "service: ap"));
    const l4p = runL4p(["check", file]);
    assert.equal(await deadline(l4p.exited, 15_000, "check exits"), 1);
    assert.equal(
      l4p.stderr(),
      `${file}:9:16: tcp.routers.to-app.service: tcp service "ap" is not defined; did you mean "app"?\n` +
        `${file}: 1 problem\n`,
    );
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test("l4p check lists routers per entrypoint, each service's strategy and health, and exits 0", async () => {
  const dir = mkdtempSync(`${tmpdir()}/l4p-cfg-`);
  try {
    const file = `${dir}/l4p.yaml`;
    writeFileSync(
      file,
      balanced(
        "        strategy: leastConn\n" +
          '        healthCheck: { interval: 2s, send: "PING\\r\\n", expect: "+PONG" }\n' +
          "        passiveHealthCheck: { maxFailedAttempts: 3 }\n",
      ),
    );
    const l4p = runL4p(["check", file]);
    assert.equal(await deadline(l4p.exited, 15_000, "check exits"), 0, l4p.stderr());
    assert.equal(
      l4p.stdout(),
      "entrypoint web (tcp 127.0.0.1:8080): routers in match order: to-app [HostSNI(`*`) → app]\n" +
        "tcp service app: leastConn over 1 server; health check every 2s, timeout 5s, " +
        'down after 3 failed, up after 2 passed, send "PING\\r\\n", expect "+PONG"; ' +
        "passive: down after 3 failed dials within 10s\n" +
        `${file}: ok\n`,
    );
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test("l4p check lists an entrypoint's routers in match order: priority, then longest rule", async () => {
  const dir = mkdtempSync(`${tmpdir()}/l4p-cfg-`);
  try {
    const file = `${dir}/l4p.yaml`;
    writeFileSync(
      file,
      VALID.replace(
        "    to-app:",
        [
          '    catch-all: { rule: "HostSNI(`*`)", service: app }',
          '    long: { rule: "HostSNI(`a.example.com`)", service: app }',
          '    pinned: { rule: "ALPN(`h2`)", service: app, priority: 100 }',
          "    to-app:",
        ].join("\n"),
      ).replace('"HostSNI(`*`)"\n      service: app', '"HostSNI(`b.test`)"\n      service: app'),
    );
    const l4p = runL4p(["check", file]);
    assert.equal(await deadline(l4p.exited, 15_000, "check exits"), 0, l4p.stderr());
    assert.match(
      l4p.stdout(),
      /^entrypoint web \(tcp 127\.0\.0\.1:8080\): routers in match order: pinned \[.*\], long \[.*\], to-app \[.*\], catch-all \[.*\]\n/,
    );
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test("l4p run: a static problem stops the start with check's messages; a dynamic one leaves its item out", async () => {
  const dir = mkdtempSync(`${tmpdir()}/l4p-cfg-`);
  try {
    const file = `${dir}/l4p.yaml`;
    writeFileSync(file, VALID.replace('"127.0.0.1:8080"', '"127.0.0.1"'));
    const l4p = runL4p(["run", "-c", file]);
    assert.equal(await deadline(l4p.exited, 15_000, "run exits"), 1);
    assert.equal(
      l4p.stderr(),
      `${file}:3:14: entryPoints.web.address: has no port (write host:port)\n`,
    );
    // A service with a problem, and the router that needs it, are left out; the start goes on.
    writeFileSync(file, VALID.replace('"127.0.0.1:9001"', '"127.0.0.1"'));
    const partial = runL4p(["run", "-c", file]);
    try {
      await partial.waitForLine(/listening entryPoint=web/);
      await partial.waitForLine(
        /left out of the configuration; the rest is served item=tcp\.services\.app error=".*:14:22: tcp\.services\.app\.loadBalancer\.servers\[0\]\.address: has no port/,
      );
      await partial.waitForLine(
        /item=tcp\.routers\.to-app error=".*tcp service \\"app\\" is left out for its own problem/,
      );
    } finally {
      partial.kill("SIGKILL");
    }
    const missing = runL4p(["run", "-c", `${dir}/nope.yaml`]);
    assert.equal(await deadline(missing.exited, 15_000, "run exits"), 1);
    assert.equal(missing.stderr(), `${dir}/nope.yaml: cannot read: no such file\n`);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test("a reload's check pauses between its steps, gives what parseConfig gives, and fails the same way", async () => {
  const routers = Array.from(
    { length: 50 },
    (_, i) => `    r${i}: { rule: "HostSNI(\`h${i}.example\`)", service: s }`,
  ).join("\n");
  const text = `entryPoints:\n  web: { address: ":8443" }\ntcp:\n  routers:\n${routers}\n` +
    `  services:\n    s: { loadBalancer: { servers: [{ address: "10.0.0.1:443" }] } }\n`;
  let pauses = 0;
  const stepped = await parseConfigInSteps(text, "f.yaml", {}, [], () => {
    pauses++;
    return Promise.resolve();
  });
  // Reading, shaping, the schema, the references, parsing the rules, their names, their ties,
  // TLS, the model.
  assert.equal(pauses, 9);
  assert.deepEqual(stepped.config, parseConfig(text, "f.yaml").config);
  const bad = text.replace("10.0.0.1:443", "10.0.0.1");
  await assert.rejects(
    parseConfigInSteps(bad, "f.yaml", {}, [], () => Promise.resolve()),
    (e: unknown) => e instanceof ConfigError && /has no port/.test(e.message),
  );
});

test("durations have ranges that fit a timer; check names the range, negatives only where they mean something", () => {
  const withEntryPoint = (extra: string) =>
    VALID.replace('    address: "127.0.0.1:8080"\n', `    address: "127.0.0.1:8080"\n${extra}`);
  const refused: [string, string][] = [
    [withEntryPoint("    helloTimeout: 600h\n"), "helloTimeout: must be from 1ms to 10m"],
    [withEntryPoint("    helloTimeout: -1s\n"), "helloTimeout: must be from 1ms to 10m"],
    [withEntryPoint("    udp: { timeout: 30d }\n"), "invalid duration"],
    [withEntryPoint("    udp: { timeout: 25h }\n"), "udp.timeout: must be from 1ms to 24h"],
    [balanced("        healthCheck: { interval: 1ns }\n"), "interval: must be from 10ms to 24h"],
    [
      balanced("        healthCheck: { interval: 1s, timeout: 2h }\n"),
      "timeout: must be from 1ms to 1h",
    ],
    [
      balanced("        terminationDelay: 100000000\n"),
      "must be from 0ms to 24h, or negative for never (in milliseconds)",
    ],
  ];
  for (const [text, message] of refused) {
    assert.throws(() => parseConfig(text, "l4p.yaml"), (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.ok(e.message.includes(message), `${message} in ${e.message}`);
      return true;
    });
  }
  // traefik's negative terminationDelay (wait for ever) and dialKeepAlive (off) stay.
  const { config } = parseConfig(
    balanced("        terminationDelay: -1\n") +
      "  serversTransports:\n    t: { terminationDelay: -1s, dialKeepAlive: -1s }\n",
    "l4p.yaml",
  );
  assert.equal(config.tcp.services.app.loadBalancer!.terminationDelay, -1);
  assert.equal(config.tcp.serversTransports.t.terminationDelay, -1000);
  assert.equal(config.tcp.serversTransports.t.dialKeepAlive, -1);
});

const TOML_VALID = `[entryPoints]
  [entryPoints.web]
    address = "127.0.0.1:8080"

[tcp]
  [tcp.routers]
    [tcp.routers.to-app]
      entryPoints = ["web"]
      rule = "HostSNI(\`*\`)"
      service = "app"

  [tcp.services]
    [tcp.services.app.loadBalancer]
      [[tcp.services.app.loadBalancer.servers]]
        address = "127.0.0.1:9001"
      [[tcp.services.app.loadBalancer.servers]]
        address = "127.0.0.1:9002"
`;

test("TOML: a file loads as its YAML twin does, chosen by its extension", () => {
  const { config } = parseConfig(TOML_VALID, "traefik.toml");
  assert.equal(config.entryPoints.web.address.port, 8080);
  assert.deepEqual(
    config.tcp.services.app.loadBalancer!.servers.map((s) => s.address.port),
    [9001, 9002],
  );
  assert.equal(config.tcp.routers["to-app"].service, "app");
});

test("TOML: mistakes are located at file:line:col, syntax errors too", () => {
  const cases: [string, string][] = [
    [
      TOML_VALID.replace('address = "127.0.0.1:9002"', 'address = "127.0.0.1"'),
      "traefik.toml:17:9: tcp.services.app.loadBalancer.servers[1].address: has no port",
    ],
    [
      TOML_VALID.replace('service = "app"', 'service = "ap"'),
      'traefik.toml:10:7: tcp.routers.to-app.service: tcp service "ap" is not defined; did you mean "app"?',
    ],
    [
      TOML_VALID.replace('rule = "HostSNI(`*`)"', 'rulez = "HostSNI(`*`)"'),
      'traefik.toml:9:7: tcp.routers.to-app.rulez: unknown key; did you mean "rule"?',
    ],
    [TOML_VALID.replace("[tcp.routers]", "[tcp.routers"), "traefik.toml:6:"],
  ];
  for (const [text, want] of cases) {
    assert.throws(() => parseConfig(text, "traefik.toml"), (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.ok(
        e.message.split("\n").some((l) => l.startsWith(want)),
        `${e.message}\nwanted: ${want}`,
      );
      return true;
    });
  }
});

test("two routers of one priority that could match the same connection: accepted, ordered by name, noted", () => {
  const yaml = VALID.replace(
    "    to-app:",
    '    other:\n      rule: "HostSNI(`x`) || ALPN(`h3`)"\n      service: app\n    to-app:',
  ).replace('"HostSNI(`*`)"', '"HostSNI(`a`) || ALPN(`h2`)"');
  const { config, notes } = parseConfig(yaml, "l4p.yaml");
  assert.deepEqual(notes.map(formatProblem), [
    'l4p.yaml:11:13: tcp.routers.to-app.rule: routers "other" and "to-app" on entrypoint "web" have the same priority (26) and could match the same connection: "other" is tried first (by name); set priority to choose',
  ]);
  assert.deepEqual(routerOrder(config.tcp.routers, "web"), ["other", "to-app"]);
});

test("contrib/l4p.yaml, the example the install steps copy, passes l4p check", async () => {
  const l4p = runL4p(["check", `${ROOT}contrib/l4p.yaml`]);
  assert.equal(await deadline(l4p.exited, 30_000, "check"), 0, l4p.stderr());
  assert.match(l4p.stdout(), /contrib\/l4p\.yaml: ok/);
});

test("the README's error lines are what l4p says of its example with the two mistakes it names", () => {
  const readme = readFileSync(`${ROOT}README.md`, "utf8");
  const printed = readme.match(/<!-- example-config-errors -->\s*```text\n([\s\S]*?)```/)![1];
  const bad = docExample()
    .replace("service: canary", "service: canry")
    .replace('"127.0.0.1:9002"', '"127.0.0.1"');
  assert.throws(() => parseConfig(bad, "l4p.yaml"), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.equal(`${e.message}\n`, printed);
    return true;
  });
});

test("check's summary names weighted services; a service no router reaches is noted", () => {
  const yaml = VALID.replace(
    "        servers:\n",
    "        servers:\n",
  ) + `    spare:
      loadBalancer:
        servers: [{ address: "127.0.0.1:9009" }]
    both:
      weighted: { services: [{ name: app, weight: 3 }, { name: spare, weight: 1 }] }
    idle:
      loadBalancer:
        servers: [{ address: "127.0.0.1:9010" }]
`;
  const { config, notes } = parseConfig(yaml.replace("service: app", "service: both"), "l4p.yaml");
  assert.match(describeConfig(config), /^tcp service both: weighted over app \(3\), spare \(1\)$/m);
  assert.deepEqual(notes.map(formatProblem), [
    "l4p.yaml:20:5: tcp.services.idle: no tcp router uses this service",
  ]);
});

/** A YAML configuration of `n` passthrough routers, past the size read off the main thread. */
function largeYaml(n: number): string {
  const lines = ["entryPoints:", '  web: { address: "127.0.0.1:0" }', "tcp:", "  routers:"];
  for (let i = 0; i < n; i++) {
    lines.push(`    r${i}: { rule: "HostSNI(\`c${i}.example\`)", service: s, priority: ${i + 1} }`);
  }
  lines.push("  services:", '    s: { loadBalancer: { servers: [{ address: "127.0.0.1:1" }] } }');
  return lines.join("\n") + "\n";
}

test("a large YAML file is read on a worker thread, to the same tree and the same located errors", async () => {
  const text = largeYaml(8_000);
  assert.ok(text.length > OFF_THREAD_BYTES, `${text.length} bytes`);
  let onThread = false;
  const off = await readDocumentOffThread(text, "big.yaml", (r) => onThread = r.worker);
  assert.ok(onThread, "read on a worker thread");
  assert.deepEqual(off.data, readDocument(text, "big.yaml").data);
  // Places are found on the worker too: locate answers stand-ins, places() the real ones.
  const last = text.split("\n")[8003];
  assert.deepEqual(off.locate(["tcp", "routers", "r7999", "service"]), { line: -1, column: 0 });
  assert.deepEqual(off.locate(["tcp", "routers", "r1"]), { line: -2, column: 0 });
  assert.deepEqual(await off.places!(), [
    { line: 8004, column: last.indexOf("s, priority") + 1 },
    readDocument(text, "big.yaml").locate(["tcp", "routers", "r1"]),
  ]);
  // A key given twice: js-yaml refuses it on the worker, which says where.
  const twice = text.replace("    r5: ", "    r4: ");
  const sync = (() => {
    try {
      readDocument(twice, "big.yaml");
    } catch (error) {
      return error as ReadError;
    }
  })();
  await assert.rejects(readDocumentOffThread(twice, "big.yaml"), (error: unknown) => {
    assert.ok(error instanceof ReadError);
    assert.deepEqual(error.position, sync!.position);
    assert.equal(error.detail, sync!.detail);
    return true;
  });
  // What JSON cannot carry (.inf) is read on the main thread, the same as ever.
  const inf = text + "x: .inf\n";
  let again = false;
  const read = await readDocumentOffThread(inf, "big.yaml", () => again = true);
  assert.equal(again, false);
  assert.equal(read.data.x, Infinity);
});

test("a reload of a large file in steps gives the configuration a whole read gives", async () => {
  const text = largeYaml(8_000);
  const whole = parseConfig(text, "big.yaml", {}).config;
  const inSteps = await parseConfigInSteps(text, "big.yaml", {}, [], () => Promise.resolve());
  assert.equal(Object.keys(inSteps.config.tcp.routers).length, 8_000);
  assert.deepEqual(inSteps.config.tcp.routers.r7999, whole.tcp.routers.r7999);
  const broken = text.replace("service: s, priority: 7000 }", "service: t, priority: 7000 }");
  await assert.rejects(
    parseConfigInSteps(broken, "big.yaml", {}, [], () => Promise.resolve()),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(
        error.message,
        /^big\.yaml:7004:\d+: tcp\.routers\.r6999\.service: tcp service "t"/,
      );
      return true;
    },
  );
});

test("over 20 000 routers, a reload's schema check goes in slices, with a whole check's verdict", async () => {
  const lines = ["entryPoints:", '  web: { address: "127.0.0.1:0" }', "tcp:", "  routers:"];
  for (let i = 0; i < 20_050; i++) {
    lines.push(`    r${i}: {rule: "HostSNI(\`a${i}\`)", service: s}`);
  }
  lines.push("  services:", '    s: { loadBalancer: { servers: [{ address: "127.0.0.1:1" }] } }');
  const text = lines.join("\n") + "\n";
  let pauses = 0;
  const pause = () => {
    pauses++;
    return Promise.resolve();
  };
  const { config } = await parseConfigInSteps(text, "big.yaml", {}, [], pause);
  assert.equal(Object.keys(config.tcp.routers).length, 20_050);
  assert.deepEqual(
    config.tcp.routers.r20049,
    parseConfig(text, "big.yaml").config.tcp.routers.r20049,
  );
  assert.ok(pauses >= 11, `${pauses} pauses`); // 9 steps, and one more per slice of routers
  // One mistake in the first slice, one in the second: both found, each at its place, as a
  // whole check finds them.
  const bad = text.replace("r14: {", 'r14: {priority: "high", ')
    .replace("r20048: {", "r20048: {prio: 2, ");
  const whole = (() => {
    try {
      parseConfig(bad, "big.yaml", {});
    } catch (error) {
      return (error as ConfigError).message;
    }
  })()!;
  const said = whole.split("\n");
  assert.match(said[0], /^big\.yaml:19:\d+: tcp\.routers\.r14\.priority: expected number/);
  assert.match(said[1], /^big\.yaml:20053:\d+: tcp\.routers\.r20048\.prio: unknown key/);
  assert.equal(said.length, 2, whole);
  await assert.rejects(
    parseConfigInSteps(bad, "big.yaml", {}, [], pause),
    (error: unknown) => error instanceof ConfigError && error.message === whole,
  );
  // A name given twice is found in linear time too (yaml's own check of unique keys compares
  // each key with every one before it: minutes for 100 000 routers).
  assert.throws(
    () => parseConfig(text.replace("    r7: ", "    r6: "), "big.yaml", {}),
    (e: unknown) =>
      e instanceof ConfigError && /^big\.yaml:12:5: YAML: Map keys must be unique/.test(e.message),
  );
});

test("a large file's problems, read on a worker, are said at the places a whole read gives", async () => {
  // An unused service (a note), a router whose service is not defined (left out when serving),
  // and a wrong type: each located on the worker, then as parseConfig locates them.
  const text = largeYaml(8_000)
    .replace(
      '    r10: { rule: "HostSNI(`c10.example`)", service: s,',
      '    r10: { rule: "HostSNI(`c10.example`)", service: nope,',
    )
    .replace("priority: 7000 }", 'priority: "high" }') +
    '    unused: { loadBalancer: { servers: [{ address: "127.0.0.1:2" }] } }\n';
  const whole = (() => {
    try {
      parseConfig(text, "big.yaml", {});
    } catch (error) {
      return (error as ConfigError).message;
    }
  })();
  await assert.rejects(
    parseConfigInSteps(text, "big.yaml", {}, [], () => Promise.resolve()),
    (error: unknown) => error instanceof ConfigError && error.message === whole,
  );
  assert.match(whole!, /^big\.yaml:15:\d+: tcp\.routers\.r10\.service: tcp service "nope"/m);
  // Serving (isolate): the same places on what is left out and on the notes.
  const served = parseConfig(text, "big.yaml", { isolate: true });
  const stepped = await parseConfigInSteps(
    text,
    "big.yaml",
    { isolate: true },
    [],
    () => Promise.resolve(),
  );
  assert.deepEqual(stepped.config.leftOut, served.config.leftOut);
  assert.equal(stepped.config.leftOut.length, 2);
  assert.deepEqual(stepped.notes.map(formatProblem), served.notes.map(formatProblem));
  assert.ok(
    stepped.notes.some((n) => /unused: no tcp router uses this service/.test(formatProblem(n))),
  );
});
