/** Picks the adapter for the runtime l4p is running on. */
import type { Runtime } from "./types.ts";

export * from "./types.ts";

let current: Runtime | undefined;

/** The adapter for this process's runtime, loaded once. */
export async function loadRuntime(): Promise<Runtime> {
  if (current) return current;
  if ("Bun" in globalThis) current = (await import("./bun.ts")).bunRuntime;
  else if ("Deno" in globalThis) current = (await import("./deno.ts")).denoRuntime;
  else throw new Error("l4p runs on Deno or Bun; this runtime is neither");
  return current;
}
