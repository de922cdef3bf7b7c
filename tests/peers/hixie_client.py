#!/usr/bin/env python3
"""Independent Hixie-76 / Hixie-75 WebSocket test client (Python standard library only).

Written from the texts of draft-hixie-thewebsocketprotocol-76 (== hybi-00) and
draft-hixie-thewebsocketprotocol-75, not from the proxy's code.

Usage: hixie_client.py URL SCENARIO [--draft 76|75] [--bytes N] [--seed S]
                       [--timeout SECS] [--protocol base64|none] [--origin ORIGIN]
                       [--cafile PEM | --insecure] [--discardable-frames] [--debug]
       hixie_client.py selftest

SCENARIO: handshake | echo | read-until-close.  Prints exactly one JSON object line
on stdout.  See tests/peers/README.md.  Exit codes: 0 the scenario ran (even if the
handshake was answered with an HTTP status other than 101), 1 client-side failure
(connection refused, handshake not as the draft requires, ...), 2 usage error,
3 overall timeout.

Data is always carried as base64: each text frame (0x00 <UTF-8> 0xFF) holds one
complete padded base64 string; received text frames are base64-decoded.
"""

import argparse
import asyncio
import base64
import binascii
import hashlib
import json
import random
import ssl
import struct
import sys
from urllib.parse import urlsplit

SCENARIOS = ("handshake", "echo", "read-until-close")
MIB = 1 << 20

STATUS_76 = b"HTTP/1.1 101 WebSocket Protocol Handshake\r\n"
# draft-75: the first 85 bytes of the server's answer must be exactly these.
PREFIX_75 = (b"HTTP/1.1 101 Web Socket Protocol Handshake\r\n"
             b"Upgrade: WebSocket\r\n"
             b"Connection: Upgrade\r\n")
assert len(PREFIX_75) == 85
CLOSE_FRAME = b"\xff\x00"
# Characters draft-76 inserts into the keys: U+0021..U+002F and U+003A..U+007E.
KEY_NOISE = [chr(c) for c in list(range(0x21, 0x30)) + list(range(0x3A, 0x7F))]
MAX_HEAD = 64 * 1024

_emitted = False
_debug = False


def emit(obj):
    """Print the one result line (only the first call prints)."""
    global _emitted
    if _emitted:
        return
    _emitted = True
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def debug(msg):
    if _debug:
        sys.stderr.write("hixie_client: " + msg + "\n")
        sys.stderr.flush()


# ---------------------------------------------------------------- draft-76 keys

def make_key(rng):
    """One Sec-WebSocket-Key1/2 value by the draft-76 steps; returns (key, number)."""
    spaces = rng.randint(1, 12)                      # spaces_n: 1..12
    max_n = 4294967295 // spaces                      # max_n
    number = rng.randint(0, max_n)                    # number_n: 0..max_n
    key = list(str(number * spaces))                  # key_n = product_n in base ten
    for _ in range(rng.randint(1, 12)):               # 1..12 random non-digit chars
        key.insert(rng.randint(0, len(key)), rng.choice(KEY_NOISE))
    for _ in range(spaces):                           # spaces, never at start or end
        key.insert(rng.randint(1, len(key) - 1), " ")
    return "".join(key), number


def key_number(key):
    """The server-side reading of a key: digits / number of spaces (None if invalid)."""
    digits = "".join(c for c in key if "0" <= c <= "9")
    spaces = key.count(" ")
    if not digits or spaces == 0:
        return None
    n = int(digits)
    if n % spaces:
        return None
    return n // spaces


def challenge_response(number1, number2, key3):
    """MD5 of number_1 and number_2 (big-endian u32) followed by the 8 bytes of key_3."""
    return hashlib.md5(struct.pack(">II", number1, number2) + key3).digest()


# ---------------------------------------------------------------- URL / request

