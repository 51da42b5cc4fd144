/**
 * A group of workers (`--workers N`) as one proxy. The first process keeps what they share —
 * the places of `inFlightConn`, `connRateLimit` and `maxConnections`, the servers' health (it
 * alone checks them), the view its admin listener shows — and the workers ask it over a unix
 * socket, one JSON object a line. Only connections that a limit applies to wait for an answer
 * (one round trip, before the backend is dialled); nothing on the byte path crosses processes.
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import process from "node:process";
import type { EntryPointSlots, SharedState } from "../graph/shared.ts";
import type { ServerState } from "../health/server_state.ts";
import type { Logger } from "../log/logger.ts";
import { mergedTracker, snapshotOf, type TrackerSnapshot } from "../metrics/merge.ts";
import type { TrafficTracker } from "../metrics/tracker.ts";
import type { InFlightCounts } from "../tcp/middlewares/in_flight_conn.ts";
import type { RateBuckets } from "../tcp/middlewares/conn_rate_limit.ts";
import type { ConfigInputs } from "./reloader.ts";
import type { L4pServer } from "./server.ts";

/** The environment variable that gives a worker the first process's socket. */
export const CONTROL_ENV = "L4P_CONTROL";

/** The most one message may be: a snapshot of about 100 000 live connections. */
const MAX_MESSAGE = 64 << 20;
/** How long an answer is waited for, by the first process and by a worker. */
const ANSWER_WITHIN = 2000;

// deno-lint-ignore no-explicit-any
type Message = { t: string; req?: number; [field: string]: any };

/** JSON lines over a socket; a message past {@link MAX_MESSAGE} ends the channel. */
class Channel {
  #parts: string[] = [];
  #size = 0;
  #nextReq = 0;
  readonly #pending = new Map<number, (m: Message | undefined) => void>();

  constructor(
    readonly socket: net.Socket,
    onMessage: (m: Message) => void,
    onClose: () => void,
  ) {
    socket.setEncoding("utf8");
    socket.setNoDelay?.(true);
    socket.on("data", (chunk: string) => {
      let start = 0;
      for (let nl = chunk.indexOf("\n"); nl >= 0; nl = chunk.indexOf("\n", start)) {
        const line = this.#parts.join("") + chunk.slice(start, nl);
        this.#parts = [];
        this.#size = 0;
        start = nl + 1;
        let m: Message;
        try {
          m = JSON.parse(line);
        } catch {
          continue; // not ours to read: dropped
        }
        const answered = m.t === "answer" && this.#pending.get(m.req!);
        if (answered) {
          this.#pending.delete(m.req!);
          answered(m);
        } else onMessage(m);
      }
      if (start < chunk.length) {
        this.#parts.push(chunk.slice(start));
        this.#size += chunk.length - start;
        if (this.#size > MAX_MESSAGE) socket.destroy();
      }
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      for (const answer of this.#pending.values()) answer(undefined);
      this.#pending.clear();
      onClose();
    });
  }

  get open(): boolean {
    return !this.socket.destroyed;
  }

  /**
   * Queues `m`; what is queued in one turn of the event loop goes in one write (under load, the
   * places many connections ask for cost one system call, not one each).
   */
  send(m: Message): void {
    if (!this.open) return;
    this.#queued.push(JSON.stringify(m));
    if (this.#queued.length === 1) setImmediate(this.#flush);
  }

  #queued: string[] = [];
  #flush = () => {
    const lines = this.#queued;
    this.#queued = [];
    if (this.open) this.socket.write(lines.join("\n") + "\n");
  };

  /** Sends `m` and resolves to the answer; to `undefined` if none comes `within` ms. */
  ask(m: Message, within = ANSWER_WITHIN): Promise<Message | undefined> {
    if (!this.open) return Promise.resolve(undefined);
    const req = ++this.#nextReq;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(req);
        resolve(undefined);
      }, within);
      this.#pending.set(req, (answer) => {
        clearTimeout(timer);
        resolve(answer);
      });
      this.send({ ...m, req });
    });
  }

  answer(to: Message, fields: Record<string, unknown>): void {
    this.send({ t: "answer", req: to.req, ...fields });
  }
}

/** A server's state as the workers follow it. */
function stateOf(s: ServerState) {
  return { key: s.key, up: s.up, reason: s.reason };
}

