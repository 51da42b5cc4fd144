/**
 * UDP services: something that names the backend for a new session. A `loadBalancer` picks a
 * server, a `weighted` service picks a child service, both by smooth weighted round robin, the
 * same code as TCP's.
 */
import { SmoothWeightedRoundRobin, type Weighted } from "../balancer/wrr.ts";
import { formatAddr } from "../config/address.ts";
import { parseIp } from "../net/ip.ts";
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
}

/** Picks the backend of each new session. */
export interface UdpService {
  next(): UdpTarget | undefined;
}

/** Servers by smooth WRR. */
export class UdpLoadBalancer implements UdpService {
  readonly #wrr: SmoothWeightedRoundRobin<UdpTarget>;

  constructor(
    readonly name: string,
    servers: readonly Weighted<NetAddr>[],
    random: (() => number) | null = Math.random,
  ) {
    this.#wrr = new SmoothWeightedRoundRobin(
      servers.map((s) => ({
        item: {
          service: name,
          address: s.item,
          label: formatAddr(s.item),
          literal: parseIp(s.item.hostname) !== undefined,
        },
        weight: s.weight,
      })),
      random,
    );
  }

  next(): UdpTarget | undefined {
    return this.#wrr.next();
  }
}

/** Child services by smooth WRR. */
export class UdpWeighted implements UdpService {
  readonly #wrr: SmoothWeightedRoundRobin<UdpService>;

  constructor(
    readonly name: string,
    children: readonly Weighted<UdpService>[],
    random: (() => number) | null = Math.random,
  ) {
    this.#wrr = new SmoothWeightedRoundRobin(children, random);
  }

  next(): UdpTarget | undefined {
    return this.#wrr.next()?.next();
  }
}
