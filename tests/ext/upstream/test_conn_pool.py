"""ConnPoolImplBase / TcpConnPoolImpl state machine, driven in-process.

A real Worker (one Dispatcher) is built from a plan made from a real
Bootstrap: one listener (our own non-blocking listen socket) with tcp_proxy
to cluster "up". Clients connect to the listener, the test turns the event
loop with run_for_test() and watches pool_counts_for_test() and the stats.

An upstream that "does not answer yet" is a listen(0) socket whose single
accept-queue slot is taken by a filler connection: the kernel drops the
pool's SYN, so its connect stays in progress until the test accepts the
filler (the SYN is retransmitted about 1 s later and then completes).

Each test runs in a forked child (@isolated): a crash in the data plane
fails that one test instead of ending the whole run.
"""
import contextlib
import gc
import socket
import struct
import time

import pytest
import yaml

from envoy_fast import _worker
from envoy_fast._worker import Worker
from envoy_fast.config import load_bootstrap
from envoy_fast.server.plan import build_plan
from envoy_fast.stats.store import StatsLayout, StatsStore
from helpers import bootstrap, cluster, echo_server, isolated, listener, tcp_proxy_filter


ZERO = {"ready": 0, "busy": 0, "connecting": 0, "draining": 0, "pending": 0,
        "connecting_capacity": 0}


def slices_in_use():
    gc.collect()
    allocated, free = _worker.slice_counts_for_test()
    return allocated - free


class StuckUpstream:
    """A listener whose accept queue is full: connects to it hang in SYN_SENT."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.filler = socket.create_connection(("127.0.0.1", self.port), timeout=2)
        self.accepted = []

    def release(self):
        """Accept the filler: the next retransmitted SYN gets in."""
        self.sock.settimeout(2)
        c, _ = self.sock.accept()
        self.accepted.append(c)

    def accept(self, timeout=5.0):
        self.sock.settimeout(timeout)
        c, _ = self.sock.accept()
        self.accepted.append(c)
        return c

    def close(self):
        for c in self.accepted:
            c.close()
        self.filler.close()
        self.sock.close()


class RefusingUpstream:
    """A bound port nobody listens on: connects are refused."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


class Harness:
    def __init__(self, ports, cluster_extra=None, tcp_extra=None):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.lsock.setblocking(False)
        self.port = self.lsock.getsockname()[1]
        # A long connect timeout unless a test wants one: the stuck upstream
        # completes a connect only about 1 s after it is released.
        cluster_extra = dict({"connect_timeout": "10s"}, **(cluster_extra or {}))
        cfg = bootstrap(
            [listener("l0", self.port, [{"filters": [tcp_proxy_filter("up", **(tcp_extra or {}))]}])],
            [cluster("up", ports, **cluster_extra)])
        bs = load_bootstrap(config_yaml=yaml.safe_dump(cfg))
        self.layout = StatsLayout(bs, 1)
        self.store = StatsStore(self.layout)
        plan = build_plan(bs, self.layout, {"l0": self.lsock.fileno()})
        self.worker = Worker(plan, self.store.mem, 0)
        self.clients = []
        self.hosts = ["127.0.0.1:%d" % (p if isinstance(p, int) else p[0]) for p in ports]

    # driving
    def run(self, seconds=0.05):
        self.worker.run_for_test(seconds)

    def run_until(self, pred, timeout=5.0, what="condition"):
        deadline = time.monotonic() + timeout
        while True:
            self.run(0.02)
            if pred():
                return
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for %s; counts=%r" % (what, self.counts_all()))

    def run_until_idle(self, what="idle", downstream=True):
        """Until the pool is empty and no upstream (and, with `downstream`, no
        downstream) connection is active."""
        self.run_until(lambda: self.counts() == ZERO and self.cstat("upstream_cx_active") == 0
                       and (not downstream or self.lstat("downstream_cx_active") == 0), what=what)

    def client(self):
        c = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        self.clients.append(c)
        return c

    # observing
    def counts_all(self):
        return self.worker.pool_counts_for_test("up")

    def counts(self, host=None):
        host = host or self.hosts[0]
        return self.counts_all().get(host, dict(ZERO))

    def stats(self):
        return self.store.values()

    def cstat(self, name):
        return self.stats()["cluster.up." + name]

    def assert_cstats(self, **want):
        """Each named cluster stat ("upstream_cx_total"=...) has its value."""
        got = {name: self.cstat(name) for name in want}
        assert got == want, got

    def tstat(self, name):
        return self.stats()["tcp.tp." + name]

    def lstat(self, name):
        return self.stats()["listener.127.0.0.1_%d.%s" % (self.port, name)]

    def resource(self, which):
        return self.store.resource("up", which)

    def assert_idle(self):
        """Everything closed: no pool entries, gauges and resources at 0."""
        for host, c in self.counts_all().items():
            assert c == ZERO, (host, c)
        assert self.cstat("upstream_cx_active") == 0
        assert self.cstat("upstream_rq_active") == 0
        assert self.cstat("upstream_rq_pending_active") == 0
        assert self.lstat("downstream_cx_active") == 0
        assert self.resource("cx_open") == 0
        assert self.resource("rq_pending_open") == 0
        assert self.resource("rq_open") == 0
        assert self.worker.live_connections_for_test() == 0

    def close(self):
        for c in self.clients:
            c.close()
        self.worker.close_all()
        self.run(0.05)
        self.worker.stop_listening()        # closes the worker's descriptor: this one
        self.run(0.01)
        self.lsock.detach()