/** One worker as the first process sees it. */
interface Peer {
  worker: number;
  pid: number;
  channel: Channel;
  /** Places it holds: `inFlightConn` ones by key and IP, `maxConnections` ones by entrypoint. */
  inFlight: Map<string, { key: string; ip: string; n: number }>;
  open: Map<string, number>;
  /** What it last said of its configuration. */
  reloads: { successes: number; lastSuccessAt: number };
  /** The first process's configuration it has in force (0: its own, read at its start). */
  revision: number;
  /** It has said it serves (its listeners are open). */
  serving?: boolean;
}

/** A worker, for the status API and the metrics. */
export interface WorkerStatus {
  worker: number;
  pid: number;
  /** Answered the last time it was asked. */
  answering: boolean;
  /** When the configuration it serves was put in force (ms since the epoch). */
  configAppliedAt: number;
  /** The first process's configuration it serves: the one in force there, unless it lags. */
  configRevision: number;
  /** It serves an older configuration than the first process. */
  lagging: boolean;
}

/** The first process of a group: keeps the shared state and answers the workers. */
export class ClusterLead {
  readonly #peers = new Map<number, Peer>();
  readonly #listener: net.Server;
  readonly #dir: string;
  #server: L4pServer | undefined;
  #answering = new Map<number, boolean>();
  #inputs: ConfigInputs | undefined;
  #revision = 0;
  /** Workers that asked for the configuration before there was one. */
  #asking: [Peer, Message][] = [];

  /** What the first process's own graph shares: it tells the workers every server change. */
  readonly shared: SharedState = {
    serverChanged: (s) => this.#broadcast({ t: "health", states: [stateOf(s)] }),
  };

  /** The first process's own `maxConnections` places count the workers' too. */
  readonly slots: EntryPointSlots = {
    take: (ep, max, here) => here + this.#openElsewhere(ep) < max,
    give: () => {},
  };

  private constructor(readonly path: string, dir: string, readonly logger: Logger) {
    this.#dir = dir;
    this.#listener = net.createServer((socket) => this.#accept(socket));
  }

  /** Listens on a socket of its own (a directory only this user may enter). */
  static async listen(logger: Logger): Promise<ClusterLead> {
    const dir = mkdtempSync(`${tmpdir()}/l4p-`);
    chmodSync(dir, 0o700);
    const path = `${dir}/control.sock`;
    const lead = new ClusterLead(path, dir, logger);
    await new Promise<void>((resolve, reject) => {
      lead.#listener.once("error", reject);
      lead.#listener.listen(path, () => resolve());
    });
    return lead;
  }

  /** The server whose state is shared (set once it is made). */
  attach(server: L4pServer): void {
    this.#server = server;
  }

