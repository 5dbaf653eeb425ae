"""The bundled example and a first echo round trip through a real process."""
import socket

from helpers import echo_server, free_port, run_envoy_fast, simple_proxy_config


def test_echo_round_trip_and_stats():
    with echo_server() as up:
        lp, ap = free_port(), free_port()
        with run_envoy_fast(simple_proxy_config(up.port, lp, ap)) as proxy:
            with socket.create_connection(("127.0.0.1", lp), timeout=5) as c:
                c.sendall(b"hello envoy_fast")
                assert c.recv(100) == b"hello envoy_fast"
            s = proxy.stats()
            assert s["tcp.tp.downstream_cx_total"] == 1
            assert s["cluster.up.upstream_cx_total"] == 1
            assert s["listener.127.0.0.1_%d.downstream_cx_total" % lp] == 1


def test_per_worker_listener_stats():
    with echo_server() as up:
        lp, ap = free_port(), free_port()
        with run_envoy_fast(simple_proxy_config(up.port, lp, ap), concurrency=2) as proxy:
            for _ in range(20):
                with socket.create_connection(("127.0.0.1", lp), timeout=5) as c:
                    c.sendall(b"x")
                    assert c.recv(1) == b"x"
            s = proxy.stats()
            prefix = "listener.127.0.0.1_%d." % lp
            per = [s[prefix + "worker_%d.downstream_cx_total" % i] for i in range(2)]
            assert sum(per) == s[prefix + "downstream_cx_total"] == 20
