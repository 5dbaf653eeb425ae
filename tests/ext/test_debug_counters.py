"""EF_DEBUG builds count live objects from allocation to the real free
(ext/debug_counters.pyx): a connection is counted until nothing refers to
it any more, a reference cycle keeps it counted, and debug_leaks() reports
what exceeds the counts at start. Skipped in release builds, where nothing
is counted."""
import gc
import socket

import pytest

from envoy_fast import _worker
from envoy_fast._worker import (ConnectionForTest, Dispatcher, ReadFilterForTest, TimerForTest,
                                debug_counts_for_test, debug_leaks)

pytestmark = pytest.mark.skipif(not _worker.DEBUG_BUILD, reason="needs an EF_DEBUG build")


def counts(d):
    return debug_counts_for_test(d)


def test_a_connection_is_counted_until_it_is_freed():
    d = Dispatcher()
    before = counts(d)
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    c = ConnectionForTest.server(d, ours.detach(), [ReadFilterForTest("f", [], drain=True)])
    during = counts(d)
    assert during["ConnectionImpl"] == before["ConnectionImpl"] + 1
    assert during["FilterManager"] == before["FilterManager"] + 1
    assert during["OwnedBuffer"] == before["OwnedBuffer"] + 2       # read and write buffers
    assert during["connections_open"] == before["connections_open"] + 1
    c.close(flush=False)
    closed = counts(d)
    assert closed["connections_open"] == before["connections_open"]
    assert closed["ConnectionImpl"] == during["ConnectionImpl"], "closed, still referenced"
    del c
    d.run_for_test(0.01)        # the deferred-delete list lets go
    after = counts(d)
    assert after["ConnectionImpl"] == before["ConnectionImpl"]
    assert after["OwnedBuffer"] == before["OwnedBuffer"]
    assert debug_leaks({"live": after, "at_start": before}) == {}
    peer.close()


def test_a_cycle_keeps_an_object_counted_until_collected():
    d = Dispatcher()
    gc.collect()
    gc.disable()                # the cycle must stay until we collect it
    try:
        check_cycle(d)
    finally:
        gc.enable()


def check_cycle(d):
    before = counts(d)
    holder = {}
    t = TimerForTest(d, holder.clear)
    holder["timer"] = t         # timer -> bound method -> holder -> timer
    del t, holder
    leaked = debug_leaks({"live": counts(d), "at_start": before})
    assert leaked == {"Timer": 1}
    gc.collect()
    assert debug_leaks({"live": counts(d), "at_start": before}) == {}


def test_an_armed_timer_counts_in_timers_armed():
    d = Dispatcher()
    before = counts(d)
    t = TimerForTest(d, lambda: None)
    t.enable(10.0)
    assert debug_leaks({"live": counts(d), "at_start": before}) == {"Timer": 1, "timers_armed": 1}
    t.disable()
    del t
    assert debug_leaks({"live": counts(d), "at_start": before}) == {}


def test_worker_counts_return_to_start_after_proxied_connections(tmp_path):
    """A Worker proxying real connections to a real echo upstream: its
    counts rise while they are open and come back once they are closed; the
    control channel's debug_counters op writes the same counts to a file."""
    import json
    import time

    import yaml

    from envoy_fast._worker import Worker
    from envoy_fast.config import load_bootstrap
    from envoy_fast.server.plan import build_plan
    from envoy_fast.stats.store import StatsLayout, StatsStore
    from helpers import bootstrap, cluster, echo_server, listener, tcp_proxy_filter

    with echo_server() as up, socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(16)
        lsock.setblocking(False)
        port = lsock.getsockname()[1]
        cfg = bootstrap([listener("l0", port, [{"filters": [tcp_proxy_filter("up")]}])],
                        [cluster("up", [up.port])])
        bs = load_bootstrap(config_yaml=yaml.safe_dump(cfg))
        layout = StatsLayout(bs, 1)
        store = StatsStore(layout)
        worker = Worker(build_plan(bs, layout, {"l0": lsock.fileno()}), store.mem, 0)
        start = worker.debug_counters()["live"]

        def leaks():
            return debug_leaks({"live": worker.debug_counters()["live"], "at_start": start})

        clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
        for i, c in enumerate(clients):
            c.sendall(b"ping %d" % i)
        deadline = time.monotonic() + 5
        got = {}
        while len(got) < 3:
            assert time.monotonic() < deadline, got
            worker.run_for_test(0.02)
            for i, c in enumerate(clients):
                c.setblocking(False)
                try:
                    got[i] = c.recv(100)
                except BlockingIOError:
                    pass
        assert got == {i: b"ping %d" % i for i in range(3)}
        open_now = leaks()
        assert open_now["ConnectionImpl"] == 6          # 3 downstream + 3 upstream
        assert open_now["TcpProxyFilter"] == 3 and open_now["ActiveTcpClient"] == 3

        path = str(tmp_path / "counters.json")
        worker.on_control_message({"op": "debug_counters", "path": path})
        with open(path) as f:
            assert json.load(f)["live"]["ConnectionImpl"] == start["ConnectionImpl"] + 6

        for c in clients:
            c.close()
        deadline = time.monotonic() + 5
        while leaks():
            assert time.monotonic() < deadline, leaks()
            worker.run_for_test(0.02)


def test_the_loop_holds_no_closed_connection_while_it_waits():
    # The peer closes; nothing else happens. Turns later (timers only, no
    # fd event), the connection must be freed: the loop must not keep the
    # last handler it dispatched to.
    d = Dispatcher()
    before = counts(d)["ConnectionImpl"]
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    c = ConnectionForTest.server(d, ours.detach(), [ReadFilterForTest("f", [], drain=True)])
    c.set_half_close(False)
    del c                       # only the Dispatcher holds it now
    peer.close()
    seen = []
    t = TimerForTest(d, lambda: seen.append(counts(d)["ConnectionImpl"]))
    t.enable(0.1)
    d.run_for_test(0.2)
    assert seen == [before]
