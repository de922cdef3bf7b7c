"""System calls of a running proxy, counted by strace, grouped by what they do.

bench/run's syscalls scenario attaches `strace -f -c` to a proxy that is
already running and warmed up, drives sessions through it, then detaches
(SIGINT: strace writes its summary and leaves the proxy running). Attaching
rather than starting the proxy under strace keeps its start-up out of the
counts (Python's imports alone are thousands of calls) and its shutdown too;
`-f` attaches to every thread and follows every process forked while
attached (socat and Python websockify fork one per session).

strace sees only real system calls: calls the vDSO answers in user space
(clock_gettime, gettimeofday, time, getcpu) never show.
"""

import os
import shutil
import signal
import subprocess
import time

# (row label, the calls in it), in table order; anything else is "other".
GROUPS = [
    ("accept, accept4", {"accept", "accept4"}),
    ("read, recvfrom, readv, recvmsg", {"read", "recvfrom", "readv", "recvmsg", "recvmmsg", "pread64"}),
    ("write, sendto, writev, sendmsg", {"write", "sendto", "writev", "sendmsg", "sendmmsg", "pwrite64"}),
    ("epoll_wait, epoll_ctl, poll, select",
     {"epoll_wait", "epoll_pwait", "epoll_pwait2", "epoll_ctl", "epoll_create", "epoll_create1",
      "poll", "ppoll", "select", "pselect6"}),
    ("futex", {"futex"}),
    ("setsockopt, getsockopt", {"setsockopt", "getsockopt"}),
    ("getsockname, getpeername", {"getsockname", "getpeername"}),
    ("socket, connect", {"socket", "socketpair", "connect"}),
    ("close, shutdown", {"close", "shutdown"}),
    ("clock_gettime (not the vDSO's)", {"clock_gettime", "clock_getres", "gettimeofday", "time"}),
    ("splice, pipe", {"splice", "tee", "vmsplice", "pipe", "pipe2"}),
    ("mmap, munmap, madvise, brk, mprotect", {"mmap", "munmap", "madvise", "brk", "mprotect", "mremap"}),
    ("clone, wait4, exit (processes)",
     {"clone", "clone3", "fork", "vfork", "wait4", "waitid", "execve", "exit", "exit_group",
      "set_robust_list", "rseq"}),
]
OTHER = "other"
ROWS = [g[0] for g in GROUPS] + [OTHER]


class TraceError(Exception):
    """Why a trace could not be taken: printed as the system's n/a reason."""


def available():
    """None if strace can be run, else why not."""
    if not shutil.which("strace"):
        return "strace not installed (bench/run --setup, as root)"
    return None


def attach(procs, pid, out, log, timeout=10.0):
    """Start `strace -f -c` on pid (writing its summary to out); the Popen.

    Returns once strace says it is attached, so no session started after the
    call is missed. procs is procfs.Procs: strace dies with the bench.
    """
    if os.path.exists(out):
        os.remove(out)
    start = os.path.getsize(log) if os.path.exists(log) else 0
    argv = ["strace", "-f", "-c", "-U", "name,calls,errors", "-o", out, "-p", str(pid)]
    p = procs.start(argv, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise TraceError(f"strace exited with status {p.returncode}: {_read_from(log, start)[-160:]}")
        if " attached" in _read_from(log, start):
            return p
        time.sleep(0.02)
    procs.stop(p)
    raise TraceError(f"strace did not attach to {pid} within {timeout:.0f} s")


def detach(procs, p, out, timeout=15.0):
    """SIGINT strace (it detaches and writes the summary); {call: (calls, errors)}."""
    if p.poll() is None:
        os.kill(p.pid, signal.SIGINT)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    procs.stop(p)
    try:
        with open(out) as f:
            return parse(f.read())
    except OSError:
        raise TraceError("strace wrote no summary") from None


def parse(text):
    """{call: (calls, errors)} from the table of `strace -c -U name,calls,errors`.

    An empty file (no call while attached) is an empty dict; the "total" row
    is left out (the caller sums).
    """
    counts = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2 or not fields[1].isdigit() or fields[0] == "total":
            continue   # header, rules, strace's own messages
        errors = int(fields[2]) if len(fields) > 2 and fields[2].isdigit() else 0
        counts[fields[0]] = (int(fields[1]), errors)
    return counts


def group(counts):
    """{row: calls} over ROWS (every row present), plus "total" and "failed"."""
    rows = {r: 0 for r in ROWS}
    for name, (calls, _errors) in counts.items():
        row = next((label for label, names in GROUPS if name in names), OTHER)
        rows[row] += calls
    rows["total"] = sum(c for c, _ in counts.values())
    rows["failed"] = sum(e for _, e in counts.values())
    return rows


def others(counts, sessions, top=3):
    """The biggest calls of the "other" row, as 'name 1.0, ...' per session.

    Calls made less than once in 20 sessions (timers, housekeeping) are left out.
    """
    grouped = set().union(*(names for _, names in GROUPS))
    rest = sorted(((c, n) for n, (c, _) in counts.items()
                   if n not in grouped and c / sessions >= 0.05), reverse=True)
    return ", ".join(f"{n} {c / sessions:.1f}" for c, n in rest[:top])


def _read_from(path, offset):
    try:
        with open(path, errors="replace") as f:
            f.seek(offset)
            return f.read()
    except OSError:
        return ""
