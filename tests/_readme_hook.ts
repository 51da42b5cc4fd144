/** The hook example of docs/hooks.md, run as printed: by the tests from source and by the binary's. */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import process from "node:process";
import { buildHello } from "./_hello.ts";
import {
  connect,
  deadline,
  freePort,
  netServer,
  type runL4p,
  writeReadmeHook,
} from "./_helpers.ts";

/**
 * The hook example of docs/hooks.md, run as printed: a tenants service answers 200 for `acme` and 404
 * for the rest; resolves to what a client with each server name got ("o" from the backend, ""
 * when refused), after `l4p` (started by `start` on the written configuration) listens.
 */
export async function readmeHookRun(
  start: (config: string, env: NodeJS.ProcessEnv) => ReturnType<typeof runL4p>,
): Promise<Record<string, string>> {
  const backend = await netServer((s) => {
    s.on("error", () => {});
    s.write("ok");
  });
  const tenants = createServer((req, res) =>
    res.writeHead(req.url === "/tenants/acme" ? 200 : 404).end()
  );
  await new Promise<void>((r) => tenants.listen(0, "127.0.0.1", () => r()));
  const url = `http://127.0.0.1:${(tenants.address() as { port: number }).port}/tenants`;
  const port = await freePort();
  const dir = mkdtempSync(`${tmpdir()}/l4p-readme-hook-`);
  const l4p = start(writeReadmeHook(dir, port, backend.port), { ...process.env, TENANTS_URL: url });
  try {
    await l4p.waitForLine(/listening entryPoint=websecure/, 30_000);
    const out: Record<string, string> = {};
    for (const name of ["acme.example.com", "gone.example.com", "acme.example.com"]) {
      const socket = await connect(port);
      socket.on("error", () => {});
      socket.write(buildHello(name));
      out[name] = (out[name] ?? "") + await deadline(
        new Promise<string>((resolve) => {
          socket.once("data", (d: Buffer) => resolve(d.toString()[0]));
          socket.once("end", () => resolve(""));
          socket.once("close", () => resolve(""));
        }),
        15_000,
        `an answer for ${name}`,
      );
      socket.destroy();
    }
    return out;
  } finally {
    l4p.kill("SIGKILL");
    await l4p.exited;
    tenants.close();
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
