import assert from "node:assert/strict";
import { test } from "node:test";
import { canonicalIp, CidrSet, formatIp, parseCidr, parseIp, parseIPv6 } from "../src/net/ip.ts";

test("ip: IPv6 forms parse and format canonically", () => {
  for (
    const [input, canonical] of [
      ["::1", "::1"],
      ["::", "::"],
      ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
      ["2001:db8:0:1:0:0:0:1", "2001:db8:0:1::1"],
      ["fe80::1:2", "fe80::1:2"],
      ["::ffff:192.0.2.1", "192.0.2.1"],
      ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
    ]
  ) assert.equal(canonicalIp(input), canonical, input);
  assert.equal(formatIp(parseIPv6("::ffff:10.0.0.1")!), "::ffff:10.0.0.1");
  for (
    const bad of [
      "1::2::3",
      "12345::",
      "1:2:3:4:5:6:7:8:9",
      "::g",
      "1.2.3",
      "01.2.3.4",
      "1.2.3.4.5",
    ]
  ) {
    assert.equal(parseIp(bad), undefined, bad);
  }
});

test("ip: CIDR sets match by prefix, per family", () => {
  const set = new CidrSet(
    ["10.0.0.0/8", "192.168.1.7", "fd00::/8"].map((t) => parseCidr(t) as never),
  );
  assert.ok(set.has("10.255.0.1"));
  assert.ok(set.has("::ffff:10.1.1.1"));
  assert.ok(set.has("192.168.1.7"));
  assert.ok(!set.has("192.168.1.8"));
  assert.ok(set.has("fd12::1"));
  assert.ok(!set.has("fe80::1"));
  assert.ok(!set.has("not an address"));
  assert.ok(new CidrSet([parseCidr("0.0.0.0/0") as never]).has("1.2.3.4"));
  assert.match(parseCidr("10.0.0.0/33") as string, /bad prefix length/);
  assert.match(parseCidr("ten/8") as string, /not an IP address/);
});
