/**
 * What a user gets: the npm package (packed, installed into an empty project, run with bunx and
 * imported from Bun and Deno projects), the release binaries of every platform, the systemd unit.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";
import { test } from "node:test";
import {
  connect,
  deadline,
  docExample,
  echoServer,
  killTree,
  peerOrSkip,
  readToEnd,
  ROOT,
  runL4p,
} from "./_helpers.ts";

const BIN = `${ROOT}node_modules/.bin`;
const QEMU = peerOrSkip("qemu-aarch64");
const SYSTEMD_ANALYZE = peerOrSkip("systemd-analyze");

/** The library example from README.md, as printed there. */
function libraryExample(): string {
  const readme = readFileSync(`${ROOT}README.md`, "utf8");
  const m = readme.match(/<!-- example-library -->\s*```ts\n([\s\S]*?)```/);
  if (!m) throw new Error("README.md has no library example after <!-- example-library -->");
  return m[1];
}

/** Proxies one connection through an l4p that prints its listening line, and checks the echo. */
async function proxiesOneConnection(l4p: ReturnType<typeof runL4p>, what: string) {
  const [, port] = await l4p.waitForLine(/listening .* address=127\.0\.0\.1:(\d+)/, 60_000);
  const c = await connect(Number(port));
  const got = readToEnd(c);
  c.end("through the package");
  assert.equal((await deadline(got, 10_000, what)).toString(), "through the package");
}

