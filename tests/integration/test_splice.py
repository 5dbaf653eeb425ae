"""Bulk tcp_proxy transfers go through splice(): envoy_fast runs under
`strace -e trace=splice` while 32 MiB go up to a sink and 32 MiB come down
from a source; most bytes of each direction must leave the socket they
arrived on by splice() into a pipe, not by a read into user space."""
import hashlib
import os
import re
import socket

from helpers import (envoy_fast_under_strace, free_port, recv_until_eof, scripted_server,
                     simple_proxy_config)

MB = 1 << 20
SIZE = 32 * MB

# "1234 splice(12<TCP:[127.0.0.1:40000->127.0.0.1:50000]>, NULL, 14<pipe:[9]>, ...) = 65536"
SPLICE = re.compile(r"^\d+ +splice\(\d+<TCP:\[([\d.]+):(\d+)->([\d.]+):(\d+)\]>, NULL, "
                    r"\d+<pipe:\[\d+\]>.*\) = (\d+)$")


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
        with envoy_fast_under_strace(simple_proxy_config(up.port, lp, ap), tmp_path,
                                     "splice") as (proxy, trace):
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