@contextlib.contextmanager
def harness(ports, **kw):
    before = slices_in_use()
    h = Harness(ports, **kw)
    try:
        yield h
    finally:
        h.close()
    del h
    assert slices_in_use() == before, "buffer slices leaked"


def closed_by_peer(c, timeout=0.0):
    """True when the proxy closed this client socket (EOF or reset)."""
    c.settimeout(timeout)
    try:
        data = c.recv(1)
    except socket.timeout:
        return False
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        c.settimeout(5)
    assert data == b"", data
    return True


def rst_close(c):
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()


def drive_recv(h, s, want, timeout=5.0):
    """Turn the loop and read `s` (left non-blocking) until it has received
    `want` or `timeout` passed; returns what it received."""
    s.settimeout(0)
    got = b""
    deadline = time.monotonic() + timeout
    while got != want and time.monotonic() < deadline:
        h.run(0.02)
        try:
            got += s.recv(100)
        except BlockingIOError:
            pass
    return got


def drive_recv_to_eof(h, s, timeout=5.0):
    """Turn the loop and read `s` (left non-blocking) until EOF or `timeout`;
    returns (bytes received, whether EOF was seen)."""
    s.settimeout(0)
    got = b""
    eof = False
    deadline = time.monotonic() + timeout
    while not eof and time.monotonic() < deadline:
        h.run(0.02)
        try:
            chunk = s.recv(100)
        except BlockingIOError:
            continue
        got += chunk
        eof = chunk == b""
    return got, eof


@pytest.fixture
def stuck():
    up = StuckUpstream()
    yield up
    up.close()


@pytest.fixture
def refusing():
    up = RefusingUpstream()
    yield up
    up.close()


# ------------------------------------------------------------ connecting -> busy

