/**
 * The `l4p` command: {@link main} takes the arguments and returns the exit code. `cli.ts` (run
 * from source or compiled) and the npm package's `bin` call it; importing it runs nothing.
 */
import process from "node:process";
import { parseArgs } from "node:util";
import pkg from "../../package.json" with { type: "json" };
import { adHocTcpConfig, adHocUdpConfig, UsageError } from "../config/adhoc.ts";
import { parseHostPort } from "../config/address.ts";
import {
  ConfigError,
  formatProblem,
  loadConfigFile,
  type LoadedConfig,
  parseConfig,
  readConfigText,
} from "../config/load.ts";
import { kvToTree, type StorePart, treeToKv } from "../providers/kv.ts";
import { StoreSource } from "../providers/source.ts";
import { filePartsOf } from "../providers/file.ts";
import { type KvStore, storeFromUrl, storesOf } from "../providers/store.ts";
import { DockerStore } from "../providers/docker.ts";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { stringify as stringifyYaml } from "yaml";
import type { ConfigPart } from "../config/parts.ts";
import { readDocument } from "../config/readers.ts";
import { type Config, DEFAULTS, type HealthCheckConfig } from "../config/model.ts";
import { STRATEGIES, UDP_STRATEGIES } from "../balancer/candidate.ts";
import { toHex } from "../health/probe.ts";
import {
  DURATION_RANGES,
  type DurationRange,
  outOfRange,
  parseDuration,
} from "../config/duration.ts";
import { startDemo } from "../demo/demo.ts";
import { LOG_LEVELS, Logger } from "../log/logger.ts";
import { loadRuntime, type Runtime } from "../runtime/mod.ts";
import { run, type RunOptions, StartError } from "../server/run.ts";
import {
  configForWorker,
  stopWithParent,
  withoutWorkersFlag,
  WorkerGroup,
  workerNumber,
} from "../server/workers.ts";
import { ClusterLead, ClusterMember, CONTROL_ENV } from "../server/cluster.ts";
import { describeConfig } from "../graph/describe.ts";
import { HookLoader, HookLoadError } from "../graph/hooks.ts";
import { ListenError } from "../server/server.ts";
import { top } from "../admin/top.ts";

/** The version printed by `l4p --version`. */
export const VERSION: string = pkg.version;

const USAGE = `l4p ${VERSION} — layer-4 (TCP and UDP) reverse proxy and load balancer

Usage:
  l4p run -c FILE [flags]                     run what the configuration FILE describes
  l4p check FILE                              validate FILE: exit 0, or list every problem and exit 1
  l4p tcp LISTEN TARGET [TARGET...] [flags]   forward TCP from LISTEN to the TARGETs
  l4p udp LISTEN TARGET [TARGET...] [flags]   forward UDP from LISTEN to the TARGETs
  l4p demo [--listen ADDR] [--print-config]   run demo backends with l4p in front of them
  l4p top [--admin ADDR] [--token T] [--json]  watch a running l4p (its admin listener)
  l4p healthcheck [--admin ADDR]              exit 0 if l4p answers /ping
  l4p kv put FILE|get --etcd URL|--redis URL  write a file's tcp/udp/tls to a store, or read it
  l4p check FILE --etcd URL|--redis URL       validate FILE merged with what the store holds
  l4p check FILE --docker ENDPOINT            … with what the containers' labels make
  l4p completion bash|zsh|fish                print a shell completion script
  l4p COMMAND --help | l4p --help | --version

LISTEN is [host]:port (":8080" listens on every IPv4 interface, "[::]:8080" on IPv6 too);
TARGET is host:port. Several targets are balanced by smooth weighted round robin.

Flags:
  -c, --config FILE             the configuration file (YAML or TOML, traefik's names; also
                                --configFile FILE, as traefik spells it)
  --dial-timeout DURATION       give up dialling a backend after this long (default 5s)
  --termination-delay DURATION  once one direction has ended, close the connection when the
                                other has been silent this long (default 100ms;
                                --termination-delay=-1s never closes it)
  --proxy-protocol 1|2          TCP: send a PROXY header of that version to the targets
  --accept-proxy CIDR           TCP: take PROXY headers from these sources (repeatable); from
                                any other source, a connection that starts with one is closed
  --strategy NAME               wrr (default), p2c, leastConn or hrw (UDP: wrr or hrw)
  --health-interval DURATION    check every target this often; a target that fails 3 checks
                                in a row gets no new connections until it passes 2
  --health-timeout DURATION     for one check (default 5s)
  --health-send TEXT            TCP: bytes to send after connecting; UDP: the datagram (needed);
                                \\r \\n \\t \\0 \\\\ and \\xHH escapes are understood
  --health-expect TEXT          bytes the reply must contain (same escapes)
  --reuse-port                  share the port with other l4p processes (SO_REUSEPORT)
  --timeout DURATION            UDP: end a session after it has been idle this long (default 3s)
  --max-sessions N              UDP: most sessions at once; when full, the least recently used
                                is evicted (default 10000)
  --metrics ADDR                serve /metrics, /api/status, /api/connections and /healthz
                                on ADDR ([host]:port)
  --token-file FILE             the admin listener requires the bearer token in FILE (16
                                characters at least; overrides metrics.token)
  --access-log                  one JSON line on stderr per closed connection or UDP session
  --drain-timeout DURATION      on SIGTERM/SIGINT, how long established connections may take
                                to finish before they are closed (default each entrypoint's
                                lifeCycle.graceTimeOut, else 30s)
  --max-connections N           most connections each TCP entrypoint holds at once (for those
                                without maxConnections); beyond it new ones are closed at once
  --workers N                   N processes as one proxy: they share the listeners
                                (SO_REUSEPORT; UDP on Bun only), the first keeps the view,
                                the limits and the health checks
  --log-level LEVEL             debug, info, warn or error (default info)
  --log-format FORMAT           text or json (default text)

Durations: 100ms, 5s, 1m30s, 1h.

Examples:
  l4p tcp :8080 10.0.0.5:80 10.0.0.6:80
  l4p tcp 127.0.0.1:6380 127.0.0.1:6379 --termination-delay 1s
  l4p udp :5353 10.0.0.53:53 --timeout 10s
  l4p tcp :80 10.0.0.5:80 10.0.0.6:80 10.0.0.7:80 --health-interval 2s
  l4p tcp :6379 10.0.0.8:6379 10.0.0.9:6379 --health-interval 1s --health-send 'PING\\r\\n' \\
      --health-expect +PONG --strategy leastConn
  l4p tcp :443 10.0.0.5:443 --proxy-protocol 2 --accept-proxy 10.0.0.0/8
  l4p check l4p.yaml && l4p run -c l4p.yaml
  l4p demo
`;

