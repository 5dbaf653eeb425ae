"""Bulk tcp_proxy transfers go through splice(): envoy_fast runs under
`strace -e trace=splice` while 32 MiB go up to a sink and 32 MiB come down
from a source; most bytes of each direction must leave the socket they
arrived on by splice() into a pipe, not by a read into user space."""
import contextlib
import hashlib
import os
import re
import signal
import socket
import subprocess
import sys

import yaml

from helpers import (ROOT, Proxy, free_port, recv_until_eof, require_strace, scripted_server,
                     simple_proxy_config, wait_for)

MB = 1 << 20
SIZE = 32 * MB

# "1234 splice(12<TCP:[127.0.0.1:40000->127.0.0.1:50000]>, NULL, 14<pipe:[9]>, ...) = 65536"
SPLICE = re.compile(r"^\d+ +splice\(\d+<TCP:\[([\d.]+):(\d+)->([\d.]+):(\d+)\]>, NULL, "
                    r"\d+<pipe:\[\d+\]>.*\) = (\d+)$")


@contextlib.contextmanager
def envoy_fast_under_strace(cfg, tmp_path):
    """`python -m envoy_fast` (one worker) started by strace, which logs every
    splice() of main and workers with the sockets' addresses (-yy) to
    tmp_path/splice.trace. Yields (Proxy, trace path)."""
    path, log_path, trace = (str(tmp_path / n) for n in ("cfg.yaml", "log", "splice.trace"))
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    cmd = [require_strace(), "-f", "-qq", "-yy", "-e", "trace=splice", "-e", "signal=none",
           "-o", trace, sys.executable, "-m", "envoy_fast", "-c", path,
           "--concurrency", "1", "-l", "info"]
    with open(log_path, "w") as logf:
        strace = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, cwd=ROOT)
    proxy = Proxy(strace, cfg["admin"]["address"]["socket_address"]["port_value"], log_path, path)
    main = None
    try:
        main = wait_for(lambda: _child(strace.pid), 10, what="envoy_fast under strace")
        wait_for(lambda: _ready(proxy), 20, what="envoy_fast /ready")
        yield proxy, trace
        os.kill(main, signal.SIGTERM)       # strace exits with its tracee's status
        assert strace.wait(timeout=20) == 0, proxy.log()
    finally:
        if strace.poll() is None:
            # A killed strace leaves its tracees running: end main first
            # (still strace's child, so the pid is its); workers follow it.
            if main is not None:
                os.kill(main, signal.SIGKILL)
                try:
                    strace.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            if strace.poll() is None:
                strace.kill()
                strace.wait()


def _ready(proxy):
    try:
        return proxy.admin("/ready").strip() == "LIVE"
    except OSError:
        return False


def _child(pid):
    """The envoy_fast main among `pid`'s children, once it runs Python
    (strace forks probes too, and its child runs strace until it execs)."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            kids = [int(k) for k in f.read().split()]
    except OSError:
        return None
    for k in kids:
        try:
            with open("/proc/%d/cmdline" % k, "rb") as f:
                if f.read().split(b"\0")[0] == os.fsencode(sys.executable):
                    return k
        except OSError:
            pass
    return None


def _spliced(trace_path, local_port=None, remote_port=None):
    """Bytes splice() moved into a pipe from sockets with this local (or
    remote) port."""
    total = 0
    with open(trace_path) as f:
        for line in f:
            m = SPLICE.match(line.strip())
            if m and int(m.group(2 if local_port is not None else 4)) == (
                    local_port if local_port is not None else remote_port):
                total += int(m.group(5))
    return total


def _sink(c):
    c.settimeout(30)
    h = hashlib.sha256()
    n = 0
    while True:
        d = c.recv(MB)
        if not d:
            break
        h.update(d)
        n += len(d)
    c.sendall(b"%d %s" % (n, h.hexdigest().encode()))


def test_bulk_both_ways_is_spliced(tmp_path):
    data = os.urandom(SIZE)
    digest = hashlib.sha256(data).hexdigest()

    def source(c):
        c.settimeout(30)
        c.recv(1)
        c.sendall(data)

    def handler(c):
        # The first byte says which way: "U" upload to the sink, "D" download.
        kind = c.recv(1)
        (_sink if kind == b"U" else source)(c)

    with scripted_server(handler) as up:
        lp, ap = free_port(), free_port()
        with envoy_fast_under_strace(simple_proxy_config(up.port, lp, ap), tmp_path) as (proxy, trace):
            with socket.create_connection(("127.0.0.1", lp), timeout=30) as c:
                c.sendall(b"U")
                c.sendall(data)
                c.shutdown(socket.SHUT_WR)
                assert recv_until_eof(c) == b"%d %s" % (SIZE, digest.encode())
            with socket.create_connection(("127.0.0.1", lp), timeout=30) as c:
                c.sendall(b"DD")
                got = hashlib.sha256()
                n = 0
                while n < SIZE:
                    d = c.recv(MB)
                    assert d, "EOF after %d bytes" % n
                    got.update(d)
                    n += len(d)
                assert got.hexdigest() == digest
            stats = proxy.stats()
        assert not up.errors, up.errors
    assert stats["tcp.tp.downstream_cx_rx_bytes_total"] == SIZE + 3
    assert stats["tcp.tp.downstream_cx_tx_bytes_total"] >= SIZE
    up_bytes = _spliced(trace, local_port=lp)           # from downstream sockets
    down_bytes = _spliced(trace, remote_port=up.port)   # from upstream sockets
    print("spliced: upload %d, download %d of %d bytes each" % (up_bytes, down_bytes, SIZE))
    assert up_bytes >= SIZE // 2, "upload: %d of %d bytes spliced" % (up_bytes, SIZE)
    assert down_bytes >= SIZE // 2, "download: %d of %d bytes spliced" % (down_bytes, SIZE)

