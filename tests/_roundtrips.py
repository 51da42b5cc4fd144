"""Concurrent verified round trips, with Python's ssl (OpenSSL) as a real TLS client.

Usage: python3 _roundtrips.py PORT CLIENTS ROUNDS [SERVERNAME CAFILE]

Each of CLIENTS threads opens ROUNDS connections in turn (TLS when SERVERNAME is given), sends
4-64 KiB of random bytes, reads as many back and compares. Prints one line per changed round
trip, then "round trips: N, changed: M".
"""

import os
import random
import socket
import ssl
import sys
import threading

port, clients, rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
servername = sys.argv[4] if len(sys.argv) > 4 else None
context = ssl.create_default_context(cafile=sys.argv[5]) if servername else None
lock = threading.Lock()
done = [0]
changed = []


def open_conn():
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    return context.wrap_socket(s, server_hostname=servername) if context else s


def client(n):
    rng = random.Random(n)
    for r in range(rounds):
        size = rng.randint(4096, 65536)
        data = os.urandom(size)
        s = open_conn()
        try:
            s.sendall(data)
            got = bytearray()
            while len(got) < size:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        finally:
            s.close()
        with lock:
            done[0] += 1
            if bytes(got) != data:
                at = next((i for i in range(min(len(got), size)) if got[i] != data[i]), len(got))
                changed.append(f"client {n} round {r}: {len(got)}/{size} bytes, first change at {at}")


threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for line in changed:
    print(line)
print(f"round trips: {done[0]}, changed: {len(changed)}")
