/**
 * A UDP socket through `node:dgram`, for what Bun's own UDP sockets cannot do: share a port with
 * other processes, and take a receive buffer size.
 */
import dgram from "node:dgram";
import { type DatagramOptions, type DatagramSocket, SocketError } from "./types.ts";

function socketError(error: unknown): SocketError {
  const e = error as { code?: string; message?: string };
  return new SocketError(e.code ?? "EIO", e.message ?? String(error), { cause: error });
}

/** Binds a node:dgram socket with the options' reusePort and receive buffer. */
export function bindNodeDatagram(options: DatagramOptions): Promise<DatagramSocket> {
  const socket = dgram.createSocket({
    type: options.hostname.includes(":") ? "udp6" : "udp4",
    reusePort: options.reusePort ?? false,
    recvBufferSize: options.receiveBuffer,
  });
  return new Promise((resolve, reject) => {
    socket.once("error", (error) => reject(socketError(error)));
    socket.bind(options.port, options.hostname, () => {
      socket.removeAllListeners("error");
      // An ICMP error for an earlier datagram: that datagram is lost, as UDP allows.
      socket.on("error", () => {});
      socket.on(
        "message",
        (msg: Uint8Array, rinfo: dgram.RemoteInfo) =>
          options.onMessage(msg, { hostname: rinfo.address, port: rinfo.port }),
      );
      const a = socket.address();
      resolve({
        addr: { hostname: a.address, port: a.port },
        send(data, to, onDropped) {
          socket.send(data, to.port, to.hostname, (error) => {
            if (error) onDropped();
          });
        },
        setReceiveBuffer(bytes: number) {
          socket.setRecvBufferSize(bytes);
        },
        close() {
          try {
            socket.close();
          } catch {
            // Already closed.
          }
        },
      });
    });
  });
}
