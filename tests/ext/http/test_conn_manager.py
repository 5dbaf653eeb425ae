"""HttpConnectionManagerImpl through real sockets (HttpConnectionManagerForTest:
an HCM on a bare Dispatcher whose filter chain is test filters). Keep-alive,
pipelining, the HCM's own replies byte for byte, request header handling,
bodies both ways, the filter chain, stats."""
import time

import pytest

from hcm_harness import UUID_RE, Hcm, nodate

GET = b"GET /a?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n"


@pytest.fixture
def hcm_factory():
    made = []

    def make(*a, **kw):
        h = Hcm(*a, **kw)
        made.append(h)
        return h
    yield make
    for h in made:
        h.close()


def echoed_headers(resp):
    """The request headers the terminal filter saw: [(name, value)]."""
    head = resp.body.split(b"\n\n", 1)[0].split(b"\n")
    return [tuple(l.split(b": ", 1)) for l in head[1:]]


def test_keep_alive_requests_and_response_headers(hcm_factory):
    h = hcm_factory()
    c = h.connect()
    for i in range(3):
        r = c.request(GET)
        assert r.status_line == b"HTTP/1.1 200 OK"
        # Envoy's order: the filter's headers, then date, server.
        assert r.names() == [b"content-length", b"date", b"server"]
        assert r.header(b"server") == b"envoy"
        assert r.body.startswith(b"GET /a?x=1\n")
    assert c.still_open(0.05)
    s = h.stats()
    assert s["downstream_rq_total"] == 3 and s["downstream_rq_http1_total"] == 3
    assert s["downstream_rq_2xx"] == 3 and s["downstream_rq_completed"] == 3
    assert s["downstream_rq_active"] == 0
    assert s["downstream_cx_total"] == 1 and s["downstream_cx_active"] == 1
    assert s["downstream_cx_http1_total"] == 1 and s["downstream_cx_http1_active"] == 1
    assert s["downstream_cx_rx_bytes_total"] == 3 * len(GET)
    assert s["downstream_cx_tx_bytes_total"] == 3 * len(r.raw)
    assert h.hcm.histogram_count("downstream_rq_time") == 3
    c.close()
    h.pump(lambda: h.stats()["downstream_cx_active"] == 0, what="close seen")
    s = h.stats()
    assert s["downstream_cx_destroy"] == 1 and s["downstream_cx_destroy_remote"] == 1
    assert s["downstream_cx_http1_active"] == 0
    assert h.hcm.histogram_count("downstream_cx_length_ms") == 1