/** `l4p COMMAND --help`. */
const COMMAND_HELP: Record<string, string> = {
  run: `Usage: l4p run -c FILE [flags]

Runs what the configuration FILE describes (YAML, traefik's names), reloading it when it
changes or on SIGHUP, draining on SIGTERM. Flags: --metrics ADDR, --token-file FILE,
--access-log, --drain-timeout D, --max-connections N, --workers N, --log-level L,
--log-format F.`,
  check: `Usage: l4p check FILE [--etcd URL|--redis URL [--root-key K] [TLS]]
       l4p check FILE --docker ENDPOINT

Validates FILE (and the certificate files it names): prints what it sets up and exits 0,
or prints every problem as file:line:column: key: message and exits 1. With --etcd or
--redis, FILE is checked merged with what that store holds (problems there name their key);
TLS to the store as for l4p kv (--store-ca, --store-cert, --store-key). With --docker
unix:///var/run/docker.sock, FILE is checked merged with what the running containers' labels
make, and each container left out is named with why.`,
  tcp: `Usage: l4p tcp LISTEN TARGET [TARGET...] [flags]

Forwards TCP from LISTEN ([host]:port) to the TARGETs (host:port), balanced by smooth
weighted round robin (or --strategy). Flags: --dial-timeout D, --termination-delay D,
--proxy-protocol 1|2, --accept-proxy CIDR, --strategy NAME, --health-interval D,
--health-timeout D, --health-send TEXT, --health-expect TEXT, --reuse-port, --workers N,
--max-connections N, --metrics ADDR, --token-file FILE, --access-log.`,
  udp: `Usage: l4p udp LISTEN TARGET [TARGET...] [flags]

Forwards UDP from LISTEN to the TARGETs, one session per client address and port. Flags:
--timeout D, --max-sessions N, --strategy wrr|hrw, --health-interval D, --health-send TEXT
(needed for UDP checks), --health-expect TEXT, --workers N, --metrics ADDR,
--token-file FILE, --access-log.`,
  demo: `Usage: l4p demo [--listen ADDR] [--print-config]

Starts two demo backends with l4p in front of them (TCP and UDP on --listen, default
127.0.0.1:8080); --print-config prints the configuration it runs.`,
  top: `Usage: l4p top [--admin ADDR] [--token T] [--json]

Watches a running l4p through its admin listener (default 127.0.0.1:9100): entrypoints,
services with their servers, the clients with the most bytes, and rates. On a terminal it
refreshes every second (s: change the sort, q: quit); elsewhere it prints one snapshot (the
API's JSON with --json) and exits.`,
  kv: `Usage: l4p kv put FILE --etcd URL|--redis URL [--root-key K] [TLS]
       l4p kv get --etcd URL|--redis URL [--root-key K] [TLS]

put checks FILE, then replaces the store's tree under K/ (default l4p) with FILE's tcp, udp and
tls sections, as traefik's key layout (K/tcp/routers/NAME/rule, …), atomically (an etcd
transaction, a Redis MULTI; a tree over etcd's --max-txn-ops, 128 by default, goes in steps). get prints the store's tree as YAML. TLS to the store:
--store-ca FILE (PEM CAs), --store-cert FILE and --store-key FILE (a client certificate);
for Redis over TLS write rediss://host:port.`,
  healthcheck: `Usage: l4p healthcheck [--admin ADDR]

Asks a running l4p's admin listener (default 127.0.0.1:9100) for /ping and exits 0 when it
answers 200, else 1 with one line saying why: a container's HEALTHCHECK, as traefik's own
healthcheck command is used.`,
  completion: `Usage: l4p completion bash|zsh|fish

Prints a completion script: l4p completion bash > /etc/bash_completion.d/l4p, or
l4p completion fish > ~/.config/fish/completions/l4p.fish, or for zsh
l4p completion zsh > "\${fpath[1]}/_l4p".`,
};

