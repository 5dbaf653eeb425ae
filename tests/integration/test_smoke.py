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


def test_sigterm_during_start_up_exits_zero(tmp_path):
    """A stop signal that arrives while the server is still starting (config,
    sockets, forking workers) is honoured once it can be, with exit code 0:
    never a half-started kill. (Before the interpreter has run envoy_fast's
    first line, the default action applies, as for any program.)"""
    import signal
    import subprocess
    import sys
    import time

    import yaml

    from helpers import ROOT

    with echo_server() as up:
        for delay in (0.4, 0.5, 0.6, 0.8):
            lp = free_port()
            cfg = tmp_path / "c.yaml"
            cfg.write_text(yaml.safe_dump(simple_proxy_config(up.port, lp, free_port())))
            proc = subprocess.Popen([sys.executable, "-m", "envoy_fast", "-c", str(cfg),
                                     "--concurrency", "2"], cwd=ROOT,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delay)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0, "delay %.2f" % delay


def test_ipv6_listener_and_upstream():
    """[::1] on both sides; the listener's stats are named as Envoy names them."""
    import pytest

    from helpers import bootstrap, cluster, listener, tcp_proxy_filter

    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no ::1")
    up = socket.socket(socket.AF_INET6)
    up.bind(("::1", 0))
    up.listen(8)
    port = probe.getsockname()[1]
    probe.close()
    ap = free_port()
    lst = listener("v6", port, [{"filters": [tcp_proxy_filter("up6")]}])
    lst["address"]["socket_address"]["address"] = "::1"
    cl = cluster("up6", [up.getsockname()[1]])
    cl["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
        "socket_address"]["address"] = "::1"
    with run_envoy_fast(bootstrap([lst], [cl], ap)) as proxy:
        with socket.create_connection(("::1", port), timeout=5) as c:
            u, _ = up.accept()
            c.sendall(b"six")
            assert u.recv(3) == b"six"
            u.sendall(b"ok")
            assert c.recv(2) == b"ok"
            u.close()
        s = proxy.stats()
        assert s["listener.[__1]_%d.downstream_cx_total" % port] == 1
        assert "v6::[::1]:%d" % port in proxy.admin("/listeners")
    up.close()
