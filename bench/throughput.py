#!/usr/bin/env python3
"""Bulk-throughput client and target for benchmarking a WebSocket-to-TCP proxy.

Standard library only, so it runs with any Python 3 and needs no venv.

Two roles live in this file:

  target  `throughput.py serve [--port P]` listens on TCP and prints "PORT <p>".
          Each accepted connection starts with one ASCII request line that the
          client sends *through the proxy*:
            "PUSH <n>\\n"  the target is a sink: it counts n bytes, then answers
                          "OK\\n" (so the client knows the bytes really arrived);
            "PULL <n>\\n"  the target is a source: it writes n bytes as fast as it
                          can from a pre-built buffer.
          It then waits for the client to close, so the proxy's close handling is
          never part of a measurement.

  client  `throughput.py push|pull URL --bytes N` where URL is ws://HOST:PORT/
          (RFC 6455, binary frames, no subprotocol offered) or tcp://HOST:PORT
          (raw bytes, for socat and direct TCP). The timer starts after the
          WebSocket handshake, just before the request line is sent, and stops:
            push: when the target's "OK" comes back (target has all n bytes);
            pull: when the client has counted n payload bytes.

Both ends are written so the proxy is the bottleneck: pre-built buffers sent
with sendall, large recv_into buffers, and WebSocket payloads are skipped by
arithmetic on frame lengths, never copied or unmasked byte by byte.
"""

import argparse
import base64
import hashlib
import math
import os
import socket
import struct
import sys
import threading
import time
from urllib.parse import urlsplit

RECV_BUF = 1 << 20        # recv_into buffer; loopback rarely hands more at once
SOURCE_BUF = 1 << 20      # pre-built buffer the pull source writes repeatedly
IO_TIMEOUT = 30.0         # a stalled proxy fails the run instead of hanging it
CHECK_BYTES = 65536       # stream prefix both ends compare with pattern()
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def set_io_timeout(sock, seconds=None):
    """Kernel-side send/recv timeouts (SO_RCVTIMEO/SO_SNDTIMEO).

    Python's own sock.settimeout() would make every recv/send do an extra
    poll() syscall; the kernel timeouts keep the socket blocking and cost
    nothing per call, yet a stall still ends in an OSError.
    """
    seconds = IO_TIMEOUT if seconds is None else seconds
    tv = struct.pack("ll", int(seconds), int((seconds % 1) * 1e6))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)


def recv_some(sock, n):
    """sock.recv that reports an expired SO_RCVTIMEO as a timeout."""
    try:
        return sock.recv(n)
    except BlockingIOError:
        raise TimeoutError(f"no data from the proxy for {IO_TIMEOUT:.0f} s") from None


def parse_size(text):
    """'2G', '512M', '64K' (binary multiples) or a plain byte count."""
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    if mult != 1:
        text = text[:-1]
    return int(float(text) * mult)


# --------------------------------------------------------------------------
# Target (sink / source)
# --------------------------------------------------------------------------

def _read_request(conn):
    """Read the request line; return (verb, n, bytes already read past it)."""
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionError("closed before request line")
        data += chunk
        if b"\n" not in data and len(data) > 1024:
            raise ValueError("request line too long")
    line, rest = data.split(b"\n", 1)
    verb, n = line.decode("ascii").split()
    return verb, int(n), rest


def _drain_until_eof(conn):
    buf = bytearray(65536)
    while conn.recv_into(buf):
        pass


def _sink(conn, n, already):
    # Counting alone would let a proxy that mangles payloads (a masking bug,
    # say) look fast; comparing a prefix with the known pattern is free.
    want = min(n, CHECK_BYTES)
    head = bytearray(already)
    got = len(already)
    buf = bytearray(RECV_BUF)
    recv_into = conn.recv_into
    while got < n:
        k = recv_into(buf)
        if not k:
            raise ConnectionError(f"sink: EOF after {got} of {n} bytes")
        if len(head) < want:
            head += buf[:k]
        got += k
    conn.sendall(b"OK\n" if head[:want] == pattern(want) else b"NO\n")