class Target:
    def __init__(self, url, origin):
        u = urlsplit(url)
        scheme = u.scheme.lower()
        if scheme not in ("ws", "wss") or not u.hostname:
            raise ValueError("URL must be ws://HOST[:PORT]/... or wss://HOST[:PORT]/...")
        if u.fragment:
            raise ValueError("a WebSocket URL must not have a fragment")
        self.secure = scheme == "wss"
        self.host = u.hostname.lower()
        default = 443 if self.secure else 80
        self.port = u.port or default
        resource = u.path or "/"
        if u.query:
            resource += "?" + u.query
        if " " in resource:
            raise ValueError("the resource name must not contain spaces")
        self.resource = resource
        hostpart = "[%s]" % self.host if ":" in self.host else self.host
        self.hostport = hostpart if self.port == default else "%s:%d" % (hostpart, self.port)
        # "construct a WebSocket URL" from host, port, resource name and secure flag
        self.location = "%s://%s%s" % (scheme, self.hostport, resource)
        if origin is None:
            origin = ("https://" if self.secure else "http://") + self.hostport
        self.origin = origin.lower()  # the draft sends the origin in ASCII lowercase


def build_request(target, draft, protocol, rng):
    """(bytes to send, expected challenge response or None)."""
    if draft == 76:
        key1, n1 = make_key(rng)
        key2, n2 = make_key(rng)
        key3 = bytes(rng.getrandbits(8) for _ in range(8))
        fields = ["Upgrade: WebSocket", "Connection: Upgrade",
                  "Host: " + target.hostport, "Origin: " + target.origin,
                  "Sec-WebSocket-Key1: " + key1, "Sec-WebSocket-Key2: " + key2]
        if protocol is not None:
            fields.append("Sec-WebSocket-Protocol: " + protocol)
        rng.shuffle(fields)  # the draft sends the fields in a random order
        head = "GET %s HTTP/1.1\r\n%s\r\n\r\n" % (target.resource, "\r\n".join(fields))
        return head.encode("utf-8") + key3, challenge_response(n1, n2, key3)
    fields = ["Upgrade: WebSocket", "Connection: Upgrade",
              "Host: " + target.hostport, "Origin: " + target.origin]
    if protocol is not None:
        fields.append("WebSocket-Protocol: " + protocol)
    head = "GET %s HTTP/1.1\r\n%s\r\n\r\n" % (target.resource, "\r\n".join(fields))
    return head.encode("utf-8"), None


# ---------------------------------------------------------------- response

class HandshakeError(Exception):
    def __init__(self, msg, raw=b"", extra=None):
        super().__init__(msg)
        self.raw = bytes(raw)
        self.extra = extra or {}


class HttpAnswer(Exception):
    """The server answered with a status other than 101."""

    def __init__(self, status, body):
        super().__init__(status)
        self.status = status
        self.body = body


async def _read_line(reader, raw):
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as e:
        raw += e.partial
        raise HandshakeError("connection closed during the handshake answer", raw)
    except asyncio.LimitOverrunError:
        raise HandshakeError("handshake line too long", raw)
    raw += line
    if len(raw) > MAX_HEAD:
        raise HandshakeError("handshake answer head too long", raw)
    return line


async def _read_http_error(reader, raw, status):
    """Rest of a non-101 answer: headers then body (Content-Length or until EOF)."""
    length = None
    while True:
        line = await _read_line(reader, raw)
        if line in (b"\r\n", b"\n"):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                length = int(value.strip())
            except ValueError:
                pass
    try:
        if length is not None:
            body = await asyncio.wait_for(reader.readexactly(length), 10)
        else:
            body = await asyncio.wait_for(reader.read(MAX_HEAD), 10)
    except asyncio.IncompleteReadError as e:
        body = e.partial
    except (asyncio.TimeoutError, ConnectionError, ssl.SSLError):
        body = b""
    raise HttpAnswer(status, body.decode("utf-8", "replace"))


def _parse_field(line, raw):
    """draft field reading: name up to ':' (ASCII-lowercased), one leading space skipped,
    value up to CR, which must be followed by LF; stray CR/LF fail."""
    if not line.endswith(b"\r\n") or b"\r" in line[:-2]:
        raise HandshakeError("header line not terminated by CRLF: %r" % line, raw)
    body = line[:-2]
    if b":" not in body:
        raise HandshakeError("header line without ':': %r" % line, raw)
    name, _, value = body.partition(b":")
    if value.startswith(b" "):
        value = value[1:]
    name = bytes(c + 0x20 if 0x41 <= c <= 0x5A else c for c in name)
    return name.decode("utf-8", "replace"), value.decode("utf-8", "replace")


