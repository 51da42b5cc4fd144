import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { test } from "node:test";
import { AccessLog } from "../src/log/access_log.ts";
import { type ConnRecord, TrafficTracker } from "../src/metrics/tracker.ts";
import { loadRuntime } from "../src/runtime/mod.ts";
import { waitFor } from "./_helpers.ts";

function traffic(tracker: TrafficTracker) {
  const tcp: ConnRecord = {
    id: tracker.nextId(),
    entryPoint: "web",
    client: { hostname: "192.0.2.7", port: 4000 },
    startedAt: tracker.now(),
    router: "",
    service: "",
    server: "",
    bytesIn: 0,
    bytesOut: 0,
    liveSlot: -1,
    end: () => {},
  };
  tracker.open(tcp);
  tracker.routed(tcp, "r");
  tracker.connected(tcp, "app", "10.0.0.5:80");
  tcp.bytesIn = 12;
  tcp.bytesOut = 3400;
  tracker.close(tcp, "done");
  const udp = tracker.openSession(
    "dns",
    { hostname: "2001:db8::1", port: 53000 },
    "u",
    "resolvers",
    "10.0.0.53:53",
  );
  udp.datagramsIn = 2;
  udp.datagramsOut = 3;
  udp.bytesIn = 80;
  udp.bytesOut = 300;
  tracker.closeSession(udp, "expired");
}

test("access log: one JSON line per closed connection and ended session", () => {
  let clock = 1_000_000;
  const tracker = new TrafficTracker(() => clock += 250);
  const lines: string[] = [];
  new AccessLog(tracker, { format: "json", write: (l) => lines.push(l), now: () => new Date(0) });
  traffic(tracker);
  assert.deepEqual(lines.map((l) => JSON.parse(l)), [
    {
      time: "1970-01-01T00:00:00.000Z",
      protocol: "tcp",
      entryPoint: "web",
      router: "r",
      service: "app",
      client: "192.0.2.7:4000",
      server: "10.0.0.5:80",
      durationMs: 250,
      bytesIn: 12,
      bytesOut: 3400,
      reason: "done",
    },
    {
      time: "1970-01-01T00:00:00.000Z",
      protocol: "udp",
      entryPoint: "dns",
      router: "u",
      service: "resolvers",
      client: "[2001:db8::1]:53000",
      server: "10.0.0.53:53",
      durationMs: 250,
      datagramsIn: 2,
      datagramsOut: 3,
      bytesIn: 80,
      bytesOut: 300,
      reason: "expired",
    },
  ]);
});

test("access log: the text format, appended to a file", async () => {
  const dir = mkdtempSync(`${tmpdir()}/l4p-access-`);
  try {
    const tracker = new TrafficTracker(() => 0);
    const runtime = await loadRuntime();
    const log = new AccessLog(tracker, {
      format: "text",
      output: await runtime.openOutput(`${dir}/access.log`),
      now: () => new Date(0),
    });
    traffic(tracker);
    await log.close();
    const read =
      () => (existsSync(`${dir}/access.log`) ? readFileSync(`${dir}/access.log`, "utf8") : "");
    await waitFor(() => read().split("\n").length === 3, 5000, "two lines written");
    assert.equal(
      read(),
      '1970-01-01T00:00:00.000Z tcp 192.0.2.7:4000 → web/r → app/10.0.0.5:80 0ms in=12 out=3400 "done"\n' +
        '1970-01-01T00:00:00.000Z udp [2001:db8::1]:53000 → dns/u → resolvers/10.0.0.53:53 0ms in=80 out=300 2/3 datagrams "expired"\n',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("access log: filters.minDuration leaves out connections and sessions shorter than it", () => {
  const durations = (minDuration?: number) => {
    let clock = 1_000_000;
    // Each reading of the clock moves it on: the connection and the session last different times.
    let step = 0;
    const tracker = new TrafficTracker(() => clock += 100 * ++step);
    const lines: string[] = [];
    new AccessLog(tracker, {
      format: "json",
      write: (l) => lines.push(l),
      now: () => new Date(0),
      minDuration,
    });
    traffic(tracker);
    return lines.map((l) => JSON.parse(l) as { protocol: string; durationMs: number });
  };
  const all = durations();
  assert.equal(all.length, 2);
  const [shorter, longer] = [...all].sort((a, b) => a.durationMs - b.durationMs);
  assert.ok(shorter.durationMs < longer.durationMs);
  assert.deepEqual(durations(longer.durationMs), [longer], "as long as minDuration: kept");
  assert.deepEqual(durations(longer.durationMs + 1), []);
  assert.deepEqual(durations(0), all);
});
