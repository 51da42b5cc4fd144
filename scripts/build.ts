/**
 * Builds l4p as one self-contained executable.
 *
 *   bun scripts/build.ts                 dist/l4p       (bun build --compile; works offline)
 *   bun scripts/build.ts --runtime deno  dist/l4p-deno  (deno compile; downloads its runtime)
 *   bun scripts/build.ts --runtime all   both
 *
 * Runs on Deno or Bun. `--target` passes a cross-compilation target through.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = fileURLToPath(new URL("..", import.meta.url).href);
const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    runtime: { type: "string", default: "bun" },
    target: { type: "string" },
    outdir: { type: "string", default: `${root}dist` },
  },
});

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

function buildBun(outdir: string): boolean {
  const out = `${outdir}/l4p`;
  const args = ["build", "--compile", "--minify", "cli.ts", "--outfile", out];
  if (values.target) args.push(`--target=${values.target}`);
  const r = run(tool("bun"), args);
  if (!r.ok) {
    process.stderr.write(`build: bun build --compile failed:\n${r.output}`);
    return false;
  }
  process.stdout.write(`built ${out} (Bun)\n`);
  return true;
}

function buildDeno(outdir: string): boolean {
  const out = `${outdir}/l4p-deno`;
  const args = ["compile", "-A", "--unstable-net", "--no-check", "--output", out];
  if (values.target) args.push("--target", values.target);
  args.push("cli.ts");
  const r = run(tool("deno"), args);
  if (r.ok) {
    process.stdout.write(`built ${out} (Deno)\n`);
    return true;
  }
  if (/download|dns error|network|connect|denort/i.test(r.output) && !process.env.DENORT_BIN) {
    process.stderr.write(
      "build: deno compile needs to download its runtime (denort) and this machine cannot; " +
        "build with Bun (the default), or set DENORT_BIN to a local denort of the same version\n",
    );
  } else {
    process.stderr.write(`build: deno compile failed:\n${r.output}`);
  }
  return false;
}

mkdirSync(values.outdir!, { recursive: true });
const which = values.runtime;
if (!["bun", "deno", "all"].includes(which!)) {
  process.stderr.write(`build: --runtime must be bun, deno or all, not "${which}"\n`);
  process.exit(2);
}
let ok = true;
if (which === "bun" || which === "all") ok = buildBun(values.outdir!) && ok;
if (which === "deno" || which === "all") ok = buildDeno(values.outdir!) && ok;
process.exit(ok ? 0 : 1);