def _one(fields, name, raw):
    vals = [v for n, v in fields if n == name]
    if len(vals) != 1:
        raise HandshakeError("expected exactly one %r field, got %d" % (name, len(vals)), raw)
    return vals[0]


async def read_response(reader, draft, target, protocol, expected):
    """Reads and checks the server's handshake answer as the draft's client does.
    Returns a dict with the negotiated details; raises HandshakeError / HttpAnswer."""
    raw = bytearray()
    status_line = await _read_line(reader, raw)
    # draft: >= 7 bytes, ends with CRLF, at least two spaces; code between them, 3 digits
    if len(status_line) < 7 or not status_line.endswith(b"\r\n") or status_line.count(b" ") < 2:
        raise HandshakeError("malformed status line %r" % bytes(status_line), raw)
    code = status_line.split(b" ")[1]
    if len(code) != 3 or not code.isdigit():
        raise HandshakeError("malformed status code in %r" % bytes(status_line), raw)
    status = int(code)
    if status != 101:
        await _read_http_error(reader, raw, status)

    lines = []
    while True:
        line = await _read_line(reader, raw)
        if line == b"\r\n":
            break
        lines.append(line)
    fields = [_parse_field(l, raw) for l in lines]
    if any(n == "" for n, _ in fields):
        raise HandshakeError("header field with an empty name", raw)

    if draft == 76:
        if status_line != STATUS_76:
            raise HandshakeError("status line is %r, want %r" % (bytes(status_line), STATUS_76), raw)
        upgrade = _one(fields, "upgrade", raw)
        connection = _one(fields, "connection", raw)
        origin = _one(fields, "sec-websocket-origin", raw)
        location = _one(fields, "sec-websocket-location", raw)
        proto_name = "sec-websocket-protocol"
        if upgrade != "WebSocket":
            raise HandshakeError("Upgrade is %r, want 'WebSocket'" % upgrade, raw)
        if connection.lower() != "upgrade":
            raise HandshakeError("Connection is %r, want 'Upgrade'" % connection, raw)
    else:
        if not bytes(raw).startswith(PREFIX_75):
            raise HandshakeError("answer does not start with the 85 bytes %r" % PREFIX_75, raw)
        fields = fields[2:]  # Upgrade and Connection are part of the fixed prefix
        origin = _one(fields, "websocket-origin", raw)
        location = _one(fields, "websocket-location", raw)
        proto_name = "websocket-protocol"
    if origin != target.origin:
        raise HandshakeError("%sOrigin is %r, want %r" % ("Sec-WebSocket-" if draft == 76 else "WebSocket-", origin, target.origin), raw)
    if location != target.location:
        raise HandshakeError("%sLocation is %r, want %r" % ("Sec-WebSocket-" if draft == 76 else "WebSocket-", location, target.location), raw)
    protos = [v for n, v in fields if n == proto_name]
    if protocol is not None:
        got = _one(fields, proto_name, raw)
        if got != protocol:
            raise HandshakeError("protocol is %r, want %r" % (got, protocol), raw)
    elif len(protos) > 1:
        raise HandshakeError("several %r fields" % proto_name, raw)

    result = {"status": 101, "draft": draft, "protocol": protos[0] if protos else None,
              "location": location, "origin": origin}
    if draft == 76:
        try:
            reply = await reader.readexactly(16)
        except asyncio.IncompleteReadError as e:
            raise HandshakeError("connection closed before the 16-byte challenge response "
                                 "(got %r)" % e.partial, raw)
        raw += reply
        if reply != expected:
            raise HandshakeError("challenge response %s, want %s" % (reply.hex(), expected.hex()), raw)
        result["challenge_ok"] = True
    debug("handshake answer: %r" % bytes(raw))
    return result


# ---------------------------------------------------------------- framing

