"""Limits that act while a connection carries data: tcp_proxy's
max_downstream_connection_duration, and per_connection_buffer_limit_bytes
(the listener's for downstream connections, the cluster's for upstream
ones) against a peer that does not read."""
import socket
import threading
import time

import pytest

from helpers import (IMPLS, abort, bootstrap, cluster, free_port, listener, named_server,
                     run_envoy_fast, run_impl, scripted_server, tcp_proxy_filter, wait_stat)
from test_tcp_proxy_failures import read_greeting

CHUNK = b"x" * 65536


# ------------------------------------------------ max_downstream_connection_duration

@pytest.mark.parametrize("impl", IMPLS)
def test_max_duration_closes_a_connection_carrying_data(impl):
    """Traffic every 50 ms does not extend max_downstream_connection_duration:
    both sides are closed at 1 s, and the data flowed until then."""
    with named_server("up") as up:
        lp, ap = free_port(), free_port()
        cfg = bootstrap([listener("l0", lp, [{"filters": [tcp_proxy_filter(
            "up", max_downstream_connection_duration="1s")]}])], [cluster("up", [up.port])], ap)
        with run_impl(impl, cfg) as proxy:
            with socket.create_connection(("127.0.0.1", lp), timeout=5) as s:
                t0 = time.monotonic()
                assert read_greeting(s) == "up"
                echoed = 0
                closed_at = None
                while time.monotonic() - t0 < 3.0:
                    try:
                        s.sendall(b"ping")
                        got = s.recv(100)
                    except (ConnectionResetError, BrokenPipeError):
                        got = b""
                    if not got:
                        closed_at = time.monotonic() - t0
                        break
                    echoed += len(got)
                    time.sleep(0.05)
            assert closed_at is not None, "still open after 3 s"
            assert 0.9 <= closed_at < 1.6, "closed after %.2fs" % closed_at
            assert echoed >= 4 * 10, "only %d bytes echoed before the close" % echoed
            up.wait_done(1, timeout=3)
            assert up.results[0] - t0 < 1.8           # the upstream side closed too
            st = wait_stat(proxy, "tcp.tp.max_downstream_connection_duration", 1)
            assert st["tcp.tp.idle_timeout"] == 0
            wait_stat(proxy, "cluster.up.upstream_cx_active", 0)


@pytest.mark.parametrize("impl", IMPLS)
def test_max_duration_closes_a_bulk_transfer(impl):
    """A download that never pauses (the kernel-side splice path in
    envoy_fast) is cut at max_downstream_connection_duration too."""
    stop = threading.Event()

    def source(c):
        c.settimeout(10)
        sent = 0
        try:
            while not stop.is_set():
                sent += c.send(CHUNK)
        except OSError:
            pass
        return time.monotonic()

    with scripted_server(source) as up:
        lp, ap = free_port(), free_port()
        cfg = bootstrap([listener("l0", lp, [{"filters": [tcp_proxy_filter(
            "up", max_downstream_connection_duration="1s")]}])], [cluster("up", [up.port])], ap)
        try:
            with run_impl(impl, cfg) as proxy:
                with socket.create_connection(("127.0.0.1", lp), timeout=5) as s:
                    t0 = time.monotonic()
                    received = 0
                    while True:
                        try:
                            d = s.recv(1 << 20)
                        except ConnectionResetError:
                            d = b""
                        if not d:
                            break
                        received += len(d)
                        assert time.monotonic() - t0 < 5, "bulk transfer not cut"
                    took = time.monotonic() - t0
                assert 0.9 <= took < 1.8, "closed after %.2fs" % took
                assert received > 1 << 20, received
                up.wait_done(1, timeout=3)
                assert up.results[0] - t0 < 2.0
                wait_stat(proxy, "tcp.tp.max_downstream_connection_duration", 1)
                wait_stat(proxy, "cluster.up.upstream_cx_active", 0)
        finally:
            stop.set()


# ------------------------------------------------ per_connection_buffer_limit_bytes

def tcp_queues():
    """{(local_port, remote_port): tx_queue + rx_queue} for IPv4 TCP sockets."""
    out = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            p = line.split()
            lport = int(p[1].split(":")[1], 16)
            rport = int(p[2].split(":")[1], 16)
            tx, rx = (int(x, 16) for x in p[4].split(":"))
            out[(lport, rport)] = tx + rx
    return out


def push_until_stalled(sock, stall=1.0) -> int:
    """Send until one send waits `stall` s; returns the bytes sent."""
    sock.settimeout(stall)
    sent = 0
    try:
        while True:
            sent += sock.send(CHUNK)
    except socket.timeout:
        pass
    return sent


@pytest.mark.parametrize("limit", [32768, 262144])
@pytest.mark.parametrize("direction", ["download", "upload"])
def test_buffer_limit_bounds_what_the_proxy_holds(direction, limit):
    """A peer that does not read makes the proxy stop reading the other side
    once about `limit` bytes wait in it (listener limit for a download into a
    non-reading client, cluster limit for an upload into a non-reading
    upstream). Measured exactly: bytes sent minus what the kernel holds in
    the four sockets' queues. Then a slow reader gets every byte."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    sport = srv.getsockname()[1]
    lp, ap = free_port(), free_port()
    big = 16 << 20              # the other side's limit: out of the way
    cfg = bootstrap(
        [listener("l0", lp, [{"filters": [tcp_proxy_filter("up")]}],
                  per_connection_buffer_limit_bytes=limit if direction == "download" else big)],
        [cluster("up", [sport], per_connection_buffer_limit_bytes=limit if direction == "upload" else big)],
        ap)
    try:
        with run_envoy_fast(cfg) as proxy:
            c = socket.create_connection(("127.0.0.1", lp), timeout=5)
            srv.settimeout(5)
            u, _ = srv.accept()
            sender, reader = (u, c) if direction == "download" else (c, u)
            sent = push_until_stalled(sender)
            q = tcp_queues()
            cport, pport = c.getsockname()[1], u.getpeername()[1]
            in_kernel = sum(q[k] for k in ((cport, lp), (lp, cport), (pport, sport), (sport, pport)))
            held = sent - in_kernel
            # One read (64 KiB) may land on top of a full buffer.
            assert 0 <= held <= limit + 65536 + 16384, \
                "proxy holds %d bytes with a %d-byte limit" % (held, limit)

            # A slow reader (64 KiB every 20 ms) gets everything, in order.
            sender.shutdown(socket.SHUT_WR)
            reader.settimeout(10)
            received = 0
            while True:
                d = reader.recv(65536)
                if not d:
                    break
                assert d == b"x" * len(d)
                received += len(d)
                time.sleep(0.02)
            assert received == sent
            st = proxy.stats()
            if direction == "upload":
                assert st["tcp.tp.downstream_flow_control_paused_reading_total"] >= 1
            abort(c)
            abort(u)
    finally:
        srv.close()
