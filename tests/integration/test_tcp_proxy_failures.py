"""tcp_proxy failure paths, load balancing and filter chain matching, on real
sockets; most cases run the same YAML through envoy_fast and the real Envoy
(the oracle), expecting the same outcome and the same stat values."""
import contextlib
import socket
import time
from typing import Dict, Optional

import pytest

from helpers import (IMPLS, abort, blackhole_server, bootstrap, cluster, connect_from,
                     free_port, is_open, listener, named_server, run_envoy_fast, run_impl,
                     tcp_proxy_filter, wait_closed, wait_stat)


def read_greeting(s: socket.socket, timeout: float = 3.0) -> Optional[str]:
    """The name a named_server greets with, or None if the proxy closed the
    connection without sending a byte."""
    s.settimeout(timeout)
    buf = b""
    while not buf.endswith(b"\n"):
        try:
            d = s.recv(100)
        except ConnectionResetError:
            d = b""
        if not d:
            assert buf == b"", "closed mid-greeting after %r" % buf
            return None
        buf += d
    return buf[:-1].decode()


def greet_once(port: int, **kw) -> Optional[str]:
    s = connect_from(port, **kw)
    try:
        return read_greeting(s)
    finally:
        abort(s)


def echo_ok(s: socket.socket, payload: bytes = b"ping") -> bool:
    s.settimeout(3)
    s.sendall(payload)
    got = b""
    while len(got) < len(payload):
        d = s.recv(100)
        if not d:
            return False
        got += d
    return got == payload


# ------------------------------------------------------------ connect failures

@pytest.mark.parametrize("impl", IMPLS)
def test_upstream_refused_closes_promptly_and_counts(impl):
    dead = free_port()   # nothing listens there: each connect is refused at once
    l1, l3, ap = free_port(), free_port(), free_port()
    cfg = bootstrap(
        [listener("one", l1, [{"filters": [tcp_proxy_filter("c1", stat_prefix="one")]}]),
         listener("three", l3, [{"filters": [tcp_proxy_filter("c3", stat_prefix="three",
                                                                max_connect_attempts=3)]}])],
        [cluster("c1", [dead]), cluster("c3", [dead])], ap)
    with run_impl(impl, cfg) as proxy:
        for port, c, attempts in ((l1, "c1", 1), (l3, "c3", 3)):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                data, took = wait_closed(s, 5)
            assert data == b""
            assert took < 1.0, "%s: downstream closed after %.2fs" % (c, took)
            st = wait_stat(proxy, "cluster.%s.upstream_cx_connect_attempts_exceeded" % c, 1)
            assert st["cluster.%s.upstream_cx_connect_fail" % c] == attempts
            assert st["cluster.%s.upstream_cx_total" % c] == attempts
            assert st["cluster.%s.upstream_cx_connect_timeout" % c] == 0
            assert st["cluster.%s.upstream_cx_active" % c] == 0
        assert st["tcp.one.downstream_cx_total"] == 1
        assert st["tcp.three.downstream_cx_total"] == 1


@pytest.mark.parametrize("impl", IMPLS)
def test_connect_timeout_closes_downstream(impl):
    with blackhole_server() as hole:
        lp, ap = free_port(), free_port()
        cfg = bootstrap([listener("l0", lp, [{"filters": [tcp_proxy_filter("up")]}])],
                        [cluster("up", [hole.port], connect_timeout="0.25s")], ap)
        with run_impl(impl, cfg) as proxy:
            with socket.create_connection(("127.0.0.1", lp), timeout=5) as s:
                data, took = wait_closed(s, 5)
            assert data == b""
            assert 0.2 <= took < 1.0, "closed after %.3fs, connect_timeout is 0.25s" % took
            st = wait_stat(proxy, "cluster.up.upstream_cx_connect_timeout", 1)
            assert st["cluster.up.upstream_cx_connect_attempts_exceeded"] == 1
            assert st["cluster.up.upstream_cx_total"] == 1
            wait_stat(proxy, "cluster.up.upstream_cx_active", 0)
            wait_stat(proxy, "cluster.up.upstream_rq_pending_active", 0)


# ------------------------------------------------------------------ idle timeout

