/** Pumps bytes both ways between a client and its backend, honouring half-close. */
import type { TcpConn } from "../runtime/types.ts";
import type { TcpContext } from "./handler.ts";

/** How a proxied connection ends. */
export interface PumpOptions {
  /**
   * Once one direction has ended, how long the other may stay silent before both are closed,
   * in ms. Negative: wait for it forever.
   */
  terminationDelay: number;
  /** A client read already under way (started while the backend was being dialled). */
  pendingRead?: Promise<Uint8Array | null>;
  /** Bytes for the backend before any client byte (a PROXY header, peeked bytes). */
  prefix?: Uint8Array[];
}

/**
 * Copies client→backend and backend→client until both directions end. When one side ends its
 * writes, the other side's writes are ended too (half-close) and the reverse direction goes on
 * until it ends or stays silent for `terminationDelay`. An error in either direction closes
 * both.
 */
export function pump(ctx: TcpContext, backend: TcpConn, options: PumpOptions): void {
  const client = ctx.conn;
  const record = ctx.record;
  let open = 2;
  let done = false;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const finish = (reason: string) => {
    if (done) return;
    done = true;
    if (timer !== undefined) clearTimeout(timer);
    backend.close();
    ctx.end(reason);
  };
  // After one direction ends, the other is closed once it has carried no byte for
  // terminationDelay. traefik sets an absolute deadline instead, which cuts off a download
  // still in full flow; an idle deadline ends silent half-open connections just the same.
  // The timer compares byte counts rather than stamping each chunk with the time, and a timer
  // that fires late (the process was busy, so bytes may be waiting unread) looks once more.
  const armIdleDeadline = () => {
    const delay = options.terminationDelay;
    let seen = record.bytesIn + record.bytesOut;
    let armedAt = Date.now();
    const check = () => {
      const now = record.bytesIn + record.bytesOut;
      const late = Date.now() - armedAt > delay * 1.5 + 20;
      if (now === seen && !late) return finish("termination delay");
      seen = now;
      armedAt = Date.now();
      timer = setTimeout(check, delay);
    };
    timer = setTimeout(check, delay);
  };
  const directionEnded = (to: TcpConn) => {
    if (done) return;
    to.closeWrite();
    if (--open === 0) return finish("done");
    if (options.terminationDelay >= 0) armIdleDeadline();
  };

  // Ended from outside (a drain that ran out of time): the backend goes too.
  ctx.onEnd(() => finish("ended"));

  upstream(client, backend, record, options).then(
    () => directionEnded(backend),
    (error) => finish(`client→backend: ${errorText(error)}`),
  );
  downstream(backend, client, record).then(
    () => directionEnded(client),
    (error) => finish(`backend→client: ${errorText(error)}`),
  );
}

async function upstream(
  client: TcpConn,
  backend: TcpConn,
  record: { bytesIn: number },
  options: PumpOptions,
): Promise<void> {
  for (const bytes of options.prefix ?? []) {
    const w = backend.write(bytes);
    if (w) await w;
  }
  let read = options.pendingRead ?? client.read();
  for (;;) {
    const chunk = await read;
    if (chunk === null) return;
    record.bytesIn += chunk.length;
    const w = backend.write(chunk);
    if (w) await w;
    read = client.read();
  }
}

async function downstream(
  backend: TcpConn,
  client: TcpConn,
  record: { bytesOut: number },
): Promise<void> {
  for (;;) {
    const chunk = await backend.read();
    if (chunk === null) return;
    record.bytesOut += chunk.length;
    const w = client.write(chunk);
    if (w) await w;
  }
}

/** A short description of an error for logs and close reasons. */
export function errorText(error: unknown): string {
  const e = error as { code?: string; message?: string };
  return e?.code ?? e?.message ?? String(error);
}