def text_frame(data):
    """One text frame carrying `data` as a complete padded base64 string."""
    return b"\x00" + base64.b64encode(data) + b"\xff"


def length_prefixed_frame(ftype, payload):
    """A frame with the high bit of its type set: base-128 length (most significant
    7-bit group first, high bit set on all but the last byte), then the bytes."""
    n = len(payload)
    groups = [n & 0x7F]
    n >>= 7
    while n:
        groups.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes([ftype]) + bytes(reversed(groups)) + payload


def discardable_frame(rng):
    """A frame the draft tells the receiver to discard: a length-prefixed frame (type
    0x80..0xFF, never 0xFF with length 0), or a sentinel frame of type 0x01..0x7F whose
    payload is valid base64, so a server that forwards it corrupts the echo."""
    r = rng.random()
    if r < 0.4:
        ftype = rng.choice((0x80, 0x81, 0xA5, 0xFE))
        return length_prefixed_frame(ftype, rng.randbytes(rng.choice((0, 1, 127, 128, 300, 20000))))
    if r < 0.55:
        return length_prefixed_frame(0xFF, rng.randbytes(rng.choice((1, 5, 128))))
    return bytes([rng.randint(0x01, 0x7F)]) + base64.b64encode(rng.randbytes(rng.randint(1, 60))) + b"\xff"


async def read_frame(reader):
    """One frame as the draft's receiving side reads it:
    ("text", payload) | ("close",) | ("discarded", type, length) | ("eof",).
    An EOF inside a frame raises asyncio.IncompleteReadError."""
    t = await reader.read(1)
    if not t:
        return ("eof",)
    ftype = t[0]
    if ftype & 0x80:
        length = 0
        while True:
            b = (await reader.readexactly(1))[0]
            length = length * 128 + (b & 0x7F)
            if not b & 0x80:
                break
        if length:
            await reader.readexactly(length)
        if ftype == 0xFF and length == 0:
            return ("close",)
        return ("discarded", ftype, length)
    payload = (await reader.readuntil(b"\xff"))[:-1]
    if ftype == 0x00:
        return ("text", payload)
    return ("discarded", ftype, len(payload))


class Sink:
    """What the server sent: base64-decoded text frames, hashed."""

    def __init__(self):
        self.received = 0
        self.sha = hashlib.sha256()
        self.frames = 0
        self.empty_frames = 0
        self.discarded = []   # (type, length) of frames that were not text frames
        self.bad = []         # first few payloads that were not valid base64 / UTF-8
        self.close_frame = False
        self.eof = False
        self.error = None

    def add(self, payload):
        self.frames += 1
        if not payload:
            self.empty_frames += 1
        try:
            payload.decode("utf-8")
            data = base64.b64decode(payload, validate=True)
        except (UnicodeDecodeError, binascii.Error, ValueError):
            if len(self.bad) < 3:
                self.bad.append(payload[:64].decode("latin-1"))
            return
        self.received += len(data)
        self.sha.update(data)

    async def read_until(self, reader, limit=None):
        """Read frames until `limit` bytes arrived (if set), the close frame, or EOF."""
        try:
            while limit is None or self.received < limit:
                f = await read_frame(reader)
                if f[0] == "text":
                    self.add(f[1])
                elif f[0] == "close":
                    self.close_frame = True
                    debug("server close frame")
                    return
                elif f[0] == "eof":
                    self.eof = True
                    debug("EOF")
                    return
                else:
                    if len(self.discarded) < 8:
                        self.discarded.append([f[1], f[2]])
                    debug("discarded frame type 0x%02x length %d" % (f[1], f[2]))
        except asyncio.IncompleteReadError as e:
            self.eof = True
            self.error = "EOF inside a frame (%d bytes of it read)" % len(e.partial)
        except (ConnectionError, ssl.SSLError, OSError) as e:
            self.eof = True
            self.error = "%s: %s" % (type(e).__name__, e)

    async def wait_eof(self, reader):
        """After the closing handshake: discard until the server closes TCP."""
        try:
            while await reader.read(65536):
                pass
        except (ConnectionError, ssl.SSLError, OSError) as e:
            self.error = self.error or "%s: %s" % (type(e).__name__, e)
        self.eof = True

    def report(self):
        r = {}
        if self.discarded:
            r["discarded_frames"] = self.discarded
        if self.bad:
            r["bad_payloads"] = self.bad
        if self.error:
            r["read_error"] = self.error
        return r


