"""tcp_proxy's filter (Envoy tcp_proxy_test.cc) without a worker: a
TcpProxyFilter in a downstream connection's FilterManager, its cluster in a
ClusterManagerImpl built from the plan Structs, all on one bare Dispatcher
(TcpProxyForTest, ext/for_test.pyx). Real sockets on 127.0.0.1: the
downstream is an accepted TCP connection, the upstreams are real servers."""
import os
import socket
import time

import pytest
import yaml

from envoy_fast._worker import Dispatcher, TcpProxyForTest
from envoy_fast.config import load_bootstrap
from envoy_fast.server.plan import build_plan
from envoy_fast.stats.store import StatsLayout, StatsStore
from helpers import (bootstrap, cluster, echo_server, free_port, listener, recv_until_eof,
                     scripted_server, tcp_proxy_filter)


class Proxy:
    """tcp_proxy "tp" -> cluster "up" (127.0.0.1 hosts on `ports`)."""

    def __init__(self, ports, **tcp_extra):
        cfg = bootstrap([listener("l0", 1, [{"filters": [tcp_proxy_filter("up", **tcp_extra)]}])],
                        [cluster("up", ports)])
        bs = load_bootstrap(config_yaml=yaml.safe_dump(cfg))
        self.layout = StatsLayout(bs, 1)
        self.store = StatsStore(self.layout)
        plan = build_plan(bs, self.layout, {"l0": -1})
        (tp_plan,) = plan.listeners[0].filter_chains[0].filters
        self.d = Dispatcher()
        self.tp = TcpProxyForTest(self.d, plan, tp_plan, self.store.mem)
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.clients = []

    def connect(self):
        """A client connection and its downstream ConnectionForTest."""
        client = socket.create_connection(self.lsock.getsockname(), timeout=5)
        accepted, _ = self.lsock.accept()
        accepted.setblocking(False)
        conn = self.tp.downstream(accepted.detach())
        client.setblocking(False)
        self.clients.append(client)
        return client, conn

    def pump(self, pred, timeout=10.0, what="condition"):
        """Run the loop until pred() holds."""
        deadline = time.monotonic() + timeout
        while not pred():
            assert time.monotonic() < deadline, "timed out waiting for " + what
            self.d.run_for_test(0.005)

    def exchange(self, client, payload, expect):
        """Send `payload`, then read until `expect` bytes came back."""
        sent = 0
        got = bytearray()

        def step():
            nonlocal sent
            if sent < len(payload):
                try:
                    sent += client.send(payload[sent:sent + 65536])
                except BlockingIOError:
                    pass
            try:
                d = client.recv(1 << 20)
                assert d, "EOF after %d of %d bytes" % (len(got), expect)
                got.extend(d)
            except BlockingIOError:
                pass
            return sent == len(payload) and len(got) >= expect
        self.pump(step, what="%d bytes back" % expect)
        return bytes(got)

    def read_to_eof(self, client):
        """Everything until the proxy closes its side (FIN or reset)."""
        got = bytearray()
        done = []

        def step():
            try:
                d = client.recv(65536)
            except BlockingIOError:
                return False
            except ConnectionResetError:
                d = b""
            if not d:
                done.append(True)
                return True
            got.extend(d)
            return False
        self.pump(step, what="EOF")
        return bytes(got)

    def stats(self):
        return self.store.values()

    def close(self):
        for c in self.clients:
            c.close()
        self.tp.close()
        self.pump(lambda: self.tp.live_connections == 0, what="every connection closed")
        self.lsock.close()


@pytest.fixture
def make_proxy():
    made = []

    def make(ports, **tcp_extra):
        made.append(Proxy(ports, **tcp_extra))
        return made[-1]
    yield make
    for p in made:
        p.close()


def addr(port):
    return "127.0.0.1:%d" % port


def test_bytes_flow_both_ways_and_are_counted(make_proxy):
    with echo_server() as up:
        p = make_proxy([up.port])
        c, down = p.connect()
        p.pump(lambda: p.tp.has_upstream(0), what="upstream connected")
        payload = os.urandom(300_000)
        assert p.exchange(c, payload, len(payload)) == payload
        assert p.exchange(c, b"small", 5) == b"small"
        n = len(payload) + 5
        p.pump(lambda: p.stats()["tcp.tp.downstream_cx_tx_bytes_total"] == n, what="tx bytes")
        s = p.stats()
        assert s["tcp.tp.downstream_cx_total"] == 1
        assert s["tcp.tp.downstream_cx_rx_bytes_total"] == n
        assert s["cluster.up.upstream_cx_total"] == 1
        assert s["cluster.up.upstream_cx_active"] == 1
        info = p.tp.stream_info(0)
        assert info["upstream_host"] == addr(up.port)
        assert info["upstream_cluster"] == "up"
        assert info["response_flags"] == [] and info["upstream_request_attempt_count"] == 1
        # The client goes: tcp_proxy closes the upstream too.
        c.close()
        p.clients.remove(c)
        p.pump(lambda: p.tp.live_connections == 0, what="both connections closed")
        assert down.state == "closed"
        s = p.stats()
        assert s["cluster.up.upstream_cx_active"] == 0
        assert s["cluster.up.upstream_cx_destroy"] == 1


