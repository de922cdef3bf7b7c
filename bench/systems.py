"""The systems under test: how each is installed, started and reached.

Every system sits between the same client and the same target (both
bench/loadgen). Installs go to .peers/ (git-ignored), never system-wide
except socat and strace (apt, as root, via scripts/peers.sh).
"""

import json
import os
import shutil
import subprocess
import sys
import time

from procfs import log_tail

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS = os.path.join(ROOT, ".peers")
LOADGEN = os.path.join(HERE, "loadgen", "target", "release", "loadgen")
OURS = os.path.join(ROOT, "target", "release", "websockify")
# `bench/run --baseline BINARY`: an earlier build of ours, measured in the same run as
# the system "base" (before/after a change, on the same noisy machine).
BASELINE = None
PYTHON = os.path.join(PEERS, "venv", "bin", "websockify")
WEBSOCAT = os.path.join(PEERS, "websocat", "bin", "websocat")
JS_DIR = os.path.join(PEERS, "websockify-js")
JS = os.path.join(JS_DIR, "node_modules", "websockify", "websockify.js")

# websockify-js is published on npm as `websockify` (0.7.1, from kanaka/websockify;
# novnc/websockify-js never published its 0.8.0). It depends on "ws >=0.4.27",
# which npm resolves to ws 8 today, and then it crashes on the first handshake
# (handleProtocols gets a Set, not an Array; upgradeReq is gone since ws 3).
# Pinned to the last ws of its API (1.1.5), it runs on Node 20.
JS_PACKAGE = {"private": True, "dependencies": {"websockify": "0.7.1"},
              "overrides": {"ws": "1.1.5"}}

# name -> (label in the tables, scheme the client speaks)
SYSTEMS = {
    "direct": ("direct TCP (no proxy)", "tcp"),
    "socat": ("socat TCP relay", "tcp"),
    "python": ("Python websockify", "ws"),
    "js": ("websockify-js", "ws"),
    "websocat": ("websocat", "ws"),
    "ours": ("ours", "ws"),
    "base": ("ours, baseline build", "ws"),
    # The same with a token per session: a 10,000-line token file, the session's token in
    # the middle of it (issue 20: set-up with a token lookup against set-up without).
    "ours-token": ("ours, TokenFile 10,000 lines", "ws"),
    "socat-tls": ("socat OPENSSL relay", "tls"),
    "ours-tls": ("ours, TLS", "wss"),
}
PLAIN = ["direct", "socat", "python", "js", "websocat", "ours", "ours-token"]
# What runs when --only is not given (ours-token on demand only).
DEFAULT = ["direct", "socat", "python", "js", "websocat", "ours"]
TOKENS = 10000
TOKEN = "tok5000"
TLS = ["socat-tls", "ours-tls"]


class Unavailable(Exception):
    """Why a system cannot run: printed as its n/a reason."""


def command(name, port, target_port, tls_files):
    """argv of the system listening on port and forwarding to target_port."""
    listen, target = f"127.0.0.1:{port}", f"127.0.0.1:{target_port}"
    cert, key = tls_files
    need(name)
    if name == "socat":
        # backlog: socat's default of 5 drops SYNs when sessions arrive in bulk.
        return ["socat", "-b", "262144", f"TCP-LISTEN:{port},backlog=4096,reuseaddr,fork,"
                f"bind=127.0.0.1", f"TCP:{target}"]
    if name == "socat-tls":
        return ["socat", "-b", "262144",
                f"OPENSSL-LISTEN:{port},cert={cert},key={key},verify=0,backlog=4096,reuseaddr,fork,"
                f"bind=127.0.0.1", f"TCP:{target}"]
    if name == "python":
        return [PYTHON, listen, target]
    if name == "js":
        # It listens on all interfaces whatever host it is given.
        return ["node", JS, listen, target]
    if name == "websocat":
        # -b: binary messages; -E: close the other direction at EOF, so a
        # session ends when either side closes (as the websockify do).
        return [WEBSOCAT, "-b", "-E", f"ws-l:{listen}", f"tcp:{target}"]
    if name == "ours":
        return [OURS, listen, target]
    if name == "base":
        return [BASELINE, listen, target]
    if name == "ours-token":
        path = os.path.join(ROOT, "target", "bench-logs", f"tokens-{TOKENS}")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.writelines(f"tok{i}: {target}\n" for i in range(TOKENS))
        return [OURS, "--token-plugin", "TokenFile", "--token-source", path, listen]
    if name == "ours-tls":
        return [OURS, "--cert", cert, "--key", key, listen, target]
    raise ValueError(name)