@pytest.mark.parametrize("impl", IMPLS)
def test_idle_timeout(impl):
    with named_server("up") as up:
        lp, ap = free_port(), free_port()
        cfg = bootstrap([listener("l0", lp, [{"filters": [tcp_proxy_filter("up", idle_timeout="0.5s")]}])],
                        [cluster("up", [up.port])], ap)
        with run_impl(impl, cfg) as proxy:
            # An idle connection: closed on both sides after ~0.5 s.
            with socket.create_connection(("127.0.0.1", lp), timeout=5) as s:
                assert read_greeting(s) == "up"
                t0 = time.monotonic()
                data, took = wait_closed(s, 5)
            assert data == b""
            assert 0.35 <= took < 1.5, "idle connection closed after %.2fs" % took
            up.wait_done(1, timeout=3)
            assert up.results[0] - t0 < 1.5        # the upstream saw the close too
            assert wait_stat(proxy, "tcp.tp.idle_timeout", 1)

            # Traffic every 0.2 s for 1.5 s keeps a connection open.
            with socket.create_connection(("127.0.0.1", lp), timeout=5) as s:
                assert read_greeting(s) == "up"
                end = time.monotonic() + 1.5
                while time.monotonic() < end:
                    assert echo_ok(s, b"tick"), "active connection was closed"
                    time.sleep(0.2)
                assert is_open(s, 0.05)
                assert echo_ok(s, b"still here")
            assert proxy.stats()["tcp.tp.idle_timeout"] == 1
            up.wait_done(2, timeout=3)


# ------------------------------------------------------------ load balancing

@pytest.mark.parametrize("impl", IMPLS)
def test_weighted_clusters_split(impl):
    with named_server("a") as a, named_server("b") as b:
        lp, ap = free_port(), free_port()
        wc = {"clusters": [{"name": "a", "weight": 1}, {"name": "b", "weight": 3}]}
        cfg = bootstrap([listener("l0", lp, [{"filters": [tcp_proxy_filter(weighted_clusters=wc)]}])],
                        [cluster("a", [a.port]), cluster("b", [b.port])], ap)
        with run_impl(impl, cfg) as proxy:
            hits = {"a": 0, "b": 0}
            for _ in range(400):
                hits[greet_once(lp)] += 1
            share = hits["a"] / 400
            assert 0.15 <= share <= 0.35, hits
            st = proxy.stats()
            assert st["cluster.a.upstream_cx_total"] == hits["a"]
            assert st["cluster.b.upstream_cx_total"] == hits["b"]


@pytest.mark.parametrize("impl", IMPLS)
def test_lb_policies_spread_over_hosts(impl):
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(named_server("h%d" % i)) for i in range(3)]
        ports = [s.port for s in servers]
        lps = {p: free_port() for p in ("ROUND_ROBIN", "LEAST_REQUEST", "RANDOM")}
        ap = free_port()
        cfg = bootstrap(
            [listener(p, lp, [{"filters": [tcp_proxy_filter(p.lower(), stat_prefix=p.lower())]}])
             for p, lp in lps.items()],
            [cluster(p.lower(), ports, lb_policy=p) for p in lps], ap)
        with run_impl(impl, cfg):
            rr: Dict[str, int] = {}
            for _ in range(30):
                n = greet_once(lps["ROUND_ROBIN"])
                rr[n] = rr.get(n, 0) + 1
            assert rr == {"h0": 10, "h1": 10, "h2": 10}
            for policy in ("LEAST_REQUEST", "RANDOM"):
                got: Dict[str, int] = {}
                for _ in range(60):
                    n = greet_once(lps[policy])
                    got[n] = got.get(n, 0) + 1
                assert set(got) == {"h0", "h1", "h2"}, (policy, got)


# ----------------------------------------------------------- circuit breakers

def breaker_cluster(name, ports, **thresholds):
    return cluster(name, ports, circuit_breakers={"thresholds": [dict(priority="DEFAULT", **thresholds)]})


