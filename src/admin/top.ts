/**
 * `l4p top`: a terminal view of a running l4p, a client of its admin API and nothing more.
 * On a terminal it refreshes every second (`s` changes the sort, `q` quits); elsewhere it
 * prints one snapshot (text, or the API's JSON with `--json`) and exits, for scripts.
 */
import process from "node:process";

/** What `top` reads: `/api/status` and `/api/connections`. */
export interface Snapshot {
  status: Status;
  connections: { tcp: Conn[]; udp: Conn[] };
}

interface Counters {
  connectionsOpen?: number;
  connectionsTotal?: number;
  sessionsActive?: number;
  sessionsTotal?: number;
  bytesIn: number;
  bytesOut: number;
  dialErrors?: number;
}

interface Status {
  version: string;
  runtime: string;
  uptimeSeconds: number;
  config: { reloadsSucceeded: number };
  entryPoints: Record<
    string,
    Counters & { address: string; protocol: string; listening: string | null }
  >;
  tcp: { services: Record<string, Service> };
  udp: { services: Record<string, Service> };
  /** With `--workers`: the workers besides the first process. */
  workers?: { worker: number; answering: boolean }[];
}

interface Service extends Counters {
  type: string;
  strategy?: string;
  state?: string;
  servers?: (Counters & { address: string; state: string })[];
}

interface Conn {
  client: string;
  /** With `--workers`: the worker holding it (absent: the first process). */
  worker?: number;
  bytesIn: number;
  bytesOut: number;
}

/** How the view is sorted. */
export const SORT_KEYS = ["connections", "bytes", "name"] as const;
export type SortKey = typeof SORT_KEYS[number];

/** Fetches a snapshot from the admin listener at `base` (`http://host:port`). */
export async function fetchSnapshot(base: string, token?: string): Promise<Snapshot> {
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const get = async (path: string) => {
    const r = await fetch(`${base}${path}`, { headers });
    if (r.status === 401) throw new Error("the admin listener wants a token (--token)");
    if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
    return await r.json();
  };
  const [status, connections] = await Promise.all([get("/api/status"), get("/api/connections")]);
  return { status, connections };
}

const bytes = (n: number) =>
  n >= 1e9
    ? `${(n / 1e9).toFixed(1)}G`
    : n >= 1e6
    ? `${(n / 1e6).toFixed(1)}M`
    : n >= 1e3
    ? `${(n / 1e3).toFixed(1)}k`
    : String(Math.round(n));

function columns(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd()).join("\n");
}

const live = (c: Counters) => c.connectionsOpen ?? c.sessionsActive ?? 0;
const total = (c: Counters) => c.connectionsTotal ?? c.sessionsTotal ?? 0;

/**
 * The snapshot as text: entrypoints, services with their servers, and the clients with the most
 * bytes; `rate` gives bytes/s per entrypoint or service name since the previous snapshot.
 */
export function renderSnapshot(
  s: Snapshot,
  sort: SortKey = "connections",
  rate: (name: string) => number | undefined = () => undefined,
): string {
  const st = s.status;
  const order = <T extends Counters>(entries: [string, T][]) =>
    entries.sort(([a, x], [b, y]) =>
      sort === "name"
        ? a.localeCompare(b)
        : sort === "bytes"
        ? y.bytesIn + y.bytesOut - (x.bytesIn + x.bytesOut)
        : live(y) - live(x) || a.localeCompare(b)
    );
  const workers = st.workers;
  const silent = (workers ?? []).filter((w) => !w.answering).map((w) => w.worker);
  const group = workers
    ? `, ${workers.length + 1} processes${silent.length ? ` (not answering: ${silent})` : ""}`
    : "";
  let out = `l4p ${st.version} on ${st.runtime}${group}, up ${st.uptimeSeconds}s, ` +
    `${st.config.reloadsSucceeded} reloads; sorted by ${sort}\n\n`;
  const perSecond = (name: string) => {
    const r = rate(name);
    return r === undefined ? "-" : `${bytes(r)}/s`;
  };
  out += columns([
    ["ENTRYPOINT", "PROTO", "ADDRESS", "LIVE", "TOTAL", "IN", "OUT", "RATE"],
    ...order(Object.entries(st.entryPoints)).map(([n, e]) => [
      n,
      e.protocol,
      e.listening ?? e.address,
      String(live(e)),
      String(total(e)),
      bytes(e.bytesIn),
      bytes(e.bytesOut),
      perSecond(n),
    ]),
  ]);
  const services: string[][] = [[
    "SERVICE / SERVER",
    "STATE",
    "LIVE",
    "TOTAL",
    "IN",
    "OUT",
    "DIAL ERR",
    "RATE",
  ]];
  for (const [proto, map] of [["tcp", st.tcp.services], ["udp", st.udp.services]] as const) {
    for (const [n, sv] of order(Object.entries(map))) {
      if (sv.type !== "loadBalancer") continue;
      services.push([
        `${n} (${proto}, ${sv.strategy})`,
        sv.state ?? "",
        String(live(sv)),
        String(total(sv)),
        bytes(sv.bytesIn),
        bytes(sv.bytesOut),
        String(sv.dialErrors ?? ""),
        perSecond(n),
      ]);
      for (const server of sv.servers ?? []) {
        services.push([
          `  ${server.address}`,
          server.state,
          String(live(server)),
          String(total(server)),
          bytes(server.bytesIn),
          bytes(server.bytesOut),
          String(server.dialErrors ?? ""),
          "",
        ]);
      }
    }
  }
  out += `\n\n${columns(services)}`;
  const clients = new Map<string, { conns: number; bytes: number; workers: Set<number> }>();
  for (const c of [...s.connections.tcp, ...s.connections.udp]) {
    const ip = c.client.replace(/:\d+$/, "");
    const e = clients.get(ip) ?? { conns: 0, bytes: 0, workers: new Set() };
    e.conns++;
    e.bytes += c.bytesIn + c.bytesOut;
    e.workers.add(c.worker ?? 0);
    clients.set(ip, e);
  }
  const top = [...clients].sort(([, a], [, b]) => b.bytes - a.bytes).slice(0, 10);
  // With workers, which processes hold each client's connections (0: the first).
  const held = (e: { workers: Set<number> }) =>
    workers ? [[...e.workers].sort((a, b) => a - b).join(",")] : [];
  out += `\n\n${
    columns([
      ["TOP CLIENTS", "OPEN", "BYTES", ...(workers ? ["WORKERS"] : [])],
      ...(top.length
        ? top.map(([ip, e]) => [ip, String(e.conns), bytes(e.bytes), ...held(e)])
        : [["(none)", "", ""]]),
    ])
  }\n`;
  return out;
}

