#!/usr/bin/env python3
"""Writes the seed corpus in fuzz/corpus/<target>/ (small, meaningful inputs).

Run from anywhere: python3 fuzz/make_seeds.py. Deterministic; rewrites only seed-*
files. The streaming targets' inputs start with a split header (fuzz_targets/common/mod.rs):
byte 0 = n | flags, then n chunk sizes, then the stream.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def split(sizes=(), trailing_empty=False, multi=False):
    """The split header: chunk sizes used in turn."""
    assert len(sizes) < 16
    first = len(sizes) | (0x10 if trailing_empty else 0) | (0x20 if multi else 0)
    return bytes([first, *sizes])


def crlf(*lines):
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# --- request_head: raw request heads (and what follows them) --------------------------
CHROME = crlf(
    "GET /websockify HTTP/1.1",
    "Host: localhost:6080",
    "Connection: Upgrade",
    "Pragma: no-cache",
    "Cache-Control: no-cache",
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Upgrade: websocket",
    "Origin: http://localhost:6080",
    "Sec-WebSocket-Version: 13",
    "Accept-Encoding: gzip, deflate, br, zstd",
    "Accept-Language: en-US,en;q=0.9",
    "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==",
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
    "Sec-WebSocket-Protocol: binary",
)
write("request_head", "chrome", CHROME)
write("request_head", "firefox", crlf(
    "GET /websockify?token=abc HTTP/1.1",
    "Host: 127.0.0.1:6080",
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Accept: */*",
    "Accept-Language: en-US,en;q=0.5",
    "Accept-Encoding: gzip, deflate, br",
    "Sec-WebSocket-Version: 13",
    "Origin: http://127.0.0.1:6080",
    "Sec-WebSocket-Protocol: base64",
    "Sec-WebSocket-Extensions: permessage-deflate",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Connection: keep-alive, Upgrade",
    "Sec-Fetch-Dest: empty",
    "Sec-Fetch-Mode: websocket",
    "Sec-Fetch-Site: same-origin",
    "Pragma: no-cache",
    "Cache-Control: no-cache",
    "Upgrade: websocket",
))
# RFC 6455 section 1.2: offers subprotocols this server does not speak (a 400).
write("request_head", "rfc6455-1.2", crlf(
    "GET /chat HTTP/1.1",
    "Host: server.example.com",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Origin: http://example.com",
    "Sec-WebSocket-Protocol: chat, superchat",
    "Sec-WebSocket-Version: 13",
))
# A client that sends its first frame (masked "Hello") right behind the head.
write("request_head", "with-first-frame", crlf(
    "GET / HTTP/1.1",
    "Host: h",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 8",
    "Sec-WebSocket-Protocol: base64, binary",
) + bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]))
write("request_head", "bad-version", crlf(
    "GET / HTTP/1.1", "Host: h", "Upgrade: websocket", "Connection: Upgrade",
    "Sec-WebSocket-Key: c2hvcnQ=", "Sec-WebSocket-Version: 12",
))
write("request_head", "http10-post", crlf(
    "POST /websockify HTTP/1.0", "Host: h", "Upgrade: websocket", "Connection: upgrade",
    "Content-Length: 0",
))
write("request_head", "plain-get", crlf(
    "GET /vnc.html HTTP/1.1", "Host: localhost:6080", "Accept: text/html", "Connection: keep-alive",
))
write("request_head", "partial", b"GET /websockify HTTP/1.1\r\nHost: localh")
# draft-hixie-thewebsocketprotocol-76 section 1.3, with its 8-byte key3 body.
write("request_head", "hixie76", crlf(
    "GET /demo HTTP/1.1",
    "Host: example.com",
    "Connection: Upgrade",
    "Sec-WebSocket-Key2: 12998 5 Y3 1  .P00",
    "Sec-WebSocket-Protocol: base64",
    "Upgrade: WebSocket",
    "Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5",
    "Origin: http://example.com",
) + b"^n:ds[4U")
write("request_head", "hixie75", crlf(
    "GET /x HTTP/1.1", "Upgrade: WebSocket", "Connection: Upgrade", "Host: h:1", "Origin: http://o",
    "WebSocket-Protocol: base64",
))

# --- frame_decoder: client frames ----------------------------------------------------
def frame(first, payload, key=(0x37, 0xFA, 0x21, 0x3D), length_form=None):
    n = len(payload)
    form = length_form or (7 if n < 126 else 16 if n < 65536 else 64)
    out = bytearray([first])
    if form == 7:
        out.append(0x80 | n)
    elif form == 16:
        out.append(0x80 | 126)
        out += struct.pack(">H", n)
    else:
        out.append(0x80 | 127)
        out += struct.pack(">Q", n)
    out += bytes(key)
    out += bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes(out)


HELLO = bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])  # RFC 6455 5.7
assert HELLO == frame(0x81, b"Hello")
FRAGMENTED = frame(0x01, b"Hel", (1, 2, 3, 4)) + frame(0x80, b"lo", (5, 6, 7, 8))
PING_BETWEEN = frame(0x02, b"ab") + frame(0x89, b"ping!") + frame(0x80, b"cd")
CLOSE = frame(0x88, struct.pack(">H", 1000) + b"bye")
UTF8_SPLIT = "κόσμε 𝄞".encode()
UTF8_FRAGS = frame(0x01, UTF8_SPLIT[:3], (9, 8, 7, 6)) + frame(0x00, UTF8_SPLIT[3:8]) + frame(0x80, UTF8_SPLIT[8:])

write("frame_decoder", "rfc-hello", split() + HELLO)
write("frame_decoder", "rfc-hello-bytewise", split([1]) + HELLO)
write("frame_decoder", "rfc-unmasked-hello", split() + bytes([0x81, 0x05]) + b"Hello")
write("frame_decoder", "rfc-fragmented", split([3, 7]) + FRAGMENTED)
write("frame_decoder", "rfc-ping-pong", split([2]) + frame(0x89, b"Hello") + frame(0x8A, b"Hello"))
write("frame_decoder", "ping-between-fragments", split([5, 0, 9]) + PING_BETWEEN + CLOSE)
write("frame_decoder", "binary-256-16bit", split([100, 200]) + frame(0x82, bytes(range(256))))
write("frame_decoder", "binary-64bit-length", split([13]) + frame(0x82, b"sixty-four", length_form=64))
write("frame_decoder", "header-64k-then-eof", split() + frame(0x82, b"", length_form=64)[:2]
      + struct.pack(">Q", 65536) + bytes(4) + b"partial payload")
write("frame_decoder", "utf8-across-fragments", split([1, 2, 3]) + UTF8_FRAGS)
write("frame_decoder", "invalid-utf8", split() + frame(0x81, b"ok\xed\xa0\x80"))
write("frame_decoder", "close-1000-bye", split() + CLOSE)
write("frame_decoder", "close-empty", split([1]) + frame(0x88, b""))
write("frame_decoder", "close-bad-code", split() + frame(0x88, struct.pack(">H", 1005)))
write("frame_decoder", "empty-frames", split() + frame(0x01, b"") + frame(0x00, b"") + frame(0x80, b"") + frame(0x82, b""))
write("frame_decoder", "reserved-bits", split() + frame(0xC1, b"x"))

# --- base64_decoder: base64 messages (several per input when the multi flag is set) ----
write("base64_decoder", "hello", split() + b"SGVsbG8sIHdvcmxkIQ==")
write("base64_decoder", "hello-chunks", split([1, 2, 3, 5], trailing_empty=True) + b"SGVsbG8sIHdvcmxkIQ==")
write("base64_decoder", "messages", split([3], multi=True) + b"QQ==\nQUI=\nQUJD\n\nAP8QIA==")
write("base64_decoder", "padding-mid", split([4]) + b"QQ==QQ==")
write("base64_decoder", "truncated", split([2]) + b"QUJDRA")
write("base64_decoder", "bad-char", split() + b"QU*D")
write("base64_decoder", "trailing-bits", split() + b"QR==")
write("base64_decoder", "rfb-init", split([7, 1], multi=True) + b"UkZCIDAwMy4wMDgK\nAQ==\nAA==")

# --- utf8_validator: text (messages split on 0xFF when the multi flag is set) ----------
write("utf8_validator", "greek-clef", split([1]) + "κόσμε 𝄞 ok".encode())
write("utf8_validator", "mixed-chunks", split([2, 3, 1], trailing_empty=True) + "héllo wörld — €100 😀".encode())
write("utf8_validator", "messages", split([4], multi=True) + "a\u00e9".encode() + b"\xff" + "中文".encode() + b"\xff\xff" + b"plain")
write("utf8_validator", "surrogate", split([1]) + b"ab\xed\xa0\x80cd")
write("utf8_validator", "overlong", split() + b"\xc0\x80")
write("utf8_validator", "too-high", split([2]) + b"\xf4\x90\x80\x80")
write("utf8_validator", "truncated-end", split([1]) + b"ok\xf0\x9d")
write("utf8_validator", "max-code-point", split([3]) + b"\xf4\x8f\xbf\xbf")

# --- hixie_decoder: Hixie-75/76 client frames ----------------------------------------
write("hixie_decoder", "text-frames", split() + b"\x00QUJD\xff\x00SGVsbG8=\xff")
write("hixie_decoder", "text-split", split([2, 1]) + b"\x00QUJD\xff\x00RE" + b"VG\xff\xff\x00")
write("hixie_decoder", "length-frame-skipped", split([3]) + b"\x80\x03abc\x00QUJD\xff")
write("hixie_decoder", "multi-digit-length", split([1]) + b"\x81\x81\x00" + bytes(128) + b"\x00QQ==\xff")
write("hixie_decoder", "close", split() + b"\x00AA==\xff\xff\x00")
write("hixie_decoder", "length-overflow", split() + b"\x80" + b"\xff" * 10 + b"\x01")
write("hixie_decoder", "too-big", split([50]) + b"\x00" + b"QUJD" * 30 + b"\xff")
write("hixie_decoder", "typed-sentinel-skipped", split([4]) + b"\x01eHl6\xff\x00QUJD\xff\x7f\xff")

# --- token_file: token-file text (every line is also tried as a TokenFileName token) ---
write("token_file", "upstream-example", b"# comment\nvnc1: localhost:5901\nvnc2: 10.0.0.2:5900\n\n")
write("token_file", "ipv6-and-unix", b"six: ::1:5900\nbr: [fe80::1]:5900\nsock: unix_socket:/run/vnc.sock\n")
write("token_file", "tabs-and-spaces", b"  tok\t:\thost:1  \nweird:tok: h:2\n#no: x:1\n")
write("token_file", "errors", b"nosep\n: host:1\ntok: host\ntok: host:0\ntok: host:99999\n")
write("token_file", "names", b"vnc1\nin\nout\n../outside\n.hidden\nsub\nsub/../vnc1\nvnc1\x00x\n")

# --- redis_value: byte 0 even = a value, odd = a --token-source -----------------------
write("redis_value", "json", b"\x00" + b'{"host": "vnc.internal:5901"}')
write("redis_value", "json-ipv6", b"\x00" + b'{"host": "[::1]:5900", "other": 1}')
write("redis_value", "json-no-host", b"\x00" + b'{"port": 5900}')
write("redis_value", "plain", b"\x00" + b" 10.0.0.3:5900\n")
write("redis_value", "unix", b"\x00" + b"unix_socket:/run/vnc.sock")
write("redis_value", "not-utf8", b"\x00" + b"h\xff:1")
write("redis_value", "source-full", b"\x01" + b"redis.local:6380:2:s3cret:app")
write("redis_value", "source-quoted", b"\x01" + b'redis.local::::"app:vnc"')
write("redis_value", "source-ipv6", b"\x01" + b"[::1]:6380:1")
write("redis_value", "source-three", b"\x01" + b"redis.local:6379:0")

# --- web_path: byte 0 even = a request target, odd = a Range header after 8 length bytes
for name, target in [
    ("root", b"/"), ("index", b"/index.html?x=1"), ("dir-redirect", b"/app?a=b#c"),
    ("dir-slash", b"/app/"), ("nested", b"/app/core/rfb.js"), ("listing", b"/listing/"),
    ("dotdot", b"/../secret.txt"), ("encoded-dotdot", b"/%2e%2e/secret.txt"),
    ("symlink-out", b"/out-dir/secret"), ("symlink-in", b"/in-dir/rfb.js"), ("abs-link", b"/abs/etc/passwd"),
    ("space", b"/sp%20ace/b%20c.txt"), ("percent-dir", b"/%2541"), ("double-slash", b"//evil.example/"),
    ("backslash", b"/app\\..\\x"), ("nul", b"/a%00b"), ("bad-utf8", b"/%ff"), ("relative", b"app/"),
]:
    write("web_path", name, b"\x00" + target)
for name, length, header in [
    ("range-first", 1000, b"bytes=0-99"), ("range-suffix", 1000, b"bytes=-100"),
    ("range-open", 1000, b"bytes=900-"), ("range-past", 10, b"bytes=20-30"),
    ("range-multi", 1000, b"bytes=0-1,5-6"), ("range-empty-file", 0, b"bytes=0-"),
]:
    write("web_path", name, b"\x01" + struct.pack("<Q", length) + header)

# --- log_record: request heads whose values try to forge log lines ---------------------
write("log_record", "forged-newline", b"GET /x?a=%0a2026-12-04T16:00:09.000000Z%20%20INFO%20conn{id=9%20peer=10.0.0.1:1}:%20FORGED%26token=1 HTTP/1.1\r\nHost: h\r\n\r\n")
write("log_record", "syslog-priority", b"GET /x?a=%0d%0a%00%3c11%3e1%20-%20FORGED HTTP/1.1\r\nHost: h\r\nUser-Agent: \xc2\x9b2J\xc2\x85\xe2\x80\xa8 %1b[2J\r\n\r\n")
write("log_record", "novnc-path", b"GET /vnc.html?path=websockify%3Ftoken%3D%1b%5b2J HTTP/1.1\r\nHost: h\r\nOrigin: \x7f\xff\xfe\r\n\r\n")
write("log_record", "raw-controls", b"plain text\x00\x1b[2J\r\nsecond\n\n")

# --- record_escaper: raw session bytes -------------------------------------------------
write("record_escaper", "rfb-version", b"RFB 003.008\n")
write("record_escaper", "quotes-and-backslashes", b"it's a \\ test '\\'")
write("record_escaper", "binary", bytes(range(256)))
