/** Command-line arguments for the real peers the tests and `scripts/bench.ts` start on loopback. */

/**
 * A single-member etcd on loopback, as the tests and `scripts/bench.ts --workloads fleet` run it;
 * with `tls`, clients need TLS (advertised as https://localhost) and a certificate from `ca`.
 */
export function etcdArgs(
  name: string,
  dataDir: string,
  client: number,
  peer: number,
  tls?: { cert: string; key: string; ca: string },
): string[] {
  const [clientUrl, peerUrl] = [
    `${tls ? "https" : "http"}://127.0.0.1:${client}`,
    `http://127.0.0.1:${peer}`,
  ];
  const secure = tls
    ? ["--cert-file", tls.cert, "--key-file", tls.key, "--trusted-ca-file", tls.ca]
    : [];
  return [
    ...secure,
    ...(tls ? ["--client-cert-auth"] : []),
    "--name",
    name,
    "--data-dir",
    dataDir,
    "--listen-client-urls",
    clientUrl,
    "--advertise-client-urls",
    tls ? `https://localhost:${client}` : clientUrl,
    "--listen-peer-urls",
    peerUrl,
    "--initial-advertise-peer-urls",
    peerUrl,
    "--initial-cluster",
    `${name}=${peerUrl}`,
  ];
}

/**
 * redis-server on loopback without persistence; with `tls`, on a TLS port only, clients needing
 * a certificate from `ca`.
 */
export function redisArgs(
  port: number,
  tls?: { cert: string; key: string; ca: string },
): string[] {
  const listen = tls
    ? [
      "--port",
      "0",
      "--tls-port",
      String(port),
      "--tls-cert-file",
      tls.cert,
      "--tls-key-file",
      tls.key,
      "--tls-ca-cert-file",
      tls.ca,
    ]
    : ["--port", String(port)];
  return [...listen, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
}

/** dnsmasq on 127.0.0.1:`port` answering `answers` (`{"l4p.test": "127.0.0.7"}`) and nothing else. */
export function dnsmasqArgs(port: number, answers: Record<string, string>): string[] {
  return [
    "--keep-in-foreground",
    "--conf-file=/dev/null",
    "--no-resolv",
    "--no-hosts",
    "--pid-file=",
    "--bind-interfaces",
    "--listen-address=127.0.0.1",
    `--port=${port}`,
    ...Object.entries(answers).map(([name, ip]) => `--address=/${name}/${ip}`),
  ];
}
