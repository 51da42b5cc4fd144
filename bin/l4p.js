#!/usr/bin/env bun
// The npm package's `bin`, so `bunx l4p …` (and `npx l4p …` with Bun installed) runs the command.
// It runs the built JavaScript (dist/lib, made by `npm pack` through `prepack`); Node.js cannot
// run l4p, hence the bun shebang; Deno runs it as `deno run -A npm:l4p`.
import process from "node:process";
import { main } from "../dist/lib/src/cli/main.js";

process.exit(await main(process.argv.slice(2)));
