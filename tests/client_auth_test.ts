/**
 * traefik's five client-auth types, each against a client with no certificate, a self-signed
 * one, one from another CA, an expired one from the trusted CA, one through an intermediate CA,
 * and a good one: the same answers on both runtimes (Deno's TLS verifies nothing itself).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import tls from "node:tls";
import { test } from "node:test";
import { parseConfig } from "../src/config/load.ts";
import { ClientCaPool, verifyClientChain } from "../src/tls/client_auth.ts";
import { deadline, echoServer, peerOrSkip, startProxy } from "./_helpers.ts";
import { makeTlsFixtures, type TlsFixtures } from "./_tls.ts";

const skip = !peerOrSkip("openssl") && "needs openssl";

type Client = "none" | "self-signed" | "other CA" | "expired" | "intermediate" | "good";
const CLIENTS: Client[] = ["none", "self-signed", "other CA", "expired", "intermediate", "good"];

/** Go's answers (crypto/tls), which traefik gives: which clients each type lets through. */
const ACCEPTS: Record<string, Client[]> = {
  NoClientCert: CLIENTS,
  RequestClientCert: CLIENTS,
  RequireAnyClientCert: ["self-signed", "other CA", "expired", "intermediate", "good"],
  VerifyClientCertIfGiven: ["none", "intermediate", "good"],
  RequireAndVerifyClientCert: ["intermediate", "good"],
};

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

