"""The soak run behind scripts/soak: mixed WebSocket traffic through one proxy process for
a chosen time, then a check that its memory and file descriptors return to baseline.

Clients are Python `websockets` (an independent implementation); targets are asyncio
servers in this process, chosen per session by token (TokenFile):

  interactive  sessions doing 20-200 small echo round trips 10 ms apart (latency measured)
  churn        sessions opened for one echo and closed: normally, or by dropping the TCP
               connection without a close frame (every 4th), or right after the 101
  bulk         8 MiB each way in 64 KiB messages, checked by SHA-256
  source       the target sends 1 MiB and closes: the proxy must deliver it all, then 1000

Phases: start (cold fds), warm-up traffic (20 s, or 10% of the run if shorter), settle,
baseline (RSS after warm-up: the allocator's working set), the soak with a table every
--every seconds, then stop and wait for the proxy to return to baseline. Fails (exit 1) if
fds do not return to the cold count, if RSS ends above baseline x 1.25 + 8 MiB, if the log
shows a session that never ended, or if any client saw an error it should not have.
"""
import argparse
import asyncio
import hashlib
import os
import random
import socket
import subprocess
import sys
import tempfile
import time

import websockets
from websockets.asyncio.client import connect

CHUNK = 64 << 10


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_secs(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Stats:
    def __init__(self):
        self.opened = 0
        self.errors = []
        self.bytes = 0
        self.latencies = []

    def error(self, kind, e):
        self.errors.append(f"{kind}: {type(e).__name__}: {e}")


async def echo_server():
    async def handle(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def source_server(payload):
    async def handle(reader, writer):
        try:
            writer.write(payload)
            await writer.drain()
            writer.write_eof()
            while await reader.read(65536):
                pass
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def interactive(url, stats, running):
    rng = random.Random()
    while running():
        try:
            async with connect(url, max_size=None, compression=None) as ws:
                stats.opened += 1
                for _ in range(rng.randint(20, 200)):
                    msg = os.urandom(rng.randint(1, 512))
                    t = time.perf_counter()
                    await ws.send(msg)
                    got = b""
                    while len(got) < len(msg):
                        got += await ws.recv()
                    stats.latencies.append(time.perf_counter() - t)
                    assert got == msg, "echo differs"
                    await asyncio.sleep(0.01)
                    if not running():
                        break
        except Exception as e:  # noqa: BLE001 - every failure is counted and shown
            stats.error("interactive", e)
            await asyncio.sleep(0.1)


async def churn(url, stats, running, n):
    i = 0
    while running():
        i += 1
        try:
            ws = await connect(url, max_size=None, compression=None)
            stats.opened += 1
            if i % 4 == 3:
                # Gone right after the 101, without a close frame.
                ws.transport.abort()
                continue
            await ws.send(b"hello %d" % n)
            got = await ws.recv()
            assert got == b"hello %d" % n, got
            if i % 4 == 1:
                ws.transport.abort()  # gone without a close frame
            else:
                await ws.close()
        except Exception as e:  # noqa: BLE001
            stats.error("churn", e)
            await asyncio.sleep(0.1)


async def bulk(url, stats, running):
    # One random buffer per worker, made once: the client's own CPU is what the latency
    # column would otherwise measure.
    data = os.urandom(8 << 20)
    digest = hashlib.sha256(data).digest()
    while running():
        try:
            async with connect(url, max_size=None, compression=None) as ws:
                stats.opened += 1

                async def send():
                    for i in range(0, len(data), CHUNK):
                        await ws.send(data[i : i + CHUNK])

                sender = asyncio.create_task(send())
                h = hashlib.sha256()
                n = 0
                while n < len(data):
                    m = await ws.recv()
                    h.update(m)
                    n += len(m)
                await sender
                assert h.digest() == digest, "bulk data differs"
                stats.bytes += 2 * len(data)
        except Exception as e:  # noqa: BLE001
            stats.error("bulk", e)
            await asyncio.sleep(0.1)


async def source(url, stats, running, size):
    while running():
        try:
            async with connect(url, max_size=None, compression=None) as ws:
                stats.opened += 1
                n = 0
                try:
                    while True:
                        n += len(await ws.recv())
                except websockets.ConnectionClosedOK as closed:
                    assert closed.rcvd is not None and closed.rcvd.code == 1000, closed
                assert n == size, f"source delivered {n} of {size} bytes"
                stats.bytes += n
        except Exception as e:  # noqa: BLE001
            stats.error("source", e)
            await asyncio.sleep(0.1)


async def traffic(base, seconds, stats, args):
    end = time.monotonic() + seconds

    def running():
        return time.monotonic() < end

    tasks = [asyncio.create_task(interactive(base + "echo", stats, running)) for _ in range(args.interactive)]
    tasks += [asyncio.create_task(churn(base + "echo", stats, running, n)) for n in range(args.churn)]
    tasks += [asyncio.create_task(bulk(base + "echo", stats, running)) for _ in range(args.bulk)]
    tasks += [asyncio.create_task(source(base + "source", stats, running, 1 << 20))]
    return tasks


def pct(values, q):
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(round((len(values) - 1) * q)))] * 1000


