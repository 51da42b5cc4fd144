/**
 * Assembles the build context of l4p's container image (contrib/docker/Dockerfile): the
 * compiled binary (bun build --compile, for this machine), the shared libraries it links
 * (found with ldd, copied at their paths), /etc/passwd and /etc/group with the l4p user
 * (65532), the system's CA bundle (ACME, TLS to servers), and /etc/l4p with a starting
 * configuration. No base image is needed, so the image builds where no registry is reachable.
 *
 *   bun scripts/image.ts --out DIR [--binary FILE]
 *   docker build -t l4p DIR
 */
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";

const root = new URL("..", import.meta.url).pathname;

/** The libraries `binary` needs, with the dynamic loader: absolute paths. */
function libraries(binary: string): string[] {
  const out = execFileSync("ldd", [binary], { encoding: "utf8" });
  const paths = [...out.matchAll(/(\/\S+) \(0x/g)].map((m) => m[1]);
  return [...new Set(paths)];
}

export function assemble(out: string, binary?: string): void {
  rmSync(out, { recursive: true, force: true });
  const rootfs = join(out, "rootfs");
  mkdirSync(join(rootfs, "usr/local/bin"), { recursive: true });
  if (!binary) {
    const build = join(out, "build");
    const bun = join(root, "node_modules/.bin/bun");
    const r = spawnSync(existsSync(bun) ? bun : "bun", ["scripts/build.ts", "--outdir", build], {
      cwd: root,
      encoding: "utf8",
    });
    if (r.status !== 0) throw new Error(`building the binary failed:\n${r.stderr}`);
    binary = join(build, "l4p");
  }
  copyFileSync(binary, join(rootfs, "usr/local/bin/l4p"));
  execFileSync("chmod", ["755", join(rootfs, "usr/local/bin/l4p")]);
  for (const lib of libraries(binary)) {
    mkdirSync(join(rootfs, dirname(lib)), { recursive: true });
    copyFileSync(lib, join(rootfs, lib));
  }
  mkdirSync(join(rootfs, "etc/l4p"), { recursive: true });
  mkdirSync(join(rootfs, "tmp"), { recursive: true });
  execFileSync("chmod", ["1777", join(rootfs, "tmp")]);
  writeFileSync(
    join(rootfs, "etc/passwd"),
    "root:x:0:0::/:/sbin/nologin\nl4p:x:65532:65532::/etc/l4p:/sbin/nologin\n",
  );
  writeFileSync(join(rootfs, "etc/group"), "root:x:0:\nl4p:x:65532:\n");
  const bundle = "/etc/ssl/certs/ca-certificates.crt";
  if (existsSync(bundle)) {
    mkdirSync(join(rootfs, "etc/ssl/certs"), { recursive: true });
    copyFileSync(bundle, join(rootfs, bundle));
  }
  // A starting configuration: the admin listener (the HEALTHCHECK asks it) and the Docker
  // provider; mount your own over /etc/l4p/l4p.yaml.
  writeFileSync(
    join(rootfs, "etc/l4p/l4p.yaml"),
    `entryPoints:
  tcp: { address: ":8000" }
metrics: { address: "127.0.0.1:9100" }
providers:
  docker: { exposedByDefault: false }
`,
  );
  copyFileSync(join(root, "contrib/docker/Dockerfile"), join(out, "Dockerfile"));
  rmSync(join(out, "build"), { recursive: true, force: true });
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { out: { type: "string" }, binary: { type: "string" } },
  });
  if (!values.out) {
    process.stderr.write("usage: bun scripts/image.ts --out DIR [--binary FILE]\n");
    process.exit(2);
  }
  assemble(values.out, values.binary);
  process.stdout.write(`${values.out}: build it with docker build -t l4p ${values.out}\n`);
}
