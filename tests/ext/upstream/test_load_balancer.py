"""Load balancers of a worker's ThreadLocalCluster, driven through
Worker.choose_host_for_test() on a plan built from a real Bootstrap."""
from collections import Counter

import pytest
import yaml

from envoy_fast._worker import Worker
from envoy_fast.config import load_bootstrap
from envoy_fast.server.plan import build_plan
from envoy_fast.stats.store import StatsLayout, StatsStore
from helpers import bootstrap, cluster

BASE_PORT = 20001


def worker_for(cfg, listen_fds=None):
    """A Worker (index 0, one worker) on the plan of bootstrap `cfg`; returns (worker, store)."""
    bs = load_bootstrap(config_yaml=yaml.safe_dump(cfg))
    layout = StatsLayout(bs, 1)
    store = StatsStore(layout)
    plan = build_plan(bs, layout, listen_fds or {})
    return Worker(plan, store.mem, 0), store


def make_worker(hosts, **cluster_extra):
    """A Worker with one cluster "c" of `hosts` ((port, weight) or port) and no listener."""
    return worker_for(bootstrap([], [cluster("c", hosts, **cluster_extra)]))


def addr(port):
    return "127.0.0.1:%d" % port


def picks(worker, n):
    return [worker.choose_host_for_test("c") for _ in range(n)]


def assert_even_spread(worker, ports, n, tolerance):
    """n picks reach every host of `ports`, each within `tolerance` of n / len(ports)."""
    counts = Counter(picks(worker, n))
    assert set(counts) == {addr(p) for p in ports}
    for p in ports:
        assert abs(counts[addr(p)] - n / len(ports)) < tolerance, counts


# ------------------------------------------------------------ round robin

@pytest.mark.parametrize("nhosts", [1, 2, 3, 5])
def test_round_robin_equal_weights_is_strict_rotation(nhosts):
    ports = [BASE_PORT + i for i in range(nhosts)]
    order = [addr(p) for p in ports]
    w, _ = make_worker(ports)
    seq = picks(w, 10 * nhosts + 1)
    # Each pick is the host after the previous one in the host list.
    for a, b in zip(seq, seq[1:]):
        assert order.index(b) == (order.index(a) + 1) % nhosts, seq
    # Hence every window of n picks covers every host once.
    for i in range(len(seq) - nhosts + 1):
        assert sorted(seq[i:i + nhosts]) == sorted(order)


def test_round_robin_equal_non_unit_weights_is_still_rotation():
    ports = [BASE_PORT, BASE_PORT + 1, BASE_PORT + 2]
    w, _ = make_worker([(p, 7) for p in ports])
    seq = picks(w, 30)
    order = [addr(p) for p in ports]
    for a, b in zip(seq, seq[1:]):
        assert order.index(b) == (order.index(a) + 1) % 3, seq


def test_round_robin_workers_start_at_different_hosts_but_rotate():
    # Each Worker seeds its start index at random; whatever the start, the
    # rotation is strict. Over many workers, more than one start is seen.
    ports = [BASE_PORT + i for i in range(4)]
    firsts = set()
    for _ in range(40):
        w, _ = make_worker(ports)
        firsts.add(w.choose_host_for_test("c"))
    assert len(firsts) > 1


def test_weighted_round_robin_exact_shares():
    ports = [BASE_PORT, BASE_PORT + 1, BASE_PORT + 2]
    w, _ = make_worker([(ports[0], 1), (ports[1], 2), (ports[2], 3)])
    seq = picks(w, 600)
    counts = Counter(seq)
    assert counts == {addr(ports[0]): 100, addr(ports[1]): 200, addr(ports[2]): 300}
    # Every period of total weight (6) picks holds the exact shares.
    for i in range(0, 600, 6):
        c = Counter(seq[i:i + 6])
        assert c == {addr(ports[0]): 1, addr(ports[1]): 2, addr(ports[2]): 3}, (i, seq[i:i + 6])


