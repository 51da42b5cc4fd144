/**
 * l4p as a library: load or build a configuration, then run it on the current runtime.
 *
 * @example
 * ```ts
 * import { L4pServer, loadConfigFile, loadRuntime, Logger } from "./mod.ts";
 * const { config } = await loadConfigFile("l4p.yaml");
 * const server = new L4pServer({ runtime: await loadRuntime(), logger: new Logger() });
 * await server.start(config);
 * ```
 */
export { adHocTcpConfig, adHocUdpConfig, UsageError } from "./src/config/adhoc.ts";
export type { AdHocTcp, AdHocUdp } from "./src/config/adhoc.ts";
export { formatAddr, parseHostPort } from "./src/config/address.ts";
export type { HostPort } from "./src/config/address.ts";
export { formatDuration, parseDuration } from "./src/config/duration.ts";
export { ConfigError, formatProblem, loadConfigFile, parseConfig } from "./src/config/load.ts";
export type { ConfigProblem, LoadedConfig } from "./src/config/load.ts";
export { DEFAULTS, emptyConfig } from "./src/config/model.ts";
export type * from "./src/config/model.ts";
export { jsonSchema } from "./src/config/schema.ts";
export { Logger } from "./src/log/logger.ts";
export type { LogFormat, LoggerOptions, LogLevel } from "./src/log/logger.ts";
export { AccessLog } from "./src/log/access_log.ts";
export { renderMetrics } from "./src/metrics/prometheus.ts";
export { Totals, TrafficTracker, UdpTotals } from "./src/metrics/tracker.ts";
export type {
  ClosedConn,
  ClosedSession,
  ConnRecord,
  UdpSessionRecord,
} from "./src/metrics/tracker.ts";
export { startAdmin } from "./src/admin/admin.ts";
export { DialCancel, loadRuntime, SocketError } from "./src/runtime/mod.ts";
export type {
  ChunkSink,
  ConnectOptions,
  DatagramSocket,
  NetAddr,
  Runtime,
  TcpConn,
} from "./src/runtime/mod.ts";
export { SmoothWeightedRoundRobin } from "./src/balancer/wrr.ts";
export { encodeProxyHeader, parseProxyHeader, proxyHeaderFor } from "./src/proxy_protocol/codec.ts";
export type { ProxyHeader } from "./src/proxy_protocol/codec.ts";
export { parseClientHello } from "./src/tls/client_hello.ts";
export { matchRule, parseRule, RuleError } from "./src/tcp/rule.ts";
export { L4pServer, ListenError } from "./src/server/server.ts";
export type { ServerOptions } from "./src/server/server.ts";
export { run } from "./src/server/run.ts";
export type { RunOptions } from "./src/server/run.ts";
export type { Hook, HookConnection, HookDecision } from "./src/tcp/middlewares/hook.ts";
export type { HookSession, UdpHook } from "./src/udp/hook.ts";
