"""Production lifecycle through real processes and signals: supervision,
drain on SIGTERM, reload on SIGHUP without losing a request."""
import hashlib
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from helpers import (bootstrap, cluster, echo_server, free_port, listener, recv_exactly,
                     require_peer, run_envoy_fast, simple_proxy_config, tcp_proxy_filter, wait_closed,
                     wait_for,
                     wait_port, wait_stat)


def _roundtrip(port: int, payload: bytes = b"ping") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(payload)
        return recv_exactly(c, len(payload))


def _workers(proxy):
    return proxy.pids()[1:]


def test_killed_worker_is_replaced_and_service_continues():
    with echo_server() as up:
        lp, ap = free_port(), free_port()
        with run_envoy_fast(simple_proxy_config(up.port, lp, ap), concurrency=2) as proxy:
            for _ in range(10):
                assert _roundtrip(lp) == b"ping"
            before = proxy.stats()["tcp.tp.downstream_cx_total"]
            victim = _workers(proxy)[0]
            os.kill(victim, signal.SIGKILL)
            t0 = time.monotonic()
            wait_for(lambda: len(_workers(proxy)) == 2 and victim not in _workers(proxy),
                     timeout=5, what="a replacement worker")
            took = time.monotonic() - t0
            # Every connection is served meanwhile and after: the dead
            # worker's accept queue is taken over by its successor.
            for _ in range(50):
                assert _roundtrip(lp) == b"ping"
            assert took < 2.0, took
            s = proxy.stats()
            assert s["tcp.tp.downstream_cx_total"] == before + 50   # counters kept
            assert "killed by SIGKILL; restarting it" in proxy.log()


def test_sigterm_lets_an_in_flight_transfer_finish():
    with echo_server() as up:
        lp, ap = free_port(), free_port()
        with run_envoy_fast(simple_proxy_config(up.port, lp, ap), args=["--drain-time-s", "30"]) as proxy:
            data = os.urandom(1 << 20) * 100          # 100 MiB
            c = socket.create_connection(("127.0.0.1", lp), timeout=10)
            got = hashlib.sha256()
            received = [0]

            def reader():
                while True:
                    chunk = c.recv(1 << 20)
                    if not chunk:
                        return
                    got.update(chunk)
                    received[0] += len(chunk)

            t = threading.Thread(target=reader)
            t.start()
            view = memoryview(data)
            sent = 0
            step = 1 << 20
            while sent < len(data):
                c.sendall(view[sent:sent + step])
                sent += step
                if sent == 10 * step:
                    proxy.proc.send_signal(signal.SIGTERM)
                    # New connections are refused while draining...
                    wait_for(lambda: _conn_refused(lp), timeout=5, what="new connections refused")
            c.shutdown(socket.SHUT_WR)
            t.join(30)
            c.close()
            # ...but the open one finished intact, and then the process exits 0.
            assert received[0] == len(data)
            assert got.hexdigest() == hashlib.sha256(data).hexdigest()
            assert proxy.proc.wait(timeout=10) == 0


def test_drain_deadline_closes_remaining_connections_then_exits_zero():
    with echo_server() as up:
        lp, ap = free_port(), free_port()
        with run_envoy_fast(simple_proxy_config(up.port, lp, ap), concurrency=2,
                            args=["--drain-time-s", "1"]) as proxy:
            idle = socket.create_connection(("127.0.0.1", lp), timeout=5)
            idle.sendall(b"hi")
            assert recv_exactly(idle, 2) == b"hi"
            t0 = time.monotonic()
            proxy.proc.send_signal(signal.SIGTERM)
            assert proxy.proc.wait(timeout=10) == 0
            took = time.monotonic() - t0
            assert 0.8 < took < 4.0, took
            idle.settimeout(2)
            assert idle.recv(10) == b""          # closed at the deadline
            idle.close()


def test_second_sigterm_stops_at_once():
    with echo_server() as up:
        lp, ap = free_port(), free_port()
        with run_envoy_fast(simple_proxy_config(up.port, lp, ap)) as proxy:
            c = socket.create_connection(("127.0.0.1", lp), timeout=5)
            c.sendall(b"hi")
            recv_exactly(c, 2)
            proxy.proc.send_signal(signal.SIGTERM)          # drain: 600 s by default
            time.sleep(0.3)
            assert proxy.proc.poll() is None
            proxy.proc.send_signal(signal.SIGTERM)
            assert proxy.proc.wait(timeout=5) == 0
            c.close()


