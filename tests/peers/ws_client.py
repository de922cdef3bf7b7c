#!/usr/bin/env python3
"""Independent WebSocket test client built on the Python `websockets` library.

Usage: ws_client.py URL SCENARIO [--protocols LIST] [--bytes N] [--seed S]
                    [--timeout SECS] [--text STR] [--message-size N]
                    [--cafile PEM] [--insecure]

Prints exactly one JSON object line on stdout.  See tests/peers/README.md.
Exit codes: 0 scenario ran (even if the handshake was rejected with an HTTP
status), 1 client-side failure, 2 usage error, 3 overall timeout.

Requires websockets >= 14 (the asyncio implementation in websockets.asyncio).
"""

import argparse
import asyncio
import base64
import hashlib
import json
import random
import ssl
import urllib.parse
import sys

import websockets
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

SCENARIOS = ("handshake", "echo", "read-until-close", "send-text", "close-after-send")
MIB = 1 << 20

_emitted = False


def emit(obj):
    """Print the one result line (only the first call prints)."""
    global _emitted
    if _emitted:
        return
    _emitted = True
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class ArgParser(argparse.ArgumentParser):
    def error(self, message):
        emit({"error": "usage: " + message})
        sys.exit(2)


def parse_args(argv):
    p = ArgParser(description="websockets-based WebSocket test client")
    p.add_argument("url")
    p.add_argument("scenario", choices=SCENARIOS)
    p.add_argument("--protocols", default=None,
                   help="comma-separated subprotocols to offer (absent: no header)")
    p.add_argument("--bytes", type=int, default=None)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--text", default="hello")
    p.add_argument("--message-size", type=int, default=None,
                   help="send fixed-size messages instead of the varied mix")
    p.add_argument("--cafile", default=None, help="trust this PEM for wss://")
    p.add_argument("--header", action="append", default=[], metavar="NAME: VALUE",
                   help="an extra request header (repeatable), e.g. 'Authorization: Basic ...'")
    p.add_argument("--origin", default=None, help="the Origin header to send")
    p.add_argument("--client-cert", default=None, metavar="PEM",
                   help="present this client certificate on wss:// (with --client-key)")
    p.add_argument("--client-key", default=None, metavar="PEM")
    p.add_argument("--basic-auth", default=None, metavar="USER:PASSWORD",
                   help="HTTP Basic credentials (websockets builds the header)")
    p.add_argument("--insecure", action="store_true",
                   help="do not verify the server certificate for wss://")
    a = p.parse_args(argv)
    if a.bytes is not None and a.bytes < 0:
        p.error("--bytes must be >= 0")
    if a.message_size is not None and a.message_size < 1:
        p.error("--message-size must be >= 1")
    return a


class Source:
    """Deterministic pseudo-random byte stream (random.Random(seed)), hashed as produced."""

    def __init__(self, seed, total):
        self.rng = random.Random(seed)
        self.remaining = total
        self.produced = 0
        self.sha = hashlib.sha256()

    def take(self, n):
        n = min(n, self.remaining)
        data = self.rng.randbytes(n)
        self.remaining -= n
        self.produced += n
        self.sha.update(data)
        return data


def message_sizes(seed, fixed, cap):
    """Message sizes: frame-length boundaries first, then a seeded mix of 1 B .. 1 MiB."""
    if fixed is not None:
        while True:
            yield fixed
    for s in (1, 125, 126, 127, 65535, 65536, 65537, MIB):
        yield min(s, cap)
    rng = random.Random(seed * 7919 + 17)
    while True:
        r = rng.random()
        if r < 0.15:
            s = rng.randint(1, 200)
        elif r < 0.75:
            s = rng.randint(1, 65536)
        elif r < 0.95:
            s = rng.randint(65537, MIB)
        else:
            s = MIB
        yield min(s, cap)


class Sink:
    """Collects what the server sends, decoding base64 text messages in base64 mode."""

    def __init__(self, b64):
        self.b64 = b64
        self.received = 0
        self.sha = hashlib.sha256()
        self.text_messages = 0
        self.binary_messages = 0
        self.head = bytearray()  # first bytes, for send-text's received_text

    def add(self, msg):
        if isinstance(msg, str):
            self.text_messages += 1
            data = base64.b64decode(msg, validate=True) if self.b64 else msg.encode("utf-8")
        else:
            self.binary_messages += 1
            data = msg
        self.received += len(data)
        self.sha.update(data)
        if len(self.head) < 4096:
            self.head += data[: 4096 - len(self.head)]


def close_info(ws):
    """(code, reason) of the close frame the server sent; (None, None) if none arrived."""
    rcvd = ws.protocol.close_rcvd
    if rcvd is None:
        return None, None
    return int(rcvd.code), rcvd.reason


async def read_loop(ws, sink, limit=None):
    """Receive until the server closes (or until `limit` bytes when limit is set)."""
    try:
        while limit is None or sink.received < limit:
            sink.add(await ws.recv())
    except ConnectionClosed:
        pass


