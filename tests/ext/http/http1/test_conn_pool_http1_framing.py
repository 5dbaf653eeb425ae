"""The HTTP/1.1 pool's client codec: response framing (content-length,
chunked, trailers, HEAD/1xx/204/304, close-delimited, invalid responses) and
request encoding, against raw upstreams."""
import pytest

from helpers import scripted_server
from http1_pool_harness import (RESET_PROTOCOL_ERROR, Pool,
                                http_server, isolated, ok, one_response, read_request, settled)


# ------------------------------------------------------------ response framing

@isolated
def test_content_length_body_in_pieces():
    body = bytes(range(256)) * 100
    handler, _ = one_response(ok(body), pieces=7, requests=2)
    with scripted_server(handler) as up:
        pool = Pool(up.port)
        r = pool.get()
        assert r["body"] == body and r["end"]
        assert r["data_calls"] >= 2             # streamed as it came
        assert pool.get()["reused"]
        settled(pool)


CHUNKED_WITH_TRAILERS = (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                         b"5;ext=1\r\nhello\r\n1A\r\n" + b"a" * 26 + b"\r\n"
                         b"0\r\nx-trailer: t1\r\nx-other: t2\r\n\r\n")


@isolated
def test_chunked_body_with_extensions_and_trailers():
    # With enable_trailers (explicit_http_config.http_protocol_options) the
    # trailers are told; byte by byte from the upstream.
    resp = CHUNKED_WITH_TRAILERS
    handler, _ = one_response(resp, pieces=len(resp), delay=0.0, requests=2)
    with scripted_server(handler) as up:
        pool = Pool(up.port, enable_trailers=True)
        r = pool.get()
        assert r["status"] == 200
        assert r["body"] == b"hello" + b"a" * 26
        assert r["trailers"] == [(b"x-trailer", b"t1"), (b"x-other", b"t2")]
        assert [e[0] for e in pool.events if e[1] == 0][-1] == "trailers"
        r2 = pool.get()
        assert r2["reused"] and r2["trailers"] == [(b"x-trailer", b"t1"), (b"x-other", b"t2")]
        settled(pool)


@isolated
def test_trailers_are_dropped_by_default():
    # Envoy's default (enable_trailers false): the body ends, no trailers.
    handler, _ = one_response(CHUNKED_WITH_TRAILERS, requests=2)
    with scripted_server(handler) as up:
        pool = Pool(up.port)
        r = pool.get()
        assert r["body"] == b"hello" + b"a" * 26 and r["end"] and r["trailers"] is None
        assert pool.get()["reused"]
        settled(pool)


@isolated
def test_chunked_body_without_trailers():
    resp = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n")
    handler, _ = one_response(resp, requests=2)
    with scripted_server(handler) as up:
        pool = Pool(up.port)
        r = pool.get()
        assert r["body"] == b"abcdef" and r["end"] and r["trailers"] is None
        assert pool.get()["reused"]
        settled(pool)


@isolated
def test_head_response_has_no_body():
    srv = http_server()
    pool = Pool(srv.server_address[1])
    r = pool.get(method="HEAD")
    assert r["status"] == 200 and r["end"] and r["body"] == b""
    assert dict(r["headers"])[b"content-length"] != b"0"
    assert [e[0] for e in pool.events] == ["ready", "headers"]
    r = pool.get()
    assert r["reused"] and r["body"].startswith(b"GET / ")
    settled(pool)
    srv.shutdown()


@pytest.mark.parametrize("status,length", [(204, b""), (204, b"content-length: 0\r\n"),
                                           (304, b"content-length: 5\r\n")])
@isolated
def test_204_and_304_have_no_body(status, length):
    resp = b"HTTP/1.1 %d X\r\n%s\r\n" % (status, length)
    handler, _ = one_response(resp, requests=2)
    with scripted_server(handler) as up:
        pool = Pool(up.port)
        r = pool.get()
        assert r["status"] == status and r["end"] and r["body"] == b""
        assert pool.get()["reused"]
        settled(pool)