const COMMANDS = [
  "run",
  "check",
  "tcp",
  "udp",
  "top",
  "healthcheck",
  "kv",
  "demo",
  "completion",
];

/** A completion script for `shell`, from the command's own list of commands and flags. */
function completion(shell: string): string | undefined {
  const flags = Object.keys(FLAGS).map((f) => `--${f}`);
  switch (shell) {
    case "bash":
      return `# bash completion for l4p
_l4p() {
  local cur="\${COMP_WORDS[COMP_CWORD]}"
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "${COMMANDS.join(" ")} --help --version" -- "$cur"))
  elif [ "\${COMP_WORDS[1]}" = completion ]; then
    COMPREPLY=($(compgen -W "bash zsh fish" -- "$cur"))
  elif [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "${flags.join(" ")}" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}
complete -F _l4p l4p
`;
    case "zsh":
      return `#compdef l4p
# zsh completion for l4p
_l4p() {
  if (( CURRENT == 2 )); then
    compadd ${COMMANDS.join(" ")} --help --version
  elif [[ "$words[2]" == completion ]]; then
    compadd bash zsh fish
  elif [[ "$words[CURRENT]" == -* ]]; then
    compadd -- ${flags.join(" ")}
  else
    _files
  fi
}
compdef _l4p l4p
`;
    case "fish":
      return `# fish completion for l4p
complete -c l4p -f -n "__fish_use_subcommand" -a "${COMMANDS.join(" ")}"
complete -c l4p -f -n "__fish_seen_subcommand_from completion" -a "bash zsh fish"
${Object.keys(FLAGS).map((f) => `complete -c l4p -l ${f}`).join("\n")}
`;
  }
  return undefined;
}