@isolated
def test_connecting_then_busy_when_upstream_accepts(stuck):
    with harness([stuck.port]) as h:
        c = h.client()
        h.run_until(lambda: h.counts()["pending"] == 1, what="pending stream")
        assert h.counts() == dict(ZERO, connecting=1, pending=1, connecting_capacity=1)
        h.assert_cstats(upstream_cx_total=1, upstream_cx_active=1, upstream_rq_pending_total=1,
                        upstream_rq_pending_active=1, upstream_rq_total=0)
        assert h.resource("cx_open") == 1
        assert h.resource("rq_pending_open") == 1
        assert h.resource("rq_open") == 0
        # It stays so while the upstream does not answer.
        c.sendall(b"early bytes")
        for _ in range(5):
            h.run(0.05)
        assert h.counts() == dict(ZERO, connecting=1, pending=1, connecting_capacity=1)

        stuck.release()
        h.run_until(lambda: h.counts()["busy"] == 1, timeout=8, what="busy client")
        assert h.counts() == dict(ZERO, busy=1)
        h.assert_cstats(upstream_rq_total=1, upstream_rq_active=1, upstream_rq_pending_active=0,
                        upstream_cx_connect_fail=0)
        assert h.resource("rq_pending_open") == 0
        assert h.resource("rq_open") == 1
        assert h.resource("cx_open") == 1

        # Bytes sent while connecting arrive once connected; and back.
        u = stuck.accept()
        u.settimeout(5)
        got = b""
        while len(got) < len(b"early bytes"):
            h.run(0.02)
            got += u.recv(100)
        assert got == b"early bytes"
        u.sendall(b"reply")
        assert drive_recv(h, c, b"reply") == b"reply"
        c.settimeout(5)

        # Downstream closes: tcp_proxy half-closes the upstream; once the
        # upstream closes too the pool's connection is gone (never reused).
        c.close()
        h.clients.remove(c)
        _, eof = drive_recv_to_eof(h, u)
        assert eof, "downstream FIN not forwarded upstream"
        u.close()
        h.run_until_idle("pool idle", downstream=False)
        h.run(0.05)
        h.assert_idle()
        assert h.cstat("upstream_cx_destroy") == 1
        assert h.cstat("upstream_rq_total") == 1


@isolated
def test_fast_upstream_each_stream_gets_its_own_connection():
    with echo_server() as up, harness([up.port]) as h:
        clients = [h.client() for _ in range(5)]
        h.run_until(lambda: h.counts()["busy"] == 5, what="5 busy")
        assert h.counts() == dict(ZERO, busy=5)
        h.assert_cstats(upstream_cx_total=5, upstream_rq_total=5, upstream_rq_pending_total=5)
        assert h.resource("rq_open") == 5
        for i, c in enumerate(clients):
            c.sendall(b"ping%d" % i)
        for i, c in enumerate(clients):
            want = b"ping%d" % i
            assert drive_recv(h, c, want) == want
        for c in clients:
            c.close()
        h.clients.clear()
        h.run_until_idle("pool idle")
        h.assert_idle()
        # TCP upstream connections are never handed to a second stream.
        assert h.cstat("upstream_cx_total") == 5
        assert h.cstat("upstream_cx_destroy") == 5

        # A new stream after that opens a new connection.
        c = h.client()
        h.run_until(lambda: h.counts()["busy"] == 1, what="busy")
        assert h.cstat("upstream_cx_total") == 6


# ------------------------------------------------------------ limits

@isolated
def test_max_connections_is_checked_by_tcp_proxy(stuck):
    cb = {"circuit_breakers": {"thresholds": [{"max_connections": 2}]}}
    with harness([stuck.port], cluster_extra=cb) as h:
        a = h.client()
        h.run_until(lambda: h.counts()["pending"] == 1)
        b = h.client()
        h.run_until(lambda: h.counts()["pending"] == 2)
        assert h.counts() == dict(ZERO, connecting=2, pending=2, connecting_capacity=2)
        assert h.resource("cx_open") == 2
        c = h.client()
        h.run_until(lambda: h.tstat("downstream_cx_total") == 3)
        h.run(0.05)
        # The third never reaches the pool: tcp_proxy sees max_connections.
        assert closed_by_peer(c, 2.0)
        h.assert_cstats(upstream_cx_overflow=1, upstream_rq_pending_overflow=0,
                        upstream_rq_pending_total=2, upstream_cx_total=2)
        assert h.counts() == dict(ZERO, connecting=2, pending=2, connecting_capacity=2)
        assert not closed_by_peer(a) and not closed_by_peer(b)


