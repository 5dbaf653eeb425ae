"""Endpoint health_status and healthy_panic_threshold, through real
connections: envoy_fast and the real Envoy run the same YAML and must send
traffic to the same hosts and count the same lb_healthy_panic and
upstream_cx_none_healthy."""
import contextlib
from collections import Counter

import pytest

from helpers import (bootstrap, cluster, free_port, listener, named_server, require_peer,
                     run_impl, tcp_proxy_filter)
from test_tcp_proxy_failures import greet_once


def health_cluster(ports_and_statuses, threshold=None):
    c = cluster("up", [p for p, _ in ports_and_statuses])
    for ep, (_, status) in zip(c["load_assignment"]["endpoints"][0]["lb_endpoints"],
                               ports_and_statuses):
        ep["health_status"] = status
    if threshold is not None:
        c["common_lb_config"] = {"healthy_panic_threshold": {"value": threshold}}
    return c


def run_case(impl, statuses, threshold, n):
    """Connect n times through `impl`; returns (Counter of the host index that
    greeted, or None when the proxy closed at once; the cluster's stats)."""
    with contextlib.ExitStack() as stack:
        ups = [stack.enter_context(named_server("h%d" % i)) for i in range(len(statuses))]
        lp, ap = free_port(), free_port()
        cfg = bootstrap([listener("l0", lp, [{"filters": [tcp_proxy_filter("up")]}])],
                        [health_cluster([(u.port, s) for u, s in zip(ups, statuses)], threshold)], ap)
        with run_impl(impl, cfg) as proxy:
            got = Counter(greet_once(lp) for _ in range(n))
            st = proxy.stats()
    return got, {k: st["cluster.up." + k] for k in ("lb_healthy_panic", "upstream_cx_none_healthy")}


CASES = [
    # (statuses, healthy_panic_threshold or None for the default 50 %)
    (["HEALTHY", "UNHEALTHY"], None),                  # 50 % healthy: no panic, h0 only
    (["UNKNOWN", "UNHEALTHY", "UNHEALTHY"], None),     # 33 %: panic, every host
    (["HEALTHY", "TIMEOUT", "TIMEOUT"], 30),           # above a lower threshold: h0 only
    (["HEALTHY", "UNHEALTHY", "UNHEALTHY"], 33.4),     # the threshold is rounded (33)
    (["HEALTHY", "DRAINING", "DRAINING"], None),       # DRAINING is excluded from the count
    (["HEALTHY", "UNHEALTHY", "UNHEALTHY", "DRAINING"], None),  # panic: DRAINING too
    (["UNHEALTHY"], None),                             # nothing healthy: panic
    (["UNHEALTHY", "DRAINING"], 0),                    # threshold 0: no host, closed
    (["DEGRADED", "UNHEALTHY"], None),                 # degraded counts as available
]


@pytest.mark.parametrize("statuses,threshold", CASES,
                         ids=["-".join(s) + "-panic%s" % ("default" if t is None else t) for s, t in CASES])
def test_host_health_and_panic_match_envoy(statuses, threshold):
    require_peer("envoy")
    n = 24
    ours, our_stats = run_case("envoy_fast", statuses, threshold, n)
    theirs, their_stats = run_case("envoy", statuses, threshold, n)
    assert set(ours) == set(theirs), (ours, theirs)
    assert our_stats == their_stats, (ours, theirs)
    if None not in ours and len(ours) > 1:
        # Round robin over the same set: an even spread in both.
        assert max(ours.values()) - min(ours.values()) <= 1, ours


def test_degraded_hosts_take_envoy_share():
    """One HEALTHY and one DEGRADED host: Envoy sends 70 % of the picks to
    the healthy one (its availability 50 % x 1.4 overprovisioning)."""
    require_peer("envoy")
    n = 300
    shares = {}
    for impl in ("envoy_fast", "envoy"):
        got, st = run_case(impl, ["HEALTHY", "DEGRADED"], None, n)
        assert st == {"lb_healthy_panic": 0, "upstream_cx_none_healthy": 0}
        assert set(got) == {"h0", "h1"}
        shares[impl] = got["h0"] / n
    # Binomial(300, 0.7): sd 2.6 %; allow 4 sd on each.
    for impl, share in shares.items():
        assert abs(share - 0.7) < 0.11, shares


def test_clusters_health_flags_match_envoy():
    """/clusters shows each endpoint's health as Envoy does (text and JSON)."""
    require_peer("envoy")
    import json
    statuses = ["HEALTHY", "UNHEALTHY", "DRAINING", "TIMEOUT", "DEGRADED", "UNKNOWN"]
    seen = {}
    for impl in ("envoy_fast", "envoy"):
        lp, ap = free_port(), free_port()
        c = health_cluster([(free_port(), s) for s in statuses])
        cfg = bootstrap([listener("l0", lp, [{"filters": [tcp_proxy_filter("up")]}])], [c], ap)
        with run_impl(impl, cfg) as proxy:
            text = [l.split("::")[-1] for l in proxy.admin("/clusters").splitlines()
                    if "::health_flags::" in l]
            js = [h.get("health_status") for h in json.loads(
                proxy.admin("/clusters?format=json"))["cluster_statuses"][0]["host_statuses"]]
        seen[impl] = (text, js)
    assert len(seen["envoy"][0]) == len(statuses)
    assert seen["envoy_fast"] == seen["envoy"]
