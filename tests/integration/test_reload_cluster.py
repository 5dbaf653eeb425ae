"""A reload (SIGHUP) that changes a cluster: its endpoints, circuit breakers
and load-balancing policy apply to new connections, while connections made
before the reload keep going to the old endpoints until they close."""
import socket
import time

from helpers import (cluster, free_port, named_server, recv_exactly, run_envoy_fast,
                     simple_proxy_config, wait_closed, wait_for, wait_stat)

NEW = 12    # connections held at once after the reload


def _config(lp, ap, ports, lb_policy, max_connections):
    cfg = simple_proxy_config(ports[0], lp, ap)
    cfg["static_resources"]["clusters"] = [cluster(
        "up", ports, lb_policy=lb_policy,
        circuit_breakers={"thresholds": [{"max_connections": max_connections}]})]
    return cfg


def _open(lp):
    """Connect through the proxy; (socket, upstream name) or (None, None)
    when the proxy closes it without an upstream (circuit breaker)."""
    c = socket.create_connection(("127.0.0.1", lp), timeout=10)
    try:
        return c, recv_exactly(c, 2).decode().strip()
    except (AssertionError, ConnectionResetError):
        c.close()
        return None, None


def _echo(c, payload=b"still here"):
    c.sendall(payload)
    assert recv_exactly(c, len(payload)) == payload


def test_reload_changes_endpoints_breakers_and_policy_for_new_connections():
    with named_server("A") as a, named_server("B") as b, named_server("C") as c:
        lp, ap = free_port(), free_port()
        with run_envoy_fast(_config(lp, ap, [a.port], "RANDOM", 1)) as proxy:
            old, name = _open(lp)
            assert name == "A"
            # max_connections 1 is held by `old`: the next one overflows.
            extra = socket.create_connection(("127.0.0.1", lp), timeout=10)
            assert wait_closed(extra)[0] == b""
            extra.close()
            wait_stat(proxy, "cluster.up.upstream_cx_overflow", 1)
            assert a.accepted == 1

            proxy.reload(_config(lp, ap, [b.port, c.port], "ROUND_ROBIN", NEW + 1))
            wait_stat(proxy, "server.draining_generations", 1)
            # The first new connection the new generation serves; then every
            # later one is its too (the old one has stopped accepting).
            deadline = time.monotonic() + 10
            while True:
                s, name = _open(lp)
                assert name in (None, "B", "C"), name
                if s is not None:
                    s.close()
                    break
                assert time.monotonic() < deadline, "no connection reached the new endpoints"

            _echo(old)     # the old connection still goes to A
            held, names = [], []
            for _ in range(NEW):
                s, name = _open(lp)
                assert s is not None, "new connection %d refused (breaker not raised)" % len(names)
                held.append(s)
                names.append(name)
            # Endpoints: only B and C; policy: ROUND_ROBIN alternates (RANDOM
            # would do so for 12 in a row once in 2048).
            assert names in (["B", "C"] * (NEW // 2), ["C", "B"] * (NEW // 2)), names
            assert a.accepted == 1
            # The new limit holds, and counts every connection to the cluster,
            # the old generation's too (the upstream never sees more than
            # max_connections from this proxy, reload or not): old + NEW.
            wait_stat(proxy, "cluster.up.upstream_cx_active", NEW + 1)
            overflow = proxy.stats()["cluster.up.upstream_cx_overflow"]
            assert _open(lp)[0] is None, "max_connections %d not enforced" % (NEW + 1)
            wait_stat(proxy, "cluster.up.upstream_cx_overflow", overflow + 1)
            # The old connection keeps going; once it closes, its slot is free.
            _echo(old)
            old.close()
            a.wait_done(1)
            wait_stat(proxy, "cluster.up.upstream_cx_active", NEW)
            s, name = _open(lp)
            assert name in ("B", "C"), name
            held.append(s)
            for s in held:
                _echo(s)
                s.close()
            # The old generation ends once its last connection is gone.
            wait_stat(proxy, "server.draining_generations", 0, timeout=10)
            wait_stat(proxy, "cluster.up.upstream_cx_active", 0)
            assert a.accepted == 1
