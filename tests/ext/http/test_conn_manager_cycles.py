"""A closed downstream connection's HTTP objects are freed by refcounting:
the stream and its filter wrappers point back at the manager, and cycles
left to the cyclic collector cost CPU per connection and a latency spike
whenever it runs over thousands of them (the worker sets a high gen-0
threshold)."""
import collections
import gc

import pytest

from hcm_harness import Hcm

GET_CLOSE = b"GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"


@pytest.mark.parametrize("filters", [("terminal:echo",), ("encoder", "terminal:echo")])
def test_closed_connections_leave_no_cycles(filters):
    h = Hcm(filters=filters)
    try:
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            # Earlier tests' managers may still be alive: count the change.
            before = collections.Counter(type(o).__name__ for o in gc.get_objects())
            for _ in range(20):
                c = h.connect()
                r = c.request(GET_CLOSE)
                assert r.status == 200
                h.pump(lambda: h.stats()["downstream_cx_active"] == 0, what="close")
                c.close()
            # The cycles are cut once the closing call stack is gone: at the
            # next connection.
            c = h.connect()
            live = collections.Counter(type(o).__name__ for o in gc.get_objects())
            live.subtract(before)
            gc.collect()
            garbage = collections.Counter(type(o).__name__ for o in gc.garbage)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
        # The open connection's, and at most one closed one whose wrapper a
        # test filter kept (filters reused across streams hold their last
        # callbacks): its cycle is left whole, not cut under the filter.
        assert live["HttpConnectionManagerImpl"] <= 2, live
        assert live["HttpActiveStream"] <= 2, live
        assert garbage["HttpConnectionManagerImpl"] == 0, garbage
        assert garbage["HttpActiveStream"] == 0, garbage
        assert garbage["HttpActiveStreamDecoderFilter"] == 0, garbage
        assert garbage["StreamInfoImpl"] == 0, garbage
        r = c.request(b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n")
        assert r.status == 200
    finally:
        h.close()
