"""Who closed an upstream connection is counted as Envoy counts it
(upstream_cx_destroy_{local,remote}[_with_active_rq]), for a client close, a
half-close, and a reset; run on envoy_fast and the real Envoy."""
import socket
import time

from helpers import (abort, echo_server, free_port, recv_exactly, recv_until_eof, require_peer,
                     run_impl, simple_proxy_config, wait_for)


def _destroy_stats(impl):
    seen = []
    with echo_server() as up:
        lp, ap = free_port(), free_port()
        with run_impl(impl, simple_proxy_config(up.port, lp, ap)) as proxy:
            for n, mode in enumerate(("close", "half_close", "reset"), 1):
                c = socket.create_connection(("127.0.0.1", lp), timeout=5)
                c.sendall(b"x")
                recv_exactly(c, 1)
                if mode == "close":
                    c.close()
                elif mode == "reset":
                    abort(c)
                else:
                    c.shutdown(socket.SHUT_WR)
                    recv_until_eof(c)
                    c.close()
                wait_for(lambda: proxy.stats().get("cluster.up.upstream_cx_destroy") == n,
                         timeout=5, what="upstream closed")
                time.sleep(0.1)
                seen.append({k: v for k, v in proxy.stats().items()
                             if k.startswith("cluster.up.upstream_cx_destroy")})
    return seen


def test_close_accounting_matches_envoy():
    ours = _destroy_stats("envoy_fast")
    assert ours[-1]["cluster.up.upstream_cx_destroy_remote"] == 2
    assert ours[-1]["cluster.up.upstream_cx_destroy_local"] == 1
    require_peer("envoy")
    assert ours == _destroy_stats("envoy")