/** A self-signed client certificate, and one issued by an intermediate CA under the test CA. */
function moreClients(fx: TlsFixtures) {
  const dir = fx.dir;
  const ec = (name: string) =>
    openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`], dir);
  ec("self");
  openssl(
    [
      "req",
      "-x509",
      "-new",
      "-key",
      "self.key",
      "-subj",
      "/CN=self",
      "-days",
      "3",
      "-out",
      "self.pem",
    ],
    dir,
  );
  ec("inter");
  openssl(
    ["req", "-new", "-key", "inter.key", "-subj", "/CN=intermediate", "-out", "inter.csr"],
    dir,
  );
  writeFileSync(`${dir}/inter.ext`, "basicConstraints=critical,CA:TRUE\nkeyUsage=keyCertSign\n");
  openssl([
    "x509",
    "-req",
    "-in",
    "inter.csr",
    "-CA",
    "l4p-test-ca.pem",
    "-CAkey",
    "l4p-test-ca.key",
    "-CAcreateserial",
    "-days",
    "3",
    "-extfile",
    "inter.ext",
    "-out",
    "inter.pem",
  ], dir);
  ec("leaf");
  openssl(["req", "-new", "-key", "leaf.key", "-subj", "/CN=leaf", "-out", "leaf.csr"], dir);
  writeFileSync(`${dir}/leaf.ext`, "extendedKeyUsage=clientAuth\n");
  openssl([
    "x509",
    "-req",
    "-in",
    "leaf.csr",
    "-CA",
    "inter.pem",
    "-CAkey",
    "inter.key",
    "-CAcreateserial",
    "-days",
    "3",
    "-extfile",
    "leaf.ext",
    "-out",
    "leaf.pem",
  ], dir);
  // The client sends its certificate and the intermediate; the CA file holds the root only.
  writeFileSync(
    `${dir}/leaf-chain.pem`,
    readFileSync(`${dir}/leaf.pem`, "utf8") + readFileSync(`${dir}/inter.pem`, "utf8"),
  );
  return {
    self: { cert: `${dir}/self.pem`, key: `${dir}/self.key` },
    intermediate: { cert: `${dir}/leaf-chain.pem`, key: `${dir}/leaf.key` },
  };
}

/** Whether a TLS client with `pair` gets its bytes echoed through `port`. */
function served(port: number, ca: Buffer, pair?: { cert: string; key: string }): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tls.connect({
      port,
      host: "127.0.0.1",
      servername: "a.example",
      ca,
      ...(pair ? { cert: readFileSync(pair.cert), key: readFileSync(pair.key) } : {}),
    }, () => s.write("ping"));
    let got = "";
    s.on("data", (c: Buffer) => {
      got += c;
      if (got === "ping") {
        s.destroy();
        resolve(true);
      }
    });
    s.once("error", () => resolve(false));
    s.once("close", () => resolve(got === "ping"));
  });
}

test(
  "client auth: each of traefik's five types accepts and refuses as Go does",
  { skip },
  async () => {
    const fx = makeTlsFixtures(["a.example"]);
    const more = moreClients(fx);
    const pairs: Record<Client, { cert: string; key: string } | undefined> = {
      none: undefined,
      "self-signed": more.self,
      "other CA": fx.stranger,
      expired: fx.expired,
      intermediate: more.intermediate,
      good: fx.client,
    };
    const backend = await echoServer();
    const types = Object.keys(ACCEPTS);
    const routers = types.map((t, i) =>
      `    r${i}: { entryPoints: [e${i}], rule: "HostSNI(\`a.example\`)", service: echo, tls: { options: ${t} } }`
    ).join("\n");
    const proxy = await startProxy(
      parseConfig(
        `entryPoints:
${types.map((_, i) => `  e${i}: { address: "127.0.0.1:0" }`).join("\n")}
tcp:
  routers:
${routers}
  services:
    echo: { loadBalancer: { servers: [{ address: "127.0.0.1:${backend.port}" }] } }
tls:
  certificates: [{ certFile: a.example.pem, keyFile: a.example.key }]
  options:
${
          types.map((t) =>
            `    ${t}: { clientAuth: { caFiles: [l4p-test-ca.pem], clientAuthType: ${t} } }`
          ).join("\n")
        }
`,
        `${fx.dir}/l4p.yaml`,
      ).config,
    );
    try {
      const ca = readFileSync(fx.ca);
      const wrong: string[] = [];
      for (const [i, type] of types.entries()) {
        for (const client of CLIENTS) {
          const got = await deadline(
            served(proxy.port(`e${i}`), ca, pairs[client]),
            10_000,
            `${type} with ${client}`,
          );
          const want = ACCEPTS[type].includes(client);
          if (got !== want) wrong.push(`${type}, ${client}: ${got ? "served" : "refused"}`);
        }
      }
      assert.deepEqual(wrong, []);
      assert.ok(
        proxy.lines.some((l) => /client certificate refused .*unknown authority/.test(l)),
        proxy.lines.join(""),
      );
    } finally {
      proxy.close();
      await backend.close();
      rmSync(fx.dir, { recursive: true, force: true });
    }
  },
);

test("client auth: a chain is judged at the time given, and a server-only certificate is refused", {
  skip,
}, () => {
  const fx = makeTlsFixtures(["a.example"]);
  try {
    const der = (path: string) => pemToDer(readFileSync(path, "utf8"));
    const pool = new ClientCaPool([readFileSync(fx.ca, "utf8")]);
    const good = [der(fx.client.cert)];
    assert.equal(verifyClientChain(good, pool, new Date()), undefined);
    assert.match(
      verifyClientChain(good, pool, new Date(Date.now() + 400 * 86_400_000))!,
      /expired/,
    );
    assert.match(
      verifyClientChain([der(fx.stranger.cert)], pool, new Date())!,
      /unknown authority/,
    );
    assert.match(verifyClientChain([], pool, new Date())!, /no client certificate/);
    assert.match(
      verifyClientChain([new Uint8Array([1, 2, 3])], pool, new Date())!,
      /cannot be parsed/,
    );
    // A certificate whose extended key usage is serverAuth only.
    writeFileSync(`${fx.dir}/srv.ext`, "extendedKeyUsage=serverAuth\n");
    openssl([
      "x509",
      "-req",
      "-in",
      "client.csr",
      "-CA",
      "l4p-test-ca.pem",
      "-CAkey",
      "l4p-test-ca.key",
      "-CAcreateserial",
      "-days",
      "3",
      "-extfile",
      "srv.ext",
      "-out",
      "srv.pem",
    ], fx.dir);
    assert.match(
      verifyClientChain([der(`${fx.dir}/srv.pem`)], pool, new Date())!,
      /not for client authentication/,
    );
  } finally {
    rmSync(fx.dir, { recursive: true, force: true });
  }
});

function pemToDer(pem: string): Uint8Array {
  const body = pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
  return new Uint8Array(Buffer.from(body, "base64"));
}
