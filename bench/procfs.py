"""Processes the bench starts, and what /proc says about them (CPU, memory).

Each process runs in its own session, so its process group holds exactly the
process and its forks (socat and Python websockify fork per connection);
stopping kills that group by its id and nothing else.
"""

import os
import resource
import signal
import socket
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


# Descriptors the scale scenario wants per process: 20,000 sessions hold 40,000 in a
# proxy (client and target side), and the client and the target 20,000 each.
WANT_FDS = 65536


_FD_LIMIT = None


def fd_limit():
    """The RLIMIT_NOFILE the bench's processes get: WANT_FDS where the hard limit may be
    raised, else the hard limit as it is.

    Whether it may be raised is found by trying it on this process: being root is not
    enough (raising a hard limit takes CAP_SYS_RESOURCE, which root lacks in some
    containers, this one among them: the hard limit stays at 20,000 there).
    """
    global _FD_LIMIT
    if _FD_LIMIT is None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        _FD_LIMIT = hard
        if hard < WANT_FDS:
            try:
                with open("/proc/sys/fs/nr_open") as f:
                    nr_open = int(f.read())
            except (OSError, ValueError):
                nr_open = hard
            want = min(WANT_FDS, nr_open)
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
                _FD_LIMIT = want
            except (ValueError, OSError):
                pass
    return _FD_LIMIT


def max_sessions():
    """Concurrent sessions a proxy can hold under fd_limit(): two descriptors each (client
    and target side), less a margin for its own files."""
    return (fd_limit() - 100) // 2


def raise_fd_limit():
    """preexec_fn: RLIMIT_NOFILE, soft and hard, to fd_limit() (65,536 where it can be
    raised; the hard limit given to the bench otherwise, 20,000 here).

    Every process the bench starts gets the same allowance, ours included, whatever it
    does itself at start.
    """
    n = fd_limit()
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    except (ValueError, OSError):
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Procs:
    """Every process we start, so all of them die with us, whatever happens."""

    def __init__(self):
        self.procs = []

    def start(self, argv, log_path, **kw):
        log = open(log_path, "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=kw.pop("stdout", log),
                             stderr=log, start_new_session=True, preexec_fn=raise_fd_limit, **kw)
        log.close()
        self.procs.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=5)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass
        # Forked children may outlive a leader that already exited.
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        for p in list(reversed(self.procs)):
            self.stop(p)


def free_port():
    # The kernel picks an unused port; the tiny window before the proxy binds
    # it is acceptable on a loopback-only bench.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    """True once something LISTENs on the port (any address, IPv4 or IPv6).

    Read from /proc/net/tcp* rather than probing with connect(), which would
    make socat fork and Python websockify log a failed handshake.
    """
    suffix = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[1].endswith(suffix) and fields[3] == "0A":
                return True
    return False


def wait_listening(p, port, timeout=15.0):
    """None once p listens on port, else why not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.poll() is not None:
            return f"exited with status {p.returncode}"
        if listening(port):
            return None
        time.sleep(0.02)
    return f"not listening on port {port} after {timeout:.0f} s"


def log_tail(path):
    """Last non-empty line of a log, to say why a process failed."""
    try:
        with open(path, errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return ""
    return lines[-1][:160] if lines else ""


def _stat(pid):
    """(ppid, utime+stime, cutime+cstime) in ticks, or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    # comm may contain spaces or parentheses: split after the last ')'.
    fields = data[data.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def descendants(root):
    children = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st:
                children.setdefault(st[0], []).append(int(name))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def tree_cpu(root):
    """CPU seconds of root and everything it forked, live or already reaped.

    A process's own time plus its reaped children's (cutime/cstime), summed
    over the live tree: a live child is not yet in anyone's cutime, so nothing
    is counted twice.
    """
    total = 0
    for pid in [root] + descendants(root):
        st = _stat(pid)
        if st:
            total += st[1] + st[2]
    return total / CLK_TCK


def wait_children_gone(root, timeout=5.0):
    # Per-connection forks must finish and be reaped, or their CPU would land
    # in the next measurement (or be lost with them).
    deadline = time.monotonic() + timeout
    while descendants(root) and time.monotonic() < deadline:
        time.sleep(0.01)


def tree_memory(root):
    """(RSS KiB, PSS KiB, processes) summed over root and its descendants.

    RSS counts a page once per process that maps it, so for a server that
    forks per session it counts the shared interpreter again in every child;
    PSS divides each shared page among the processes sharing it, so its sum
    is the memory the tree really holds.
    """
    rss = pss = n = 0
    for pid in [root] + descendants(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
            n += 1
        except (OSError, ValueError):
            continue
    return rss, pss, n