def test_reload_with_broken_config_keeps_serving():
    with echo_server() as up:
        lp, ap = free_port(), free_port()
        cfg = simple_proxy_config(up.port, lp, ap)
        with run_envoy_fast(cfg, concurrency=2) as proxy:
            assert _roundtrip(lp) == b"ping"
            workers = set(_workers(proxy))
            proxy.reload("static_resources: {clusters: [{name: up, connect_timeout: 500ms}]}\n")
            wait_for(lambda: "reload failed" in proxy.log(), timeout=5, what="reload failure log")
            assert "connect_timeout" in proxy.log()
            for _ in range(20):
                assert _roundtrip(lp) == b"ping"
            assert set(_workers(proxy)) == workers      # nothing restarted
            assert proxy.admin("/ready").strip() == "LIVE"


def test_reload_adds_and_removes_a_listener():
    with echo_server() as up:
        p1, p2, p3, ap = free_port(), free_port(), free_port(), free_port()
        chain = [{"filters": [tcp_proxy_filter("up")]}]
        cfg_a = bootstrap([listener("keep", p1, chain), listener("gone", p2, chain)],
                          [cluster("up", [up.port])], ap)
        cfg_b = bootstrap([listener("keep", p1, chain), listener("new", p3, chain)],
                          [cluster("up", [up.port])], ap)
        with run_envoy_fast(cfg_a, concurrency=2) as proxy:
            assert _roundtrip(p1) == b"ping" and _roundtrip(p2) == b"ping"
            held = socket.create_connection(("127.0.0.1", p2), timeout=5)   # on the old generation
            held.sendall(b"old")
            assert recv_exactly(held, 3) == b"old"
            proxy.reload(cfg_b)
            wait_port(p3)
            assert _roundtrip(p3) == b"ping"
            assert _roundtrip(p1) == b"ping"
            # The removed listener's open connection still works while its
            # generation drains (its socket refuses new clients already).
            held.sendall(b"still")
            assert recv_exactly(held, 5) == b"still"
            held.close()
            wait_for(lambda: _conn_refused(p2), timeout=5, what="removed listener closed")
            assert "closing listener 'gone'" in proxy.log()
            # 2 + held + wait_port's probe + 2 (the probe may be accepted late).
            wait_stat(proxy, "tcp.tp.downstream_cx_total", 6)


def _conn_refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return False
    except ConnectionRefusedError:
        return True


@pytest.mark.parametrize("mode", ["keepalive", "new_connection"])
def test_five_reloads_under_load_lose_nothing(tmp_path, mode):
    nginx_exe, wrk_exe = require_peer("nginx"), require_peer("wrk")
    up_port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text("""
worker_processes 1; daemon off; pid %s/nginx.pid; error_log %s/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 100000000;
  server { listen 127.0.0.1:%d; location / { return 200 "hello\\n"; } } }
""" % (tmp_path, tmp_path, up_port))
    nginx = subprocess.Popen([nginx_exe, "-c", str(conf), "-p", str(tmp_path)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(up_port)
        lp, ap = free_port(), free_port()
        cfg = simple_proxy_config(up_port, lp, ap)
        with run_envoy_fast(cfg, concurrency=2) as proxy:
            cmd = [wrk_exe, "-t1", "-c16", "-d6s", "http://127.0.0.1:%d/" % lp]
            if mode == "new_connection":
                cmd[3:3] = ["-H", "Connection: close"]
            wrk = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
            for _ in range(5):
                time.sleep(0.8)
                before = proxy.log().count("reloaded:")
                proxy.proc.send_signal(signal.SIGHUP)
                wait_for(lambda: proxy.log().count("reloaded:") > before, timeout=5,
                         what="reload")
            out = wrk.communicate(timeout=30)[0]
            done = int(re.search(r"(\d+) requests in", out).group(1))
            assert done > 1000, out
            assert "Socket errors" not in out, out
            assert "Non-2xx" not in out, out
            s = proxy.stats()
            # Counters kept counting across the generations.
            assert s["tcp.tp.downstream_cx_total"] >= (done if mode == "new_connection" else 16)
            assert proxy.log().count("reloaded:") == 5
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)


def test_killed_worker_gives_back_its_circuit_breaker_counts():
    """A worker that dies holding connections must not leave them counted
    against the cluster-wide max_connections."""
    with echo_server() as up:
        lp, ap = free_port(), free_port()
        cfg = simple_proxy_config(up.port, lp, ap)
        cfg["static_resources"]["clusters"][0]["circuit_breakers"] = {
            "thresholds": [{"max_connections": 2}]}
        with run_envoy_fast(cfg, concurrency=1) as proxy:
            held = [socket.create_connection(("127.0.0.1", lp), timeout=5) for _ in range(2)]
            for c in held:
                c.sendall(b"a")
                assert recv_exactly(c, 1) == b"a"
            victim = _workers(proxy)[0]
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: len(_workers(proxy)) == 1 and victim not in _workers(proxy),
                     timeout=5, what="a replacement worker")
            for c in held:
                c.close()
            for _ in range(2):
                assert _roundtrip(lp) == b"ping"
            assert proxy.stats()["cluster.up.upstream_cx_overflow"] == 0