  close(): void {
    this.#listener.close();
    for (const p of this.#peers.values()) p.channel.socket.destroy();
    rmSync(this.#dir, { recursive: true, force: true });
  }

  /** The whole group's counts: the first process's own and every worker's, asked now. */
  async view(): Promise<TrafficTracker> {
    const server = this.#server!;
    const peers = [...this.#peers.values()];
    const answers = await Promise.all(peers.map((p) => p.channel.ask({ t: "snapshot" })));
    const snapshots: { worker: number; snapshot: TrackerSnapshot }[] = [];
    answers.forEach((a, i) => {
      const p = peers[i];
      this.#answering.set(p.worker, a !== undefined);
      if (!a) return;
      snapshots.push({ worker: p.worker, snapshot: a.snapshot });
      p.reloads = a.reloads;
    });
    return mergedTracker(server.tracker, snapshots);
  }

  /** The workers connected now, as last heard. */
  workers(): WorkerStatus[] {
    return [...this.#peers.values()].sort((a, b) => a.worker - b.worker).map((p) => ({
      worker: p.worker,
      pid: p.pid,
      answering: this.#answering.get(p.worker) ?? true,
      configAppliedAt: p.reloads.lastSuccessAt,
      configRevision: p.revision,
      lagging: this.#inputs !== undefined && p.revision < this.#revision,
    }));
  }

  /** The revision of the configuration in force here: one more at each reload. */
  get revision(): number {
    return this.#revision;
  }

  /**
   * A configuration was put in force here: every worker puts in force the same, made of the
   * same inputs (the file's text and its providers' parts), read once, here.
   */
  published(inputs: ConfigInputs): void {
    // A part's document locates problems for the log, which is this process's: not sent.
    const parts = inputs.parts.map(({ document: _, ...part }) => part);
    this.#inputs = { text: inputs.text, parts };
    this.#revision++;
    const m = { inputs: this.#inputs, revision: this.#revision };
    for (const [peer, ask] of this.#asking.splice(0)) peer.channel.answer(ask, m);
    this.#broadcast({ t: "config", ...m });
  }

  #openElsewhere(ep: string): number {
    let n = 0;
    for (const p of this.#peers.values()) n += p.open.get(ep) ?? 0;
    return n;
  }

  #broadcast(m: Message): void {
    for (const p of this.#peers.values()) p.channel.send(m);
  }

  #accept(socket: net.Socket): void {
    let peer: Peer | undefined;
    // deno-lint-ignore no-unused-vars -- used by its own handler, once a hello comes
    const channel = new Channel(socket, (m) => {
      if (m.t === "hello") {
        peer = {
          worker: Number(m.worker),
          pid: Number(m.pid),
          channel,
          inFlight: new Map(),
          open: new Map(),
          reloads: m.reloads,
          revision: Number(m.revision ?? 0),
        };
        this.#peers.get(peer.worker)?.channel.socket.destroy();
        this.#peers.set(peer.worker, peer);
      }
      if (peer) this.#handle(peer, m);
    }, () => {
      if (!peer || this.#peers.get(peer.worker) !== peer) return;
      this.#peers.delete(peer.worker);
      this.#answering.delete(peer.worker);
      this.logger.info("worker left", { worker: peer.worker, pid: peer.pid });
      this.#release(peer);
    });
  }

  /** A worker's places go back when it goes: its connections went with it. */
  #release(peer: Peer): void {
    for (const { key, ip, n } of peer.inFlight.values()) {
      const counts = this.#server?.kept(key) as InFlightCounts | undefined;
      for (let i = 0; i < n; i++) counts?.give(ip);
    }
    peer.inFlight.clear();
    peer.open.clear();
  }

  #handle(peer: Peer, m: Message): void {
    const server = this.#server;
    // Asked at a worker's start, maybe before this process has its server: answered once the
    // configuration is in force here.
    if (m.t === "config") {
      if (!this.#inputs) return void this.#asking.push([peer, m]);
      return peer.channel.answer(m, { inputs: this.#inputs, revision: this.#revision });
    }
    if (!server) return;
    switch (m.t) {
      case "hello":
      case "sync":
        // The first sync: it serves now.
        if (m.t === "sync" && !peer.serving) {
          peer.serving = true;
          this.logger.info("worker joined", { worker: peer.worker, pid: peer.pid });
        }
        // Everything it must follow: after it starts, and after each of its reloads.
        peer.reloads = m.reloads ?? peer.reloads;
        peer.revision = Number(m.revision ?? peer.revision);
        if (this.#inputs && peer.revision < this.#revision) {
          // A reload here while it started: what it missed.
          peer.channel.send({ t: "config", inputs: this.#inputs, revision: this.#revision });
        }
        return peer.channel.send({ t: "health", states: server.servers.map(stateOf) });
      case "take":
        return peer.channel.answer(m, { ok: this.#take(peer, m) });
      case "give":
        return this.#give(peer, m);
      case "dialFailed":
        return server.servers.find((s) => s.key === m.key)?.passiveFailure(String(m.code));
    }
  }

  #take(peer: Peer, m: Message): boolean {
    const server = this.#server!;
    if (m.kind === "slot") {
      const ep = String(m.entryPoint);
      if (server.tracker.openOn(ep) + this.#openElsewhere(ep) >= Number(m.max)) return false;
      peer.open.set(ep, (peer.open.get(ep) ?? 0) + 1);
      return true;
    }
    const key = String(m.key);
    const ip = String(m.ip);
    if (m.kind === "rate") {
      // Not in force here (a reload reached this process first or last): the worker's own.
      const buckets = server.kept(key) as RateBuckets | undefined;
      return buckets ? buckets.take(ip, Date.now()) : true;
    }
    const counts = server.kept(key) as InFlightCounts | undefined;
    if (!counts) return true;
    if (!counts.take(ip, Number(m.amount))) return false;
    const held = `${key}\n${ip}`;
    const h = peer.inFlight.get(held);
    if (h) h.n++;
    else peer.inFlight.set(held, { key, ip, n: 1 });
    return true;
  }

  #give(peer: Peer, m: Message): void {
    if (m.kind === "slot") {
      const ep = String(m.entryPoint);
      const n = (peer.open.get(ep) ?? 0) - 1;
      if (n > 0) peer.open.set(ep, n);
      else peer.open.delete(ep);
      return;
    }
    const held = `${m.key}\n${m.ip}`;
    const h = peer.inFlight.get(held);
    if (!h) return;
    if (--h.n === 0) peer.inFlight.delete(held);
    (this.#server!.kept(h.key) as InFlightCounts | undefined)?.give(h.ip);
  }
}

/** A worker of a group: asks the first process for places, follows its health checks. */
export class ClusterMember {
  #server: L4pServer | undefined;
  #warned = false;
  /** The first process's configuration last heard of, and the one in force here. */
  #heard = 0;
  #revision = 0;
  /**
   * Called with each configuration the first process puts in force, once set (one that comes
   * before is sent again when this worker says hello).
   */
  onConfig: ((inputs: ConfigInputs, revision: number) => void) | undefined;

  readonly channel: Channel;
  #closed = false;

  private constructor(
    socket: net.Socket,
    readonly worker: number,
    /** Where it says what went wrong: the process's log, once it has one. */
    public logger: Logger,
  ) {
    this.channel = new Channel(socket, (m) => this.#handle(m), () => {
      if (this.#closed) return;
      this.logger.warn("the first process is gone; limits and health are this worker's own now");
    });
  }

  /** Connects to the first process at `path`. */
  static async connect(path: string, worker: number, logger: Logger): Promise<ClusterMember> {
    const socket = net.connect(path);
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const member = new ClusterMember(socket, worker, logger);
    const channel = member.channel;
    const reloads = { successes: 0, lastSuccessAt: 0 };
    channel.send({ t: "hello", worker, pid: process.pid, reloads, revision: 0 });
    return member;
  }

  /** The server that serves for this worker, now serving: it follows the first's checks. */
  attach(server: L4pServer): void {
    this.#server = server;
    this.applied();
  }

  /**
   * What the first process's configuration is made of, once it has one (it may still be
   * starting); undefined if it does not say within `within` ms.
   */
  async configInForce(
    within = 30_000,
  ): Promise<{ inputs: ConfigInputs; revision: number } | undefined> {
    const answer = await this.channel.ask({ t: "config" }, within);
    if (!answer) return undefined;
    this.#heard = Math.max(this.#heard, answer.revision);
    this.#revision = answer.revision;
    return { inputs: answer.inputs, revision: answer.revision };
  }

  /**
   * A configuration was put in force (`revision` of the first process's, when it was one of
   * them): its servers follow the first process's checks.
   */
  applied(revision: number = this.#revision): void {
    this.#revision = revision;
    this.channel.send({ t: "sync", reloads: this.#reloads(), revision });
  }

  close(): void {
    this.#closed = true;
    this.channel.socket.destroy();
  }

  readonly shared: SharedState = {
    inFlight: (key) => ({
      take: (ip, amount) => this.#ask({ t: "take", kind: "inFlight", key, ip, amount }),
      give: (ip) => this.channel.send({ t: "give", kind: "inFlight", key, ip }),
    }),
    rate: (key) => ({
      take: (ip) => this.#ask({ t: "take", kind: "rate", key, ip }),
    }),
    dialFailed: (s, code) => this.channel.send({ t: "dialFailed", key: s.key, code }),
  };

  readonly slots: EntryPointSlots = {
    take: (entryPoint, max) => this.#ask({ t: "take", kind: "slot", entryPoint, max }),
    give: (entryPoint) => this.channel.send({ t: "give", kind: "slot", entryPoint }),
  };

  #reloads() {
    const r = this.#server?.reloads;
    return { successes: r?.successes ?? 0, lastSuccessAt: r?.lastSuccessAt ?? 0 };
  }

  /**
   * Asks for a place. Without an answer (the first process is gone or stalled) the place is
   * given: limits then hold per process, as they would for one process alone, and it is said.
   */
  async #ask(m: Message): Promise<boolean> {
    const answer = await this.channel.ask(m);
    if (answer) return answer.ok === true;
    if (!this.#warned) {
      this.#warned = true;
      this.logger.warn(
        "the first process did not answer in time; this worker applies limits alone",
      );
    }
    return true;
  }

  #handle(m: Message): void {
    const server = this.#server;
    if (!server) return;
    if (m.t === "snapshot") {
      return this.channel.answer(m, {
        snapshot: snapshotOf(server.tracker),
        reloads: this.#reloads(),
      });
    }
    if (m.t === "config") {
      if (!this.onConfig || m.revision <= this.#heard) return; // in force already
      this.#heard = m.revision;
      return this.onConfig(m.inputs, m.revision);
    }
    if (m.t === "health") {
      const byKey = new Map(server.servers.map((s) => [s.key, s]));
      for (const { key, up, reason } of m.states as ReturnType<typeof stateOf>[]) {
        const s = byKey.get(key);
        if (!s) continue;
        if (s.up !== up) s.setUp(up, `${reason} (checked by the first process)`);
        else s.reason = reason;
      }
    }
  }
}