def test_refused_upstream_closes_the_downstream_with_uf(make_proxy):
    port = free_port()          # nothing listens there
    p = make_proxy([port])
    c, down = p.connect()
    assert p.read_to_eof(c) == b""
    assert down.state == "closed" and down.events == ["local_close"]
    info = p.tp.stream_info(0)
    assert info["response_flags"] == ["UF", "URX"]
    assert info["upstream_request_attempt_count"] == 1
    assert info["upstream_host"] == addr(port)
    s = p.stats()
    assert s["tcp.tp.downstream_cx_total"] == 1
    assert s["cluster.up.upstream_cx_connect_fail"] == 1
    assert s["cluster.up.upstream_cx_connect_attempts_exceeded"] == 1
    assert p.store.host_values()["up"][addr(port)]["cx_connect_fail"] == 1
    assert p.tp.live_connections == 0


def test_max_connect_attempts_bounds_the_retries(make_proxy):
    port = free_port()
    p = make_proxy([port], max_connect_attempts=3)
    c, down = p.connect()
    assert p.read_to_eof(c) == b""
    info = p.tp.stream_info(0)
    assert info["upstream_request_attempt_count"] == 3
    assert info["response_flags"] == ["UF", "URX"]
    s = p.stats()
    assert s["cluster.up.upstream_cx_connect_fail"] == 3
    assert s["cluster.up.upstream_cx_connect_attempts_exceeded"] == 1


def test_a_refused_connect_is_retried_on_the_next_host(make_proxy):
    refused = free_port()
    with echo_server() as up:
        p = make_proxy([refused, up.port], max_connect_attempts=2)
        # Round robin alternates between the two hosts, so of two
        # connections made in turn the second starts on the refused one,
        # whichever host the rotation began with.
        infos = []
        for i in range(2):
            c, down = p.connect()
            assert p.exchange(c, b"hi %d" % i, 4) == b"hi %d" % i
            infos.append(p.tp.stream_info(i))
        assert [i["upstream_host"] for i in infos] == [addr(up.port)] * 2
        second = infos[1]
        assert second["upstream_request_attempt_count"] == 2
        assert second["response_flags"] == ["UF"]
        retries = sum(i["upstream_request_attempt_count"] - 1 for i in infos)
        s = p.stats()
        assert s["cluster.up.upstream_cx_connect_fail"] == retries
        assert s["cluster.up.upstream_cx_connect_attempts_exceeded"] == 0
        assert up.accepted == 2


def test_idle_timeout_closes_both_connections(make_proxy):
    with echo_server() as up:
        p = make_proxy([up.port], idle_timeout="0.3s")
        c, down = p.connect()
        assert p.exchange(c, b"x", 1) == b"x"
        t0 = time.monotonic()
        assert p.read_to_eof(c) == b""
        assert time.monotonic() - t0 >= 0.2
        p.pump(lambda: p.tp.live_connections == 0, what="upstream closed")
        assert p.stats()["tcp.tp.idle_timeout"] == 1
        assert p.tp.stream_info(0)["response_flags"] == ["SI"]


def test_downstream_half_close_reaches_the_upstream_and_the_reply_comes_back(make_proxy):
    # The echo server answers, then shuts its write side when it reads EOF.
    with echo_server() as up:
        p = make_proxy([up.port])
        c, down = p.connect()
        p.pump(lambda: p.tp.has_upstream(0), what="upstream connected")
        c.sendall(b"ping")
        c.shutdown(socket.SHUT_WR)
        assert p.read_to_eof(c) == b"ping"
        p.pump(lambda: p.tp.live_connections == 0, what="both connections closed")


def test_upstream_half_close_leaves_the_downstream_writing(make_proxy):
    def greet_then_listen(conn):
        conn.settimeout(10)
        conn.sendall(b"greeting")
        conn.shutdown(socket.SHUT_WR)
        return recv_until_eof(conn)

    with scripted_server(greet_then_listen) as up:
        p = make_proxy([up.port])
        c, down = p.connect()
        assert p.read_to_eof(c) == b"greeting"
        assert down.state == "open"
        # Our write side is still open: the upstream hears it.
        c.sendall(b"after")
        c.shutdown(socket.SHUT_WR)
        p.pump(lambda: up.done >= 1, what="the upstream handler")
        assert up.errors == [] and up.results == [b"after"]
        p.pump(lambda: p.tp.live_connections == 0, what="both connections closed")