const FLAGS = {
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
  config: { type: "string", short: "c" },
  "dial-timeout": { type: "string" },
  "termination-delay": { type: "string" },
  "reuse-port": { type: "boolean" },
  "proxy-protocol": { type: "string" },
  "accept-proxy": { type: "string", multiple: true },
  timeout: { type: "string" },
  "max-sessions": { type: "string" },
  "log-level": { type: "string" },
  "log-format": { type: "string" },
  listen: { type: "string" },
  "print-config": { type: "boolean" },
  metrics: { type: "string" },
  configFile: { type: "string" },
  "token-file": { type: "string" },
  "access-log": { type: "boolean" },
  "drain-timeout": { type: "string" },
  workers: { type: "string" },
  "max-connections": { type: "string" },
  strategy: { type: "string" },
  "health-interval": { type: "string" },
  "health-timeout": { type: "string" },
  "health-send": { type: "string" },
  "health-expect": { type: "string" },
  admin: { type: "string" },
  token: { type: "string" },
  json: { type: "boolean" },
  etcd: { type: "string" },
  docker: { type: "string" },
  redis: { type: "string" },
  "root-key": { type: "string" },
  "store-ca": { type: "string" },
  "store-cert": { type: "string" },
  "store-key": { type: "string" },
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
 * start (a bad configuration, a busy port), 2 on a usage error.
 */
export async function main(args: string[], io: Io = stdio): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args,
      options: FLAGS,
      allowPositionals: true,
      strict: true,
    });
    // traefik's spelling: `traefik --configFile=traefik.toml`.
    values.config ??= values.configFile;
    if (values.help) {
      const help = COMMAND_HELP[positionals[0] ?? ""];
      io.out(wrapHelp(help ? `${help}\nSee l4p --help for every flag.\n` : USAGE));
      return 0;
    }
    if (positionals[0] === "completion") {
      const shell = positionals[1];
      const script = shell && completion(shell);
      if (!script) throw new UsageError("completion needs one of bash, zsh or fish");
      io.out(script);
      return 0;
    }
    const runtime = await loadRuntime();
    if (values.version) {
      io.out(`l4p ${VERSION} (${runtime.name} ${runtime.version})\n`);
      return 0;
    }
    const [command, ...rest] = positionals;
    /** Runs the server, with `--workers` more processes beside it when asked. */
    const serveAll = async (options: RunOptions): Promise<number> => {
      const worker = workerNumber();
      if (worker > 0) stopWithParent();
      const n = count("--workers", values.workers) ?? 1;
      // A group is one proxy: the first process keeps what its workers share.
      const control = process.env[CONTROL_ENV];
      const cluster = options.cluster ??
        (n > 1 && worker === 0
          ? await ClusterLead.listen(options.logger)
          : worker > 0 && control
          ? await ClusterMember.connect(control, worker, options.logger)
          : undefined);
      const group = cluster instanceof ClusterLead
        ? new WorkerGroup(runtime, withoutWorkersFlag(args), n - 1, options.logger, {
          [CONTROL_ENV]: cluster.path,
        })
        : undefined;
      let code: number;
      try {
        code = await run({ ...options, cluster });
      } catch (error) {
        group?.kill();
        cluster?.close();
        throw error;
      }
      if (group) code = Math.max(code, await group.exited());
      cluster?.close();
      // The log is written asynchronously: what the last lines said must reach stderr first.
      await options.logger.flush();
      return code;
    };
    const logOptions = () => ({
      level: oneOf("--log-level", values["log-level"], LOG_LEVELS),
      format: oneOf("--log-format", values["log-format"], ["text", "json"] as const),
    });
    // The log goes through the runtime's non-blocking stderr: a pipe nobody reads must cost
    // log lines, not the event loop.
    const stderr = await runtime.openOutput();
    switch (command) {
      case "run": {
        noExtra(command, rest);
        if (!values.config) throw new UsageError("run needs -c FILE");
        const log = logOptions();
        // Serving, a dynamic item with a problem is left out and the rest served, as traefik.
        const serving = { ...runtime.capabilities, isolate: true };
        // The file alone may name services its stores hold (etcd, Redis): then it is checked
        // merged with them, as a reload checks it, and its static part says which stores.
        let loaded: LoadedConfig | undefined;
        let fileError: ConfigError | undefined;
        // A worker of a group reads nothing itself: it serves what its first process read.
        const worker = workerNumber();
        const control = process.env[CONTROL_ENV];
        const member = worker > 0 && control
          ? await ClusterMember.connect(control, worker, new Logger({ output: stderr }))
          : undefined;
        const given = await member?.configInForce();
        const fileText = given?.inputs.text ?? await readConfigText(values.config);
        let startParts: ConfigPart[] = given?.inputs.parts ?? [];
        try {
          if (!given) startParts = filePartsOf(fileText, values.config).parts;
          loaded = parseConfig(fileText, values.config, serving, startParts);
        } catch (error) {
          if (!(error instanceof ConfigError)) throw error;
          fileError = error;
        }
        const statics = loaded?.config ?? await staticPart(values.config, runtime);
        const stores = statics && !given ? storesOf(statics.providers) : [];
        if (!statics || (fileError && stores.length === 0)) throw fileError;
        let config = statics;
        const logger = new Logger({
          level: log.level ?? config.log.level,
          format: log.format ?? config.log.format,
          output: config.log.filePath ? await logFile(runtime, config.log.filePath) : stderr,
        });
        if (member) member.logger = logger;
        const source = stores.length ? new StoreSource(stores, logger) : undefined;
        const text = fileText;
        if (source) {
          await source.start();
          if (source.parts().length || fileError) {
            try {
              const parts = [...filePartsOf(text, values.config).parts, ...source.parts()];
              config = parseConfig(text, values.config, serving, parts).config;
              startParts = parts;
              source.applied();
            } catch (error) {
              if (!(error instanceof ConfigError)) throw error;
              // Without the file's own configuration to fall back on, nothing can start.
              if (!loaded) throw error;
              logger.error("configuration in the store refused; starting with what the file holds");
              for (const line of error.message.split("\n")) logger.error(line);
            }
          }
        }
        return await serveAll({
          ...common(runtime, values, logger, config),
          file: values.config,
          fileText: text,
          fileParts: startParts,
          stores: source,
          cluster: member,
          onReload(next) {
            logger.level = log.level ?? next.log.level ?? "info";
            logger.format = log.format ?? next.log.format ?? "text";
          },
        });
      }
      case "check": {
        const file = rest[0] ?? values.config;
        if (!file) throw new UsageError("check needs FILE");
        noExtra(command, rest.slice(1));
        if (values.docker !== undefined) {
          return await checkWithDocker(file, values.docker, io, runtime);
        }
        const store = storeFlag(values);
        if (!store) return await check(file, io, runtime);
        try {
          const { pairs } = await store.list();
          return await check(file, io, runtime, [kvToTree(pairs, store.root, store.name)]);
        } finally {
          await store.close();
        }
      }
      case "kv": {
        const [verb, file, ...extra] = rest;
        const store = storeFlag(values);
        if (!store) throw new UsageError("kv needs --etcd URL or --redis URL");
        try {
          if (verb === "put") {
            if (!file) throw new UsageError("kv put needs FILE");
            noExtra("kv put", extra);
            // The file is checked first, as l4p check would: nothing bad reaches the store.
            const loaded = await loadConfigFile(file, runtime.capabilities);
            const tree = readDocument(loaded.text, file).data;
            const pairs = treeToKv(tree, store.root);
            const how = await store.replace(pairs);
            io.out(`wrote ${pairs.length} keys under ${store.root}/ (${store.name})\n`);
            if (how === "steps") {
              io.err(
                "l4p: the store takes fewer operations a transaction than this tree has, so it was written in steps (raise etcd's --max-txn-ops to write it at once)\n",
              );
            }
            return 0;
          }
          if (verb === "get") {
            noExtra("kv get", file ? [file, ...extra] : extra);
            const { pairs } = await store.list();
            io.out(stringifyYaml(kvToTree(pairs, store.root, store.name).tree));
            return 0;
          }
          throw new UsageError("kv takes put FILE or get");
        } finally {
          await store.close();
        }
      }
      case "tcp": {
        if (rest.length < 2) throw new UsageError("tcp needs LISTEN and at least one TARGET");
        const config = adHocTcpConfig({
          listen: rest[0],
          targets: rest.slice(1),
          dialTimeout: duration(
            "--dial-timeout",
            values["dial-timeout"],
            DURATION_RANGES.dialTimeout,
          ),
          terminationDelay: duration(
            "--termination-delay",
            values["termination-delay"],
            DURATION_RANGES.terminationDelay,
          ),
          reusePort: values["reuse-port"],
          proxyProtocol: ppVersion(values["proxy-protocol"]),
          acceptProxy: values["accept-proxy"],
          strategy: oneOf("--strategy", values.strategy, STRATEGIES),
          healthCheck: healthFlags(values, "tcp"),
        });
        return await serveAll(
          common(runtime, values, new Logger({ ...logOptions(), output: stderr }), config),
        );
      }
      case "udp": {
        if (rest.length < 2) throw new UsageError("udp needs LISTEN and at least one TARGET");
        const config = adHocUdpConfig({
          listen: rest[0],
          targets: rest.slice(1),
          timeout: duration("--timeout", values.timeout, DURATION_RANGES.udpTimeout),
          maxSessions: count("--max-sessions", values["max-sessions"]),
          strategy: oneOf("--strategy", values.strategy, UDP_STRATEGIES),
          healthCheck: healthFlags(values, "udp"),
        });
        return await serveAll(
          common(runtime, values, new Logger({ ...logOptions(), output: stderr }), config),
        );
      }
      case "top": {
        noExtra(command, rest);
        return await top(adminUrl(values.admin), {
          token: values.token,
          json: values.json,
          out: io.out,
          err: io.err,
        });
      }
      case "healthcheck": {
        noExtra(command, rest);
        const url = `${adminUrl(values.admin)}/ping`;
        try {
          const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
          await response.body?.cancel();
          if (response.ok) return 0;
          io.err(`l4p healthcheck: ${url} answered ${response.status}\n`);
        } catch (error) {
          const cause = (error as { cause?: { code?: string } }).cause?.code;
          io.err(`l4p healthcheck: ${url}: ${cause ?? (error as Error).message}\n`);
        }
        return 1;
      }
      case "demo": {
        noExtra(command, rest);
        if (values.workers !== undefined) {
          throw new UsageError("demo runs one process; --workers is not for it");
        }
        const listen = values.listen ?? "127.0.0.1:8080";
        const bad = parseHostPort(listen, true);
        if (typeof bad === "string") throw new UsageError(`--listen ${bad}`);
        const logger = new Logger({ ...logOptions(), output: stderr });
        const demo = await startDemo(runtime, logger, listen);
        if (values["print-config"]) {
          demo.close();
          io.out(demo.text);
          return 0;
        }
        return await run({
          ...common(runtime, values, logger, demo.config),
          banner: demo.banner,
          out: io.out,
          onStop: () => demo.close(),
        });
      }
      case undefined:
        throw new UsageError("no command given");
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (error) {
    if (error instanceof UsageError || isParseArgsError(error)) {
      // One line and where to look, as git and cargo answer: not the whole help.
      io.err(`l4p: ${(error as Error).message}\nRun 'l4p --help' for usage.\n`);
      return 2;
    }
    if (error instanceof ConfigError) {
      io.err(`${error.message}\n`);
      return 1;
    }
    if (isStoreError(error)) {
      io.err(`l4p: the store: ${storeErrorText(error)}\n`);
      return 1;
    }
    if (error instanceof ListenError || error instanceof StartError) {
      io.err(`l4p: ${error.message}\n`);
      return 1;
    }
    // Deno's refusal of a permission it was not given: its message names the flag to add.
    if ((error as Error)?.name === "NotCapable") {
      io.err(
        `l4p: ${
          (error as Error).message.split("\n")[0]
        } (docs/deno.md lists what each use needs)\n`,
      );
      return 1;
    }
    throw error;
  }
}