def test_weighted_round_robin_spreads_picks():
    ports = [BASE_PORT, BASE_PORT + 1, BASE_PORT + 2]
    w, _ = make_worker([(ports[0], 1), (ports[1], 2), (ports[2], 3)])
    seq = picks(w, 600)
    light = addr(ports[0])
    mid = addr(ports[1])
    for a, b in zip(seq, seq[1:]):
        assert not (a == light and b == light), seq[:24]
        # weight 2 of 6: never back to back either
        assert not (a == mid and b == mid), seq[:24]
    # The heaviest host (half of the weight) is never picked 3 times in a row.
    for i in range(len(seq) - 2):
        assert len(set(seq[i:i + 3])) > 1, seq[i:i + 3]


def test_weighted_round_robin_dominant_weight():
    ports = [BASE_PORT, BASE_PORT + 1]
    w, _ = make_worker([(ports[0], 1), (ports[1], 9)])
    seq = picks(w, 1000)
    counts = Counter(seq)
    assert counts == {addr(ports[0]): 100, addr(ports[1]): 900}
    # The light host comes back exactly every 10 picks.
    idx = [i for i, h in enumerate(seq) if h == addr(ports[0])]
    assert all(b - a == 10 for a, b in zip(idx, idx[1:]))


# ------------------------------------------------------------ random

def test_random_equal_weights_spread():
    ports = [BASE_PORT + i for i in range(3)]
    w, _ = make_worker(ports, lb_policy="RANDOM")
    # expectation 2000 each, sd ~37: 250 is ~7 sd
    assert_even_spread(w, ports, 6000, 250)
    # Not a rotation: some host is picked twice in a row.
    seq = picks(w, 200)
    assert any(a == b for a, b in zip(seq, seq[1:]))


def test_random_weighted_spread():
    ports = [BASE_PORT, BASE_PORT + 1, BASE_PORT + 2]
    w, _ = make_worker([(ports[0], 1), (ports[1], 2), (ports[2], 3)], lb_policy="RANDOM")
    n = 6000
    counts = Counter(picks(w, n))
    for p, weight in zip(ports, (1, 2, 3)):
        assert abs(counts[addr(p)] - n * weight / 6) < 300, counts


def test_random_single_host():
    w, _ = make_worker([BASE_PORT], lb_policy="RANDOM")
    assert set(picks(w, 50)) == {addr(BASE_PORT)}


# ------------------------------------------------------------ least request

def test_least_request_spread_without_load():
    ports = [BASE_PORT + i for i in range(4)]
    w, _ = make_worker(ports, lb_policy="LEAST_REQUEST")
    assert_even_spread(w, ports, 8000, 300)


def test_least_request_weighted_spread_without_load():
    ports = [BASE_PORT, BASE_PORT + 1]
    w, _ = make_worker([(ports[0], 1), (ports[1], 3)], lb_policy="LEAST_REQUEST",
                       least_request_lb_config={"choice_count": 3})
    n = 8000
    counts = Counter(picks(w, n))
    # Envoy: with unequal weights LEAST_REQUEST is a weighted (EDF) schedule
    # with weight / (active + 1)^bias; with nothing active that is plain
    # weighted round robin, so the shares follow the weights (1:3).
    assert abs(counts[addr(ports[0])] - n / 4) < 350, counts
    assert abs(counts[addr(ports[1])] - 3 * n / 4) < 350, counts


def test_least_request_single_host():
    w, _ = make_worker([BASE_PORT], lb_policy="LEAST_REQUEST")
    assert set(picks(w, 20)) == {addr(BASE_PORT)}


def test_no_hosts_chooses_none():
    for policy in ("ROUND_ROBIN", "RANDOM", "LEAST_REQUEST"):
        cfg = bootstrap([], [{"name": "c", "connect_timeout": "1s", "type": "STATIC",
                              "lb_policy": policy,
                              "load_assignment": {"cluster_name": "c", "endpoints": []}}])
        w, _ = worker_for(cfg)
        assert w.choose_host_for_test("c") is None


