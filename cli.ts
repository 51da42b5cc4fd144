/**
 * The `l4p` command.
 *
 * `deno run -A cli.ts …`, `bun cli.ts …` and the compiled binary all land in {@link main}.
 */
import process from "node:process";
import { parseArgs } from "node:util";
import pkg from "./package.json" with { type: "json" };
import { adHocTcpConfig, UsageError } from "./src/config/adhoc.ts";
import type { Config } from "./src/config/model.ts";
import { parseDuration } from "./src/config/duration.ts";
import { startDemo } from "./src/demo/demo.ts";
import { LOG_LEVELS, Logger } from "./src/log/logger.ts";
import { loadRuntime } from "./src/runtime/mod.ts";
import { L4pServer, ListenError } from "./src/server/server.ts";

/** The version printed by `l4p --version`. */
export const VERSION: string = pkg.version;

const USAGE = `l4p ${VERSION} — layer-4 (TCP and UDP) reverse proxy and load balancer

Usage:
  l4p tcp LISTEN TARGET [TARGET...] [flags]   forward TCP from LISTEN to the TARGETs
  l4p demo [flags]                            run demo backends with l4p in front of them
  l4p --help | --version

LISTEN is [host]:port (":8080" listens on every IPv4 interface, "[::]:8080" on IPv6 too);
TARGET is host:port. Several targets are balanced by smooth weighted round robin.

Flags:
  --dial-timeout DURATION       give up dialling a backend after this long (default 5s)
  --termination-delay DURATION  once one direction has ended, close the connection when the
                                other has been silent this long (default 100ms;
                                --termination-delay=-1s never closes it)
  --reuse-port                  share the port with other l4p processes (SO_REUSEPORT)
  --log-level LEVEL             debug, info, warn or error (default info)
  --log-format FORMAT           text or json (default text)

Durations: 100ms, 5s, 1m30s, 1h.

Examples:
  l4p tcp :8080 10.0.0.5:80 10.0.0.6:80
  l4p tcp 127.0.0.1:6380 127.0.0.1:6379 --termination-delay 1s
  l4p demo
`;

const FLAGS = {
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
  "dial-timeout": { type: "string" },
  "termination-delay": { type: "string" },
  "reuse-port": { type: "boolean" },
  "log-level": { type: "string" },
  "log-format": { type: "string" },
  listen: { type: "string" },
} as const;

/** Where the command writes; tests swap these. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
}

const stdio: Io = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

/**
 * Runs the command and resolves to the exit code: 0 after a clean stop, 1 when l4p could not
 * start, 2 on a usage error.
 */
export async function main(args: string[], io: Io = stdio): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args, options: FLAGS, allowPositionals: true, strict: true });
    const { values, positionals } = parsed;
    if (values.help) {
      io.out(USAGE);
      return 0;
    }
    if (values.version) {
      const runtime = await loadRuntime();
      io.out(`l4p ${VERSION} (${runtime.name} ${runtime.version})\n`);
      return 0;
    }
    const [command, ...rest] = positionals;
    const logger = new Logger({
      level: oneOf("--log-level", values["log-level"], LOG_LEVELS, "info"),
      format: oneOf("--log-format", values["log-format"], ["text", "json"] as const, "text"),
    });
    switch (command) {
      case "tcp": {
        if (rest.length < 2) throw new UsageError("tcp needs LISTEN and at least one TARGET");
        const config = adHocTcpConfig({
          listen: rest[0],
          targets: rest.slice(1),
          dialTimeout: duration("--dial-timeout", values["dial-timeout"]),
          terminationDelay: duration("--termination-delay", values["termination-delay"]),
          reusePort: values["reuse-port"],
        });
        return await serve(config, logger, io);
      }
      case "demo": {
        noExtra(command, rest);
        const demo = await startDemo(
          await loadRuntime(),
          logger,
          values.listen ?? "127.0.0.1:8080",
        );
        return await serve(demo.config, logger, io, () => demo.close(), demo.banner);
      }
      case undefined:
        throw new UsageError("no command given");
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (error) {
    if (error instanceof UsageError || isParseArgsError(error)) {
      io.err(`l4p: ${(error as Error).message}\n\n${USAGE}`);
      return 2;
    }
    if (error instanceof ListenError) {
      io.err(`l4p: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

/** Runs `config` until SIGINT or SIGTERM. */
async function serve(
  config: Config,
  logger: Logger,
  io: Io,
  onStop?: () => void,
  banner?: (server: L4pServer) => string,
): Promise<number> {
  const server = new L4pServer({ runtime: await loadRuntime(), logger });
  // Signal handlers go in before the first "listening" line, so that whoever waits for that
  // line can stop l4p cleanly at once.
  let stopped: (signal: string) => void = () => {};
  const done = new Promise<number>((resolve) => {
    stopped = (signal) => {
      logger.info("stopping", { signal });
      server.close();
      onStop?.();
      resolve(0);
    };
  });
  const onSigint = () => stopped("SIGINT");
  const onSigterm = () => stopped("SIGTERM");
  process.once("SIGINT", onSigint);
  process.once("SIGTERM", onSigterm);
  try {
    server.start(config);
  } catch (error) {
    process.off("SIGINT", onSigint);
    process.off("SIGTERM", onSigterm);
    onStop?.();
    throw error;
  }
  if (banner) io.out(banner(server));
  return await done;
}

function duration(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseDuration(value);
  if (typeof ms === "string") throw new UsageError(`${flag}: ${ms}`);
  return ms;
}

function oneOf<T extends string>(
  flag: string,
  value: string | undefined,
  allowed: readonly T[],
  fallback: T,
): T {
  if (value === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(value)) {
    throw new UsageError(`${flag} must be one of ${allowed.join(", ")}, not "${value}"`);
  }
  return value as T;
}

function noExtra(command: string, rest: string[]): void {
  if (rest.length > 0) throw new UsageError(`${command} takes no arguments, got "${rest[0]}"`);
}

function isParseArgsError(error: unknown): boolean {
  const code = (error as { code?: string })?.code ?? "";
  return code.startsWith("ERR_PARSE_ARGS");
}

if (import.meta.main) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (error) => {
    process.stderr.write(`l4p: unexpected failure: ${(error as Error)?.stack ?? error}\n`);
    process.exit(1);
  });
}
