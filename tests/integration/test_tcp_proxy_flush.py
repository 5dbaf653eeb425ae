"""A downstream that goes away leaves its bytes to flush upstream; a peer that
stops reading cannot hold that flush forever: idle_timeout bounds it."""
import socket
import threading
import time

from helpers import (abort, free_port, run_envoy_fast, scripted_server, simple_proxy_config,
                     wait_stat)


def test_flush_after_downstream_reset_is_bounded_by_idle_timeout():
    release = threading.Event()

    def never_reads(c: socket.socket):
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        release.wait(10)
        return "released"

    with scripted_server(never_reads) as up:
        lp, ap = free_port(), free_port()
        cfg = simple_proxy_config(up.port, lp, ap, idle_timeout="0.5s")
        with run_envoy_fast(cfg) as proxy:
            c = socket.create_connection(("127.0.0.1", lp), timeout=5)
            c.setblocking(False)
            sent = 0
            chunk = b"z" * 65536
            deadline = time.monotonic() + 3
            # Fill the upstream socket and the proxy's buffer until the proxy
            # pushes back (our sends stop going through).
            while time.monotonic() < deadline:
                try:
                    sent += c.send(chunk)
                except BlockingIOError:
                    time.sleep(0.01)
                    try:
                        sent += c.send(chunk)
                    except BlockingIOError:
                        break
            assert sent > 0
            time.sleep(0.1)
            abort(c)   # RST: the downstream is gone with bytes still queued upstream
            st = wait_stat(proxy, "tcp.tp.upstream_flush_total", 1)
            assert st["tcp.tp.upstream_flush_active"] == 1
            t0 = time.monotonic()
            st = wait_stat(proxy, "tcp.tp.upstream_flush_active", 0, timeout=5)
            took = time.monotonic() - t0
            assert took < 2.0, took
            assert st["cluster.up.upstream_cx_active"] == 0
            assert st["tcp.tp.idle_timeout"] == 1
            release.set()
