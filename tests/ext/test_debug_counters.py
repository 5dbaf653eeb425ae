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
