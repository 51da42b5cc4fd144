#!/usr/bin/env bun
// The npm `bin` entry, so `bunx l4p …` (and `npx l4p …` with Bun installed) runs the command.
// l4p is TypeScript for Deno and Bun; Node.js cannot run it, hence the bun shebang.
import process from "node:process";
import { main } from "../cli.ts";

process.exit(await main(process.argv.slice(2)));
