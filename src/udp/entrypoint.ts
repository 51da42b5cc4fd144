/**
 * A UDP entrypoint. UDP has no accept, so this makes one: the first datagram from a client
 * address opens a session bound to one backend through a socket of its own; replies from that
 * socket go back to the client from the listening socket, so the client hears the address it
 * spoke to. Sessions end after an idle timeout; the table is bounded.
 */
import { formatAddr, type HostPort } from "../config/address.ts";
import type { UdpSessionRecord } from "../metrics/tracker.ts";
import type { DatagramSocket, NetAddr } from "../runtime/types.ts";
import type { ProxyEnv } from "../tcp/handler.ts";
import type { UdpTarget } from "./service.ts";
import { InitialCrypto, openInitial } from "./quic_initial.ts";
import type { UdpRoute, UdpRouter } from "./router.ts";
import { askHooks, hookSession } from "./hook.ts";
import { kernelDrops } from "./kernel_drops.ts";
import { SessionTable } from "./session_table.ts";

/** Idle expiry is checked this many times per timeout. */
const TICKS_PER_TIMEOUT = 8;
/** Datagrams held per session while its backend socket is being opened. */
const MAX_PENDING = 64;

/** Clients at once whose first datagrams wait for the rest of their QUIC ClientHello. */
const MAX_UNDECIDED = 4096;

/** A new client whose route waits for the rest of its ClientHello. */
interface Undecided {
  client: NetAddr;
  datagrams: Uint8Array[];
  crypto: InitialCrypto | undefined;
  since: number;
  /** Its route's hooks are being asked: datagrams only wait. */
  asking?: boolean;
}

/** Settings of a UDP entrypoint. */
export interface UdpEntryPointOptions {
  /** Idle time after which a session ends, in ms. */
  timeout: number;
  /** Most sessions at once. */
  maxSessions: number;
  /** The kernel receive buffer of the listening and session sockets (bytes); the system's if absent. */
  receiveBuffer?: number;
}

interface Session {
  key: string;
  client: NetAddr;
  route: UdpRoute;
  target: UdpTarget;
  /** Set once the backend socket is open; datagrams wait in `pending` until then. */
  socket: DatagramSocket | undefined;
  pending: Uint8Array[] | undefined;
  record: UdpSessionRecord;
  closed: boolean;
}

/** How often idle expiry looks, for a session timeout of `timeout` ms. */
function tickOf(timeout: number): number {
  return Math.max(10, Math.floor(timeout / TICKS_PER_TIMEOUT));
}

/** Listens on one UDP address and proxies sessions to the route's service. */
export class UdpEntryPoint {
  /** Where new sessions go; replacing it affects only sessions created afterwards. */
  router: UdpRouter | undefined;
  readonly #table: SessionTable<Session>;
  /** New clients waiting for the rest of their ClientHello (bounded, and by helloTimeout). */
  readonly #undecided = new Map<string, Undecided>();
  /**
   * Clients a routing hook refused, by key, to when their last datagram came (oldest first): as
   * long as a session would last (until quiet for `timeout`) their datagrams are dropped without
   * asking the hook again, so a client sending on cannot make it run per datagram. Bounded by
   * `maxSessions`; forgotten when the router changes (a reload may decide otherwise).
   */
  readonly #refused = new Map<string, number>();
  #refusedBy: UdpRouter | undefined;
  #options: UdpEntryPointOptions;
  #tickMs: number;
  #tick = 0;
  #sweeper: ReturnType<typeof setInterval> | undefined;
  #socket: DatagramSocket | undefined;
  /** The kernel's drop count on the listening socket when last read. */
  #kernelDrops = 0;

  constructor(
    /** The entrypoint's name; a reload that renames it keeps the listener. */
    public name: string,
    readonly address: HostPort,
    readonly env: ProxyEnv,
    router: UdpRouter | undefined,
    options: UdpEntryPointOptions,
    /** Share the port with other l4p processes (where the runtime can). */
    readonly reusePort = false,
  ) {
    this.router = router;
    this.#options = { ...options };
    this.#table = new SessionTable(options.maxSessions);
    this.#tickMs = tickOf(options.timeout);
  }

  /** The settings in force. */
  get options(): Readonly<UdpEntryPointOptions> {
    return this.#options;
  }

