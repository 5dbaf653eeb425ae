"""ClusterManagerImpl: a worker's clusters added, updated and removed at run
time by control messages carrying the same plan Structs as start-up, and the
pools owned by the cluster (per host), surviving an update for the hosts
that stay. A real Worker, real control socketpair, real echo upstreams."""
import socket
import time

import msgspec
import pytest
import yaml

from envoy_fast._worker import Worker
from envoy_fast.config import load_bootstrap
from envoy_fast.server.plan import build_cluster_plan, build_plan
from envoy_fast.stats.store import StatsLayout, StatsStore
from helpers import bootstrap, cluster, echo_server, listener, tcp_proxy_filter


class Node:
    """A Worker on listener l0 -> tcp_proxy -> cluster "up", with its control channel."""

    def __init__(self, up_ports):
        self.errors = []
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.lsock.setblocking(False)
        self.port = self.lsock.getsockname()[1]
        self.layout = None
        bs = self.bootstrap({"up": up_ports})
        self.layout = StatsLayout(bs, 1)
        self.store = StatsStore(self.layout)
        self.control, child = socket.socketpair()
        self.worker = Worker(build_plan(bs, self.layout, {"l0": self.lsock.fileno()}),
                             self.store.mem, 0, child.detach(), error_log=self.errors.append)

    def bootstrap(self, clusters):
        cfg = bootstrap([listener("l0", self.port, [{"filters": [tcp_proxy_filter("up")]}])],
                        [cluster(name, ports) for name, ports in clusters.items()])
        bs = load_bootstrap(config_yaml=yaml.safe_dump(cfg))
        if self.layout is not None:
            self.layout.extend(bs)
        return bs

    def send(self, *msgs):
        """Frames of `msgs`, sent in one write."""
        out = b""
        for msg in msgs:
            data = msgspec.msgpack.encode(msg)
            out += len(data).to_bytes(4, "big") + data
        self.control.sendall(out)
        self.worker.run_for_test(0.05)

    def send_cluster(self, clusters, name):
        bs = self.bootstrap(clusters)
        (c,) = [c for c in bs.static_resources.clusters if c.name == name]
        self.send({"op": "cluster", "cluster": build_cluster_plan(c, self.layout)})

    def echo(self, conn, payload):
        conn.sendall(payload)
        got = b""
        deadline = time.monotonic() + 5
        while len(got) < len(payload) and time.monotonic() < deadline:
            self.worker.run_for_test(0.02)
            try:
                got += conn.recv(65536)
            except BlockingIOError:
                pass
        return got

    def connect(self):
        c = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        c.setblocking(False)
        return c

    def close(self):
        self.worker.close_all()
        self.worker.run_for_test(0.05)
        self.control.close()
        self.lsock.close()


def addr(port):
    return "127.0.0.1:%d" % port


def test_update_adds_a_host_and_keeps_the_connections_of_the_others():
    with echo_server() as a, echo_server() as b:
        n = Node([a.port])
        c = n.connect()
        assert n.echo(c, b"one") == b"one"
        assert set(n.worker.pool_counts_for_test("up")) == {addr(a.port)}
        n.send_cluster({"up": [a.port, b.port]}, "up")
        picks = {n.worker.choose_host_for_test("up") for _ in range(10)}
        assert picks == {addr(a.port), addr(b.port)}
        # The connection opened before the update still works, on the same pool.
        assert n.echo(c, b"two") == b"two"
        assert n.worker.pool_counts_for_test("up")[addr(a.port)]["busy"] == 1
        # New connections reach the new host.
        conns = [n.connect() for _ in range(4)]
        for i, x in enumerate(conns):
            assert n.echo(x, b"x%d" % i) == b"x%d" % i
        assert b.accepted >= 1
        hosts = n.store.host_values()["up"]
        assert hosts[addr(b.port)]["cx_total"] >= 1
        for x in conns + [c]:
            x.close()
        n.close()


def test_update_removes_a_host():
    with echo_server() as a, echo_server() as b:
        n = Node([a.port, b.port])
        n.send_cluster({"up": [b.port]}, "up")
        assert {n.worker.choose_host_for_test("up") for _ in range(10)} == {addr(b.port)}
        c = n.connect()
        assert n.echo(c, b"hi") == b"hi"
        assert a.accepted == 0 and b.accepted == 1
        c.close()
        n.close()


def test_add_and_remove_a_cluster_at_run_time():
    with echo_server() as a:
        n = Node([a.port])
        with pytest.raises(ValueError, match="unknown cluster"):
            n.worker.choose_host_for_test("later")
        n.send_cluster({"up": [a.port], "later": [a.port, 9]}, "later")
        assert {n.worker.choose_host_for_test("later") for _ in range(10)} == {addr(a.port), addr(9)}
        assert sorted(n.worker.cluster_manager_for_test.names()) == ["later", "up"]
        n.send({"op": "remove_cluster", "name": "later"})
        with pytest.raises(ValueError, match="unknown cluster"):
            n.worker.choose_host_for_test("later")
        assert n.worker.cluster_manager_for_test.names() == ["up"]
        n.close()


def test_a_bad_cluster_message_is_refused_alone():
    with echo_server() as a:
        n = Node([a.port])
        bs = n.bootstrap({"up": [a.port], "later": [a.port]})
        later = build_cluster_plan(bs.static_resources.clusters[1], n.layout)
        # A frame that is no cluster plan, then a good one in the same write.
        n.send({"op": "cluster", "cluster": {"type": "STRICT_DNS", "name": "up"}},
               {"op": "cluster", "cluster": later})
        assert len(n.errors) == 1 and "control message refused" in n.errors[0], n.errors
        assert "STRICT_DNS" in n.errors[0]
        assert sorted(n.worker.cluster_manager_for_test.names()) == ["later", "up"]
        # "up" is unchanged and still proxies.
        assert {n.worker.choose_host_for_test("up") for _ in range(3)} == {addr(a.port)}
        c = n.connect()
        assert n.echo(c, b"ok") == b"ok"
        c.close()
        n.close()


def test_pools_belong_to_the_cluster_not_the_address():
    # Two clusters with the same endpoint: each cluster has its own pool.
    # (Not "y": a plain YAML y is a boolean, to Envoy as to envoy_fast.)
    with echo_server() as a:
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(16)
        lsock.setblocking(False)
        port = lsock.getsockname()[1]
        cfg = bootstrap([listener("l0", port, [{"filters": [tcp_proxy_filter(
            None, weighted_clusters={"clusters": [{"name": "x", "weight": 1},
                                                  {"name": "z", "weight": 1}]})]}])],
                        [cluster("x", [a.port]), cluster("z", [a.port])])
        bs = load_bootstrap(config_yaml=yaml.safe_dump(cfg))
        layout = StatsLayout(bs, 1)
        store = StatsStore(layout)
        w = Worker(build_plan(bs, layout, {"l0": lsock.fileno()}), store.mem, 0)
        conns = []
        deadline = time.monotonic() + 10
        while not (w.pool_counts_for_test("x") and w.pool_counts_for_test("z")):
            assert time.monotonic() < deadline
            conns.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            w.run_for_test(0.05)
        x = w.pool_counts_for_test("x")[addr(a.port)]
        y = w.pool_counts_for_test("z")[addr(a.port)]
        assert x["busy"] + y["busy"] == len(conns)
        assert x["busy"] >= 1 and y["busy"] >= 1
        for c in conns:
            c.close()
        w.close_all()
        lsock.close()