class Source:
    """Deterministic pseudo-random bytes (random.Random(seed)), hashed as produced."""

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


def chunk_sizes(seed):
    """Raw bytes per frame: small/boundary sizes (and one empty frame) first, then a
    seeded mix up to 768 KiB (1 MiB of base64 text)."""
    yield from (1, 2, 3, 0, 4, 57, 125, 126, 127, 1000, 65535, 65536, 65537)
    rng = random.Random(seed * 7919 + 76)
    while True:
        r = rng.random()
        if r < 0.2:
            yield rng.randint(1, 200)
        elif r < 0.8:
            yield rng.randint(1, 65536)
        elif r < 0.97:
            yield rng.randint(65537, 256 * 1024)
        else:
            yield 768 * 1024


async def send_stream(writer, src, seed, stats, discardable=False):
    """Sends the whole source as text frames; writes are sometimes coalesced and some
    frames are split across two writes, so the server sees frames cut anywhere.
    With `discardable`, frames the server must discard are mixed in."""
    rng = random.Random(seed * 31 + 7)
    junk_rng = random.Random(seed * 131 + 75)
    pending = 0
    try:
        for size in chunk_sizes(seed):
            if src.remaining == 0:
                break
            frame = text_frame(src.take(size))
            stats["frames_sent"] += 1
            if discardable and junk_rng.random() < 0.4:
                junk = discardable_frame(junk_rng)
                stats["discardable_frames_sent"] = stats.get("discardable_frames_sent", 0) + 1
                frame = junk + frame if junk_rng.random() < 0.5 else frame + junk
            r = rng.random()
            if r < 0.15 and len(frame) > 2:
                cut = rng.randint(1, len(frame) - 1)
                writer.write(frame[:cut])
                await writer.drain()
                await asyncio.sleep(0.002)
                writer.write(frame[cut:])
                await writer.drain()
                pending = 0
            else:
                writer.write(frame)
                pending += len(frame)
                if r < 0.6 or pending > 256 * 1024:
                    await writer.drain()
                    pending = 0
        await writer.drain()
        return True
    except (ConnectionError, ssl.SSLError, OSError) as e:
        stats["write_error"] = "%s: %s" % (type(e).__name__, e)
        return False


async def send_close(writer, stats):
    try:
        writer.write(CLOSE_FRAME)
        await writer.drain()
        stats["close_sent"] = True
    except (ConnectionError, ssl.SSLError, OSError) as e:
        stats.setdefault("write_error", "%s: %s" % (type(e).__name__, e))


# ---------------------------------------------------------------- scenarios

STATE = {}  # partial results, reported on timeout


async def connect(a, target):
    ctx = None
    if target.secure:
        ctx = ssl.create_default_context(cafile=a.cafile)
        if a.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection(
        target.host, target.port, ssl=ctx,
        server_hostname=target.host if ctx else None, limit=8 * MIB)
    return reader, writer