test("the npm package installs into an empty project and runs with bunx and from Bun and Deno code", async () => {
  const dir = mkdtempSync(`${tmpdir()}/l4p-pkg-`);
  const echo = await echoServer();
  // Whoever runs bunx has bun on their PATH (the bin's #!/usr/bin/env bun needs it).
  const path = process.env.PATH;
  process.env.PATH = `${BIN}:${path}`;
  try {
    // npm pack runs prepack: the package's JavaScript and declarations are built first.
    const tarball = execFileSync("npm", ["pack", "--pack-destination", dir], {
      cwd: ROOT,
      encoding: "utf8",
      env: { ...process.env, PATH: `${BIN}:${process.env.PATH}` },
    }).trim().split("\n").at(-1)!;
    const project = `${dir}/project`;
    mkdirSync(project);
    writeFileSync(
      `${project}/package.json`,
      JSON.stringify({
        name: "uses-l4p",
        private: true,
        type: "module",
        dependencies: { l4p: `file:${dir}/${tarball}` },
      }),
    );
    execFileSync("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund"], {
      cwd: project,
      stdio: "ignore",
    });
    const env = { ...process.env, PATH: `${BIN}:${process.env.PATH}` };
    const inProject = (cmd: string, args: string[]) =>
      spawnSync(cmd, args, { cwd: project, encoding: "utf8", env, timeout: 60_000 });

    // bunx l4p, from the installed package.
    assert.match(
      inProject(`${BIN}/bunx`, ["l4p", "--version"]).stdout,
      /^l4p \d+\.\d+\.\d+ \(bun /,
    );
    const viaBunx = runL4p(
      ["l4p", "tcp", "127.0.0.1:0", `127.0.0.1:${echo.port}`],
      `${BIN}/bunx`,
      project,
    );
    try {
      await proxiesOneConnection(viaBunx, "a connection through bunx l4p");
    } finally {
      // bunx runs l4p as its child: killing bunx alone left l4p running after the test.
      killTree(viaBunx.child.pid!);
    }

    // The README's library example, as printed, from a Bun project and from a Deno project.
    writeFileSync(`${project}/main.ts`, libraryExample());
    const bun = inProject(`${BIN}/bun`, ["main.ts"]);
    assert.match(bun.stdout, /l4p forwards/, bun.stderr);
    writeFileSync(`${project}/deno.json`, JSON.stringify({ nodeModulesDir: "manual" }));
    const deno = inProject(`${BIN}/deno`, ["run", "-A", "main.ts"]);
    assert.match(deno.stdout, /l4p forwards/, deno.stderr);
    assert.match(
      inProject(`${BIN}/deno`, ["run", "-A", "npm:l4p", "--version"]).stdout,
      /^l4p \d+\.\d+\.\d+ \(deno /,
    );
    // A hook author's types ship in the package: the hook example of docs/hooks.md checks against them.
    writeFileSync(`${project}/tenant.ts`, docExample("hook", "ts"));
    const typed = inProject(`${BIN}/deno`, ["check", "tenant.ts"]);
    assert.equal(typed.status, 0, `${typed.stdout}${typed.stderr}`);
  } finally {
    process.env.PATH = path;
    await echo.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("release binaries for every platform, with checksums; the host one proxies, arm64 runs under qemu", async () => {
  const dir = mkdtempSync(`${tmpdir()}/l4p-release-`);
  const echo = await echoServer();
  try {
    const build = spawnSync(
      `${BIN}/bun`,
      ["scripts/build.ts", "--target", "all", "--outdir", dir],
      {
        cwd: ROOT,
        encoding: "utf8",
      },
    );
    assert.equal(build.status, 0, build.stderr);
    const sums = readFileSync(`${dir}/SHA256SUMS`, "utf8").trim().split("\n");
    const names = [
      "l4p-linux-x64",
      "l4p-linux-arm64",
      "l4p-darwin-x64",
      "l4p-darwin-arm64",
      "l4p-windows-x64.exe",
    ];
    assert.deepEqual(sums.map((l) => l.split("  ")[1]), names);
    for (const line of sums) {
      const [hash, name] = line.split("  ");
      const actual = createHash("sha256").update(readFileSync(`${dir}/${name}`)).digest("hex");
      assert.equal(actual, hash, name);
    }
    const host = runL4p(["tcp", "127.0.0.1:0", `127.0.0.1:${echo.port}`], `${dir}/l4p-linux-x64`);
    try {
      await proxiesOneConnection(host, "a connection through the linux-x64 binary");
    } finally {
      host.kill("SIGKILL");
    }
    if (QEMU) {
      const sysroot = "/usr/aarch64-linux-gnu";
      assert.ok(existsSync(sysroot), "libc6-arm64-cross is installed");
      const version = spawnSync(QEMU, ["-L", sysroot, `${dir}/l4p-linux-arm64`, "--version"], {
        encoding: "utf8",
        timeout: 60_000,
      });
      assert.match(version.stdout, /^l4p \d+\.\d+\.\d+ \(bun /, version.stderr);
      const arm = runL4p(
        ["-L", sysroot, `${dir}/l4p-linux-arm64`, "tcp", "127.0.0.1:0", `127.0.0.1:${echo.port}`],
        QEMU,
      );
      try {
        await proxiesOneConnection(arm, "a connection through the arm64 binary under qemu");
      } finally {
        arm.kill("SIGKILL");
      }
    }
  } finally {
    await echo.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("systemd-analyze verify accepts contrib/systemd/l4p.service", {
  skip: !SYSTEMD_ANALYZE && "needs systemd (systemd-analyze)",
}, () => {
  const dir = mkdtempSync(`${tmpdir()}/l4p-unit-`);
  try {
    // verify checks that ExecStart's program exists: the unit's own path, made real here.
    const unit = readFileSync(`${ROOT}contrib/systemd/l4p.service`, "utf8");
    writeFileSync(`${dir}/l4p.service`, unit.replaceAll("/usr/local/bin/l4p", "/bin/true"));
    const r = spawnSync(SYSTEMD_ANALYZE as string, ["verify", `${dir}/l4p.service`], {
      encoding: "utf8",
    });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    assert.equal(r.stderr.trim(), "", "no warnings");
    assert.match(unit, /TimeoutStopSec=45s/);
    assert.match(unit, /--drain-timeout 30s/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("deno.json is ready for JSR: deno publish --dry-run passes (names, exports, types, license)", () => {
  const r = spawnSync(`${BIN}/deno`, ["publish", "--dry-run", "--allow-dirty"], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 120_000,
  });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  assert.match(`${r.stdout}${r.stderr}`, /Dry run complete/);
});