def test_least_request_avoids_host_with_active_requests():
    """Equal weights: power of choice_count choices on active requests, which
    the TCP pool keeps per host (attach +1, stream closed -1)."""
    import socket
    import time

    from helpers import echo_server, listener, tcp_proxy_filter

    with echo_server() as up_a, echo_server() as up_b:
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(16)
        lsock.setblocking(False)
        port = lsock.getsockname()[1]
        cfg = bootstrap([listener("l0", port, [{"filters": [tcp_proxy_filter("c")]}])],
                        [cluster("c", [up_a.port, up_b.port], lb_policy="LEAST_REQUEST",
                                 least_request_lb_config={"choice_count": 10})])
        w, store = worker_for(cfg, {"l0": lsock.fileno()})
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=5)

            def busy_hosts():
                return [h for h, cnt in w.pool_counts_for_test("c").items() if cnt["busy"]]

            deadline = time.monotonic() + 5
            while not busy_hosts() and time.monotonic() < deadline:
                w.run_for_test(0.02)
            [busy] = busy_hosts()
            assert store.host_values()["c"][busy]["rq_active"] == 1
            seq = picks(w, 1000)
            # Only when all 10 random picks hit the busy host: ~0.1%.
            assert seq.count(busy) <= 15, Counter(seq)
            c.close()
            deadline = time.monotonic() + 5
            while busy_hosts() and time.monotonic() < deadline:
                w.run_for_test(0.02)
            assert not busy_hosts()
            assert store.host_values()["c"][busy]["rq_active"] == 0
            counts = Counter(picks(w, 2000))
            assert abs(counts[busy] - 1000) < 200, counts
        finally:
            w.close_all()
            w.run_for_test(0.05)
            w.stop_listening()              # closes the worker's descriptor: this one
            w.run_for_test(0.01)
            lsock.detach()


# ------------------------------------------------------------ host health

def health_worker(statuses, policy, threshold=None):
    ports = [BASE_PORT + i for i in range(len(statuses))]
    c = cluster("c", ports, lb_policy=policy)
    for ep, st in zip(c["load_assignment"]["endpoints"][0]["lb_endpoints"], statuses):
        ep["health_status"] = st
    if threshold is not None:
        c["common_lb_config"] = {"healthy_panic_threshold": {"value": threshold}}
    w, store = worker_for(bootstrap([], [c]))
    return w, store, ports


@pytest.mark.parametrize("policy", ["ROUND_ROBIN", "RANDOM", "LEAST_REQUEST"])
def test_every_policy_skips_unhealthy_hosts_until_panic(policy):
    w, store, ports = health_worker(["HEALTHY", "UNHEALTHY", "TIMEOUT", "HEALTHY"], policy)
    assert set(picks(w, 200)) == {addr(ports[0]), addr(ports[3])}
    assert store.values()["cluster.c.lb_healthy_panic"] == 0
    # One healthy host of three (33 % < 50 %): panic, every host, each pick counted.
    w, store, ports = health_worker(["UNHEALTHY", "HEALTHY", "DRAINING", "UNHEALTHY"], policy)
    assert set(picks(w, 200)) == {addr(p) for p in ports}
    assert store.values()["cluster.c.lb_healthy_panic"] == 200


@pytest.mark.parametrize("policy", ["ROUND_ROBIN", "RANDOM", "LEAST_REQUEST"])
def test_no_available_host_and_zero_threshold_chooses_none(policy):
    w, store, _ = health_worker(["UNHEALTHY", "DRAINING"], policy, threshold=0)
    assert picks(w, 10) == [None] * 10
    assert store.values()["cluster.c.lb_healthy_panic"] == 0


def test_degraded_hosts_take_what_healthy_ones_cannot():
    # 2 healthy, 1 degraded: healthy availability 2/3 x 1.4 = 93 %.
    w, _, ports = health_worker(["HEALTHY", "DEGRADED", "HEALTHY"], "ROUND_ROBIN")
    counts = Counter(picks(w, 10000))
    assert abs(counts[addr(ports[1])] - 700) < 150, counts
    assert abs(counts[addr(ports[0])] - counts[addr(ports[2])]) <= 1, counts
