/**
 * Writes schema/l4p.schema.json from the validator's own schema, so that editors and l4p agree.
 * Run after changing src/config/schema.ts: `deno run -A scripts/schema.ts` (a test fails until
 * the file is current).
 */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { jsonSchema } from "../src/config/schema.ts";

/** The schema file's text. */
export function schemaText(): string {
  return JSON.stringify(jsonSchema(), null, 2) + "\n";
}

if (import.meta.main) {
  const out = fileURLToPath(new URL("../schema/l4p.schema.json", import.meta.url).href);
  writeFileSync(out, schemaText());
  console.log(`wrote ${out}`);
}
