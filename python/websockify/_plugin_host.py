"""The plugin host of websockify-rs: runs one upstream-style Python plugin for the proxy.

The proxy (a Rust binary) starts this script with the site's interpreter and speaks JSON
lines with it: the first line on stdin names the plugin, each later line is a request
with an id, answered on stdout by a line with the same id. Each request runs on its own
thread, so a slow lookup does not hold up the next one; the proxy enforces the deadline.
Standard library only: it must run in any venv the plugin needs.
"""

import http.client
import http
import json
import logging
import os
import signal
import sys
import threading
import traceback
import types


def main():
    # The protocol owns the real stdout; a plugin's print() goes to stderr (the proxy's log).
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    # Ctrl-C is the proxy's to handle; this process ends when its stdin closes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lock = threading.Lock()

    def send(obj):
        line = json.dumps(obj) + "\n"
        with lock:
            proto.write(line)
            proto.flush()

    init = json.loads(sys.stdin.readline() or "{}")
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    install_compat(init.get("compat") or {})
    try:
        plugin = load(init["class"])(init.get("source"))
    except BaseException as e:  # SystemExit too: upstream's TokenRedis exits on a bad source
        send({"id": 0, "error": describe(e)})
        return 1
    send({"id": 0, "ok": True})
    if init.get("check"):
        return 0
    handle = lookup if init.get("kind") == "token" else authenticate
    for line in sys.stdin:
        req = json.loads(line)
        threading.Thread(target=run, args=(send, handle, plugin, req), daemon=True).start()
    # The proxy has gone: do not wait for plugin threads that may never return.
    os._exit(0)


def load(name):
    """The class, found as upstream finds it: the module imported, then the attribute."""
    if "." not in name:
        name = "websockify.token_plugins." + name
    module, cls = name.rsplit(".", 1)
    __import__(module)
    return getattr(sys.modules[module], cls)


def install_compat(sources):
    """Provides `websockify.token_plugins` and `websockify.auth_plugins` (sent by the
    proxy) when neither upstream nor websockify-rs is installed in this interpreter."""
    try:
        import websockify.token_plugins  # noqa: F401
        import websockify.auth_plugins  # noqa: F401
        return
    except ImportError:
        pass
    pkg = sys.modules.get("websockify") or types.ModuleType("websockify")
    pkg.__path__ = getattr(pkg, "__path__", [])
    sys.modules["websockify"] = pkg
    for name, src in sources.items():
        mod = types.ModuleType(name)
        mod.__file__ = "<websockify-rs>/" + name.replace(".", "/") + ".py"
        sys.modules[name] = mod
        exec(compile(src, mod.__file__, "exec"), mod.__dict__)
        setattr(pkg, name.rsplit(".", 1)[1], mod)


def run(send, handle, plugin, req):
    try:
        answer = handle(plugin, req)
    except BaseException as e:
        answer = {"error": describe(e)}
    answer["id"] = req["id"]
    try:
        send(answer)
    except (OSError, ValueError):
        os._exit(0)


def lookup(plugin, req):
    result = plugin.lookup(req["token"])
    if result is None:
        return {"target": None}
    try:
        host, port = result
    except (TypeError, ValueError):
        return {"error": "lookup returned %s, not (host, port)" % type(result).__name__}
    return {"target": [text(host), text(port)]}


def text(value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def authenticate(plugin, req):
    headers = http.client.HTTPMessage()
    for name, value in req["headers"]:
        headers[name] = value
    from websockify.auth_plugins import AuthenticationError

    try:
        plugin.authenticate(headers=headers, target_host=req.get("target_host"), target_port=req.get("target_port"))
    except AuthenticationError as e:
        code = getattr(e, "code", 403)
        msg = getattr(e, "msg", None)
        extra = getattr(e, "headers", None) or {}
        items = extra.items() if hasattr(extra, "items") else extra
        return {
            "refused": {
                "code": code if isinstance(code, int) else 403,
                "msg": None if msg is None else str(msg),
                "reason": reason(code),
                "headers": [[str(k), str(v)] for k, v in items],
                "log": str(e),
            }
        }
    return {"ok": True}


def reason(code):
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return "Forbidden"


def describe(e):
    """`Type: message (at file:line)`: the innermost frame is where the plugin failed."""
    where = ""
    tb = traceback.extract_tb(e.__traceback__)
    if tb:
        where = " (at %s:%d)" % (tb[-1].filename, tb[-1].lineno)
    return "%s: %s%s" % (type(e).__name__, e, where)


if __name__ == "__main__":
    sys.exit(main())
