"""Per-listener connection limit from the runtime, on envoy_fast and Envoy."""
import socket

import pytest

from helpers import (IMPLS, bootstrap, cluster, echo_server, free_port, is_open, listener,
                     run_impl, tcp_proxy_filter, wait_closed, wait_stat)


@pytest.mark.parametrize("impl", IMPLS)
def test_runtime_connection_limit(impl):
    with echo_server() as up:
        lp, ap = free_port(), free_port()
        cfg = bootstrap([listener("l0", lp, [{"filters": [tcp_proxy_filter("up")]}])],
                        [cluster("up", [up.port])], ap)
        cfg["layered_runtime"] = {"layers": [{"name": "static", "static_layer": {
            "envoy.resource_limits.listener.l0.connection_limit": 2}}]}
        with run_impl(impl, cfg) as proxy:
            held = []
            for i in range(2):
                c = socket.create_connection(("127.0.0.1", lp), timeout=5)
                c.sendall(b"ping")
                assert c.recv(4) == b"ping"
                held.append(c)
            third = socket.create_connection(("127.0.0.1", lp), timeout=5)
            data, took = wait_closed(third, 3)
            assert data == b"" and took < 1.0
            st = wait_stat(proxy, "listener.127.0.0.1_%d.downstream_cx_overflow" % lp, 1)
            assert st["listener.127.0.0.1_%d.downstream_cx_total" % lp] == 2
            assert all(is_open(c) for c in held)
            held.pop().close()
            wait_stat(proxy, "listener.127.0.0.1_%d.downstream_cx_active" % lp, 1)
            c = socket.create_connection(("127.0.0.1", lp), timeout=5)
            c.sendall(b"again")
            assert c.recv(5) == b"again"
            c.close()
            for c in held:
                c.close()
