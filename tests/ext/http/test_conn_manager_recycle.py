"""A closed connection's HttpConnectionManagerImpl (with its stream, parser,
buffers, timers and filter wrappers) serves the next connection instead of
being rebuilt: nothing of the old connection may show through. Each test
leaves the first connection in an unusual state, then checks that the next
one, served by the same manager, behaves as a fresh one."""
import pytest

from envoy_fast import _worker
from test_conn_manager import echoed_headers, hcm_factory  # noqa: F401

GET = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"


def closed(h, c):
    """Close client `c` (the harness's i-th) and pump until its connection
    is closed on the proxy's side too."""
    i = h.clients.index(c)
    c.close()
    h.pump(lambda: h.hcm.manager_for_test(i) is None, what="the close")


@pytest.mark.skipif(_worker.DEBUG_BUILD, reason="EF_DEBUG builds keep no free list")
def test_the_next_connection_reuses_the_closed_manager(hcm_factory):  # noqa: F811
    h = hcm_factory()
    a = h.connect()
    assert a.request(GET).status == 200
    first = h.hcm.manager_for_test(0)
    closed(h, a)
    b = h.connect()
    assert h.hcm.manager_for_test(1) is first
    assert b.request(GET).status == 200


def test_after_a_protocol_error_the_next_connection_keeps_alive(hcm_factory):  # noqa: F811
    h = hcm_factory(delayed_close_timeout=0.05)
    a = h.connect()
    r = a.request(b"GET /a HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n")
    assert r.status == 400 and r.header(b"connection") == b"close"
    a.wait_eof()
    closed(h, a)
    b = h.connect()
    for _ in range(3):
        r = b.request(GET)
        assert r.status == 200 and r.header(b"connection") is None
    assert h.hcm.manager_for_test(1) is not None
    assert h.stats()["downstream_cx_protocol_error"] == 1


def test_a_half_sent_head_does_not_reach_the_next_connection(hcm_factory):  # noqa: F811
    h = hcm_factory()
    a = h.connect()
    a.send(b"POST /left HTTP/1.1\r\nHost: h\r\nContent-Le")
    h.d.run_for_test(0.02)
    closed(h, a)
    b = h.connect()
    r = b.request(b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n")
    assert r.status == 200 and r.body.startswith(b"GET /b\n")


def test_a_body_cut_short_does_not_reach_the_next_connection(hcm_factory):  # noqa: F811
    h = hcm_factory()
    a = h.connect()
    a.send(b"POST /left HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nonly part")
    h.d.run_for_test(0.02)
    closed(h, a)
    b = h.connect()
    r = b.request(b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello")
    assert r.status == 200 and r.body.endswith(b"\n\nhello")


def test_max_requests_per_connection_counts_per_connection(hcm_factory):  # noqa: F811
    h = hcm_factory(max_requests_per_connection=2, delayed_close_timeout=0.05)
    a = h.connect()
    assert a.request(GET).header(b"connection") is None
    assert a.request(GET).header(b"connection") == b"close"
    a.wait_eof()
    closed(h, a)
    b = h.connect()
    assert b.request(GET).header(b"connection") is None
    assert b.request(GET).header(b"connection") == b"close"


def test_the_peer_address_is_the_new_connections(hcm_factory):  # noqa: F811
    h = hcm_factory(use_remote_address=True)
    a = h.connect(peer=("203.0.113.7", 4321))
    d = dict(echoed_headers(a.request(b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n")))
    assert d[b"x-forwarded-for"] == b"1.2.3.4,203.0.113.7"
    assert h.hcm.remote_address(0) == "203.0.113.7:4321"
    closed(h, a)
    b = h.connect(peer=("198.51.100.9", 1234))
    d = dict(echoed_headers(b.request(b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n")))
    assert d[b"x-forwarded-for"] == b"1.2.3.4,198.51.100.9"
    assert d[b"x-envoy-external-address"] == b"198.51.100.9"
    assert h.hcm.remote_address(1) == "198.51.100.9:1234"


def test_the_idle_timeout_starts_again(hcm_factory):  # noqa: F811
    # The first connection idles most of a timeout away; the next one gets
    # the whole timeout, from its own start.
    h = hcm_factory(idle_timeout=0.4)
    a = h.connect()
    assert a.request(GET).status == 200
    assert a.still_open(0.3)
    closed(h, a)
    b = h.connect()
    assert b.still_open(0.25)
    assert b.request(GET).status == 200
    b.wait_eof(timeout=2)
    assert h.stats()["downstream_cx_idle_timeout"] == 1


def test_a_filter_that_keeps_its_callbacks_keeps_the_manager_out(hcm_factory):  # noqa: F811
    # The static test filter is handed out again for every stream and holds
    # the wrapper of its last one: that manager is not reused.
    h = hcm_factory(filters=("static",))
    a = h.connect()
    assert a.request(GET).body == b"hello"
    first = h.hcm.manager_for_test(0)
    closed(h, a)
    b = h.connect()
    assert h.hcm.manager_for_test(1) is not first
    assert b.request(GET).body == b"hello"