async def main():
    ap = argparse.ArgumentParser(prog="scripts/soak", description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=2)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--every", type=float, default=10, help="seconds between table rows")
    ap.add_argument("--interactive", type=int, default=20)
    ap.add_argument("--churn", type=int, default=8)
    ap.add_argument("--bulk", type=int, default=2)
    args = ap.parse_args()

    echo, echo_port = await echo_server()
    src, src_port = await source_server(os.urandom(1 << 20))
    tmp = tempfile.mkdtemp(prefix="websockify-soak-")
    tokens = os.path.join(tmp, "tokens")
    with open(tokens, "w") as f:
        f.write(f"echo: 127.0.0.1:{echo_port}\nsource: 127.0.0.1:{src_port}\n")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    log_path = os.path.join(tmp, "proxy.log")
    log = open(log_path, "w")
    proxy = subprocess.Popen(
        [args.binary, "--token-plugin", "TokenFile", "--token-source", tokens, f"127.0.0.1:{port}"],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )
    pid = proxy.pid
    failures = []
    try:
        for _ in range(100):
            if "Listen on" in open(log_path).read():
                break
            await asyncio.sleep(0.1)
        else:
            sys.exit(f"soak: the proxy did not start; see {log_path}")
        base = f"ws://127.0.0.1:{port}/websockify?token="
        cold_fds, cold_rss = fds(pid), rss_kib(pid)
        total = args.minutes * 60
        warm = min(20.0, max(2.0, total / 10))
        print(f"soak: proxy {args.binary} (pid {pid}), log {log_path}")
        print(f"soak: cold: {cold_fds} fds, RSS {cold_rss / 1024:.1f} MiB; warming up for {warm:.0f} s")
        stats = Stats()
        tasks = await traffic(base, warm, stats, args)
        await asyncio.gather(*tasks)
        await asyncio.sleep(3)
        base_rss = rss_kib(pid)
        print(f"soak: baseline after warm-up: {fds(pid)} fds, RSS {base_rss / 1024:.1f} MiB")

        stats = Stats()
        start = time.monotonic()
        cpu0 = cpu_secs(pid)
        tasks = await traffic(base, total, stats, args)
        print(
            f"{'time':>6} {'sessions':>9} {'errors':>6} {'MB moved':>9} {'RSS MiB':>8} {'fds':>5} "
            f"{'CPU %':>6} {'echo p50 ms':>11} {'echo p99 ms':>11}"
        )
        last_t, last_cpu, seen = start, cpu0, 0
        peak_rss = 0
        while not all(t.done() for t in tasks):
            await asyncio.sleep(min(args.every, max(0.1, start + total - time.monotonic() + 0.5)))
            now, cpu = time.monotonic(), cpu_secs(pid)
            lat = stats.latencies[seen:]
            seen = len(stats.latencies)
            rss = rss_kib(pid)
            peak_rss = max(peak_rss, rss)
            print(
                f"{now - start:6.0f} {stats.opened:9d} {len(stats.errors):6d} {stats.bytes / 1e6:9.0f} "
                f"{rss / 1024:8.1f} {fds(pid):5d} {100 * (cpu - last_cpu) / max(now - last_t, 1e-9):6.0f} "
                f"{pct(lat, 0.5):11.2f} {pct(lat, 0.99):11.2f}",
                flush=True,
            )
            last_t, last_cpu = now, cpu
        await asyncio.gather(*tasks)

        # Stopped: everything must drain back to the cold state.
        deadline = time.monotonic() + 30
        while fds(pid) > cold_fds and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        end_fds, end_rss = fds(pid), rss_kib(pid)
        text = open(log_path).read()
        began, ended = text.count(" WebSocket connection: "), text.count("session closed:")
        lat = sorted(stats.latencies)
        print(
            f"soak: {total:.0f} s, {stats.opened} sessions, {stats.bytes / 1e6:.0f} MB checked, "
            f"{len(lat)} echo round trips (p50 {pct(lat, 0.5):.2f} ms, p99 {pct(lat, 0.99):.2f} ms), "
            f"proxy CPU {cpu_secs(pid) - cpu0:.1f} s"
        )
        print(
            f"soak: after the traffic: {end_fds} fds (cold {cold_fds}), RSS {end_rss / 1024:.1f} MiB "
            f"(baseline {base_rss / 1024:.1f}, peak {peak_rss / 1024:.1f}); "
            f"log: {began} sessions began, {ended} ended"
        )
        if end_fds > cold_fds:
            failures.append(f"{end_fds - cold_fds} file descriptors not released")
        if end_rss > base_rss * 1.25 + 8 * 1024:
            failures.append(f"RSS {end_rss} KiB did not return near baseline {base_rss} KiB")
        if began != ended:
            failures.append(f"{began - ended} sessions never logged their end")
        if stats.errors:
            failures.append(f"{len(stats.errors)} client errors, first: {stats.errors[:3]}")
        if proxy.poll() is not None:
            failures.append(f"the proxy exited with {proxy.returncode}")
    finally:
        proxy.terminate()
        try:
            proxy.wait(10)
        except subprocess.TimeoutExpired:
            proxy.kill()
        echo.close()
        src.close()
    if failures:
        print("soak: FAILED: " + "; ".join(failures), file=sys.stderr)
        print(f"soak: proxy log kept in {log_path}", file=sys.stderr)
        sys.exit(1)
    print("soak: ok")


if __name__ == "__main__":
    asyncio.run(main())
