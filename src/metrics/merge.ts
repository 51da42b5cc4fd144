/**
 * One view of a group of workers: a tracker's counts and live records as plain data (what a
 * worker sends the first process when the admin listener is asked), and a tracker that sums
 * them. Built when read, never on the data path.
 */
import type { NetAddr } from "../runtime/types.ts";
import {
  type ConnRecord,
  DURATION_BUCKETS,
  Histogram,
  Totals,
  TrafficTracker,
  type UdpSessionRecord,
  UdpTotals,
} from "./tracker.ts";

const TCP_MAPS = ["entryPoints", "routers", "services", "servers"] as const;
const UDP_MAPS = ["udpEntryPoints", "udpRouters", "udpServices", "udpServers"] as const;
const COUNT_MAPS = [
  "refusals",
  "overLimit",
  "dialErrorCodes",
  "hookResults",
  "udpHookResults",
] as const;

type Fields<T> = { [K in keyof T as T[K] extends (...a: never[]) => unknown ? never : K]: T[K] };

/** A live TCP connection as plain data. */
export type ConnFields = Omit<Fields<ConnRecord>, "liveSlot">;
/** A live UDP session as plain data. */
export type SessionFields = Omit<UdpSessionRecord, "liveSlot">;

/** What one process's tracker holds, as JSON can carry it. */
export interface TrackerSnapshot {
  tcp: Record<(typeof TCP_MAPS)[number], [string, Fields<Totals>][]>;
  udp: Record<(typeof UDP_MAPS)[number], [string, Fields<UdpTotals>][]>;
  counts: Record<(typeof COUNT_MAPS)[number], [string, number][]>;
  durations: [string, { counts: number[]; sum: number; count: number }][];
  live: ConnFields[];
  udpLive: SessionFields[];
}

/** `tracker` as plain data. */
export function snapshotOf(tracker: TrafficTracker): TrackerSnapshot {
  const pick = <M extends string>(names: readonly M[], of: (name: M) => Map<string, unknown>) =>
    Object.fromEntries(names.map((n) => [n, [...of(n)]]));
  return {
    tcp: pick(TCP_MAPS, (n) => tracker[n]) as TrackerSnapshot["tcp"],
    udp: pick(UDP_MAPS, (n) => tracker[n]) as TrackerSnapshot["udp"],
    counts: pick(COUNT_MAPS, (n) => tracker[n]) as TrackerSnapshot["counts"],
    durations: [...tracker.durations].map(([k, h]) => [k, {
      counts: h.counts,
      sum: h.sum,
      count: h.count,
    }]),
    live: [...tracker.live].map((r) => ({
      id: r.id,
      entryPoint: r.entryPoint,
      client: { hostname: r.client.hostname, port: r.client.port },
      startedAt: r.startedAt,
      router: r.router,
      service: r.service,
      server: r.server,
      bytesIn: r.bytesIn,
      bytesOut: r.bytesOut,
    })),
    udpLive: [...tracker.udpLive].map(({ liveSlot: _, ...r }) => ({
      ...r,
      client: { hostname: r.client.hostname, port: r.client.port } as NetAddr,
    })),
  };
}

/** A live record of another process: read, never closed from here. */
export interface RemoteConn extends ConnRecord {
  /** The worker that holds it. */
  readonly worker: number;
}

/**
 * A tracker holding the sums of `own` and every worker's snapshot: totals and histograms
 * added, live connections and sessions listed from all (a worker's ids are its own: the pair of
 * worker and id names one).
 */
export function mergedTracker(
  own: TrafficTracker,
  workers: readonly { worker: number; snapshot: TrackerSnapshot }[],
): TrafficTracker {
  const view = new TrafficTracker();
  const all = [{ worker: 0, snapshot: snapshotOf(own) }, ...workers];
  for (const { worker, snapshot: s } of all) {
    for (const n of TCP_MAPS) addAll(view[n], s.tcp[n], () => new Totals());
    for (const n of UDP_MAPS) addAll(view[n], s.udp[n], () => new UdpTotals());
    for (const n of COUNT_MAPS) {
      for (const [k, v] of s.counts[n]) view[n].set(k, (view[n].get(k) ?? 0) + v);
    }
    for (const [k, h] of s.durations) {
      let mine = view.durations.get(k);
      if (!mine) view.durations.set(k, mine = new Histogram(DURATION_BUCKETS));
      h.counts.forEach((c, i) => mine!.counts[i] += c);
      mine.sum += h.sum;
      mine.count += h.count;
    }
    for (const r of s.live) {
      const record: RemoteConn = { ...r, worker, liveSlot: -1, end: () => {} };
      view.live.add(record);
    }
    for (const r of s.udpLive) view.udpLive.add({ ...r, liveSlot: -1 });
  }
  return view;
}

function addAll<T extends object>(
  into: Map<string, T>,
  from: [string, Partial<T>][],
  make: () => T,
): void {
  for (const [k, v] of from) {
    let t = into.get(k);
    if (!t) into.set(k, t = make());
    const sum = t as Record<string, number>;
    for (const [f, n] of Object.entries(v)) sum[f] = (sum[f] ?? 0) + (n as number);
  }
}
