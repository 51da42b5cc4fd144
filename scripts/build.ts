/**
 * Builds l4p.
 *
 *   bun scripts/build.ts                 dist/l4p        one self-contained executable for this
 *                                                        machine (bun build --compile; offline)
 *   bun scripts/build.ts --target all    dist/release/   executables for linux-x64, linux-arm64,
 *                                                        darwin-x64, darwin-arm64, windows-x64,
 *                                                        named l4p-<os>-<arch>[.exe], and SHA256SUMS
 *   bun scripts/build.ts --target bun-linux-arm64        one executable for that Bun target
 *   bun scripts/build.ts --runtime deno  dist/l4p-deno   deno compile (downloads its runtime)
 *   bun scripts/build.ts --npm           dist/lib/       the npm package's JavaScript and .d.ts
 *
 * Runs on Deno or Bun.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = fileURLToPath(new URL("..", import.meta.url).href);
const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    runtime: { type: "string", default: "bun" },
    target: { type: "string" },
    outdir: { type: "string" },
    npm: { type: "boolean" },
  },
});

/** Release targets: Bun's target name and the file name's os-arch. */
export const RELEASE_TARGETS: [target: string, name: string][] = [
  ["bun-linux-x64", "linux-x64"],
  ["bun-linux-arm64", "linux-arm64"],
  ["bun-darwin-x64", "darwin-x64"],
  ["bun-darwin-arm64", "darwin-arm64"],
  ["bun-windows-x64", "windows-x64"],
];

function tool(name: string): string {
  const local = `${root}node_modules/.bin/${name}`;
  return existsSync(local) ? local : name;
}

function run(cmd: string, args: string[]): { ok: boolean; output: string } {
  const r = spawnSync(cmd, args, { cwd: root, encoding: "utf8" });
  return {
    ok: r.status === 0,
    output: `${r.stdout ?? ""}${r.stderr ?? ""}${r.error?.message ?? ""}`,
  };
}

/** The worker thread that reads large YAML files (src/config/readers.ts). */
const WORKER = "src/config/yaml_worker.ts";

function fail(message: string): false {
  process.stderr.write(`build: ${message}\n`);
  return false;
}

/**
 * One executable with Bun, minified and precompiled to bytecode: measured here, `l4p --version`
 * starts in 72 ms instead of 141 ms, for 6.5 MB more (117 MB instead of 110 MB).
 */
function buildBun(out: string, target?: string): boolean {
  // The YAML worker (src/config/readers.ts) is an entrypoint of its own, as Bun asks of workers.
  const args = ["build", "--compile", "--minify", "--bytecode", "cli.ts", WORKER, "--outfile", out];
  if (target) args.push(`--target=${target}`);
  const r = run(tool("bun"), args);
  if (!r.ok) {
    return fail(`bun build --compile${target ? ` --target=${target}` : ""} failed:\n${r.output}`);
  }
  process.stdout.write(`built ${out} (Bun${target ? `, ${target}` : ""})\n`);
  return true;
}

/** Every release target, and SHA256SUMS beside them. */
function buildRelease(outdir: string): boolean {
  mkdirSync(outdir, { recursive: true });
  let sums = "";
  for (const [target, name] of RELEASE_TARGETS) {
    const file = `l4p-${name}${name.startsWith("windows") ? ".exe" : ""}`;
    if (!buildBun(`${outdir}/${file}`, target)) return false;
    const hash = createHash("sha256").update(readFileSync(`${outdir}/${file}`)).digest("hex");
    sums += `${hash}  ${file}\n`;
  }
  writeFileSync(`${outdir}/SHA256SUMS`, sums);
  process.stdout.write(`wrote ${outdir}/SHA256SUMS\n`);
  return true;
}

function buildDeno(out: string): boolean {
  const args = [
    "compile",
    "-A",
    "--unstable-net",
    "--no-check",
    "--include",
    WORKER,
    "--output",
    out,
  ];
  if (values.target) args.push("--target", values.target);
  args.push("cli.ts");
  const r = run(tool("deno"), args);
  if (r.ok) {
    process.stdout.write(`built ${out} (Deno)\n`);
    return true;
  }
  if (/download|dns error|network|connect|denort/i.test(r.output) && !process.env.DENORT_BIN) {
    return fail(
      "deno compile needs to download its runtime (denort) and this machine cannot; " +
        "build with Bun (the default), or set DENORT_BIN to a local denort of the same version",
    );
  }
  return fail(`deno compile failed:\n${r.output}`);
}

/**
 * The npm package's code: JavaScript (Deno refuses TypeScript under node_modules, and Node's
 * tooling expects JavaScript) with the dependencies left as imports, the runtime adapters as
 * chunks loaded on demand, and .d.ts files for editors and type checkers.
 */
function buildNpm(outdir: string): boolean {
  rmSync(outdir, { recursive: true, force: true });
  const bundle = (...args: string[]) =>
    run(tool("bun"), ["build", ...args, "--outdir", outdir, "--target", "node", "--format", "esm"]);
  const js = bundle(
    "mod.ts",
    "src/cli/main.ts",
    "--splitting",
    // The dependencies stay imports, resolved in the user's node_modules; files imported as
    // text (the dashboard's uPlot) are inlined, since an external import would lose its
    // `with { type: "text" }`.
    ...["yaml", "zod", "acme-client"].flatMap((p) => ["--external", p]),
  );
  if (!js.ok) return fail(`bun build failed:\n${js.output}`);
  // The YAML worker beside the chunks that start it (they ask for ./yaml_worker.js).
  const worker = bundle(WORKER);
  if (!worker.ok) return fail(`bun build (the YAML worker) failed:\n${worker.output}`);
  const dts = run(tool("tsc"), [
    "mod.ts",
    "--declaration",
    "--emitDeclarationOnly",
    "--noCheck",
    "--allowImportingTsExtensions",
    "--target",
    "es2022",
    "--module",
    "esnext",
    "--moduleResolution",
    "bundler",
    "--resolveJsonModule",
    "--skipLibCheck",
    "--outDir",
    `${outdir}/types`,
  ]);
  if (!dts.ok) return fail(`tsc (declarations) failed:\n${dts.output}`);
  // Declarations name the sources' .ts files; the package has .d.ts files for them.
  for (const file of walk(`${outdir}/types`)) {
    const text = readFileSync(file, "utf8");
    writeFileSync(file, text.replace(/(from\s+["']\.{1,2}\/[^"']+)\.ts(["'])/g, "$1.js$2"));
  }
  process.stdout.write(`built ${outdir} (npm: mod.js, main.js, types/mod.d.ts)\n`);
  return true;
}

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = `${dir}/${n}`;
    return statSync(p).isDirectory() ? walk(p) : p.endsWith(".d.ts") ? [p] : [];
  });
}

const which = values.runtime;
if (!["bun", "deno", "all"].includes(which!)) {
  process.stderr.write(`build: --runtime must be bun, deno or all, not "${which}"\n`);
  process.exit(2);
}
let ok = true;
if (values.npm) ok = buildNpm(values.outdir ?? `${root}dist/lib`);
else if (values.target === "all") ok = buildRelease(values.outdir ?? `${root}dist/release`);
else {
  const outdir = values.outdir ?? `${root}dist`;
  mkdirSync(outdir, { recursive: true });
  if (which === "bun" || which === "all") ok = buildBun(`${outdir}/l4p`, values.target) && ok;
  if (which === "deno" || which === "all") ok = buildDeno(`${outdir}/l4p-deno`) && ok;
}
process.exit(ok ? 0 : 1);