async def send_stream(ws, src, sizes, b64):
    """Send the whole source as messages; stop quietly if the connection closes."""
    try:
        for size in sizes:
            if src.remaining == 0:
                break
            chunk = src.take(size)
            if b64:
                await ws.send(base64.b64encode(chunk).decode("ascii"))
            else:
                await ws.send(chunk)
        return True
    except ConnectionClosed:
        return False


async def run(a):
    protocols = None
    if a.protocols is not None:
        # An empty list would make websockets send an empty header; send none.
        protocols = [p.strip() for p in a.protocols.split(",") if p.strip()] or None
    ssl_ctx = None
    if a.url.startswith("wss://"):
        ssl_ctx = ssl.create_default_context(cafile=a.cafile)
        if a.client_cert:
            ssl_ctx.load_cert_chain(a.client_cert, a.client_key)
        if a.insecure:
            ssl_ctx.check_hostname = False
            ssl_ctx.verify_mode = ssl.CERT_NONE
    headers = [tuple(h.split(":", 1)) for h in a.header]
    headers = [(k.strip(), v.strip()) for k, v in headers]
    url = a.url
    if a.basic_auth:
        # websockets sends Basic credentials given in the URI's userinfo.
        scheme, rest = url.split("://", 1)
        url = f"{scheme}://{urllib.parse.quote(a.basic_auth, safe=':')}@{rest}"
    try:
        ws = await connect(
            url,
            additional_headers=headers or None,
            origin=a.origin,
            subprotocols=protocols,
            compression=None,
            max_size=None,
            max_queue=64,
            write_limit=MIB,
            ping_interval=None,
            open_timeout=None,          # the overall --timeout applies
            close_timeout=a.timeout,    # don't abort a slow but orderly close
            ssl=ssl_ctx,
        )
    except InvalidStatus as e:
        r = e.response
        body = r.body.decode("utf-8", "replace") if r.body is not None else ""
        emit({"status": r.status_code, "body": body})
        return 0

    proto = ws.subprotocol
    b64 = proto == "base64"
    cap = (3 * MIB) // 4 if b64 else MIB  # keep every message <= 1 MiB on the wire
    sizes = message_sizes(a.seed, a.message_size, cap if a.message_size is None else a.message_size)
    result = {"status": 101, "protocol": proto}
    sc = a.scenario

    if sc == "handshake":
        await ws.close(1000)
        code, reason = close_info(ws)
        result.update(close_code=code, close_reason=reason)

    elif sc == "echo":
        n = 1 * MIB if a.bytes is None else a.bytes
        src = Source(a.seed, n)
        sink = Sink(b64)
        reader = asyncio.create_task(read_loop(ws, sink, n))
        await send_stream(ws, src, sizes, b64)
        await reader
        await ws.close(1000)
        code, reason = close_info(ws)
        sha_s, sha_r = src.sha.hexdigest(), sink.sha.hexdigest()
        result.update(sent=src.produced, received=sink.received,
                      sha256_sent=sha_s, sha256_received=sha_r,
                      match=(src.produced == sink.received == n and sha_s == sha_r),
                      close_code=code, close_reason=reason,
                      text_messages_received=sink.text_messages,
                      binary_messages_received=sink.binary_messages)

    elif sc == "read-until-close":
        n = a.bytes or 0
        src = Source(a.seed, n)
        sink = Sink(b64)
        reader = asyncio.create_task(read_loop(ws, sink))
        await send_stream(ws, src, sizes, b64)
        await reader
        await ws.wait_closed()
        code, reason = close_info(ws)
        result.update(sent=src.produced, received=sink.received,
                      sha256_received=sink.sha.hexdigest(),
                      close_code=code, close_reason=reason)

    elif sc == "send-text":
        sink = Sink(b64)
        reader = asyncio.create_task(read_loop(ws, sink, a.bytes or None))
        text = a.text
        try:
            await ws.send(text)
        except ConnectionClosed:
            pass
        await reader
        await ws.close(1000)  # no-op if the server already closed
        code, reason = close_info(ws)
        result.update(sent=len(text.encode("utf-8")), received=sink.received,
                      sha256_received=sink.sha.hexdigest(),
                      received_text=bytes(sink.head).decode("utf-8", "replace"),
                      close_code=code, close_reason=reason)

    elif sc == "close-after-send":
        n = a.bytes or 0
        src = Source(a.seed, n)
        sink = Sink(b64)
        reader = asyncio.create_task(read_loop(ws, sink))
        await send_stream(ws, src, sizes, b64)
        await ws.close(1000, "bye")  # the reader keeps draining the echo meanwhile
        await reader
        code, reason = close_info(ws)
        result.update(sent=src.produced, received=sink.received,
                      sha256_sent=src.sha.hexdigest(),
                      sha256_received=sink.sha.hexdigest(),
                      close_code=code, close_reason=reason)

    emit(result)
    return 0


def main(argv):
    a = parse_args(argv)
    try:
        return asyncio.run(asyncio.wait_for(run(a), a.timeout))
    except (asyncio.TimeoutError, TimeoutError):
        emit({"error": "timeout"})
        return 3
    except Exception as e:  # client-side failure (refused, bad handshake, ...)
        emit({"error": f"{type(e).__name__}: {e}"})
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
