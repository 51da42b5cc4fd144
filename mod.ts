/**
 * l4p as a library: build a configuration, start a server on the current runtime.
 *
 * @example
 * ```ts
 * import { adHocTcpConfig, L4pServer, loadRuntime, Logger } from "./mod.ts";
 * const server = new L4pServer({ runtime: await loadRuntime(), logger: new Logger() });
 * server.start(adHocTcpConfig({ listen: "127.0.0.1:8080", targets: ["127.0.0.1:9000"] }));
 * ```
 */
export { adHocTcpConfig, UsageError } from "./src/config/adhoc.ts";
export type { AdHocTcp } from "./src/config/adhoc.ts";
export { formatAddr, parseHostPort } from "./src/config/address.ts";
export type { HostPort } from "./src/config/address.ts";
export { formatDuration, parseDuration } from "./src/config/duration.ts";
export { DEFAULTS, emptyConfig } from "./src/config/model.ts";
export type * from "./src/config/model.ts";
export { Logger } from "./src/log/logger.ts";
export type { LogFormat, LoggerOptions, LogLevel } from "./src/log/logger.ts";
export { Totals, TrafficTracker } from "./src/metrics/tracker.ts";
export type { ClosedConn, ConnRecord } from "./src/metrics/tracker.ts";
export { loadRuntime, SocketError } from "./src/runtime/mod.ts";
export type { NetAddr, Runtime, TcpConn } from "./src/runtime/mod.ts";
export { SmoothWeightedRoundRobin } from "./src/balancer/wrr.ts";
export { L4pServer, ListenError } from "./src/server/server.ts";
export type { ServerOptions } from "./src/server/server.ts";
