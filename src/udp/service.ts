/**
 * UDP services: something that names the backend for a new session. A `loadBalancer` picks a
 * server by its strategy (`wrr` or `hrw`) among those that are up; a `weighted` service picks a
 * child service by smooth weighted round robin, skipping children that are down.
 */
import type { Strategy } from "../balancer/candidate.ts";
import { SmoothWeightedRoundRobin, type Weighted } from "../balancer/wrr.ts";
import type { ServerState } from "../health/server_state.ts";
import { ChildrenHealth, type HealthSource, type ServiceHealth } from "../health/service_health.ts";
import { canonicalIp, parseIp } from "../net/ip.ts";
import type { NetAddr } from "../runtime/types.ts";

/** A backend chosen for a session. */
export interface UdpTarget {
  /** The service whose server this is (the innermost, for weighted services). */
  service: string;
  address: NetAddr;
  /** `host:port`, for logs and metrics. */
  label: string;
  /** Whether the address is an IP literal (not a name), so replies can be checked against it. */
  literal: boolean;
  /** Its health: a session on a server that goes down moves. */
  server: ServerState;
}

/** Picks the backend of each new session. */
export interface UdpService {
  /** The backend for a new session of `client`. */
  next(client: NetAddr): UdpTarget | undefined;
  readonly health: HealthSource;
}

/** Servers by a strategy; servers that are down sit out while any is up. */
export class UdpLoadBalancer implements UdpService {
  readonly #targets: Map<ServerState, UdpTarget>;

  constructor(
    readonly name: string,
    servers: readonly ServerState[],
    readonly strategy: Strategy<ServerState>,
    readonly health: ServiceHealth,
  ) {
    this.#targets = new Map(servers.map((s) => [s, {
      service: name,
      address: s.address,
      label: s.label,
      literal: parseIp(s.address.hostname) !== undefined,
      server: s,
    }]));
  }

  next(client: NetAddr): UdpTarget | undefined {
    // hrw sticks to the client's IP, so all of a client's sessions (ports) meet one server.
    const key = this.strategy.usesKey ? canonicalIp(client.hostname) : "";
    const up = this.health.up;
    const server = this.strategy.pick(up ? (s) => !s.up : undefined, key);
    return server && this.#targets.get(server);
  }
}

/** Child services by smooth WRR, skipping those that are down while another is up. */
export class UdpWeighted implements UdpService {
  readonly #wrr: SmoothWeightedRoundRobin<UdpService>;
  readonly health: ChildrenHealth;

  constructor(
    readonly name: string,
    children: readonly Weighted<UdpService>[],
    random: (() => number) | null = Math.random,
  ) {
    this.#wrr = new SmoothWeightedRoundRobin(children, random);
    this.health = new ChildrenHealth(children.map((c) => c.item.health));
  }

  next(client: NetAddr): UdpTarget | undefined {
    const up = this.health.up;
    return this.#wrr.next(up ? (c) => !c.health.up : undefined)?.next(client);
  }
}
