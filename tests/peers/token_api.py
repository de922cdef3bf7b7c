#!/usr/bin/env python3
"""A token API server for the BaseTokenAPI/JSONTokenApi tests, on Python's http.server.

Usage: token_api.py PORT_FILE
Listens on 127.0.0.1 (a free port, written to PORT_FILE) and answers GET /plain/TOKEN
with `host:port`, GET /json/TOKEN with {"host": ..., "port": ...}, for the tokens in
TOKENS; /slow/TOKEN sleeps 30 s (timeouts), /error/TOKEN answers 500, and unknown
tokens get 404. TOKEN_API_PORT in the environment picks the port. /strict/TOKEN answers like /plain/ only when TOKEN arrives encoded as RFC
3986 asks (unreserved characters as they are, every other byte percent-encoded);
/redirect/TOKEN answers 302 to /plain/TOKEN, /redirect-json/TOKEN 301 to an absolute
http:// URL of /json/TOKEN, and /loop/TOKEN redirects to itself. Each request's path is logged to stderr. With TOKEN_API_CERT and TOKEN_API_KEY in the
environment it speaks HTTPS with that certificate.
"""
import os
import ssl
import http.server
import json
import sys
import time
import urllib.parse

TOKENS = {}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        parts = self.path.split("/")
        if len(parts) != 3:
            return self.answer(400, "bad path")
        kind, raw = parts[1], parts[2]
        token = urllib.parse.unquote(raw)
        if kind == "redirect":
            return self.redirect(302, "/plain/" + raw)
        if kind == "redirect-json":
            return self.redirect(301, "http://127.0.0.1:%d/json/%s" % (self.server.server_address[1], raw))
        if kind == "loop":
            return self.redirect(302, self.path)
        if kind == "strict":
            if raw != urllib.parse.quote(token, safe="-._~"):
                return self.answer(400, "token not encoded as RFC 3986 asks: " + raw)
            kind = "plain"
        if kind == "slow":
            time.sleep(30)
        if kind == "error":
            return self.answer(500, "internal error")
        target = TOKENS.get(token)
        if target is None:
            return self.answer(404, "no such token")
        host, port = target.rsplit(":", 1)
        if kind == "json":
            return self.answer(200, json.dumps({"host": host, "port": int(port)}), "application/json")
        return self.answer(200, target)

    def redirect(self, status, location):
        self.send_response(status)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def answer(self, status, body, ctype="text/plain"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        sys.stderr.write("token_api: " + (fmt % args) + "\n")


def main():
    for spec in sys.argv[2:]:
        token, target = spec.split("=", 1)
        TOKENS[token] = target
    # TOKEN_API_PORT: a given port (to come back on the same one, as a restarted API does).
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("TOKEN_API_PORT", "0"))), Handler)
    server.daemon_threads = True
    if os.environ.get("TOKEN_API_CERT"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.environ["TOKEN_API_CERT"], os.environ["TOKEN_API_KEY"])
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    with open(sys.argv[1], "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