/** `l4p check FILE`: every problem, or what the file sets up. */
async function check(
  file: string,
  io: Io,
  runtime: Runtime,
  parts: StorePart[] = [],
): Promise<number> {
  let loaded;
  try {
    const text = await readConfigText(file);
    // The file with what its providers hold: its file provider's files, a store given.
    loaded = parseConfig(text, file, runtime.capabilities, [
      ...filePartsOf(text, file).parts,
      ...parts,
    ]);
    // Its routing hooks load as they would when served (a module that does not, or has no such
    // export, is an error at the key that names it).
    try {
      await new HookLoader(runtime).load(loaded.config, file);
    } catch (error) {
      if (!(error instanceof HookLoadError)) throw error;
      const document = readDocument(text, file);
      throw new HookLoadError(file, error.failures, (path) => document.locate(path));
    }
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    io.err(`${error.message}\n`);
    const n = error.problems.length;
    io.err(`${file}: ${n} problem${n === 1 ? "" : "s"}\n`);
    return 1;
  }
  for (const note of loaded.notes) io.out(`note: ${formatProblem(note)}\n`);
  io.out(describeConfig(loaded.config));
  io.out(`${file}: ok\n`);
  return 0;
}

type Values = ReturnType<
  typeof parseArgs<{ options: typeof FLAGS; allowPositionals: true }>