@isolated
def test_pending_overflow(stuck):
    cb = {"circuit_breakers": {"thresholds": [{"max_pending_requests": 1}]}}
    with harness([stuck.port], cluster_extra=cb) as h:
        a = h.client()
        h.run_until(lambda: h.counts()["pending"] == 1)
        b = h.client()
        h.run_until(lambda: h.cstat("upstream_rq_pending_overflow") == 1, what="overflow")
        h.run(0.05)
        assert closed_by_peer(b, 2.0)
        assert not closed_by_peer(a)
        assert h.counts() == dict(ZERO, connecting=1, pending=1, connecting_capacity=1)
        assert h.cstat("upstream_rq_pending_total") == 1
        assert h.cstat("upstream_cx_total") == 1
        assert h.resource("rq_pending_open") == 1
        assert h.lstat("downstream_cx_active") == 1
        # The waiting stream still gets its connection.
        stuck.release()
        h.run_until(lambda: h.counts()["busy"] == 1, timeout=8, what="busy")
        assert h.counts() == dict(ZERO, busy=1)
        assert h.resource("rq_pending_open") == 0


@isolated
def test_zero_max_pending_requests_fails_every_stream(stuck):
    cb = {"circuit_breakers": {"thresholds": [{"max_pending_requests": 0}]}}
    with harness([stuck.port], cluster_extra=cb) as h:
        clients = [h.client() for _ in range(3)]
        h.run_until(lambda: h.cstat("upstream_rq_pending_overflow") == 3)
        h.run(0.05)
        for c in clients:
            assert closed_by_peer(c, 2.0)
        assert h.cstat("upstream_cx_total") == 0
        h.assert_idle()


@isolated
def test_max_requests_overflow_then_ready_client_is_used():
    """max_requests is checked when a stream is attached: the stream waiting
    for a fresh connection overflows and the connection stays READY; the next
    stream is attached to it at once (no new connection)."""
    cb = {"circuit_breakers": {"thresholds": [{"max_requests": 1}]}}
    with echo_server() as up, harness([up.port], cluster_extra=cb) as h:
        a = h.client()
        h.run_until(lambda: h.counts()["busy"] == 1, what="a busy")
        assert h.resource("rq_open") == 1
        b = h.client()
        h.run_until(lambda: h.cstat("upstream_rq_active_overflow") == 1, what="b overflow")
        h.run(0.05)
        assert closed_by_peer(b, 2.0)
        assert h.counts() == dict(ZERO, busy=1, ready=1)
        assert h.cstat("upstream_cx_total") == 2
        assert h.cstat("upstream_rq_total") == 1
        assert h.resource("rq_open") == 1
        assert h.resource("rq_pending_open") == 0
        # a goes away (echo server closes its side after the FIN).
        a.close()
        h.clients.remove(a)
        h.run_until(lambda: h.counts()["busy"] == 0, what="a gone")
        assert h.resource("rq_open") == 0
        # c is attached to the READY connection right away.
        c = h.client()
        h.run_until(lambda: h.counts()["busy"] == 1, what="c busy")
        assert h.counts() == dict(ZERO, busy=1)
        assert h.cstat("upstream_cx_total") == 2
        assert h.cstat("upstream_rq_total") == 2
        c.sendall(b"via ready client")
        assert drive_recv(h, c, b"via ready client") == b"via ready client"


# ------------------------------------------------------------ failures

@isolated
def test_connect_refused_fails_all_pending_streams(refusing):
    with harness([refusing.port]) as h:
        a = h.client()
        b = h.client()
        # Both downstreams are accepted in one batch, before any connect
        # fails. The first refusal fails both streams, and the other connect,
        # which no stream waits for any more, is closed with them.
        h.run_until(lambda: h.tstat("downstream_cx_total") == 2
                    and h.cstat("upstream_cx_destroy") == 2
                    and h.lstat("downstream_cx_active") == 0, what="failures")
        assert closed_by_peer(a, 2.0)
        assert closed_by_peer(b, 2.0)
        h.assert_cstats(upstream_rq_pending_total=2, upstream_rq_pending_failure_eject=2,
                        upstream_cx_connect_attempts_exceeded=2, upstream_cx_connect_fail=1,
                        upstream_cx_destroy_local=1, upstream_rq_total=0)
        h.assert_idle()