/**
 * Runs `l4p top` against `base`; resolves to the exit code. `interactive` when stdout and stdin
 * are a terminal.
 */
export async function top(
  base: string,
  options: { token?: string; json?: boolean; out: (t: string) => void; err: (t: string) => void },
): Promise<number> {
  let snapshot: Snapshot;
  try {
    snapshot = await fetchSnapshot(base, options.token);
  } catch (error) {
    options.err(`l4p top: cannot read ${base}: ${reason(error)}\n`);
    return 1;
  }
  const interactive = process.stdout.isTTY && process.stdin.isTTY && !options.json;
  if (!interactive) {
    options.out(options.json ? `${JSON.stringify(snapshot, null, 2)}\n` : renderSnapshot(snapshot));
    return 0;
  }
  let sort: SortKey = "connections";
  let previous: { at: number; s: Snapshot } = { at: Date.now(), s: snapshot };
  let current = previous;
  const rate = (name: string) => {
    const dt = (current.at - previous.at) / 1000;
    if (dt <= 0) return undefined;
    const pick = (s: Snapshot) => {
      const st = s.status;
      const c = st.entryPoints[name] ?? st.tcp.services[name] ?? st.udp.services[name];
      return c ? c.bytesIn + c.bytesOut : undefined;
    };
    const a = pick(previous.s);
    const b = pick(current.s);
    return a === undefined || b === undefined ? undefined : Math.max(0, (b - a) / dt);
  };
  const draw = (note = "") =>
    options.out(`\x1b[H\x1b[2J${renderSnapshot(current.s, sort, rate)}\n${note}s: sort  q: quit\n`);
  return await new Promise<number>((resolve) => {
    const stdin = process.stdin;
    stdin.setRawMode?.(true);
    stdin.resume();
    const quit = (code: number) => {
      clearInterval(timer);
      stdin.setRawMode?.(false);
      stdin.pause();
      options.out("\n");
      resolve(code);
    };
    stdin.on("data", (d: Uint8Array) => {
      const key = String.fromCharCode(d[0]);
      if (key === "q" || d[0] === 3) return quit(0);
      if (key === "s") {
        sort = SORT_KEYS[(SORT_KEYS.indexOf(sort) + 1) % SORT_KEYS.length];
        draw();
      }
    });
    const timer = setInterval(async () => {
      try {
        const s = await fetchSnapshot(base, options.token);
        previous = current;
        current = { at: Date.now(), s };
        draw();
      } catch (error) {
        draw(`(cannot read ${base}: ${reason(error)}; retrying)\n`);
      }
    }, 1000);
    draw();
  });
}

/**
 * Why a fetch failed, in a few words: the system's code where there is one (Bun adds "Is the
 * computer able to access the url?", Deno its own sentence).
 */
function reason(error: unknown): string {
  const e = error as { code?: string; message?: string; cause?: { code?: string } };
  const code = e.cause?.code ?? e.code ?? e.message?.match(/\b(E[A-Z]{4,})\b/)?.[1];
  return code && /^E[A-Z]+$/.test(code) ? code : (e.message ?? String(error)).split("\n")[0];
}