async def run(a):
    target = Target(a.url, a.origin)
    protocol = None if a.protocol == "none" else a.protocol
    reader, writer = await connect(a, target)
    STATE["phase"] = "handshake"
    request, expected = build_request(target, a.draft, protocol, random.SystemRandom())
    debug("request: %r" % request)
    writer.write(request)
    await writer.drain()
    try:
        hs = await read_response(reader, a.draft, target, protocol, expected)
    except HttpAnswer as e:
        emit({"status": e.status, "draft": a.draft, "body": e.body})
        writer.close()
        return 0
    except HandshakeError as e:
        out = {"error": "handshake: %s" % e, "draft": a.draft,
               "response_head": e.raw.decode("latin-1")}
        out.update(e.extra)
        emit(out)
        writer.close()
        return 1

    result = dict(hs)
    stats = {"frames_sent": 0, "close_sent": False}
    sink = Sink()
    sc = a.scenario
    STATE.update(result)
    STATE["phase"] = sc

    if sc == "handshake":
        # Start the closing handshake right away and wait for the server's answer.
        await send_close(writer, stats)
        STATE["phase"] = "closing"
        await sink.read_until(reader)
        if sink.close_frame:
            await sink.wait_eof(reader)
        result.update(closed_by_server_frame=sink.close_frame, eof=sink.eof,
                      received=sink.received)

    elif sc in ("echo", "read-until-close"):
        n = a.bytes if a.bytes is not None else (MIB if sc == "echo" else 0)
        src = Source(a.seed, n)
        STATE["sink"] = sink
        STATE["src"] = src
        sender = asyncio.ensure_future(send_stream(writer, src, a.seed, stats, a.discardable_frames))
        await sink.read_until(reader, n if sc == "echo" else None)
        if sink.close_frame or sink.eof:
            sender.cancel()
        else:
            await sender
        try:
            await sender
        except asyncio.CancelledError:
            pass
        if sink.close_frame:
            # The server started the closing handshake: answer it, then wait for EOF.
            await send_close(writer, stats)
            STATE["phase"] = "wait-eof"
            await sink.wait_eof(reader)
        elif not sink.eof:
            # echo got all its bytes: start the closing handshake ourselves.
            await send_close(writer, stats)
            STATE["phase"] = "closing"
            await sink.read_until(reader)
            if sink.close_frame:
                STATE["phase"] = "wait-eof"
                await sink.wait_eof(reader)
        if sc == "echo":
            sha_s, sha_r = src.sha.hexdigest(), sink.sha.hexdigest()
            result.update(sent=src.produced, received=sink.received,
                          sha256_sent=sha_s, sha256_received=sha_r,
                          match=(src.produced == sink.received == n and sha_s == sha_r),
                          closed_by_server_frame=sink.close_frame, eof=sink.eof,
                          frames_sent=stats["frames_sent"], frames_received=sink.frames)
        else:
            result.update(sent=src.produced, received=sink.received,
                          sha256_received=sink.sha.hexdigest(),
                          close_frame=sink.close_frame, eof=sink.eof,
                          frames_received=sink.frames)
    result["close_sent"] = stats["close_sent"]
    if "discardable_frames_sent" in stats:
        result["discardable_frames_sent"] = stats["discardable_frames_sent"]
    if "write_error" in stats:
        result["write_error"] = stats["write_error"]
    result.update(sink.report())
    emit(result)
    try:
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 2)
    except Exception:
        pass
    return 0


# ---------------------------------------------------------------- self-test

