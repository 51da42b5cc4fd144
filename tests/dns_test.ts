import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { promisify } from "node:util";
import { adHocUdpConfig } from "../src/config/adhoc.ts";
import { freePort, peerOrSkip, startDnsmasq, startProxy } from "./_helpers.ts";

const run = promisify(execFile);
const dnsmasq = peerOrSkip("dnsmasq");
const dig = peerOrSkip("dig");
const skip = (!dnsmasq || !dig) &&
  "needs dnsmasq and dig (apt-get install dnsmasq-base bind9-dnsutils)";

/** Asks `name` through `port` with dig, a real DNS client: the A records, or "" on no answer. */
async function ask(port: number, name: string): Promise<string> {
  if (!dig) throw new Error("dig is not installed");
  const { stdout } = await run(dig, [
    "+short",
    "+tries=1",
    "+time=1",
    "-p",
    String(port),
    "@127.0.0.1",
    name,
  ])
    .catch((e) => ({ stdout: String(e.stdout ?? "") }));
  return stdout.trim();
}

test("udp: a real DNS server (dnsmasq) behind l4p answers real queries (dig) sent through it", {
  skip,
}, async () => {
  if (!dnsmasq || !dig) return;
  const port = await freePort();
  const server = startDnsmasq(dnsmasq, port, {
    "l4p.test": "127.0.0.7",
    "other.test": "127.0.0.8",
  });
  const proxy = await startProxy(
    adHocUdpConfig({ listen: "127.0.0.1:0", targets: [`127.0.0.1:${port}`] }),
  );
  try {
    const via = proxy.port("udp");
    // dnsmasq takes a moment to bind: ask until it answers, 20 tries of a second at most.
    let first = "";
    for (let i = 0; i < 20 && first === ""; i++) first = await ask(via, "l4p.test");
    assert.equal(first, "127.0.0.7");
    // Many clients (each dig is a new source port: a new session) at once.
    const names = Array.from({ length: 30 }, (_, i) => (i % 2 ? "l4p.test" : "other.test"));
    // UDP may lose a datagram under load; a DNS client asks again, and so does this one.
    const answers = await Promise.all(names.map(async (n) => {
      for (let i = 0; i < 3; i++) {
        const a = await ask(via, n);
        if (a !== "") return a;
      }
      return "";
    }));
    assert.deepEqual(answers, names.map((n) => (n === "l4p.test" ? "127.0.0.7" : "127.0.0.8")));
    const t = proxy.server.tracker;
    const sessions = t.udpEntryPoints.get("udp")!.sessionsCreated;
    // dig picks a random source port, so two of the 31 clients may share one now and then (a
    // session is per source address and port): ask for many sessions, not exactly 31.
    assert.ok(sessions >= 20, `${sessions} sessions`);
    assert.equal(t.udpEntryPoints.get("udp")!.dropped, 0);
  } finally {
    proxy.close();
    server.kill();
  }
});