def test_draining_generations_are_bounded():
    """Each reload leaves a generation draining while it holds a connection;
    past the bound the oldest is ended (its connection closed) and the gauge
    never exceeds the bound."""
    from envoy_fast.server.server import MAX_DRAINING_GENERATIONS

    with echo_server() as up:
        lp, ap = free_port(), free_port()
        cfg = simple_proxy_config(up.port, lp, ap)
        with run_envoy_fast(cfg, concurrency=1) as proxy:
            held = []
            for i in range(MAX_DRAINING_GENERATIONS + 1):
                c = socket.create_connection(("127.0.0.1", lp), timeout=5)
                c.sendall(b"g")
                assert recv_exactly(c, 1) == b"g"
                held.append(c)
                before = proxy.log().count("reloaded:")
                proxy.proc.send_signal(signal.SIGHUP)
                wait_for(lambda: proxy.log().count("reloaded:") > before, timeout=5, what="reload")
                gauge = proxy.stats()["server.draining_generations"]
                assert gauge <= MAX_DRAINING_GENERATIONS
            # The first generation was ended to make room: its connection is gone...
            held[0].settimeout(5)
            assert held[0].recv(1) == b""
            # ...the others still work.
            for c in held[1:]:
                c.sendall(b"y")
                assert recv_exactly(c, 1) == b"y"
            assert proxy.stats()["server.draining_generations"] == MAX_DRAINING_GENERATIONS
            for c in held:
                c.close()
            wait_for(lambda: proxy.stats()["server.draining_generations"] == 0, timeout=5,
                     what="all old generations gone")


def test_crash_loop_backs_off(monkeypatch):
    """A worker that dies as soon as it starts is restarted with a growing
    delay (1 s, 2 s, 4 s ...), not in a tight loop; main stays up."""
    monkeypatch.setenv("ENVOY_FAST_CRASH_WORKER_FOR_TEST", "all")
    with echo_server() as up:
        lp, ap = free_port(), free_port()
        with run_envoy_fast(simple_proxy_config(up.port, lp, ap), concurrency=1) as proxy:
            time.sleep(3.5)
            restarts = proxy.stats()["server.worker_restarts"]
            # immediate, +1 s, +2 s: 3 (perhaps 4) restarts in 3.5 s, not hundreds
            assert 2 <= restarts <= 4, restarts
            assert "keeps dying at start; next restart in 1s" in proxy.log()
            assert "next restart in 2s" in proxy.log()
            assert proxy.admin("/ready").strip() == "LIVE"


def test_parent_shutdown_time_ends_the_old_generation():
    """--parent-shutdown-time-s after a reload the old generation is ended:
    its workers are gone and its connections closed, however long
    --drain-time-s would have let them run."""
    with echo_server() as up:
        lp, ap = free_port(), free_port()
        cfg = simple_proxy_config(up.port, lp, ap)
        with run_envoy_fast(cfg, concurrency=1,
                            args=["--drain-time-s", "60", "--parent-shutdown-time-s", "2"]) as proxy:
            old = set(_workers(proxy))
            held = socket.create_connection(("127.0.0.1", lp), timeout=5)
            held.sendall(b"a")
            assert recv_exactly(held, 1) == b"a"
            t0 = time.monotonic()
            proxy.reload(cfg)
            wait_for(lambda: "reloaded:" in proxy.log(), timeout=5, what="reload")
            time.sleep(1.0)
            # Still draining: the old generation serves its open connection.
            assert old <= set(_workers(proxy))
            held.sendall(b"b")
            assert recv_exactly(held, 1) == b"b"
            assert proxy.stats()["server.draining_generations"] == 1
            wait_closed(held, timeout=10)
            took = time.monotonic() - t0
            assert 1.8 < took < 5.0, took
            wait_for(lambda: not old & set(_workers(proxy)), timeout=3, what="old worker gone")
            assert len(_workers(proxy)) == 1
            wait_for(lambda: proxy.stats()["server.draining_generations"] == 0, timeout=3,
                     what="no generation draining")
            assert _roundtrip(lp) == b"ping"
            held.close()
