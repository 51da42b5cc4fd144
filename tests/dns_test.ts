import assert from "node:assert/strict";
import { test } from "node:test";
import { adHocUdpConfig } from "../src/config/adhoc.ts";
import { digA, freePort, peerOrSkip, startDnsmasq, startProxy } from "./_helpers.ts";

const dnsmasq = peerOrSkip("dnsmasq");
const dig = peerOrSkip("dig");
const skip = (!dnsmasq || !dig) &&
  "needs dnsmasq and dig (apt-get install dnsmasq-base bind9-dnsutils)";

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
    // dnsmasq takes a moment to bind: ask until it answers.
    assert.equal(await digA(via, "l4p.test", 20), "127.0.0.7");
    // Many clients (each dig is a new source port: a new session) at once.
    const names = Array.from({ length: 30 }, (_, i) => (i % 2 ? "l4p.test" : "other.test"));
    // UDP may lose a datagram under load; a DNS client asks again, and so does this one.
    const answers = await Promise.all(names.map((n) => digA(via, n)));
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