def need(name):
    """Raise Unavailable unless the system's program is installed."""
    if name.startswith("socat") and not shutil.which("socat"):
        raise Unavailable("socat not installed (bench/run --setup, as root)")
    if name == "python" and not os.access(PYTHON, os.X_OK):
        raise Unavailable("no .peers/venv/bin/websockify (bench/run --setup)")
    if name == "js":
        if not shutil.which("node"):
            raise Unavailable("node not installed")
        if not os.path.exists(JS):
            raise Unavailable("websockify-js not installed (bench/run --setup)")
    if name == "websocat" and not os.access(WEBSOCAT, os.X_OK):
        raise Unavailable("websocat not installed (bench/run --setup)")
    if name == "base" and not (BASELINE and os.access(BASELINE, os.X_OK)):
        raise Unavailable("no --baseline BINARY given (or it is not executable)")
    if name.startswith("ours") and not os.access(OURS, os.X_OK):
        raise Unavailable("target/release/websockify missing")


# --------------------------------------------------------------------------
# Set-up
# --------------------------------------------------------------------------

def setup(names, logdir, build_ours, say, tracer=False):
    """Install what the chosen systems need; returns {name: reason} of failures.

    tracer: also strace, for the syscalls scenario (failure: {"strace": reason}).

    Each step is skipped when its result is already there, so running it
    every time costs a second.
    """
    failed = {}

    def step(what, argv, cwd=ROOT, log="setup.log"):
        say(f"setup: {what} ...")
        t = time.monotonic()
        path = os.path.join(logdir, log)
        with open(path, "ab") as f:
            f.write(f"\n$ {' '.join(argv)}\n".encode())
            f.flush()
            rc = subprocess.call(argv, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
        if rc != 0:
            return f"{what} failed (status {rc}): {log_tail(path)}; see {path}"
        say(f"setup: {what} done in {time.monotonic() - t:.0f} s")
        return None

    err = step("loadgen (cargo build --release)",
               ["cargo", "build", "--release", "--manifest-path",
                os.path.join(HERE, "loadgen", "Cargo.toml")], log="loadgen-build.log")
    if err:
        sys.exit(f"bench: {err}")
    if build_ours and any(n.startswith("ours") for n in names):
        err = step("ours (cargo build --release -p websockify)",
                   ["cargo", "build", "--release", "-p", "websockify"], log="cargo-build.log")
        if err:
            failed["ours"] = failed["ours-tls"] = err
    if any(n.startswith("socat") for n in names) and not shutil.which("socat"):
        err = step("socat (scripts/peers.sh apt)", [os.path.join(ROOT, "scripts", "peers.sh"), "apt"])
        if err:
            failed["socat"] = failed["socat-tls"] = err
    if tracer and not shutil.which("strace"):
        err = step("strace (scripts/peers.sh apt)", [os.path.join(ROOT, "scripts", "peers.sh"), "apt"])
        if err:
            failed["strace"] = err
    if "python" in names and not os.access(PYTHON, os.X_OK):
        err = step("Python websockify (scripts/peers.sh py)",
                   [os.path.join(ROOT, "scripts", "peers.sh"), "py"])
        if err:
            failed["python"] = err
    if "js" in names and not os.path.exists(JS) and shutil.which("npm"):
        os.makedirs(JS_DIR, exist_ok=True)
        with open(os.path.join(JS_DIR, "package.json"), "w") as f:
            json.dump(JS_PACKAGE, f, indent=1)
        err = step("websockify-js (npm install websockify@0.7.1, ws 1.1.5)",
                   ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=JS_DIR)
        if err:
            failed["js"] = err
    if "websocat" in names and not os.access(WEBSOCAT, os.X_OK):
        err = step("websocat (cargo install --locked websocat, about 3 min)",
                   ["cargo", "install", "--locked", "websocat", "--root",
                    os.path.join(PEERS, "websocat")])
        if err:
            failed["websocat"] = err
    return failed


def make_cert(logdir):
    """A fresh self-signed certificate and key for the TLS rows."""
    cert, key = os.path.join(logdir, "bench-cert.pem"), os.path.join(logdir, "bench-key.pem")
    if not (os.path.exists(cert) and os.path.exists(key)):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", cert, "-days", "30", "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key
