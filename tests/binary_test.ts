import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";
import { test } from "node:test";
import { connect, deadline, echoServer, readToEnd, ROOT, runL4p } from "./_helpers.ts";
import { readmeHookRun } from "./_readme_hook.ts";

const BUN = `${ROOT}node_modules/.bin/bun`;

test("the compiled binary (bun build --compile) forwards real bytes and reads large files on a worker", async () => {
  const dir = mkdtempSync(`${tmpdir()}/l4p-bin-`);
  const echo = await echoServer();
  let l4p;
  try {
    const build = spawnSync(BUN, ["scripts/build.ts", "--outdir", dir], {
      cwd: ROOT,
      encoding: "utf8",
    });
    assert.equal(build.status, 0, build.stderr);
    l4p = runL4p(["tcp", "127.0.0.1:0", `127.0.0.1:${echo.port}`], `${dir}/l4p`);
    const [, port] = await l4p.waitForLine(/listening .* address=127\.0\.0\.1:(\d+)/);
    const client = await connect(Number(port));
    const got = readToEnd(client);
    const payload = new Uint8Array(1024 * 1024).map((_, i) => i * 7);
    client.end(payload);
    assert.deepEqual(
      new Uint8Array(await deadline(got, 10_000, "echo through the binary")),
      payload,
    );
    l4p.kill("SIGTERM");
    assert.equal(await deadline(l4p.exited, 10_000, "binary exits on SIGTERM"), 0);

    // A large file is read on a worker thread inside the binary too (its own entrypoint there).
    const lines = ["entryPoints:", '  web: { address: "127.0.0.1:0" }', "tcp:", "  routers:"];
    for (let i = 0; i < 9_000; i++) {
      lines.push(`    r${i}: { rule: "HostSNI(\`c${i}.example\`)", service: echo }`);
    }
    lines.push(
      "  services:",
      `    echo: { loadBalancer: { servers: [{ address: "127.0.0.1:${echo.port}" }] } }`,
    );
    writeFileSync(`${dir}/large.yaml`, lines.join("\n") + "\n");
    l4p = runL4p(["run", "-c", `${dir}/large.yaml`], `${dir}/l4p`, dir);
    await l4p.waitForLine(/listening /, 30_000);
    // A signal sent before l4p handles SIGHUP is not a reload: ask again until one is done.
    const reloaded = l4p.waitForLine(/configuration reloaded .*readOnWorkerMs=\d+/, 30_000);
    const asking = setInterval(() => l4p!.kill("SIGHUP"), 1000);
    try {
      await reloaded;
    } finally {
      clearInterval(asking);
    }
    assert.doesNotMatch(l4p.stderr(), /cannot read a large file on a worker thread/);
    l4p.kill("SIGTERM");
    assert.equal(await deadline(l4p.exited, 10_000, "binary exits on SIGTERM"), 0);
  } finally {
    l4p?.kill("SIGKILL");
    await echo.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the deno compile path builds, or says in one line why it cannot", () => {
  const dir = mkdtempSync(`${tmpdir()}/l4p-bin-`);
  try {
    const build = spawnSync(BUN, ["scripts/build.ts", "--runtime", "deno", "--outdir", dir], {
      cwd: ROOT,
      encoding: "utf8",
      env: { ...process.env, DENORT_BIN: "" },
    });
    if (build.status === 0) {
      const version = spawnSync(`${dir}/l4p-deno`, ["--version"], { encoding: "utf8" });
      assert.match(version.stdout, /^l4p .* \(deno /);
    } else {
      assert.equal(build.status, 1);
      assert.match(
        build.stderr,
        /^build: deno compile needs to download its runtime \(denort\)[^\n]*\n$/,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the compiled binary runs the routing hook example of docs/hooks.md (an external .ts file)", async () => {
  const dir = mkdtempSync(`${tmpdir()}/l4p-bin-`);
  try {
    const build = spawnSync(BUN, ["scripts/build.ts", "--outdir", dir], {
      cwd: ROOT,
      encoding: "utf8",
    });
    assert.equal(build.status, 0, build.stderr);
    const got = await readmeHookRun((config, env) =>
      runL4p(["run", "-c", config], `${dir}/l4p`, undefined, env)
    );
    assert.deepEqual(got, { "acme.example.com": "oo", "gone.example.com": "" });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