@isolated
def test_100_continue_is_told_then_the_final_response():
    handler, _ = one_response(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"done"), pieces=2)
    with scripted_server(handler) as up:
        pool = Pool(up.port)
        r = pool.get()
        assert r["status"] == 200 and r["body"] == b"done"
        assert [e[0] for e in pool.events] == ["ready", "1xx", "headers", "end"]
        assert pool.events[1] == ("1xx", 0, 100)
        settled(pool)


@isolated
def test_premature_close_after_headers_is_a_reset():
    # EOF inside a framed body: Envoy 1.40's parser error (UPE, observed).
    handler, _ = one_response(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789",
                              then_close=True)
    with scripted_server(handler) as up:
        pool = Pool(up.port)
        r = pool.get()
        assert r["status"] == 200 and r["body"] == b"0123456789"
        assert not r["end"]
        assert r["reset"] == RESET_PROTOCOL_ERROR
        settled(pool)


@pytest.mark.parametrize("response", [
    b"HTTP/1.1 20 OK\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n",    # Envoy: 502
    b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n",
    b"HTTX/1.1 200 OK\r\n\r\n",
    b"garbage\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ncontent-length: 1x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nx: a\x00b\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n folded\r\n\r\n",
])
@isolated
def test_invalid_response_is_a_protocol_error(response):
    handler, _ = one_response(response)
    with scripted_server(handler) as up:
        pool = Pool(up.port)
        r = pool.get()
        assert r["reset"] == RESET_PROTOCOL_ERROR
        assert pool.stat("upstream_cx_protocol_error") == 1
        pool.turn(lambda: pool.stat("upstream_cx_active") == 0)
        settled(pool)


@isolated
def test_too_many_response_headers_is_a_protocol_error():
    extra = b"".join(b"x-h%d: v\r\n" % i for i in range(10))
    handler, _ = one_response(ok(b"x", extra), requests=1)
    with scripted_server(handler) as up:
        pool = Pool(up.port, max_headers_count=5)
        r = pool.get()
        assert r["reset"] == RESET_PROTOCOL_ERROR
        assert pool.stat("upstream_cx_protocol_error") == 1
    handler, _ = one_response(ok(b"x", extra), requests=1)
    with scripted_server(handler) as up:
        pool = Pool(up.port, max_headers_count=20)
        assert pool.get()["status"] == 200


@isolated
def test_response_head_too_large_is_a_protocol_error():
    handler, _ = one_response(ok(b"x", b"x-big: " + b"a" * (61 * 1024) + b"\r\n"))
    with scripted_server(handler) as up:
        pool = Pool(up.port)
        assert pool.get()["reset"] == RESET_PROTOCOL_ERROR


@isolated
def test_response_before_request_complete_closes_the_connection():
    handler, _ = one_response(ok(b"early"))
    with scripted_server(handler) as up:
        pool = Pool(up.port)
        sid = pool.request(method="POST", headers=(("host", "h"), ("content-length", "0")),
                           end_stream=False)
        pool.turn(lambda: pool.response(sid)["end"])
        pool.turn(lambda: pool.stat("upstream_cx_active") == 0, what="connection closed")
        settled(pool)


# ------------------------------------------------------------ request encoding