@pytest.mark.parametrize("impl", IMPLS)
def test_max_connections_overflow(impl):
    with named_server("up") as up:
        lp, ap = free_port(), free_port()
        cfg = bootstrap([listener("l0", lp, [{"filters": [tcp_proxy_filter("up")]}])],
                        [breaker_cluster("up", [up.port], max_connections=2)], ap)
        with run_impl(impl, cfg) as proxy:
            held = [socket.create_connection(("127.0.0.1", lp), timeout=5) for _ in range(2)]
            try:
                assert [read_greeting(s) for s in held] == ["up", "up"]
                with socket.create_connection(("127.0.0.1", lp), timeout=5) as s:
                    data, took = wait_closed(s, 5)
                assert data == b"" and took < 1.0, (data, took)
                st = wait_stat(proxy, "cluster.up.upstream_cx_overflow", 1)
                assert st["cluster.up.upstream_cx_total"] == 2
                assert st["cluster.up.upstream_cx_connect_attempts_exceeded"] == 0
                assert up.accepted == 2
                held.pop().close()
                wait_stat(proxy, "cluster.up.upstream_cx_active", 1)
                with socket.create_connection(("127.0.0.1", lp), timeout=5) as s:
                    assert read_greeting(s) == "up"
                    assert echo_ok(s)
                assert proxy.stats()["cluster.up.upstream_cx_overflow"] == 1
            finally:
                for s in held:
                    s.close()


@pytest.mark.parametrize("impl", IMPLS)
def test_max_pending_requests_overflow(impl):
    with blackhole_server() as hole:
        lp, ap = free_port(), free_port()
        cfg = bootstrap([listener("l0", lp, [{"filters": [tcp_proxy_filter("up")]}])],
                        [breaker_cluster("up", [hole.port], max_pending_requests=1)], ap)
        cfg["static_resources"]["clusters"][0]["connect_timeout"] = "10s"
        with run_impl(impl, cfg) as proxy:
            with socket.create_connection(("127.0.0.1", lp), timeout=5) as first:
                wait_stat(proxy, "cluster.up.upstream_rq_pending_active", 1)
                with socket.create_connection(("127.0.0.1", lp), timeout=5) as second:
                    data, took = wait_closed(second, 5)
                assert data == b"" and took < 1.0, (data, took)
                assert is_open(first, 0.2), "the waiting connection was closed too"
                st = wait_stat(proxy, "cluster.up.upstream_rq_pending_overflow", 1)
                assert st["cluster.up.upstream_rq_pending_active"] == 1
                assert st["cluster.up.upstream_cx_total"] == 1
                assert st["cluster.up.upstream_cx_active"] == 1
                # Envoy counts a pending overflow as attempts exceeded too.
                assert st["cluster.up.upstream_cx_connect_attempts_exceeded"] == 1
            assert proxy.stats()["cluster.up.upstream_rq_pending_overflow"] == 1


@contextlib.contextmanager
def pending_downstream(impl: str):
    """A downstream whose upstream (a blackhole, connect_timeout 0.5 s) is
    still connecting: yields (proxy, socket) once its stream is pending."""
    with blackhole_server() as hole:
        lp, ap = free_port(), free_port()
        cfg = bootstrap([listener("l0", lp, [{"filters": [tcp_proxy_filter("up")]}])],
                        [cluster("up", [hole.port], connect_timeout="0.5s")], ap)
        with run_impl(impl, cfg) as proxy:
            s = socket.create_connection(("127.0.0.1", lp), timeout=5)
            wait_stat(proxy, "cluster.up.upstream_rq_pending_active", 1)
            yield proxy, s


def assert_pending_until_connect_timeout(proxy) -> Dict[str, int]:
    """The pending stream outlives its downstream's close and ends only at
    connect_timeout, without a cancel; returns the stats then."""
    time.sleep(0.15)
    assert proxy.stats()["cluster.up.upstream_rq_pending_active"] == 1
    st = wait_stat(proxy, "cluster.up.upstream_rq_pending_active", 0, timeout=3)
    assert st["cluster.up.upstream_cx_connect_timeout"] == 1
    assert st["cluster.up.upstream_rq_cancelled"] == 0
    return st


@pytest.mark.parametrize("impl", IMPLS)
def test_downstream_fin_while_connecting_goes_unnoticed(impl):
    """As Envoy: the downstream is read-disabled until its upstream connects,
    and with half-close a FIN is data for later, not a close: the pending
    stream waits for connect_timeout and then fails (pending_failure_eject)."""
    with pending_downstream(impl) as (proxy, s):
        s.close()
        st = assert_pending_until_connect_timeout(proxy)
        assert st["cluster.up.upstream_rq_pending_failure_eject"] == 1
        wait_stat(proxy, "cluster.up.upstream_cx_active", 0)


