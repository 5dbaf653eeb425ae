"""When envoy_fast stops listening (SIGTERM drain, /drain_listeners, a listener
a reload removes) new clients are refused at once, and every connection the
listen socket had already queued is served first; a worker slot in crash
backoff leaves no connection waiting in its socket."""
import os
import signal
import socket
import time

import pytest

from helpers import (IMPLS, bootstrap, cluster, echo_server, free_port, listener, recv_exactly,
                     run_envoy_fast, run_impl, simple_proxy_config, tcp_proxy_filter, wait_for,
                     wait_port)


def _roundtrip(port: int, payload: bytes = b"ping") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(payload)
        return recv_exactly(c, len(payload))


def _refused(port: int) -> bool:
    """True if connecting is refused (RST to the SYN), not merely unanswered.
    A SYN that meets the listen socket as it shuts down is dropped (the kernel
    retransmits it a second later), and one that reached the accept queue
    just before is reset with it: those attempts say nothing yet, so they are
    False here and wait_for asks again; only a refusal counts."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True
    except (socket.timeout, ConnectionResetError):
        return False


def _workers(proxy):
    return proxy.pids()[1:]


def _queue_behind_stopped_worker(port: int, n: int):
    """Open `n` connections (each sends its number) while no worker accepts:
    the kernel completes each handshake and queues it."""
    conns = []
    for i in range(n):
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        c.sendall(b"%04d" % i)
        conns.append(c)
    return conns


def _assert_all_served(conns) -> None:
    for i, c in enumerate(conns):
        c.settimeout(10)
        assert recv_exactly(c, 4) == b"%04d" % i
        c.close()


# More connections than one accept batch: the listener must keep accepting
# until its queue is empty, not stop after one batch.
QUEUED = 150


def _held_connection(port: int) -> socket.socket:
    """A proxied connection that has carried a byte (it keeps a drain going)."""
    held = socket.create_connection(("127.0.0.1", port), timeout=5)
    held.sendall(b"h")
    assert recv_exactly(held, 1) == b"h"
    return held


def _assert_still_served(held: socket.socket) -> None:
    held.sendall(b"still")
    assert recv_exactly(held, 5) == b"still"
    held.close()


def test_sigterm_refuses_new_connections_at_once():
    with echo_server() as up:
        lp, ap = free_port(), free_port()
        with run_envoy_fast(simple_proxy_config(up.port, lp, ap), concurrency=2,
                            args=["--drain-time-s", "30"]) as proxy:
            held = _held_connection(lp)   # keeps it draining
            proxy.proc.send_signal(signal.SIGTERM)
            wait_for(lambda: _refused(lp), timeout=3, what="connections refused")
            for _ in range(20):
                assert _refused(lp)
            _assert_still_served(held)
            assert proxy.proc.wait(timeout=10) == 0


def test_sigterm_serves_the_connections_already_queued():
    with echo_server() as up:
        lp, ap = free_port(), free_port()
        with run_envoy_fast(simple_proxy_config(up.port, lp, ap), concurrency=1,
                            args=["--drain-time-s", "30"]) as proxy:
            assert _roundtrip(lp) == b"ping"
            worker = _workers(proxy)[0]
            os.kill(worker, signal.SIGSTOP)
            try:
                proxy.proc.send_signal(signal.SIGTERM)     # the worker reads it later
                time.sleep(0.2)
                conns = _queue_behind_stopped_worker(lp, QUEUED)
            finally:
                os.kill(worker, signal.SIGCONT)
            _assert_all_served(conns)
            assert _refused(lp)
            assert proxy.proc.wait(timeout=10) == 0


@pytest.mark.parametrize("impl", IMPLS)
def test_drain_listeners_refuses_new_connections(impl):
    """Envoy: /drain_listeners stops listening (connects are refused at once),
    open connections carry on and the server stays LIVE."""
    with echo_server() as up:
        lp, ap = free_port(), free_port()
        with run_impl(impl, simple_proxy_config(up.port, lp, ap)) as proxy:
            held = _held_connection(lp)
            assert proxy.admin("/drain_listeners", "POST").strip() == "OK"
            wait_for(lambda: _refused(lp), timeout=3, what="connections refused")
            for _ in range(10):
                assert _refused(lp)
            _assert_still_served(held)
            assert proxy.admin("/ready").strip() == "LIVE"


def test_graceful_drain_listeners_stops_listening_after_the_drain_time():
    with echo_server() as up:
        lp, ap = free_port(), free_port()
        with run_envoy_fast(simple_proxy_config(up.port, lp, ap), concurrency=2,
                            args=["--drain-time-s", "1.5"]) as proxy:
            t0 = time.monotonic()
            proxy.admin("/drain_listeners?graceful", "POST")
            assert _roundtrip(lp) == b"ping"             # still listening meanwhile
            wait_for(lambda: _refused(lp), timeout=5, what="connections refused")
            assert time.monotonic() - t0 > 1.3
            for _ in range(10):
                assert _refused(lp)
            assert proxy.admin("/ready").strip() == "LIVE"


def test_drain_listeners_serves_the_connections_already_queued():
    with echo_server() as up:
        lp, ap = free_port(), free_port()
        with run_envoy_fast(simple_proxy_config(up.port, lp, ap), concurrency=1) as proxy:
            worker = _workers(proxy)[0]
            os.kill(worker, signal.SIGSTOP)
            try:
                proxy.admin("/drain_listeners", "POST")
                time.sleep(0.2)
                conns = _queue_behind_stopped_worker(lp, QUEUED)
            finally:
                os.kill(worker, signal.SIGCONT)
            _assert_all_served(conns)
            assert _refused(lp)


def test_reload_after_drain_listeners_listens_again():
    with echo_server() as up:
        lp, ap = free_port(), free_port()
        cfg = simple_proxy_config(up.port, lp, ap)
        with run_envoy_fast(cfg, concurrency=2) as proxy:
            proxy.admin("/drain_listeners", "POST")
            wait_for(lambda: _refused(lp), timeout=3, what="connections refused")
            proxy.reload(cfg)
            wait_port(lp)
            for _ in range(20):
                assert _roundtrip(lp) == b"ping"
            # A worker killed now is replaced on the new sockets.
            os.kill(_workers(proxy)[-1], signal.SIGKILL)
            for _ in range(20):
                assert _roundtrip(lp) == b"ping"


def test_drained_listener_stays_closed_when_a_worker_restarts():
    with echo_server() as up:
        lp, ap = free_port(), free_port()
        with run_envoy_fast(simple_proxy_config(up.port, lp, ap), concurrency=2) as proxy:
            proxy.admin("/drain_listeners", "POST")
            wait_for(lambda: _refused(lp), timeout=3, what="connections refused")
            victim = _workers(proxy)[0]
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: len(_workers(proxy)) == 2 and victim not in _workers(proxy),
                     timeout=5, what="a replacement worker")
            for _ in range(10):
                assert _refused(lp)
            assert "killed by SIGKILL" in proxy.log()
            assert "handler error" not in proxy.log()


def _two_listeners(up_port: int, keep: int, other: int, ap: int, other_name: str) -> dict:
    chain = [{"filters": [tcp_proxy_filter("up")]}]
    return bootstrap([listener("keep", keep, chain), listener(other_name, other, chain)],
                     [cluster("up", [up_port])], ap)


def test_listener_removed_by_reload_refuses_at_once_while_its_generation_drains():
    with echo_server() as up:
        p1, p2, p3, ap = free_port(), free_port(), free_port(), free_port()
        with run_envoy_fast(_two_listeners(up.port, p1, p2, ap, "gone"), concurrency=2,
                            args=["--drain-time-s", "30"]) as proxy:
            held = socket.create_connection(("127.0.0.1", p2), timeout=5)
            held.sendall(b"old")
            assert recv_exactly(held, 3) == b"old"
            proxy.reload(_two_listeners(up.port, p1, p3, ap, "new"))
            wait_port(p3)
            wait_for(lambda: _refused(p2), timeout=3, what="removed listener refusing")
            # Its generation still drains the open connection...
            held.sendall(b"still")
            assert recv_exactly(held, 5) == b"still"
            # ...and the kept listener is served by the new generation.
            for _ in range(20):
                assert _roundtrip(p1) == b"ping"
            held.close()


def test_listener_removed_by_reload_serves_its_queued_connections():
    with echo_server() as up:
        p1, p2, p3, ap = free_port(), free_port(), free_port(), free_port()
        with run_envoy_fast(_two_listeners(up.port, p1, p2, ap, "gone"), concurrency=1,
                            args=["--drain-time-s", "30"]) as proxy:
            old = _workers(proxy)[0]
            os.kill(old, signal.SIGSTOP)
            try:
                before = proxy.log().count("reloaded:")
                proxy.reload(_two_listeners(up.port, p1, p3, ap, "new"))
                wait_for(lambda: proxy.log().count("reloaded:") > before, timeout=5, what="reload")
                conns = _queue_behind_stopped_worker(p2, QUEUED)
            finally:
                os.kill(old, signal.SIGCONT)
            _assert_all_served(conns)
            wait_for(lambda: _refused(p2), timeout=3, what="removed listener refusing")
            assert _roundtrip(p1) == b"ping" and _roundtrip(p3) == b"ping"


def _no_client_waits(port: int, n: int, budget: float = 3.0):
    """Open `n` connections one after another; each must be answered (echo)
    or refused/reset within `budget` s. Returns (served, refused)."""
    served = refused = 0
    for i in range(n):
        t0 = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=budget) as c:
                c.settimeout(budget)
                c.sendall(b"%04d" % i)
                assert recv_exactly(c, 4) == b"%04d" % i
                served += 1
        except (ConnectionRefusedError, ConnectionResetError):
            refused += 1
        except (socket.timeout, AssertionError) as exc:
            raise AssertionError("connection %d waited %.1fs unanswered (%r)"
                                 % (i, time.monotonic() - t0, exc))
    return served, refused


def test_slot_in_crash_backoff_leaves_no_connection_waiting(monkeypatch):
    """Worker 1 dies at every start; while it waits to be restarted (1 s, 2 s,
    4 s ...) its socket's share of new connections is served by worker 0."""
    monkeypatch.setenv("ENVOY_FAST_CRASH_WORKER_FOR_TEST", "1")
    with echo_server() as up:
        lp, ap = free_port(), free_port()
        with run_envoy_fast(simple_proxy_config(up.port, lp, ap), concurrency=2) as proxy:
            wait_for(lambda: "next restart in" in proxy.log(), timeout=5, what="crash backoff")
            served, refused = _no_client_waits(lp, 60)
            assert served == 60, (served, refused)
            assert proxy.stats()["server.worker_restarts"] >= 2


def test_single_slot_in_crash_backoff_refuses(monkeypatch):
    """With no other worker to serve its socket, a slot in crash backoff
    refuses new connections instead of queueing them until its restart."""
    monkeypatch.setenv("ENVOY_FAST_CRASH_WORKER_FOR_TEST", "all")
    with echo_server() as up:
        lp, ap = free_port(), free_port()
        with run_envoy_fast(simple_proxy_config(up.port, lp, ap), concurrency=1) as proxy:
            wait_for(lambda: "next restart in" in proxy.log(), timeout=5, what="crash backoff")
            served, refused = _no_client_waits(lp, 30)
            assert served == 0 and refused == 30
