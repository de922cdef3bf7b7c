#!/usr/bin/env bash
# Installs the real peers the tests and benchmarks talk to, idempotently:
#   - Debian packages (socat, curl, openssl, strace, haproxy), when running as root and they are missing;
#   - a Python 3 venv in .peers/venv with the reference websockify, numpy, websockets, PyJWT, jwcrypto
#     and prometheus_client (its exposition-format parser reads our /metrics);
#   - Node's `ws` in tests/node/node_modules (npm ci from the lock file);
#   - a Python 2.7 venv in .peers/venv2 with Autobahn|Testsuite (wstest);
#   - Debian's Chromium (/usr/bin/chromium, as root) and playwright-core in
#     tests/browser/node_modules (npm ci from the lock file);
#   - Debian's redis-server and redis-cli (as root), for the TokenRedis tests;
#   - Debian's inetutils-telnetd (as root), wrapped by the wrap-mode tests;
#   - for the browser-side tests (websockify/tests/web_client.rs), as root: Debian's noVNC,
#     TigerVNC's Xvnc, x11-apps (xclock, xeyes, xwd), ngircd and inetutils-telnetd.
# Usage: scripts/peers.sh [apt|py|node|autobahn|browser|redis|telnetd|web|all]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
what=${1:-all}

want() { [ "$what" = all ] || [ "$what" = "$1" ]; }

if want apt; then
    missing=()
    for pkg in socat curl openssl strace; do
        command -v "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    command -v groff >/dev/null 2>&1 || missing+=(groff-base) # renders websockify --man in the tests
    [ -x /usr/sbin/haproxy ] || missing+=(haproxy) # the load balancer of tests/proxy_protocol.rs and tests/haproxy.rs
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" = 0 ]; then
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
        else
            echo "peers.sh: please install: ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
            exit 1
        fi
    fi
fi

if want py; then
    if [ ! -x .peers/venv/bin/maturin ] || ! .peers/venv/bin/python -c 'import websockify, websockets, numpy, jwt, jwcrypto, cryptography, prometheus_client, redis, requests' 2>/dev/null; then
        python3 -m venv .peers/venv
        .peers/venv/bin/pip install -q --upgrade pip
        # redis and requests: the custom plugins of tests/plugins; maturin builds our wheel (tests/pip.rs).
        .peers/venv/bin/pip install -q websockify numpy websockets PyJWT jwcrypto cryptography prometheus_client redis requests maturin
    fi
fi

if want node; then
    if [ ! -d tests/node/node_modules/ws ]; then
        (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
    fi
fi

if want autobahn; then
    # Autobahn|Testsuite (wstest) runs on Python 2.7 only; tests/autobahn/run uses it.
    # The version is pinned so that tests/autobahn/expected-*.json stay comparable.
    if ! .peers/venv2/bin/wstest -a >/dev/null 2>&1; then
        py2=${PY2:-$HOME/.pyenv/versions/2.7.18/bin/python2.7}
        if ! "$py2" -c 'import sys; assert sys.version_info[:2] == (2, 7)' 2>/dev/null; then
            echo "peers.sh: Autobahn|Testsuite needs Python 2.7: set PY2 (tried $py2)" >&2
            exit 1
        fi
        # (pip 19.2 of pyenv's 2.7.18 knows no --no-python-version-warning)
        pipq=(-q --disable-pip-version-check)
        rm -rf .peers/venv2   # a half-made venv from an interrupted install
        "$py2" -m virtualenv --version >/dev/null 2>&1 || "$py2" -m pip install "${pipq[@]}" virtualenv
        "$py2" -m virtualenv -q -p "$py2" .peers/venv2
        .peers/venv2/bin/pip install "${pipq[@]}" autobahntestsuite==25.10.1
        .peers/venv2/bin/wstest -a >/dev/null
    fi
fi

if want browser; then
    # Headless end-to-end tests (tests/browser/check_pages.js) drive Debian's Chromium
    # through playwright-core; Playwright's own browser download does not work here.
    if [ ! -x /usr/bin/chromium ]; then
        if [ "$(id -u)" = 0 ]; then
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
        else
            echo "peers.sh: please install chromium (sudo apt-get install chromium)" >&2
            exit 1
        fi
    fi
    if [ ! -d tests/browser/node_modules/playwright-core ]; then
        (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
    fi
fi

if want redis; then
    # websockify/tests/token_redis.rs starts its own throw-away redis-server instances.
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ]; then
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
        else
            echo "peers.sh: please install redis-server (sudo apt-get install redis-server)" >&2
            exit 1
        fi
    fi
fi

if want telnetd; then
    # websockify/tests/wrap.rs wraps /usr/sbin/telnetd (started per connection by socat:
    # it has no listen mode of its own).
    if [ ! -x /usr/sbin/telnetd ]; then
        if [ "$(id -u)" = 0 ]; then
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq inetutils-telnetd >/dev/null
        else
            echo "peers.sh: please install inetutils-telnetd (sudo apt-get install inetutils-telnetd)" >&2
            exit 1
        fi
    fi
fi

if want web; then
    # websockify/tests/web_client.rs: noVNC (/usr/share/novnc) in front of Xvnc showing
    # xclock and xeyes (xwd reads the X screen back), wstelnet against telnetd under socat,
    # wsirc against ngircd. Chromium and playwright-core come from the browser section.
    missing=()
    for pair in /usr/share/novnc/vnc_lite.html:novnc /usr/bin/Xvnc:tigervnc-standalone-server \
        /usr/bin/xclock:x11-apps /usr/bin/xwd:x11-apps /usr/sbin/ngircd:ngircd \
        /usr/sbin/telnetd:inetutils-telnetd /usr/bin/socat:socat; do
        [ -e "${pair%%:*}" ] || missing+=("${pair#*:}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" = 0 ]; then
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
        else
            echo "peers.sh: please install: ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
            exit 1
        fi
    fi
fi

echo "peers ready in $root/.peers" >&2