  /**
   * Puts new settings in force on the live socket (a reload): a new bound evicts the least
   * recently used sessions over it; a new timeout applies to every session from now on.
   */
  configure(options: UdpEntryPointOptions): void {
    const before = this.#options;
    this.#options = { ...options };
    if (options.maxSessions !== before.maxSessions) {
      for (const s of this.#table.resize(options.maxSessions)) this.#end(s, "evicted");
    }
    if (options.receiveBuffer && options.receiveBuffer !== before.receiveBuffer) {
      this.#socket?.setReceiveBuffer?.(options.receiveBuffer);
    }
    const tickMs = tickOf(options.timeout);
    if (tickMs !== this.#tickMs) {
      this.#tickMs = tickMs;
      if (this.#sweeper !== undefined) {
        clearInterval(this.#sweeper);
        this.#sweeper = setInterval(() => this.#sweep(), tickMs);
      }
    }
  }

  /** The bound address (with the real port when 0 was asked for). */
  get addr(): NetAddr | undefined {
    return this.#socket?.addr;
  }

  /** The number of live sessions. */
  get sessions(): number {
    return this.#table.size;
  }

  /** Binds the listening socket; throws a `SocketError` when the address can't be had. */
  async start(): Promise<void> {
    this.#socket = await this.env.runtime.bindDatagram({
      hostname: this.address.hostname,
      port: this.address.port,
      reusePort: this.reusePort,
      receiveBuffer: this.#options.receiveBuffer,
      onMessage: (data, from) => this.#fromClient(data, from),
    });
    this.#sweeper = setInterval(() => this.#sweep(), this.#tickMs);
  }

  /**
   * Adds what the kernel dropped on the listening socket since the last look (its receive
   * queue was full) to the entrypoint's dropped datagrams.
   */
  async countKernelDrops(): Promise<void> {
    const addr = this.#socket?.addr;
    if (!addr) return;
    const drops = await kernelDrops(addr.hostname, addr.port);
    if (drops === undefined || drops <= this.#kernelDrops) return;
    this.env.tracker.dropped(this.name, drops - this.#kernelDrops);
    this.#kernelDrops = drops;
  }

  /** Closes the listening socket and ends every session. */
  close(): void {
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    this.#socket?.close();
    this.#socket = undefined;
    this.#undecided.clear();
    this.#refused.clear();
    for (const s of [...this.#table.values()]) {
      this.#table.delete(s.key);
      this.#end(s, "closed");
    }
  }

  #fromClient(data: Uint8Array, from: NetAddr): void {
    const key = `${from.hostname}|${from.port}`;
    let session = this.#table.get(key, this.#tick);
    // A session keeps its server for life, unless health checks put that server down while
    // another is up: then it ends, and this datagram opens a new one on a server that is up.
    if (session && !session.target.server.up && session.route.service.health.up) {
      this.#table.delete(key);
      this.#end(session, "server down");
      session = undefined;
    }
    if (!session) {
      const router = this.router;
      if (this.#refused.size > 0 && this.#stillRefused(key)) {
        return this.env.tracker.dropped(this.name);
      }
      if (router?.needsHello || router?.hasHooks) return this.#waitForHello(key, from, data);
      session = this.#open(key, from, this.router?.pick(from.hostname));
      if (!session) return;
    }
    this.#deliver(session, data);
  }

  #deliver(session: Session, data: Uint8Array): void {
    session.record.datagramsIn++;
    session.record.bytesIn += data.length;
    if (session.socket) {
      this.#send(session.socket, data, session.target.address);
    } else if (session.pending!.length < MAX_PENDING) {
      session.pending!.push(data);
    } else {
      this.env.tracker.dropped(this.name);
    }
  }

  /**
   * A new client on an entrypoint whose rules need SNI or ALPN: its datagrams wait until its
   * QUIC Initial packets hold a whole ClientHello (or show it has none), then go to the route
   * that takes it, in order.
   */
  #waitForHello(key: string, client: NetAddr, data: Uint8Array): void {
    let u = this.#undecided.get(key);
    if (!u) {
      if (this.#undecided.size >= MAX_UNDECIDED) {
        this.env.tracker.dropped(this.name);
        this.env.logger.repeated(
          "warn",
          `udp undecided ${this.name}`,
          "too many new UDP clients waiting for their QUIC ClientHello; datagram dropped",
          { entryPoint: this.name, bound: MAX_UNDECIDED },
        );
        return;
      }
      u = { client, datagrams: [], crypto: undefined, since: Date.now() };
      this.#undecided.set(key, u);
    }
    if (u.datagrams.length >= MAX_PENDING) return this.env.tracker.dropped(this.name);
    u.datagrams.push(data);
    if (u.asking) return;
    if (!this.router?.needsHello) return this.#decide(key, u, undefined);
    const packet = openInitial(data);
    if (packet.kind === "not-initial") {
      // Not QUIC at all: routed by what does not need a ClientHello. After Initials (a
      // coalesced later packet, say), it waits with them.
      if (!u.crypto) this.#decide(key, u, undefined);
      return;
    }
    if (packet.kind === "error") return this.#unreadable(key, u, packet.message);
    u.crypto ??= new InitialCrypto(packet.dcid);
    if (!u.crypto.add(packet.crypto)) return this.#unreadable(key, u, "ClientHello over the bound");
    const hello = u.crypto.hello();
    if (hello.kind === "hello") this.#decide(key, u, hello.info);
    else if (hello.kind === "error") this.#unreadable(key, u, hello.message);
  }