>["values"];

/** What every serving command shares: the runtime, the admin and access log flags, the drain. */
function common(runtime: Runtime, values: Values, logger: Logger, config: Config) {
  const metrics = values.metrics === undefined ? undefined : parseHostPort(values.metrics, true);
  if (typeof metrics === "string") throw new UsageError(`--metrics ${metrics}`);
  const worker = workerNumber();
  const udpShared = runtime.capabilities.udpReusePort;
  const grouped = worker > 0 || (count("--workers", values.workers) ?? 1) > 1;
  return {
    runtime,
    config: grouped ? configForWorker(config, worker, udpShared) : config,
    prepare: grouped ? (c: Config) => configForWorker(c, worker, udpShared) : undefined,
    logger,
    version: VERSION,
    metrics: worker > 0 ? undefined : metrics,
    adminToken: tokenFlag(values["token-file"]),
    accessLog: values["access-log"] ? { format: "json" as const } : undefined,
    drainTimeout: duration(
      "--drain-timeout",
      values["drain-timeout"],
      DURATION_RANGES.drainTimeout,
    ),
    maxConnections: count("--max-connections", values["max-connections"]),
  };
}

/** The admin listener `--admin` names (default 127.0.0.1:9100) as a URL, for top and healthcheck. */
function adminUrl(admin = "127.0.0.1:9100"): string {
  const address = parseHostPort(admin, true);
  if (typeof address === "string") throw new UsageError(`--admin ${address}`);
  const { hostname, port } = address;
  // A listener on every address is asked on loopback.
  const host = hostname === "" || hostname === "0.0.0.0"
    ? "127.0.0.1"
    : hostname === "::"
    ? "::1"
    : hostname;
  return `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

function duration(
  flag: string,
  value: string | undefined,
  range: DurationRange,
): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseDuration(value);
  if (typeof ms === "string") throw new UsageError(`${flag}: ${ms}`);
  const wrong = outOfRange(ms, range);
  if (wrong) throw new UsageError(`${flag} ${wrong}`);
  return ms;
}

/**
 * The static part of configuration `file` (entrypoints, providers, admin, logs: everything but
 * tcp, udp and tls), or undefined when even that does not load.
 */
/**
 * `l4p check FILE --docker ENDPOINT`: FILE merged with what the labels of the engine's running
 * containers make (with FILE's providers.docker settings, if it has them), and each container
 * the labels leave out, with why.
 */
async function checkWithDocker(
  file: string,
  endpoint: string,
  io: Io,
  runtime: Runtime,
): Promise<number> {
  const d = (await staticPart(file, runtime))?.providers.docker;
  const store = new DockerStore({
    exposedByDefault: true,
    useBindPortIP: false,
    allowEmptyServices: false,
    ...d,
    endpoint: endpoint || d?.endpoint || "unix:///var/run/docker.sock",
    watch: false,
  });
  let pairs: [string, string][];
  try {
    pairs = (await store.list()).pairs;
  } catch (error) {
    io.err(`l4p: the Docker engine: ${(error as Error).message}\n`);
    return 1;
  } finally {
    await store.close();
  }
  for (const problem of store.takeProblems()) io.out(`note: docker: ${problem}\n`);
  return await check(file, io, runtime, [kvToTree(pairs, store.root, store.name)]);
}

async function staticPart(file: string, runtime: Runtime): Promise<Config | undefined> {
  try {
    const { tcp: _tcp, udp: _udp, tls: _tls, ...rest } =
      readDocument(await readFile(file, "utf8"), file).data;
    // Written back as YAML, read as YAML: the static part's own file name keeps its folder.
    return parseConfig(stringifyYaml(rest), `${file}.static.yaml`, runtime.capabilities).config;
  } catch {
    return undefined;
  }
}

/** The log file `log.filePath` names, opened for appending. */
async function logFile(runtime: Runtime, path: string) {
  try {
    return await runtime.openOutput(path);
  } catch (error) {
    const code = (error as { code?: string }).code ?? String(error);
    throw new StartError(`cannot open the log file ${path} (log.filePath): ${code}`);
  }
}

/** The admin token in the file `--token-file` names, checked as `metrics.tokenFile` is. */
function tokenFlag(path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  let token: string;
  try {
    token = readFileSync(path, "utf8").trim();
  } catch (e) {
    throw new UsageError(`--token-file: cannot read ${path}: ${(e as { code?: string }).code}`);
  }
  if (token.length < 16) {
    throw new UsageError(`--token-file: the token in ${path} has fewer than 16 characters`);
  }
  return token;
}

/** The `--health-*` flags as a health check (traefik's defaults for the rest). */
function healthFlags(values: Values, protocol: "tcp" | "udp"): HealthCheckConfig | undefined {
  const interval = duration(
    "--health-interval",
    values["health-interval"],
    DURATION_RANGES.healthInterval,
  );
  const timeout = duration(
    "--health-timeout",
    values["health-timeout"],
    DURATION_RANGES.healthTimeout,
  );
  const send = values["health-send"];
  const expect = values["health-expect"];
  if (interval === undefined) {
    if (timeout !== undefined || send !== undefined || expect !== undefined) {
      throw new UsageError(
        "--health-timeout, --health-send and --health-expect need --health-interval",
      );
    }
    return undefined;
  }
  if (protocol === "udp" && send === undefined) {
    throw new UsageError("a UDP health check sends a datagram: give --health-send");
  }
  const hex = (flag: string, text: string | undefined) => {
    if (text === undefined) return undefined;
    const bytes = unescapeBytes(text);
    if (typeof bytes === "string") throw new UsageError(`${flag}: ${bytes}`);
    return toHex(bytes);
  };
  return {
    interval,
    unhealthyInterval: interval,
    timeout: timeout ?? DEFAULTS.healthCheckTimeout,
    send: hex("--health-send", send),
    expect: hex("--health-expect", expect),
    failsThreshold: DEFAULTS.failsThreshold,
    passesThreshold: DEFAULTS.passesThreshold,
  };
}

/** Text with C escapes (`\r`, `\n`, `\t`, `\0`, `\\`, `\xHH`) as bytes, or what is wrong with it. */
export function unescapeBytes(text: string): Uint8Array | string {
  const out: number[] = [];
  const utf8 = new TextEncoder();
  for (let i = 0; i < text.length; i++) {
    const c = String.fromCodePoint(text.codePointAt(i)!);
    if (c !== "\\") {
      out.push(...utf8.encode(c));
      i += c.length - 1; // a character beyond the BMP takes two code units
      continue;
    }
    const e = text[++i];
    const simple: Record<string, number> = { r: 13, n: 10, t: 9, "0": 0, "\\": 92 };
    if (e in simple) out.push(simple[e]);
    else if (e === "x" && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 1, i + 3))) {
      out.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else return `bad escape "\\${e ?? ""}" (use \\r, \\n, \\t, \\0, \\\\ or \\xHH)`;
  }
  return new Uint8Array(out);
}

/** The store `--etcd URL` or `--redis URL` names, under `--root-key` (default l4p). */
function storeFlag(values: Values): KvStore | undefined {
  const root = values["root-key"] ?? "l4p";
  if (values.etcd && values.redis) throw new UsageError("give --etcd or --redis, not both");
  const read = (flag: "store-ca" | "store-cert" | "store-key") => {
    const path = values[flag];
    if (path === undefined) return undefined;
    try {
      return readFileSync(path, "utf8");
    } catch (e) {
      throw new UsageError(`--${flag}: cannot read ${path}: ${(e as { code?: string }).code}`);
    }
  };
  const [ca, cert, key] = [read("store-ca"), read("store-cert"), read("store-key")];
  if (!cert !== !key) throw new UsageError("--store-cert and --store-key go together");
  const tls = ca || cert ? { ca, cert, key, insecureSkipVerify: false } : undefined;
  if (values.etcd) return storeFromUrl("etcd", values.etcd, root, tls);
  if (values.redis) return storeFromUrl("redis", values.redis, root, tls);
  return undefined;
}

function ppVersion(value: string | undefined): 1 | 2 | undefined {
  if (value === undefined) return undefined;
  if (value !== "1" && value !== "2") {
    throw new UsageError(`--proxy-protocol must be 1 or 2, not "${value}"`);
  }
  return Number(value) as 1 | 2;
}

function count(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[1-9]\d*$/.test(value)) {
    throw new UsageError(`${flag} must be a whole number above 0, not "${value}"`);
  }
  return Number(value);
}

function oneOf<T extends string>(
  flag: string,
  value: string | undefined,
  allowed: readonly T[],
): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value)) {
    throw new UsageError(`${flag} must be one of ${allowed.join(", ")}, not "${value}"`);
  }
  return value as T;
}

function noExtra(command: string, rest: string[]): void {
  if (rest.length > 0) throw new UsageError(`${command} takes no arguments, got "${rest[0]}"`);
}

/** A failure of etcd's or Redis's client (unreachable, refused, …), for one clear line. */
function isStoreError(error: unknown): boolean {
  const name = (error as Error)?.name ?? "";
  const message = (error as Error)?.message ?? "";
  return /^(GRPC|Etcd)|ReplyError|MaxRetriesPerRequest/.test(name) ||
    /ECONNREFUSED|etcdserver|Connection is closed|no answer within/.test(message);
}

/**
 * Help text wrapped at `width` columns, as terminals are: a paragraph of prose is filled again; a
 * long line of a table breaks at a space and goes on under its own text column (a flag's
 * description) or its own indentation.
 */
export function wrapHelp(text: string, width = 80): string {
  const fill = (words: string[], indent: number, first = "") => {
    const lines: string[] = [];
    let line = first;
    for (const word of words) {
      if (line.trim() && line.length + 1 + word.length > width) {
        lines.push(line.trimEnd());
        line = " ".repeat(indent);
      }
      line += line.trim() ? ` ${word}` : word;
    }
    lines.push(line.trimEnd());
    return lines;
  };
  const out: string[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const prose = (l: string | undefined) =>
      l !== undefined && /^\S/.test(l) && !/\S\s{2,}\S/.test(l) &&
      !/^(Usage|Examples|Flags):/.test(l);
    if (prose(line) && lines.slice(i, i + 2).join(" ").length > width) {
      // A paragraph: this line and the prose lines after it, filled again.
      const words: string[] = [];
      while (prose(lines[i]) && lines[i].trim()) words.push(...lines[i++].split(/\s+/));
      i--;
      out.push(...fill(words.filter(Boolean), 0));
      continue;
    }
    if (line.length <= width) {
      out.push(line);
      continue;
    }
    const gap = line.match(/^(\s*\S.*?\s{2,})\S/)?.[1];
    const indent = gap?.length ?? line.length - line.trimStart().length;
    const head = gap ?? line.slice(0, indent);
    out.push(...fill(line.slice(head.length).split(/\s+/).filter(Boolean), indent, head));
  }
  return out.join("\n");
}

/**
 * A store client's error in l4p's words: the system's code where its message has one (gRPC's
 * ends on an empty "Resolution note:"; ioredis's says only that the connection is closed).
 */
function storeErrorText(error: unknown): string {
  const message = (error as Error)?.message ?? String(error);
  const code = message.match(/\b(ECONNREFUSED|ETIMEDOUT|ENOTFOUND|EHOSTUNREACH|ECONNRESET)\b/)?.[1];
  if (code) return `cannot connect (${code})`;
  if (/Connection is closed/.test(message)) return "cannot connect (the connection closed)";
  return message.split("\n")[0].replace(/\s*Resolution note:\s*$/, "");
}

function isParseArgsError(error: unknown): boolean {
  const code = (error as { code?: string })?.code ?? "";
  return code.startsWith("ERR_PARSE_ARGS");
}