@pytest.mark.parametrize("impl", IMPLS)
def test_downstream_reset_while_connecting(impl):
    """A downstream RST while its upstream is connecting: Envoy does not see it
    (it is not reading) and the stream waits for connect_timeout. envoy_fast
    still watches a read-disabled socket for errors, so the pending stream is
    cancelled at once (a deliberate difference, see docs/decisions.md)."""
    with pending_downstream(impl) as (proxy, s):
        abort(s)
        if impl == "envoy":
            assert_pending_until_connect_timeout(proxy)
        else:
            st = wait_stat(proxy, "cluster.up.upstream_rq_pending_active", 0, timeout=0.3)
            assert st["cluster.up.upstream_rq_cancelled"] == 1
            assert st["cluster.up.upstream_cx_connect_timeout"] == 0
            assert st["cluster.up.upstream_cx_connect_fail"] == 0
        wait_stat(proxy, "cluster.up.upstream_cx_active", 0)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("timer", ["max_downstream_connection_duration", "idle_timeout"])
def test_pending_stream_cancelled_when_downstream_closed(impl, timer):
    """A tcp_proxy timer closing the downstream while its upstream is still
    connecting cancels the pending stream (and its connection): Envoy runs
    both timers from accept, not from the upstream connect."""
    with blackhole_server() as hole:
        lp, ap = free_port(), free_port()
        cfg = bootstrap([listener("l0", lp, [{"filters": [tcp_proxy_filter("up", **{timer: "0.3s"})]}])],
                        [cluster("up", [hole.port], connect_timeout="10s")], ap)
        with run_impl(impl, cfg) as proxy:
            with socket.create_connection(("127.0.0.1", lp), timeout=5) as s:
                data, took = wait_closed(s, 3)
            assert data == b"" and 0.2 <= took < 1.0, (data, took)
            st = wait_stat(proxy, "cluster.up.upstream_rq_cancelled", 1)
            st = wait_stat(proxy, "cluster.up.upstream_rq_pending_active", 0)
            st = wait_stat(proxy, "cluster.up.upstream_cx_active", 0)
            assert st["tcp.tp.%s" % timer] == 1
            assert st["cluster.up.upstream_cx_destroy_local"] == 1
            assert st["cluster.up.upstream_cx_connect_fail"] == 0
            assert st["cluster.up.upstream_cx_connect_timeout"] == 0
            assert st["cluster.up.upstream_rq_pending_failure_eject"] == 0


def test_max_connections_is_cluster_wide_over_workers():
    """Rounds of 4 quick connections through 2 workers, max_connections 2:
    each round exactly 2 are proxied and 2 closed at once (never 3, never one
    left waiting), and the connections do reach both workers."""
    with named_server("up") as up:
        lp, ap = free_port(), free_port()
        cfg = bootstrap([listener("l0", lp, [{"filters": [tcp_proxy_filter("up")]}])],
                        [breaker_cluster("up", [up.port], max_connections=2)], ap)
        w0 = "listener.127.0.0.1_%d.worker_0.downstream_cx_total" % lp
        w1 = "listener.127.0.0.1_%d.worker_1.downstream_cx_total" % lp
        rounds = 60
        with run_envoy_fast(cfg, concurrency=2) as proxy:
            spread = 0
            for rnd in range(rounds):
                before = proxy.stats()
                conns = [socket.create_connection(("127.0.0.1", lp), timeout=5) for _ in range(4)]
                try:
                    outcomes = []
                    for s in conns:
                        try:
                            outcomes.append(read_greeting(s, timeout=3))
                        except socket.timeout:
                            outcomes.append("neither proxied nor closed after 3s")
                    after = proxy.stats()
                    assert sorted(outcomes, key=str) == [None, None, "up", "up"], (rnd, outcomes)
                finally:
                    for s in conns:
                        s.close()
                spread += after[w0] > before[w0] and after[w1] > before[w1]
                wait_stat(proxy, "cluster.up.upstream_cx_active", 0)
            assert spread, "no round reached both workers"
            st = proxy.stats()
            assert st["cluster.up.upstream_cx_total"] == 2 * rounds
            assert st["cluster.up.upstream_cx_overflow"] == 2 * rounds
            assert st[w0] + st[w1] == 4 * rounds


