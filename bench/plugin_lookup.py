#!/usr/bin/env python3
"""Handshake latency with a custom Python token plugin: ours against the Python websockify.

    bench/plugin_lookup.py [--bin PATH] [-n N] [--upstream PATH] [--python PATH]

Starts a TCP echo target, then each system in turn on loopback with the trivial plugin
`tests/plugins/trivial.py` (`trivial.Fixed`: every token -> the target), warms it up,
and times N WebSocket handshakes one after another (connect, upgrade request with a
token, until the 101's head is read); prints p50 and p99 in a table. Ours is also run
with the built-in TokenFile, the floor the plugin host adds to. Standard library only.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def echo_target():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)

    def serve(conn):
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                conn.sendall(data)

    def accept():
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return srv.getsockname()[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv, port):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "tests/plugins"))
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("%s did not start" % argv[0])


REQUEST = (
    "GET /?token=vm1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
).encode()


def handshake(port):
    """Seconds from connect to the end of the 101's head."""
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(REQUEST)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError("closed before the 101: %r" % head)
            head += chunk
        took = time.perf_counter() - start
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError("not a 101: %r" % head[:40])
    return took


def measure(argv, port, n):
    proc = start(argv, port)
    try:
        for _ in range(20):  # the plugin host starts on the first lookup
            handshake(port)
        times = sorted(handshake(port) for _ in range(n))
    finally:
        proc.kill()
        proc.wait()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/websockify"))
    ap.add_argument("--upstream", default=os.path.join(ROOT, ".peers/venv/bin/websockify"))
    ap.add_argument("--python", default="python3", help="the interpreter of our plugin host")
    ap.add_argument("-n", type=int, default=1000)
    args = ap.parse_args()
    target = "127.0.0.1:%d" % echo_target()
    plugin = ["--token-plugin", "trivial.Fixed", "--token-source", target]
    tokens = tempfile.NamedTemporaryFile("w", suffix=".tokens", delete=False)
    tokens.write("vm1: %s\n" % target)
    tokens.close()
    rows = []
    port = free_port()
    rows.append(("ours, Python plugin trivial.Fixed",
                 measure([args.bin, "--plugin-python", args.python] + plugin + ["127.0.0.1:%d" % port], port, args.n)))
    port = free_port()
    rows.append(("upstream, same plugin", measure([args.upstream] + plugin + ["127.0.0.1:%d" % port], port, args.n)))
    port = free_port()
    rows.append(("ours, built-in TokenFile",
                 measure([args.bin, "--token-plugin", "TokenFile", "--token-source", tokens.name,
                          "127.0.0.1:%d" % port], port, args.n)))
    os.unlink(tokens.name)
    print("handshake latency, %d sequential sessions (binary: %s)" % (args.n, os.path.relpath(args.bin, ROOT)))
    print("%-36s %10s %10s" % ("system", "p50 ms", "p99 ms"))
    for name, (p50, p99) in rows:
        print("%-36s %10.2f %10.2f" % (name, p50 * 1000, p99 * 1000))


if __name__ == "__main__":
    main()
