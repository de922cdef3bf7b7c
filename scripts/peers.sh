#!/usr/bin/env bash
# Installs the real peers the tests and benchmarks talk to, idempotently:
#   - Debian packages (socat), when running as root and they are missing;
#   - a Python 3 venv in .peers/venv with the reference websockify, numpy and websockets;
#   - Node's `ws` in tests/node/node_modules (npm ci from the lock file);
#   - a Python 2.7 venv in .peers/venv2 with Autobahn|Testsuite (wstest).
# Usage: scripts/peers.sh [apt|py|node|autobahn|all]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
what=${1:-all}

want() { [ "$what" = all ] || [ "$what" = "$1" ]; }

if want apt; then
    missing=()
    for pkg in socat; do
        command -v "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
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

if want py; then
    if [ ! -x .peers/venv/bin/python ] || ! .peers/venv/bin/python -c 'import websockify, websockets, numpy' 2>/dev/null; then
        python3 -m venv .peers/venv
        .peers/venv/bin/pip install -q --upgrade pip
        .peers/venv/bin/pip install -q websockify numpy websockets
    fi
fi

if want node; then
    if [ ! -d tests/node/node_modules/ws ]; then
        (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
    fi
fi

if want autobahn; then
    if [ ! -x .peers/venv2/bin/wstest ]; then
        py2=${PY2:-$HOME/.pyenv/versions/2.7.18/bin/python2.7}
        "$py2" -m pip install -q virtualenv 2>/dev/null
        "$py2" -m virtualenv -q -p "$py2" .peers/venv2
        .peers/venv2/bin/pip install -q autobahntestsuite
    fi
fi
echo "peers ready in $root/.peers" >&2