def test_listener_per_worker_stats():
    with named_server("up") as up:
        lp, ap = free_port(), free_port()
        cfg = bootstrap([listener("l0", lp, [{"filters": [tcp_proxy_filter("up")]}])],
                        [cluster("up", [up.port])], ap)
        with run_envoy_fast(cfg, concurrency=2) as proxy:
            for _ in range(20):
                assert greet_once(lp) == "up"
            pre = "listener.127.0.0.1_%d." % lp
            st = wait_stat(proxy, pre + "downstream_cx_active", 0)
            assert st[pre + "downstream_cx_total"] == 20
            assert st[pre + "worker_0.downstream_cx_total"] + st[pre + "worker_1.downstream_cx_total"] == 20
            assert st[pre + "worker_0.downstream_cx_active"] == st[pre + "worker_1.downstream_cx_active"] == 0


# ------------------------------------------------------------ filter chains

def _chain(name: str, match: Optional[dict] = None) -> dict:
    ch = {"filters": [tcp_proxy_filter(name, stat_prefix=name)]}
    if match is not None:
        ch["filter_chain_match"] = match
    return ch


def _cidr(ip: str, n: int) -> dict:
    return {"address_prefix": ip, "prefix_len": n}


@pytest.mark.parametrize("impl", IMPLS)
def test_filter_chain_match_precedence(impl):
    names = ["src32", "src8", "sport", "src4_sport", "noport", "otherport", "default", "l2"]
    with contextlib.ExitStack() as stack:
        servers = {n: stack.enter_context(named_server(n)) for n in names}
        lp1, lp2, ap, sp = free_port(), free_port(), free_port(), free_port()
        other = free_port()
        chains = [
            _chain("src32", {"destination_port": lp1, "source_prefix_ranges": [_cidr("127.0.0.2", 32)]}),
            _chain("src8", {"destination_port": lp1, "source_prefix_ranges": [_cidr("127.0.0.0", 8)]}),
            _chain("sport", {"destination_port": lp1, "source_prefix_ranges": [_cidr("127.0.0.0", 8)],
                                  "source_ports": [sp]}),
            _chain("src4_sport", {"destination_port": lp1, "source_prefix_ranges": [_cidr("127.0.0.4", 32)],
                                       "source_ports": [sp]}),
            # exact destination port beats unset: never chosen
            _chain("noport", {"source_prefix_ranges": [_cidr("127.0.0.3", 32)]}),
            # another destination port never matches
            _chain("otherport", {"destination_port": other}),
        ]
        cfg = bootstrap(
            [listener("l1", lp1, chains, default_filter_chain=_chain("default")),
             listener("l2", lp2, [_chain("l2", {"source_prefix_ranges": [_cidr("127.0.0.2", 32)]})])],
            [cluster(n, [servers[n].port]) for n in names], ap)
        cases = [
            (("127.0.0.2", 0), "src32"),
            (("127.0.0.1", 0), "src8"),
            (("127.0.0.1", sp), "sport"),       # source port narrows within the /8
            (("127.0.0.2", sp), "src32"),       # longest source prefix before source port
            (("127.0.0.3", 0), "src8"),         # the port-less chain lost at step one
            (("127.0.0.4", 0), "default"),      # /32 wins, its source_ports miss: no fallback
            (("127.0.0.4", sp), "src4_sport"),
        ]
        with run_impl(impl, cfg) as proxy:
            got = [(src, greet_once(lp1, src_ip=src[0], src_port=src[1])) for src, _ in cases]
            assert got == cases

            assert greet_once(lp2, src_ip="127.0.0.2") == "l2"
            with connect_from(lp2, src_ip="127.0.0.1") as s:
                data, took = wait_closed(s, 5)
            assert data == b"" and took < 1.0, (data, took)
            st = wait_stat(proxy, "listener.127.0.0.1_%d.no_filter_chain_match" % lp2, 1)
            assert st["listener.127.0.0.1_%d.no_filter_chain_match" % lp1] == 0
            assert servers["noport"].accepted == servers["otherport"].accepted == 0