@isolated
def test_request_encoding():
    handler, seen = one_response(ok(), requests=5)
    with scripted_server(handler) as up:
        pool = Pool(up.port)
        # GET without body: request line, host first, no framing header.
        pool.get(b"/a?b=1", headers=(("x-one", "1"), ("Host", "example.com")))
        assert seen[-1][0] == b"GET /a?b=1 HTTP/1.1\r\nhost: example.com\r\nx-one: 1\r\n\r\n"
        # POST with content-length: kept, body as is.
        pool.get(b"/p", method="POST", body=b"12345",
                 headers=(("host", "h"), ("content-length", "5")))
        assert seen[-1] == (b"POST /p HTTP/1.1\r\nhost: h\r\ncontent-length: 5\r\n\r\n", b"12345")
        # POST without a body: content-length: 0 is added (Envoy does).
        pool.get(b"/e", method="POST")
        assert seen[-1][0] == b"POST /e HTTP/1.1\r\nhost: upstream\r\ncontent-length: 0\r\n\r\n"
        # A body of unknown length goes chunked; a downstream
        # transfer-encoding is not copied.
        sid = pool.request(path=b"/c", method="POST", end_stream=False,
                           headers=(("host", "h"), ("transfer-encoding", "chunked")))
        pool.turn(lambda: pool.response(sid)["ready"])
        pool.send(sid, b"hello")
        pool.send(sid, b" world", end_stream=True)
        pool.turn(lambda: pool.response(sid)["end"])
        assert seen[-1] == (b"POST /c HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n",
                            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        # Trailers end a chunked body; they go upstream with enable_trailers
        # only (Envoy's default drops them).
        sid = pool.request(path=b"/t", method="POST", end_stream=False)
        pool.turn(lambda: pool.response(sid)["ready"])
        pool.send(sid, b"abc")
        pool.trailers(sid, (("x-t", "v"),))
        pool.turn(lambda: pool.response(sid)["end"])
        assert seen[-1][1] == b"3\r\nabc\r\n0\r\n\r\n"
        settled(pool)
    handler, seen = one_response(ok(), requests=1)
    with scripted_server(handler) as up:
        pool = Pool(up.port, enable_trailers=True)
        sid = pool.request(path=b"/t", method="POST", end_stream=False)
        pool.turn(lambda: pool.response(sid)["ready"])
        pool.send(sid, b"abc")
        pool.trailers(sid, (("x-t", "v"),))
        pool.turn(lambda: pool.response(sid)["end"])
        assert seen[-1][1] == b"3\r\nabc\r\n0\r\nx-t: v\r\n\r\n"


@isolated
def test_upgrade_101_makes_a_tunnel():
    seen = []

    def handler(c):
        req = read_request(c)
        seen.append(req)
        c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
                  b"connection: upgrade\r\n\r\nhello from upstream")
        c.settimeout(5)
        data = b""
        while not data.endswith(b"ping"):
            d = c.recv(100)
            if not d:
                return
            data += d
        c.sendall(b"|pong:" + data)
        c.close()

    with scripted_server(handler) as up:
        pool = Pool(up.port)
        sid = pool.request(end_stream=False, headers=(
            ("host", "h"), ("connection", "Upgrade"), ("upgrade", "websocket")))
        pool.turn(lambda: pool.response(sid)["status"] == 101)
        # No framing header on the upgrade request (Envoy adds none).
        assert seen[0][0] == (b"GET / HTTP/1.1\r\nhost: h\r\nconnection: Upgrade\r\n"
                              b"upgrade: websocket\r\n\r\n")
        pool.turn(lambda: pool.response(sid)["body"] == b"hello from upstream")
        assert not pool.response(sid)["end"]
        pool.send(sid, b"raw ")         # not chunked: the new protocol's bytes
        pool.send(sid, b"ping")
        pool.turn(lambda: pool.response(sid)["end"], what="tunnel closed by upstream")
        assert pool.response(sid)["body"] == b"hello from upstream|pong:raw ping"
        assert pool.response(sid)["reset"] is None
        pool.turn(lambda: pool.stat("upstream_cx_active") == 0)
        settled(pool)


@isolated
def test_101_without_an_upgrade_request_is_not_a_tunnel():
    handler, _ = one_response(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
    with scripted_server(handler) as up:
        pool = Pool(up.port)
        r = pool.get()
        assert r["status"] == 101 and r["end"]
        pool.turn(lambda: pool.stat("upstream_cx_active") == 0)      # not reused
        settled(pool)