@isolated
def test_retries_with_concurrent_failures_leave_pool_clean(refusing):
    with harness([refusing.port], tcp_extra={"max_connect_attempts": 3}) as h:
        clients = [h.client() for _ in range(3)]
        h.run_until(lambda: h.cstat("upstream_cx_connect_attempts_exceeded") == 3
                    and h.lstat("downstream_cx_active") == 0, what="attempts exceeded")
        h.run_until_idle("pool idle", downstream=False)
        for c in clients:
            assert closed_by_peer(c, 2.0)
        total = h.cstat("upstream_cx_total")
        assert 9 >= total >= 3
        # A purge closes the connects no retried stream waits for.
        assert h.cstat("upstream_cx_connect_fail") + h.cstat("upstream_cx_destroy_local") == total
        assert h.cstat("upstream_cx_destroy") == total
        assert h.cstat("upstream_rq_pending_total") == 9
        assert h.cstat("upstream_rq_pending_failure_eject") == 9
        h.assert_idle()


@isolated
def test_retry_moves_to_another_host(refusing):
    with echo_server() as good, harness([refusing.port, good.port],
                                        tcp_extra={"max_connect_attempts": 2}) as h:
        for i in range(4):
            c = h.client()
            c.sendall(b"hello%d" % i)
            assert drive_recv(h, c, b"hello%d" % i) == b"hello%d" % i
            c.close()
            h.clients.remove(c)
        h.run_until(lambda: h.lstat("downstream_cx_active") == 0
                    and h.cstat("upstream_cx_active") == 0, what="idle")
        # Round robin: a failed attempt moves the rotation on to the good host,
        # so every downstream but perhaps the first starts at the refusing one.
        assert 3 <= h.cstat("upstream_cx_connect_fail") <= 4
        assert h.cstat("upstream_cx_connect_attempts_exceeded") == 0
        assert h.cstat("upstream_rq_total") == 4
        h.assert_idle()


# ------------------------------------------------------------ cancel