def test_pipelined_requests_answered_in_order(hcm_factory):
    h = hcm_factory()
    c = h.connect()
    c.send(b"".join(b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % i for i in range(5)))
    for i in range(5):
        assert c.response().body.startswith(b"GET /%d\n" % i)
    # Pipelined behind a streamed (chunked) response: the next waits for it.
    h2 = hcm_factory(filters=("pause:0.02", "terminal:chunked"))
    c2 = h2.connect()
    c2.send(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\nGET /y HTTP/1.1\r\nHost: h\r\n\r\n")
    r1, r2 = c2.response(), c2.response()
    assert r1.body.startswith(b"GET /x\n") and r2.body.startswith(b"GET /y\n")
    assert h2.stats()["downstream_rq_completed"] == 2


def test_request_header_mutation(hcm_factory):
    h = hcm_factory()
    c = h.connect()
    r = c.request(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Foo\r\nFoo: 1\r\n"
                  b"Keep-Alive: 5\r\nProxy-Connection: x\r\nTE: gzip, trailers\r\n"
                  b"X-Forwarded-For: 1.2.3.4\r\nUser-Agent: z\r\n\r\n")
    hdrs = echoed_headers(r)
    names = [n for n, _ in hdrs]
    assert names == [b"host", b"te", b"x-forwarded-for", b"user-agent",
                     b"x-forwarded-proto", b"x-request-id"]
    assert dict(hdrs)[b"te"] == b"trailers"
    assert dict(hdrs)[b"x-forwarded-for"] == b"1.2.3.4"      # untouched without use_remote_address
    assert dict(hdrs)[b"x-forwarded-proto"] == b"http"
    assert UUID_RE.match(dict(hdrs)[b"x-request-id"])
    # A client's x-request-id and x-forwarded-proto are kept.
    r = c.request(b"GET / HTTP/1.1\r\nHost: h\r\nX-Request-Id: abc\r\nX-Forwarded-Proto: https\r\nTE: gzip\r\n\r\n")
    assert echoed_headers(r) == [(b"host", b"h"), (b"x-request-id", b"abc"),
                                 (b"x-forwarded-proto", b"https")]
    # Every generated id differs.
    ids = {dict(echoed_headers(c.request(GET)))[b"x-request-id"] for _ in range(20)}
    assert len(ids) == 20


def test_use_remote_address(hcm_factory):
    h = hcm_factory(use_remote_address=True)
    c = h.connect(peer=("203.0.113.7", 4321))
    r = c.request(b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.2.3.4\r\nX-Request-Id: abc\r\n"
                  b"X-Forwarded-Proto: https\r\nUser-Agent: z\r\n\r\n")
    hdrs = echoed_headers(r)
    assert [n for n, _ in hdrs] == [b"host", b"x-forwarded-for", b"x-request-id", b"x-forwarded-proto",
                                   b"user-agent", b"x-envoy-external-address"]
    d = dict(hdrs)
    assert d[b"x-forwarded-for"] == b"1.2.3.4,203.0.113.7"
    assert d[b"x-forwarded-proto"] == b"http"
    assert d[b"x-envoy-external-address"] == b"203.0.113.7"
    assert UUID_RE.match(d[b"x-request-id"])                 # replaced at the edge
    r = c.request(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert [n for n, _ in echoed_headers(r)] == [b"host", b"x-forwarded-for", b"x-forwarded-proto",
                                                b"x-envoy-external-address", b"x-request-id"]
    # preserve_external_request_id and skip_xff_append
    h = hcm_factory(use_remote_address=True, preserve_external_request_id=True, skip_xff_append=True)
    c = h.connect(peer=("203.0.113.7", 4321))
    d = dict(echoed_headers(c.request(b"GET / HTTP/1.1\r\nHost: h\r\nX-Request-Id: abc\r\n\r\n")))
    assert d[b"x-request-id"] == b"abc" and b"x-forwarded-for" not in d


def test_loopback_peer_in_xff_is_the_proxys_address(hcm_factory):
    import socket
    h = hcm_factory(use_remote_address=True)
    c = h.connect(peer=("127.0.0.1", 4321))
    d = dict(echoed_headers(c.request(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")))
    addrs = [a for a in _local_ipv4() if not a.startswith("127.")]
    if addrs:
        assert d[b"x-forwarded-for"] == addrs[0].encode()
    else:
        assert d[b"x-forwarded-for"] == b"127.0.0.1"
    assert d[b"x-envoy-external-address"] == b"127.0.0.1"


def _local_ipv4():
    import subprocess
    out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    return [l.split()[3].split("/")[0] for l in out.splitlines()]


def test_always_set_request_id_in_response_and_server_name(hcm_factory):
    h = hcm_factory(always_set_request_id_in_response=True, server_name="edge")
    c = h.connect()
    r = c.request(b"GET / HTTP/1.1\r\nHost: h\r\nX-Request-Id: abc\r\n\r\n")
    assert r.header(b"x-request-id") == b"abc"
    assert r.header(b"server") == b"edge"


def test_bodies_content_length_and_chunked(hcm_factory):
    h = hcm_factory()
    c = h.connect()
    r = c.request(b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world")
    assert r.body.endswith(b"\n\nhello world")
    assert b"content-length: 11" in r.body               # CL goes on
    # Chunked in: reassembled, transfer-encoding removed for the filters.
    c.send(b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
    assert c.still_open(0.02)
    c.send(b"6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n")
    r = c.response()
    assert r.body.endswith(b"\n\nhello world")
    assert b"transfer-encoding" not in r.body
    # A body split over many reads, byte by byte.
    req = b"POST /s HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nabcde"
    for i in range(len(req)):
        c.send(req[i:i + 1])
        h.d.run_for_test(0.001)
    assert c.response().body.endswith(b"\n\nabcde")
    assert h.stats()["downstream_rq_completed"] == 3


def test_chunked_response_and_head(hcm_factory):
    h = hcm_factory(filters=("terminal:chunked",))
    c = h.connect()
    r = c.request(GET)
    assert r.header(b"transfer-encoding") == b"chunked"
    assert r.body.startswith(b"GET /a?x=1\n")
    assert r.raw.endswith(b"\r\n0\r\n\r\n")
    # HEAD: the length stays, the body does not come.
    h = hcm_factory()
    c = h.connect()
    r = c.request(b"HEAD /h HTTP/1.1\r\nHost: h\r\n\r\n", head_request=True)
    assert int(r.header(b"content-length")) > 0
    r = c.request(GET)                                    # nothing stray before it
    assert r.body.startswith(b"GET /a?x=1\n")


def test_head_response_without_length_says_chunked(hcm_factory):
    """Envoy's encodeHeadersBase: a HEAD response with no content-length,
    headers-only or streamed, carries transfer-encoding: chunked (no body,
    no last chunk); the connection serves the next request."""
    for mode in ("terminal:empty:200", "terminal:chunked"):
        h = hcm_factory(filters=(mode,))
        c = h.connect()
        r = c.request(b"HEAD /h HTTP/1.1\r\nHost: h\r\n\r\n", head_request=True)
        assert r.status == 200
        assert r.header(b"transfer-encoding") == b"chunked"
        assert r.header(b"content-length") is None
        assert r.raw.endswith(b"\r\n\r\n") and b"0\r\n\r\n" not in r.raw
        r = c.request(GET)                                # nothing stray before it
        assert r.status == 200


def test_empty_responses(hcm_factory):
    for status, expect_cl in ((200, b"0"), (204, None), (304, None)):
        h = hcm_factory(filters=("terminal:empty:%d" % status,))
        c = h.connect()
        r = c.request(GET)
        assert r.status == status
        assert r.header(b"content-length") == expect_cl
        assert r.header(b"transfer-encoding") is None
        assert c.still_open(0.02)


def test_expect_100_continue_answered_by_the_proxy(hcm_factory):
    h = hcm_factory()
    c = h.connect()
    c.send(b"POST /u HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    r = c.response()
    assert r.raw == b"HTTP/1.1 100 Continue\r\n\r\n"
    c.send(b"abc")
    r = c.response()
    assert r.status == 200 and r.body.endswith(b"\n\nabc")
    assert b"expect" not in [n for n, _ in echoed_headers(r)]
    s = h.stats()
    assert s["downstream_rq_1xx"] == 1 and s["downstream_rq_2xx"] == 1


def test_client_connection_close(hcm_factory):
    h = hcm_factory(delayed_close_timeout=0.1)
    c = h.connect()
    r = c.request(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert r.header(b"connection") == b"close"
    assert r.names()[-1] == b"connection"
    assert c.wait_eof() == b""


def test_http10(hcm_factory):
    h = hcm_factory()
    c = h.connect()
    r = c.request(b"GET / HTTP/1.0\r\n\r\n")
    assert r.status == 426 and r.body == b"Upgrade Required"
    h = hcm_factory(accept_http_10=True, default_host_for_http_10="dflt", delayed_close_timeout=0.1)
    c = h.connect()
    r = c.request(b"GET /ten HTTP/1.0\r\n\r\n")
    assert r.status_line == b"HTTP/1.1 200 OK".replace(b"1.1", b"1.0")
    assert r.header(b"connection") == b"close"
    assert (b"host", b"dflt") in echoed_headers(r)
    c.wait_eof()
    # keep-alive asked for: kept, and said so.
    c = h.connect()
    r = c.request(b"GET /ten HTTP/1.0\r\nConnection: keep-alive\r\nHost: x\r\n\r\n")
    assert r.header(b"connection") == b"keep-alive"
    assert c.request(b"GET /again HTTP/1.0\r\nConnection: keep-alive\r\nHost: x\r\n\r\n").status == 200


def test_max_requests_per_connection(hcm_factory):
    h = hcm_factory(max_requests_per_connection=2, delayed_close_timeout=0.1)
    c = h.connect()
    assert c.request(GET).header(b"connection") is None
    assert c.request(GET).header(b"connection") == b"close"
    c.wait_eof()
    assert h.stats()["downstream_cx_max_requests_reached"] == 1


def test_filter_chain_pause_buffer_and_encoders(hcm_factory):
    h = hcm_factory(filters=("pause:0.02", "encoder", "terminal:echo"))
    c = h.connect()
    r = c.request(b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello")
    assert r.body.endswith(b"\n\nhello")
    # Both encoder filters (the pause filter's encoder half and "encoder").
    assert r.header(b"x-test-encoder") == b"1,1"
    assert h.hcm.destroyed == [1]
    r = c.request(GET)
    assert h.hcm.destroyed == [1, 2]


def test_request_body_over_the_buffer_limit_is_413(hcm_factory):
    h = hcm_factory(filters=("pause:0.5", "terminal:echo"), delayed_close_timeout=0.1)
    c = h.connect(buffer_limit=1024)
    c.send(b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 4096\r\n\r\n" + b"x" * 4096)
    r = c.response()
    assert r.status == 413 and r.body == b"Payload Too Large"
    assert h.stats()["downstream_rq_too_large"] == 1


def test_local_reply_from_a_filter_keeps_the_connection(hcm_factory):
    h = hcm_factory(filters=("terminal:local:503",))
    c = h.connect()
    r = c.request(GET)
    assert nodate(r.raw) == (b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 11\r\n"
                             b"content-type: text/plain\r\ndate: <date>\r\nserver: envoy\r\n\r\n"
                             b"local reply")
    assert c.request(GET).status == 503
    assert h.stats()["downstream_rq_5xx"] == 2
    # A local reply before the request body is in: connection: close.
    r = c.request(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
    assert r.header(b"connection") == b"close"
    assert h.stats()["downstream_rq_response_before_rq_complete"] == 1


def test_headers_with_underscores(hcm_factory):
    req = b"GET / HTTP/1.1\r\nHost: h\r\nfoo_bar: 1\r\nok: 2\r\n\r\n"
    c = hcm_factory().connect()
    assert (b"foo_bar", b"1") in echoed_headers(c.request(req))
    c = hcm_factory(headers_with_underscores_action=2).connect()
    hdrs = echoed_headers(c.request(req))
    assert (b"ok", b"2") in hdrs and b"foo_bar" not in [n for n, _ in hdrs]
    h = hcm_factory(headers_with_underscores_action=1)
    r = h.connect().request(req)
    assert r.status == 400 and r.body == b"Bad Request" and r.header(b"connection") == b"close"


def test_drain(hcm_factory):
    # Envoy's drain sequence: responses say connection: close; connections
    # close drain_timeout later (one that never sent a byte: at once).
    h = hcm_factory(filters=("pause:0.1", "terminal:echo"), delayed_close_timeout=0.05,
                    drain_timeout=0.3)
    silent = h.connect()
    h.d.run_for_test(0.3)                   # older than a just-accepted one's grace
    idle = h.connect()
    busy = h.connect()
    assert idle.request(GET).status == 200
    busy.send(GET)
    h.d.run_for_test(0.01)
    h.hcm.start_drain()
    silent.wait_eof(timeout=0.05)
    r = busy.response()
    assert r.status == 200 and r.header(b"connection") == b"close"
    assert idle.still_open(0.15) and busy.still_open(0.01)
    idle.wait_eof(timeout=1)
    busy.wait_eof(timeout=1)
    assert h.stats()["downstream_cx_drain_close"] == 2
    # A connection accepted while draining: its response says close.
    late = h.connect()
    assert late.request(GET).header(b"connection") == b"close"
    assert h.stats()["downstream_cx_drain_close"] == 3


# -- timers (replies as the real Envoy sends them: see the vs_envoy checks)

def _reply(status, reason, body, close):
    return (b"HTTP/1.1 %d %s\r\ncontent-length: %d\r\ncontent-type: text/plain\r\n"
            b"date: <date>\r\nserver: envoy\r\n%s\r\n%s"
            % (status, reason, len(body), b"connection: close\r\n" if close else b"", body))


def test_request_headers_timeout(hcm_factory):
    h = hcm_factory(request_headers_timeout=0.2, delayed_close_timeout=0.1)
    c = h.connect()
    assert c.still_open(0.3)                              # starts at the first byte
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\n")
    r = c.response()
    assert nodate(r.raw) == _reply(408, b"Request Timeout", b"request header timeout", True)
    c.wait_eof()
    s = h.stats()
    assert s["downstream_rq_header_timeout"] == 1 and s["downstream_rq_4xx"] == 1


def test_stream_idle_timeout(hcm_factory):
    h = hcm_factory(filters=("terminal:hold",), stream_idle_timeout=0.2, delayed_close_timeout=0.1)
    c = h.connect()
    r = c.request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert nodate(r.raw) == _reply(504, b"Gateway Timeout", b"stream timeout", False)
    assert c.still_open(0.05)                             # the request was complete: kept
    r = c.request(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab")
    assert nodate(r.raw) == _reply(408, b"Request Timeout", b"stream timeout", True)
    c.wait_eof()
    c = h.connect()
    r = c.request(b"GET / HTTP/1.1\r\nHost: a\r\n")      # a head that never ends
    assert nodate(r.raw) == _reply(408, b"Request Timeout", b"stream timeout", True)
    assert h.stats()["downstream_rq_idle_timeout"] == 3
    # Activity keeps a stream alive: a slow body, each piece within the timeout.
    h = hcm_factory(stream_idle_timeout=0.3)
    c = h.connect()
    c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n")
    for b in b"abcde":
        assert c.still_open(0.1)
        c.send(bytes([b]))
    assert c.response().body.endswith(b"abcde")
    # and keep-alive requests over longer than the timeout are fine.
    for _ in range(4):
        assert c.request(GET).status == 200
        assert c.still_open(0.1)
    assert h.stats()["downstream_rq_idle_timeout"] == 0


def test_request_timeout(hcm_factory):
    h = hcm_factory(filters=("terminal:hold",), request_timeout=0.2, delayed_close_timeout=0.1)
    c = h.connect()
    r = c.request(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab")
    assert nodate(r.raw) == _reply(408, b"Request Timeout", b"request timeout", True)
    c.wait_eof()
    assert h.stats()["downstream_rq_timeout"] == 1


def test_connection_idle_timeout(hcm_factory):
    h = hcm_factory(idle_timeout=0.2)
    c = h.connect()
    assert c.request(GET).status == 200
    assert c.still_open(0.1)
    assert c.request(GET).status == 200                   # activity restarts the count
    assert c.wait_eof(timeout=2) == b""
    assert h.stats()["downstream_cx_idle_timeout"] == 1


def test_max_connection_duration(hcm_factory):
    h = hcm_factory(filters=("pause:0.2", "terminal:echo"), max_connection_duration=0.1,
                    delayed_close_timeout=0.05, drain_timeout=0.2)
    busy = h.connect()
    silent = h.connect()
    busy.send(GET)
    silent.wait_eof(timeout=0.5)                          # no byte ever: closed at once
    r = busy.response()
    assert r.header(b"connection") == b"close"
    busy.wait_eof(timeout=1)                              # then the drain timeout
    assert h.stats()["downstream_cx_max_duration_reached"] == 2


def test_http10_response_without_length_ends_at_close(hcm_factory):
    h = hcm_factory(filters=("terminal:chunked",), accept_http_10=True, delayed_close_timeout=0.1)
    c = h.connect()
    c.send(b"GET /ten HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n")
    raw = c.wait_eof()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK\r\n")
    assert b"transfer-encoding" not in head and b"content-length" not in head
    assert b"connection: close" in head                   # no length: the close frames it
    assert body.startswith(b"GET /ten\n")


def test_large_bodies_stream_both_ways(hcm_factory):
    h = hcm_factory(filters=("terminal:chunked",))
    c = h.connect()
    payload = bytes(range(256)) * 4096                      # 1 MiB
    c.send(b"POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload)
    r = c.response(timeout=30)
    assert r.body.endswith(b"\n\n" + payload)
    c.send(b"POST /big HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" +
           b"".join(b"%x\r\n%s\r\n" % (len(payload[i:i + 65536]), payload[i:i + 65536])
                    for i in range(0, len(payload), 65536)) + b"0\r\n\r\n")
    r = c.response(timeout=30)
    assert r.body.endswith(b"\n\n" + payload)
    assert h.stats()["downstream_rq_completed"] == 2


def test_upstream_back_pressure_stops_reading_the_downstream(hcm_factory):
    import time
    h = hcm_factory(filters=("flow:0.3", "terminal:echo"))
    c = h.connect()
    c.send(b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n")
    h.d.run_for_test(0.05)                               # the head is read, then reading stops
    t0 = time.monotonic()
    c.send(b"0123456789")
    r = c.response()
    assert time.monotonic() - t0 >= 0.2                   # the body waited for the resume
    assert r.body.endswith(b"\n\n0123456789")
    s = h.stats()
    assert s["downstream_flow_control_paused_reading_total"] == 1
    assert s["downstream_flow_control_resumed_reading_total"] == 1
    assert c.request(GET).status == 200                   # reading is back on afterwards


@pytest.mark.parametrize("kw,xff,want", [
    ({}, None, "203.0.113.7:4321"),
    ({}, b"1.2.3.4, 5.6.7.8", "5.6.7.8:0"),                  # the last entry, port 0
    ({"xff_num_trusted_hops": 1}, b"1.2.3.4, 5.6.7.8", "1.2.3.4:0"),
    ({"xff_num_trusted_hops": 1}, b"5.6.7.8", "203.0.113.7:4321"),
    ({}, b"2001:db8::1", "[2001:db8::1]:0"),
    ({"use_remote_address": True}, b"1.2.3.4", "203.0.113.7:4321"),
    ({"use_remote_address": True, "xff_num_trusted_hops": 1}, b"1.2.3.4, 5.6.7.8", "5.6.7.8:0"),
])
def test_stream_remote_address(hcm_factory, kw, xff, want):
    """What %DOWNSTREAM_REMOTE_ADDRESS% formats (Envoy, observed: see the
    route table's header formatters)."""
    h = hcm_factory(**kw)
    c = h.connect(peer=("203.0.113.7", 4321))
    req = b"GET / HTTP/1.1\r\nHost: h\r\n" + (b"X-Forwarded-For: " + xff + b"\r\n" if xff else b"") + b"\r\n"
    for _ in range(2):                                     # the second reuses the first's string
        assert c.request(req).status == 200
        assert h.hcm.remote_address(0) == want


def test_drain_answers_a_first_request_not_yet_read(hcm_factory):
    # A drain that meets a new connection whose first request waits unread in
    # the socket answers it (connection: close) instead of closing under it:
    # a client cannot tell that from a lost request.
    h = hcm_factory(drain_timeout=0.3, delayed_close_timeout=0.05)
    fresh = h.connect()
    fresh.send(GET)
    h.hcm.start_drain()                     # before the loop reads the request
    r = fresh.response()
    assert r.status == 200 and r.header(b"connection") == b"close"
    fresh.wait_eof(timeout=1)
    assert h.stats()["downstream_cx_drain_close"] == 1


def test_drain_gives_a_just_accepted_connection_its_first_request(hcm_factory):
    # A listener that stops hands its accept queue over: a connection accepted
    # a moment before the drain may have its request still on the wire. It
    # gets a short grace; a request in time is answered with connection:
    # close, a connection that stays silent is closed when the grace ends.
    h = hcm_factory(drain_timeout=5, delayed_close_timeout=0.05)
    fresh = h.connect()
    silent = h.connect()
    h.hcm.start_drain()                     # both just accepted, no byte yet
    time.sleep(0.05)
    fresh.send(GET)
    r = fresh.response()
    assert r.status == 200 and r.header(b"connection") == b"close"
    fresh.wait_eof(timeout=1)
    started = time.monotonic()
    assert silent.wait_eof(timeout=2) == b""
    assert time.monotonic() - started < 1   # the grace, not drain_timeout (5 s)
