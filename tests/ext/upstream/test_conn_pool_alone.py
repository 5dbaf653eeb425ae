"""The pool on its own: a TcpConnPoolImpl, a Dispatcher and a real upstream,
no Worker, no listener, no tcp_proxy (`TcpPoolForTest`)."""
import socket
import time

import pytest

from envoy_fast import _worker
from test_conn_pool import ZERO, isolated, refusing, stuck  # noqa: F401 (fixtures)

POOL_FAILURE_REMOTE_CONNECTION_FAILURE = 1
POOL_FAILURE_TIMEOUT = 3


class PlainUpstream:
    """A listening socket the test accepts from by hand."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = []

    def accept_all(self):
        self.sock.setblocking(False)
        while True:
            try:
                c, _ = self.sock.accept()
            except BlockingIOError:
                return self.accepted
            c.setblocking(True)
            self.accepted.append(c)

    def close(self):
        for c in self.accepted:
            c.close()
        self.sock.close()


def turn(d, until, timeout=3.0):
    deadline = time.monotonic() + timeout
    while not until() and time.monotonic() < deadline:
        d.run_for_test(0.01)
    assert until()


@pytest.fixture
def plain():
    up = PlainUpstream()
    yield up
    up.close()


@isolated
def test_pool_alone_tcp_release_closes_the_client(plain):
    d = _worker.Dispatcher()
    pool = _worker.TcpPoolForTest(d, "127.0.0.1", plain.port)
    s = pool.new_stream()
    assert pool.counts()["connecting"] == 1
    turn(d, lambda: pool.events == [("ready", s)])
    assert pool.counts()["busy"] == 1
    assert pool.stat("upstream_rq_active") == 1 and pool.stat("host.rq_active") == 1
    pool.send(s, b"ping")
    d.run_for_test(0.01)            # writes leave at the end of the loop turn
    (c,) = plain.accept_all()
    c.settimeout(2)
    assert c.recv(16) == b"ping"
    pool.release(s)                 # a TCP connection is never reused
    turn(d, lambda: pool.counts() == ZERO)
    assert c.recv(16) == b""
    assert pool.stat("upstream_cx_destroy_local") == 1
    assert pool.stat("upstream_rq_active") == 0 and pool.stat("host.cx_active") == 0


@isolated
def test_pool_alone_reusable_release_goes_busy_to_ready_and_serves_a_waiting_stream(plain):
    d = _worker.Dispatcher()
    pool = _worker.TcpPoolForTest(d, "127.0.0.1", plain.port, max_connections=1,
                                  reuses_clients=True)
    first = pool.new_stream()
    turn(d, lambda: pool.events == [("ready", first)])
    second = pool.new_stream()      # max_connections reached: it waits for `first`'s client
    assert pool.counts()["pending"] == 1 and pool.counts()["busy"] == 1
    pool.release(first, reusable=True)
    assert pool.events == [("ready", first), ("ready", second)]
    assert pool.counts()["busy"] == 1 and pool.counts()["pending"] == 0
    pool.release(second, reusable=True)
    assert pool.counts()["ready"] == 1 and pool.counts()["busy"] == 0
    third = pool.new_stream()       # an idle READY client is used at once
    assert pool.events[-1] == ("ready", third)
    assert pool.stat("upstream_cx_total") == 1 and pool.stat("upstream_rq_total") == 3
    assert len(plain.accept_all()) == 1


@isolated
def test_pool_alone_drain_closes_idle_clients_and_busy_ones_after_their_stream(plain):
    d = _worker.Dispatcher()
    pool = _worker.TcpPoolForTest(d, "127.0.0.1", plain.port, reuses_clients=True)
    idle = pool.new_stream()
    busy = pool.new_stream()
    turn(d, lambda: len(pool.events) == 2)
    pool.release(idle, reusable=True)
    assert pool.counts()["ready"] == 1 and pool.counts()["busy"] == 1
    pool.drain_connections()
    turn(d, lambda: pool.counts()["ready"] == 0)
    assert pool.counts()["draining"] == 1
    late = pool.new_stream()        # a draining client takes no new stream
    turn(d, lambda: ("ready", late) in pool.events)
    assert pool.stat("upstream_cx_total") == 3
    pool.release(busy, reusable=True)
    turn(d, lambda: pool.counts()["draining"] == 0)
    assert pool.counts()["busy"] == 1
    assert pool.stat("upstream_cx_destroy_local") == 2


@isolated
def test_pool_alone_connect_timeout_fails_the_stream(stuck):
    d = _worker.Dispatcher()
    pool = _worker.TcpPoolForTest(d, "127.0.0.1", stuck.port, connect_timeout=0.2)
    s = pool.new_stream()
    turn(d, lambda: pool.events)
    assert pool.events == [("failure", s, POOL_FAILURE_TIMEOUT)]
    assert pool.stat("upstream_cx_connect_timeout") == 1
    assert pool.stat("upstream_cx_connect_fail") == 1 and pool.stat("host.cx_connect_fail") == 1
    assert pool.counts() == ZERO


@isolated
def test_pool_alone_refused_connect_fails_every_waiting_stream(refusing):
    d = _worker.Dispatcher()
    pool = _worker.TcpPoolForTest(d, "127.0.0.1", refusing.port)
    a, b = pool.new_stream(), pool.new_stream()
    turn(d, lambda: len(pool.events) == 2)
    assert sorted(pool.events) == [("failure", a, POOL_FAILURE_REMOTE_CONNECTION_FAILURE),
                                   ("failure", b, POOL_FAILURE_REMOTE_CONNECTION_FAILURE)]
    assert pool.counts() == ZERO
    assert pool.stat("upstream_rq_pending_active") == 0