def wait_closed(h, c, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        h.run(0.02)
        if closed_by_peer(c):
            return
    raise AssertionError("client not closed by the proxy")


@isolated
def test_duration_timeout_cancels_pending_stream(stuck):
    with harness([stuck.port], tcp_extra={"max_downstream_connection_duration": "0.3s"}) as h:
        c = h.client()
        h.run_until(lambda: h.counts()["pending"] == 1)
        assert h.counts() == dict(ZERO, connecting=1, pending=1, connecting_capacity=1)
        # The downstream is closed by tcp_proxy's duration timer: its pending
        # stream is cancelled and the connection opened only for it closed
        # (Envoy's CancelPolicy::CloseExcess).
        h.run_until(lambda: h.counts()["pending"] == 0, timeout=3, what="cancelled pending")
        assert h.cstat("upstream_rq_cancelled") == 1
        assert h.cstat("upstream_rq_pending_active") == 0
        assert h.counts() == ZERO
        assert h.tstat("max_downstream_connection_duration") == 1
        assert h.cstat("upstream_cx_destroy_local") == 1
        # Closing an excess connection is not a connect failure (Envoy moves
        # the client to DRAINING before closing it).
        h.assert_cstats(upstream_cx_connect_fail=0, upstream_rq_pending_failure_eject=0,
                        upstream_rq_total=0)
        wait_closed(h, c)
        h.run(0.05)
        h.assert_idle()


@isolated
def test_close_all_cancels_pending_streams(stuck):
    with harness([stuck.port]) as h:
        clients = [h.client() for _ in range(3)]
        h.run_until(lambda: h.counts()["pending"] == 3)
        h.worker.close_all()
        h.run(0.05)
        assert h.cstat("upstream_rq_cancelled") == 3
        for c in clients:
            assert closed_by_peer(c, 1.0)
        h.assert_idle()


@isolated
def test_cancel_keeps_connections_other_streams_wait_for(stuck):
    """One of two waiting downstreams goes: one connection stays for the other."""
    with harness([stuck.port], tcp_extra={"max_downstream_connection_duration": "1s"}) as h:
        a = h.client()
        h.run_until(lambda: h.counts()["pending"] == 1)
        h.run(0.5)
        b = h.client()
        h.run_until(lambda: h.counts()["pending"] == 2)
        assert h.counts() == dict(ZERO, connecting=2, pending=2, connecting_capacity=2)
        h.run_until(lambda: h.cstat("upstream_rq_cancelled") == 1, timeout=3, what="a cancelled")
        assert h.counts() == dict(ZERO, connecting=1, pending=1, connecting_capacity=1)
        assert h.cstat("upstream_cx_destroy_local") == 1
        assert closed_by_peer(a, 1.0)
        assert not closed_by_peer(b)
        # b's turn: nothing is left.
        h.run_until(lambda: h.cstat("upstream_rq_cancelled") == 2, timeout=3, what="b cancelled")
        h.run(0.05)
        assert closed_by_peer(b, 1.0)
        h.assert_idle()


@isolated
def test_downstream_half_close_while_connecting_is_forwarded(stuck):
    """tcp_proxy enables half-close and read-disables the downstream until the
    upstream connects (as Envoy): a FIN then is not an early close; it reaches
    the upstream after the bytes sent before it, and the reply still flows."""
    with harness([stuck.port]) as h:
        c = h.client()
        h.run_until(lambda: h.counts()["pending"] == 1)
        c.sendall(b"request")
        c.shutdown(socket.SHUT_WR)
        for _ in range(4):
            h.run(0.05)
        assert h.counts() == dict(ZERO, connecting=1, pending=1, connecting_capacity=1)
        stuck.release()
        h.run_until(lambda: h.counts()["busy"] == 1, timeout=8, what="busy")
        u = stuck.accept()
        got, eof = drive_recv_to_eof(h, u)
        assert got == b"request" and eof
        u.sendall(b"response")
        u.close()
        got, eof = drive_recv_to_eof(h, c)
        assert got == b"response" and eof
        h.run_until_idle()
        h.assert_idle()


@isolated
def test_downstream_reset_while_connecting_cancels_pending_stream(stuck):
    # The downstream is read-disabled while its upstream connects, but a reset
    # is still seen: the pending stream is cancelled and its connection closed.
    with harness([stuck.port]) as h:
        c = h.client()
        h.run_until(lambda: h.counts()["pending"] == 1)
        h.clients.remove(c)
        rst_close(c)
        h.run_until(lambda: h.cstat("upstream_rq_cancelled") == 1, timeout=3, what="cancelled")
        h.run_until_idle()
        assert h.cstat("upstream_rq_total") == 0
        assert h.cstat("upstream_cx_connect_fail") == 0
        stuck.release()
        h.assert_idle()


# ------------------------------------------------------------ idle READY clients

class ManualUpstream:
    """A listening socket the test accepts from by hand, so it holds (and can
    close, reset or write on) each upstream connection of the pool."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.conns = []

    def accept_all(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except BlockingIOError:
                return self.conns
            c.setblocking(False)
            self.conns.append(c)

    def close(self):
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def manual():
    up = ManualUpstream()
    yield up
    up.close()


def ready_idle_client(h, up):
    """a holds one connection; b's stream overflows max_requests (1), so its
    fresh connection stays READY with no stream. Returns (a, a's upstream
    socket, the idle connection's upstream socket)."""
    a = h.client()
    h.run_until(lambda: h.counts()["busy"] == 1, what="a busy")
    h.run_until(lambda: len(up.accept_all()) == 1, what="a accepted")
    ua = up.conns[0]
    b = h.client()
    h.run_until(lambda: h.cstat("upstream_rq_active_overflow") == 1, what="b overflow")
    h.run_until(lambda: len(up.accept_all()) == 2, what="idle accepted")
    wait_closed(h, b)
    h.clients.remove(b)
    b.close()
    assert h.counts() == dict(ZERO, busy=1, ready=1)
    return a, ua, up.conns[1]


@pytest.mark.parametrize("how", ["fin", "rst", "data"])
@isolated
def test_idle_ready_client_closed_by_upstream_is_dropped_at_once(manual, how):
    """An idle pooled connection stays watched: the upstream's FIN or reset
    removes it at once, and so do bytes nobody asked for (Envoy's
    ActiveTcpClient closes then too). It is never handed to a later stream."""
    cb = {"circuit_breakers": {"thresholds": [{"max_requests": 1}]}}
    with harness([manual.port], cluster_extra=cb) as h:
        a, ua, idle = ready_idle_client(h, manual)
        if how == "fin":
            idle.close()
        elif how == "rst":
            rst_close(idle)
        else:
            idle.sendall(b"unsolicited")
        h.run_until(lambda: h.counts()["ready"] == 0, timeout=2, what="idle client dropped")
        assert h.counts() == dict(ZERO, busy=1)
        assert h.cstat("upstream_cx_destroy") == 1
        assert h.cstat("upstream_cx_destroy_with_active_rq") == 0
        # a's stream ends; the next stream gets a fresh connection that works.
        a.close()
        h.clients.remove(a)
        ua.close()
        h.run_until(lambda: h.counts()["busy"] == 0, what="a gone")
        c = h.client()
        h.run_until(lambda: h.counts()["busy"] == 1, what="c busy")
        assert h.cstat("upstream_cx_total") == 3
        h.run_until(lambda: len(manual.accept_all()) == 3, what="c accepted")
        uc = manual.conns[2]
        c.sendall(b"request")
        uc.settimeout(0)
        got = b""
        deadline = time.monotonic() + 5
        while got != b"request" and time.monotonic() < deadline:
            h.run(0.02)
            try:
                got += uc.recv(100)
            except BlockingIOError:
                pass
        assert got == b"request"
        uc.sendall(b"reply")
        assert drive_recv(h, c, b"reply") == b"reply"


@isolated
def test_purge_closes_connects_no_stream_waits_for(stuck):
    """A connect failure fails every waiting stream; connects that no stream
    waits for any more are closed with them, so none of them can complete
    later into a connection nobody uses (an upstream coming back after an
    outage would otherwise hold them ESTABLISHED with no downstream)."""
    with harness([stuck.port], cluster_extra={"connect_timeout": "0.6s"}) as h:
        a = h.client()
        h.run_until(lambda: h.counts()["pending"] == 1)
        t0 = time.monotonic()
        h.run(0.3)
        b = h.client()
        h.run_until(lambda: h.counts()["pending"] == 2)
        assert h.counts() == dict(ZERO, connecting=2, pending=2, connecting_capacity=2)
        # The first connection times out: both waiting streams are failed,
        # also the one whose own connection has not timed out yet...
        h.run_until(lambda: h.cstat("upstream_cx_connect_timeout") == 1, what="first timeout")
        assert time.monotonic() - t0 < 0.6 + 0.25
        assert h.cstat("upstream_rq_pending_failure_eject") == 2
        assert h.cstat("upstream_cx_connect_attempts_exceeded") == 2
        # ... and that connection is closed with them.
        assert h.counts() == ZERO
        h.assert_cstats(upstream_cx_destroy=2, upstream_cx_destroy_local=2,
                        upstream_cx_connect_fail=1, upstream_cx_active=0)
        wait_closed(h, a)
        wait_closed(h, b)
        # The upstream comes back: nothing of ours reaches it.
        stuck.release()
        for _ in range(30):
            h.run(0.05)
        stuck.sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            stuck.sock.accept()
        assert h.cstat("upstream_cx_total") == 2
        h.assert_idle()


@isolated
def test_purge_keeps_connects_the_retries_wait_for(stuck):
    """Streams failed by a purge and retried at once (max_connect_attempts)
    wait for the connects still in progress: none is closed, none opened."""
    with harness([stuck.port], cluster_extra={"connect_timeout": "0.6s"},
                 tcp_extra={"max_connect_attempts": 2}) as h:
        a = h.client()
        h.run_until(lambda: h.counts()["pending"] == 1)
        h.run(0.3)
        b = h.client()
        h.run_until(lambda: h.counts()["pending"] == 2)
        h.run_until(lambda: h.cstat("upstream_cx_connect_timeout") == 1, what="first timeout")
        # Both streams retried: one waits for the remaining connect, the
        # other got a new one.
        assert h.counts() == dict(ZERO, connecting=2, pending=2, connecting_capacity=2)
        assert h.cstat("upstream_cx_total") == 3
        assert h.cstat("upstream_cx_destroy_local") == 1
        assert not closed_by_peer(a) and not closed_by_peer(b)
