/**
 * The `l4p` command's entry: `deno run -A cli.ts …`, `bun cli.ts …` and the compiled binary.
 * The command itself is src/cli/main.ts.
 */
import process from "node:process";
import { main } from "./src/cli/main.ts";

export { main, VERSION } from "./src/cli/main.ts";

if (import.meta.main) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (error) => {
    process.stderr.write(`l4p: unexpected failure: ${(error as Error)?.stack ?? error}\n`);
    process.exit(1);
  });
}