def pattern(n):
    """The first n bytes of the test stream: 0..255 repeated (built at C speed).

    Period 256, so any buffer whose length is a multiple of 256, sent over and
    over, keeps the stream continuous and checkable at either end.
    """
    return (bytes(range(256)) * (n // 256 + 1))[:n]


# Built once: building it per connection would land inside the pull timing.
SOURCE_BLOCK = memoryview(pattern(SOURCE_BUF))


def _source(conn, n):
    block = SOURCE_BLOCK
    sendall = conn.sendall
    full, rest = divmod(n, len(block))
    for _ in range(full):
        sendall(block)
    if rest:
        sendall(block[:rest])


def _handle(conn):
    try:
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            set_io_timeout(conn, 120.0)
            verb, n, rest = _read_request(conn)
            if verb == "PUSH":
                _sink(conn, n, rest)
            elif verb == "PULL":
                _source(conn, n)
            else:
                raise ValueError(f"unknown request {verb!r}")
            _drain_until_eof(conn)
    except (OSError, ValueError) as e:
        # A proxy may open a connection and drop it (probes, aborted runs);
        # the client reports the failure, the target just carries on.
        print(f"target: {e}", file=sys.stderr, flush=True)


def serve(host, port):
    lsock = socket.create_server((host, port), backlog=64)
    print(f"PORT {lsock.getsockname()[1]}", flush=True)
    while True:
        conn, _ = lsock.accept()
        # One thread per connection: an idle or stuck connection must not
        # block the next run. Only one is busy at a time, so the GIL is moot.
        threading.Thread(target=_handle, args=(conn,), daemon=True).start()


# --------------------------------------------------------------------------
# Client
# --------------------------------------------------------------------------

def ws_frame(payload, opcode=0x2, mask=b"\x37\xfa\x21\x3d"):
    """One final, masked client frame (RFC 6455 section 5.2)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    # XOR the whole payload as one big integer: done once per pre-built frame.
    reps = -(-n // 4)
    key = int.from_bytes((mask * reps)[:n], "big")
    masked = (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")
    return head + mask + masked


class Client:
    """A connected client: raw TCP or WebSocket after a completed handshake."""

    def __init__(self, url):
        u = urlsplit(url)
        if u.scheme not in ("ws", "tcp"):
            raise ValueError(f"URL must be ws:// or tcp://, not {url!r}")
        self.ws = u.scheme == "ws"
        self.sock = socket.create_connection((u.hostname, u.port), timeout=10)
        self.sock.settimeout(None)  # back to plain blocking; see set_io_timeout
        set_io_timeout(self.sock)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray(RECV_BUF)
        self.view = memoryview(self.buf)
        self.start = self.end = 0     # unread bytes are buf[start:end]
        self.remaining = 0            # payload bytes left in the current frame
        self.counting = True          # current frame is data (not control)
        if self.ws:
            self._handshake(u.netloc, u.path or "/")

    def _handshake(self, host, path):
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(
            b"GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n" % (path.encode(), host.encode(), key))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = recv_some(self.sock, 4096)
            if not chunk:
                raise ConnectionError(f"handshake: closed; got {data[:200]!r}")
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if lines[0].split()[1:2] != ["101"]:
            raise ConnectionError(f"handshake refused: {lines[0]!r}")
        headers = {k.strip().lower(): v.strip()
                   for k, _, v in (line.partition(":") for line in lines[1:])}
        want = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != want:
            raise ConnectionError("handshake: bad Sec-WebSocket-Accept")
        # Bytes after the header already belong to the frame stream.
        self.buf[:len(rest)] = rest
        self.end = len(rest)

    def send_request(self, verb, n):
        line = f"{verb} {n}\n".encode()
        self.sock.sendall(ws_frame(line) if self.ws else line)

    def _fill(self):
        """Read more bytes, keeping an unparsed tail at the front of buf."""
        if self.start == self.end:
            self.start = self.end = 0
        elif self.end == len(self.buf):
            tail = self.end - self.start
            self.buf[:tail] = self.buf[self.start:self.end]
            self.start, self.end = 0, tail
        try:
            k = self.sock.recv_into(self.view[self.end:])
        except BlockingIOError:  # SO_RCVTIMEO expired
            raise TimeoutError(f"no data from the proxy for {IO_TIMEOUT:.0f} s") from None
        if not k:
            raise ConnectionError("connection closed by peer")
        self.end += k

    def _next_header(self):
        """Parse one frame header at buf[start:]; False if it is incomplete."""
        avail = self.end - self.start
        if avail < 2:
            return False
        b0, b1 = self.buf[self.start], self.buf[self.start + 1]
        length = b1 & 0x7F
        hlen = 2 + (2 if length == 126 else 8 if length == 127 else 0) + (4 if b1 & 0x80 else 0)
        if avail < hlen:
            return False
        if length == 126:
            length = int.from_bytes(self.buf[self.start + 2:self.start + 4], "big")
        elif length == 127:
            length = int.from_bytes(self.buf[self.start + 2:self.start + 10], "big")
        opcode = b0 & 0x0F
        if opcode == 0x8:
            raise ConnectionError("server sent a close frame")
        # Data frames (continuation, text, binary) count; ping/pong are skipped.
        self.counting = opcode < 0x8
        self.remaining = length
        self.start += hlen
        return True

    def read(self, n, keep=False):
        """Consume n payload bytes; return them only if keep (small reads)."""
        out = bytearray() if keep else None
        got = 0
        while got < n:
            if self.start == self.end:
                self._fill()
            if self.ws and self.remaining == 0:
                # A header that straddles the buffer end: move it and refill.
                while not self._next_header():
                    self._fill()
                continue
            avail = self.end - self.start
            if self.ws:
                take = min(avail, self.remaining, n - got)
                self.remaining -= take
                if not self.counting:
                    self.start += take
                    continue
            else:
                take = min(avail, n - got)
            if keep:
                out += self.buf[self.start:self.start + take]
            self.start += take
            got += take
        return bytes(out) if keep else None

    def close(self):
        try:
            if self.ws:
                self.sock.sendall(ws_frame(struct.pack("!H", 1000), opcode=0x8))
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.sock.close()


def push_block(ws, frame_size, batch):
    """(bytes one sendall writes, payload bytes in it): `batch` frames.

    The batch grows until its payload is a multiple of 256 so that the
    repeated block is one continuous pattern() stream the sink can check.
    """
    batch *= 256 // math.gcd(frame_size * batch, 256)
    payload = pattern(frame_size * batch)
    if not ws:
        return payload, len(payload)
    frames = [ws_frame(payload[i:i + frame_size]) for i in range(0, len(payload), frame_size)]
    return b"".join(frames), len(payload)


def push(url, n, frame_size=65536, batch=4):
    """Send n payload bytes; return seconds until the target confirmed them."""
    c = Client(url)
    try:
        block, per_block = push_block(c.ws, frame_size, batch)
        full, rest = divmod(n, per_block)
        tail = (ws_frame(pattern(rest)) if c.ws else pattern(rest)) if rest else b""
        sendall = c.sock.sendall
        t0 = time.perf_counter()
        c.send_request("PUSH", n)
        try:
            for _ in range(full):
                sendall(block)
            if tail:
                sendall(tail)
        except BlockingIOError:  # SO_SNDTIMEO expired
            raise TimeoutError(f"proxy accepted no data for {IO_TIMEOUT:.0f} s") from None
        ack = c.read(3, keep=True)
        elapsed = time.perf_counter() - t0
        if ack == b"NO\n":
            raise ValueError("push: the target received corrupted payload")
        if ack != b"OK\n":
            raise ConnectionError(f"push: unexpected acknowledgement {ack!r}")
        return elapsed
    finally:
        c.close()


def pull(url, n):
    """Receive n payload bytes from the target; return the seconds it took."""
    c = Client(url)
    try:
        t0 = time.perf_counter()
        c.send_request("PULL", n)
        want = min(n, CHECK_BYTES)
        head = c.read(want, keep=True)
        c.read(n - want)
        elapsed = time.perf_counter() - t0
        if head != pattern(want):
            raise ValueError("pull: the client received corrupted payload")
        return elapsed
    finally:
        c.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run the sink/source target")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0)
    for name in ("push", "pull"):
        p = sub.add_parser(name, help=f"{name} bytes through URL")
        p.add_argument("url", help="ws://HOST:PORT/ or tcp://HOST:PORT")
        p.add_argument("--bytes", type=parse_size, default=parse_size("1G"))
        if name == "push":
            p.add_argument("--frame-size", type=parse_size, default=65536)
            p.add_argument("--batch", type=int, default=4,
                           help="frames concatenated per sendall")
    a = ap.parse_args(argv)
    if a.cmd == "serve":
        try:
            serve(a.host, a.port)
        except KeyboardInterrupt:
            pass
        return
    if a.cmd == "push":
        secs = push(a.url, a.bytes, a.frame_size, a.batch)
    else:
        secs = pull(a.url, a.bytes)
    print(f"{a.cmd} {a.bytes} bytes in {secs:.3f} s: {a.bytes / secs / 1e6:.0f} MB/s")


if __name__ == "__main__":
    main()