  /** A QUIC Initial l4p cannot read: logged once a second, routed as if it had no hello. */
  #unreadable(key: string, u: Undecided, why: string): void {
    this.env.logger.repeated("warn", `quic ${this.name} ${why}`, "unreadable QUIC Initial", {
      entryPoint: this.name,
      client: formatAddr(u.client),
      error: why,
    });
    this.#decide(key, u, undefined);
  }

  #decide(
    key: string,
    u: Undecided,
    hello: { sni: string | undefined; alpn: readonly string[] } | undefined,
  ): void {
    const router = this.router;
    const route = router?.pick(u.client.hostname, hello);
    if (!router || !route?.hooks.length) return this.#start(key, u, route);
    // The hooks decide; the client's datagrams wait meanwhile (bounded as before).
    u.asking = true;
    const session = hookSession(this.name, route.router, u.client, u.datagrams[0], hello);
    askHooks(route.hooks, session, this.env, (name) => router.services(name) !== undefined)
      .then((outcome) => {
        if (this.#undecided.get(key) !== u) return; // closed meanwhile
        if ("refuse" in outcome) {
          this.#undecided.delete(key);
          this.#refuse(key, router);
          this.env.tracker.dropped(this.name, u.datagrams.length);
          if (this.env.logger.enabled("debug")) {
            this.env.logger.debug("UDP session refused by a hook", {
              entryPoint: this.name,
              client: formatAddr(u.client),
              why: outcome.refuse,
            });
          }
          return;
        }
        const service = outcome.service && router.services(outcome.service);
        this.#start(key, u, service ? { router: route.router, service } : route);
      });
  }

  /** Remembers that the hooks of `router` refused client `key`. */
  #refuse(key: string, router: UdpRouter): void {
    if (this.#refusedBy !== router) {
      this.#refused.clear();
      this.#refusedBy = router;
    }
    this.#refused.delete(key);
    if (this.#refused.size >= this.#options.maxSessions) {
      this.#refused.delete(this.#refused.keys().next().value!);
    }
    this.#refused.set(key, Date.now());
  }

  /** Whether client `key` is still refused; if so, its quiet time starts again. */
  #stillRefused(key: string): boolean {
    const at = this.#refused.get(key);
    if (at === undefined) return false;
    this.#refused.delete(key);
    if (this.#refusedBy !== this.router) {
      this.#refused.clear();
      return false;
    }
    const now = Date.now();
    if (now - at >= this.#options.timeout) return false;
    this.#refused.set(key, now);
    return true;
  }

  /** Forgets refused clients quiet for `timeout` (the oldest come first). */
  #forgetQuietRefusals(): void {
    const since = Date.now() - this.#options.timeout;
    for (const [key, at] of this.#refused) {
      if (at > since) break;
      this.#refused.delete(key);
    }
  }

  /** Opens the session of `u` on `route`, and its waiting datagrams go, in order. */
  #start(key: string, u: Undecided, route: UdpRoute | undefined): void {
    this.#undecided.delete(key);
    const session = this.#open(key, u.client, route);
    if (!session) {
      if (u.datagrams.length > 1) this.env.tracker.dropped(this.name, u.datagrams.length - 1);
      return;
    }
    for (const d of u.datagrams) this.#deliver(session, d);
  }

  #open(key: string, client: NetAddr, route: UdpRoute | undefined): Session | undefined {
    const { env, name } = this;
    const target = route?.service.next(client);
    if (!route || !target) {
      env.tracker.dropped(name);
      env.logger.debug("no UDP service for a new session; datagram dropped", {
        entryPoint: name,
        client: formatAddr(client),
      });
      return undefined;
    }
    const record = env.tracker.openSession(
      name,
      client,
      route.router,
      target.service,
      target.label,
    );
    const session: Session = {
      key,
      client,
      route,
      target,
      socket: undefined,
      pending: [],
      record,
      closed: false,
    };
    const evicted = this.#table.add(key, session, this.#tick);
    if (evicted) {
      // A full table evicts at the rate of new clients: one line a second says how many.
      env.logger.repeated(
        "warn",
        `udp evict ${name}`,
        "UDP session table full; least recently used session evicted",
        { entryPoint: name, maxSessions: this.#options.maxSessions },
      );
      this.#end(evicted, "evicted");
    }
    const family = target.address.hostname.includes(":") ? "::" : "0.0.0.0";
    env.runtime.bindDatagram({
      hostname: family,
      port: 0,
      receiveBuffer: this.#options.receiveBuffer,
      onMessage: (data, from) => this.#fromBackend(session, data, from),
    }).then((socket) => {
      if (session.closed) return socket.close();
      session.socket = socket;
      for (const data of session.pending!) this.#send(socket, data, target.address);
      session.pending = undefined;
    }, (error) => {
      // Out of descriptors comes in storms: one line a second says how many.
      const code = (error as { code?: string }).code ?? String(error);
      env.logger.repeated(
        "error",
        `udp socket ${name} ${code}`,
        "cannot open a UDP socket for a session",
        {
          entryPoint: name,
          error: code,
        },
      );
      this.#table.delete(key);
      this.#end(session, "closed");
    });
    if (env.logger.enabled("debug")) {
      env.logger.debug("UDP session opened", {
        entryPoint: name,
        client: formatAddr(client),
        server: target.label,
      });
    }
    return session;
  }

  #fromBackend(session: Session, data: Uint8Array, from: NetAddr): void {
    const { address: server, literal } = session.target;
    // Only the session's backend may answer through it (by address too, when it is an IP).
    if (from.port !== server.port || (literal && from.hostname !== server.hostname)) {
      this.env.tracker.dropped(this.name);
      return;
    }
    const listener = this.#socket;
    if (!listener || session.closed) return;
    session.record.datagramsOut++;
    session.record.bytesOut += data.length;
    this.#table.touch(session.key, this.#tick);
    this.#send(listener, data, session.client);
  }

  #send(socket: DatagramSocket, data: Uint8Array, to: NetAddr): void {
    socket.send(data, to, this.#sendFailed);
  }

  /** One function for every refused send, so a datagram costs no closure. */
  readonly #sendFailed = (): void => {
    this.env.tracker.dropped(this.name);
    this.env.logger.debug("UDP send failed; datagram dropped", { entryPoint: this.name });
  };

  #sweep(): void {
    this.#tick++;
    // A ClientHello that does not come whole in time: routed without it.
    const late = Date.now() - (this.router?.helloTimeout ?? 0);
    for (const [key, u] of this.#undecided) {
      if (u.since <= late && !u.asking) this.#decide(key, u, undefined);
    }
    for (const s of this.#table.expire(this.#tick - TICKS_PER_TIMEOUT)) this.#end(s, "expired");
    if (this.#refused.size > 0) this.#forgetQuietRefusals();
  }

  #end(session: Session, reason: "expired" | "evicted" | "closed" | "server down"): void {
    if (session.closed) return;
    session.closed = true;
    session.socket?.close();
    this.env.tracker.closeSession(session.record, reason);
    if (this.env.logger.enabled("debug")) {
      this.env.logger.debug("UDP session ended", {
        entryPoint: this.name,
        client: formatAddr(session.client),
        reason,
      });
    }
  }
}