def selftest():
    failures = []
    checks = 0

    def check(cond, what):
        nonlocal checks
        checks += 1
        if not cond:
            failures.append(what)

    # The draft-76 example handshake.
    k1, k2, k3 = "4 @1  46546xW%0l 1 5", "12998 5 Y3 1  .P00", b"^n:ds[4U"
    n1, n2 = key_number(k1), key_number(k2)
    check((n1, n2) == (829309203, 259970620), "example key numbers %r" % ((n1, n2),))
    check(challenge_response(n1, n2, k3) == b"8jKS'y:G*Co,Wxa-", "example challenge response")

    # Generated keys obey the draft's constraints and read back to their number.
    rng = random.Random(76)
    for i in range(20000):
        key, number = make_key(rng)
        spaces = key.count(" ")
        noise = [c for c in key if c != " " and not c.isdigit()]
        ok = (1 <= spaces <= 12 and 1 <= len(noise) <= 12
              and all(c in KEY_NOISE for c in noise)
              and key[0] != " " and key[-1] != " "
              and key_number(key) == number
              and number * spaces <= 4294967295)
        check(ok, "generated key %r (number %d)" % (key, number))
        if not ok:
            break

    # The draft-76 example answer, read by the client's checks.
    t = Target("ws://example.com/demo", "http://example.com")
    answer76 = (b"HTTP/1.1 101 WebSocket Protocol Handshake\r\nUpgrade: WebSocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Origin: http://example.com\r\n"
                b"Sec-WebSocket-Location: ws://example.com/demo\r\n"
                b"Sec-WebSocket-Protocol: sample\r\n\r\n8jKS'y:G*Co,Wxa-")
    answer75 = (PREFIX_75 + b"WebSocket-Origin: http://example.com\r\n"
                b"WebSocket-Location: ws://example.com/demo\r\n"
                b"WebSocket-Protocol: sample\r\n\r\n")

    async def parse(data, draft, expected, protocol="sample", target=t):
        r = asyncio.StreamReader()
        r.feed_data(data)
        r.feed_eof()
        return await read_response(r, draft, target, protocol, expected)

    async def frames(data):
        r = asyncio.StreamReader()
        r.feed_data(data)
        r.feed_eof()
        out = []
        while True:
            try:
                f = await read_frame(r)
            except asyncio.IncompleteReadError:
                out.append(("truncated",))
                break
            out.append(f)
            if f[0] == "eof":
                break
        return out

    async def fails(coro):
        try:
            await coro
        except (HandshakeError, HttpAnswer) as e:
            return e
        return None

    async def handshakes():
        good = b"8jKS'y:G*Co,Wxa-"
        r = await parse(answer76, 76, good)
        check(r["challenge_ok"] and r["protocol"] == "sample"
              and r["location"] == "ws://example.com/demo", "76 example answer: %r" % r)
        r = await parse(answer75, 75, None)
        check(r["protocol"] == "sample" and "challenge_ok" not in r, "75 answer: %r" % r)
        bad = [
            (answer76.replace(b"8jKS", b"9jKS"), 76, "challenge"),
            (answer76.replace(b"Upgrade: WebSocket", b"Upgrade: websocket"), 76, "Upgrade"),
            (answer76.replace(b"Protocol Handshake", b"Switching Protocols"), 76, "status line"),
            (answer76.replace(b"Origin: http://example.com", b"Origin: http://evil"), 76, "Origin"),
            (answer76.replace(b"ws://example.com/demo", b"ws://example.com/"), 76, "Location"),
            (answer76.replace(b"Sec-WebSocket-Protocol: sample\r\n", b""), 76, "protocol"),
            (answer76[:-3], 76, "short challenge"),
            (answer75.replace(b"Web Socket", b"WebSocket"), 75, "75 prefix"),
            (answer75.replace(b"WebSocket-Location", b"X"), 75, "75 location"),
        ]
        for data, draft, what in bad:
            e = await fails(parse(data, draft, good if draft == 76 else None))
            check(isinstance(e, HandshakeError), "bad answer accepted: " + what)
        e = await fails(parse(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno", 76, good))
        check(isinstance(e, HttpAnswer) and e.status == 403 and e.body == "no", "403 answer")
        # Location with a non-default port and a query; ASCII-lowercased origin.
        t2 = Target("wss://LocalHost:8443/a/b?c=d", "HTTP://Example.COM")
        check(t2.location == "wss://localhost:8443/a/b?c=d" and t2.origin == "http://example.com"
              and t2.hostport == "localhost:8443", "Target %r" % vars(t2))
        t3 = Target("ws://[::1]:80", None)
        check(t3.location == "ws://[::1]/" and t3.hostport == "[::1]", "Target %r" % vars(t3))
        # A request we would send: head fields, then exactly 8 key bytes.
        req, exp = build_request(t, 76, "base64", random.Random(1))
        head, _, key3 = req.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        hdr = dict(l.split(": ", 1) for l in lines[1:])
        check(lines[0] == "GET /demo HTTP/1.1" and len(key3) == 8
              and hdr["Upgrade"] == "WebSocket" and hdr["Connection"] == "Upgrade"
              and hdr["Host"] == "example.com" and hdr["Sec-WebSocket-Protocol"] == "base64"
              and exp == challenge_response(key_number(hdr["Sec-WebSocket-Key1"]),
                                            key_number(hdr["Sec-WebSocket-Key2"]), key3),
              "76 request %r" % req)
        req, exp = build_request(t, 75, None, random.Random(1))
        check(req == b"GET /demo HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n"
              b"Host: example.com\r\nOrigin: http://example.com\r\n\r\n" and exp is None,
              "75 request %r" % req)
        # Framing: text, length-prefixed (2-byte length = 128) discarded, other text
        # type discarded, close, then a truncated frame.
        stream = (text_frame(b"hi") + b"\x80\x81\x00" + b"x" * 128 + b"\x01abc\xff"
                  + b"\x00\xff" + CLOSE_FRAME + b"\x00QUJD")
        got = await frames(stream)
        want = [("text", b"aGk="), ("discarded", 0x80, 128), ("discarded", 0x01, 3),
                ("text", b""), ("close",), ("truncated",)]
        check(got == want, "frames %r" % got)
        check(text_frame(b"\x00\xff\x01") == b"\x00AP8B\xff", "text_frame")
        check(length_prefixed_frame(0x80, b"x" * 128) == b"\x80\x81\x00" + b"x" * 128
              and length_prefixed_frame(0xFF, b"") == CLOSE_FRAME
              and length_prefixed_frame(0x81, b"y" * 300) == b"\x81\x82\x2c" + b"y" * 300,
              "length_prefixed_frame")
        jr = random.Random(3)
        junk = b"".join(discardable_frame(jr) for _ in range(200))
        got = await frames(junk)
        check(got[-1] == ("eof",) and all(f[0] == "discarded" for f in got[:-1])
              and len(got) == 201, "discardable frames read back %r" % got[:5])

    asyncio.run(handshakes())
    if failures:
        emit({"selftest": "failed", "checks": checks, "failures": failures[:10]})
        return 1
    emit({"selftest": "ok", "checks": checks})
    return 0


# ---------------------------------------------------------------- main

class ArgParser(argparse.ArgumentParser):
    def error(self, message):
        emit({"error": "usage: " + message})
        sys.exit(2)


def parse_args(argv):
    p = ArgParser(description="Hixie-76/75 WebSocket test client (base64 text frames)")
    p.add_argument("url")
    p.add_argument("scenario", choices=SCENARIOS)
    p.add_argument("--draft", type=int, choices=(76, 75), default=76)
    p.add_argument("--bytes", type=int, default=None,
                   help="bytes to send (echo: default 1 MiB; read-until-close: default 0)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--protocol", choices=("base64", "none"), default="base64",
                   help="subprotocol to offer (none: no protocol field)")
    p.add_argument("--origin", default=None,
                   help="Origin to send (default http(s)://HOST[:PORT] of the URL)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--cafile", default=None, help="trust this PEM for wss://")
    g.add_argument("--insecure", action="store_true", help="no certificate check for wss://")
    p.add_argument("--discardable-frames", action="store_true",
                   help="mix frames the server must discard into what echo/read-until-close send")
    p.add_argument("--debug", action="store_true", help="trace the handshake and frames on stderr")
    a = p.parse_args(argv)
    if a.bytes is not None and a.bytes < 0:
        p.error("--bytes must be >= 0")
    if a.timeout <= 0:
        p.error("--timeout must be > 0")
    return a


def timeout_report():
    out = {"error": "timeout"}
    for k in ("phase", "status", "draft", "protocol"):
        if k in STATE:
            out[k] = STATE[k]
    if "src" in STATE:
        out["sent"] = STATE["src"].produced
    if "sink" in STATE:
        s = STATE["sink"]
        out.update(received=s.received, close_frame=s.close_frame, eof=s.eof)
    return out


def main(argv):
    global _debug
    if argv[:1] == ["selftest"]:
        if len(argv) != 1:
            emit({"error": "usage: selftest takes no arguments"})
            return 2
        return selftest()
    a = parse_args(argv)
    _debug = a.debug
    try:
        Target(a.url, a.origin)
    except ValueError as e:
        emit({"error": "usage: %s" % e})
        return 2
    try:
        return asyncio.run(asyncio.wait_for(run(a), a.timeout))
    except (asyncio.TimeoutError, TimeoutError):
        emit(timeout_report())
        return 3
    except Exception as e:  # client-side failure (refused, TLS error, ...)
        emit({"error": "%s: %s" % (type(e).__name__, e)})
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
