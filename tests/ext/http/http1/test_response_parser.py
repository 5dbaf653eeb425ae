"""Http1ResponseParser through its test hook: status lines, headers on the
code shared with the request parser, Connection tokens and keep-alive, the
framing decision, limits; whole, byte by byte and split at every offset."""
import pytest

from envoy_fast._worker import Http1ResponseParserForTest


def parse(data, head=False, **kw):
    return Http1ResponseParserForTest(**kw).feed(data, head)


def parse_split(data, k, head=False):
    p = Http1ResponseParserForTest()
    first = p.feed(data[:k], head)
    return first if first != "need_more" else p.feed(data[k:], head)


OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nX-Y_z: 1\r\n\r\nhello"


def test_status_line_and_headers():
    r = parse(OK)
    assert (r["status"], r["reason"], r["version"]) == (200, b"OK", "HTTP/1.1")
    assert r["headers"] == [(b"content-type", b"text/plain", "content-type"),
                            (b"content-length", b"5", "content-length"),
                            (b"x-y_z", b"1", None)]
    assert r["underscore"] == [2]
    assert r["content_length"] == 5 and r["body_mode"] == "content_length"
    assert r["head_len"] == len(OK) - 5
    assert r["map_headers"] == [(b"content-type", b"text/plain"), (b"content-length", b"5"),
                                (b"x-y_z", b"1")]


def test_status_line_variants_envoy_accepts():
    assert parse(b"HTTP/1.1 200\r\n\r\n")["reason"] == b""
    assert parse(b"HTTP/1.1  404  Not  Found \r\n\r\n")["reason"] == b"Not  Found "
    assert parse(b"HTTP/1.1 2000 X\r\n\r\n")["status"] == 2000
    assert parse(b"HTTP/1.1 600 X\r\n\r\n")["status"] == 600
    assert parse(b"HTTP/2.0 200 OK\r\n\r\n")["version"] == "HTTP/1.0"
    assert parse(b"HTTP/1.1 200 OK\nA: b\n\n")["headers"] == [(b"a", b"b", None)]
    assert parse(b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n")["headers"] == [(b"x", b"a b", None)]
    assert parse(b"HTTP/1.1 200 OK\r\nHost: a b\r\n\r\n")["headers"][0][1] == b"a b"


BAD = [
    b"http/1.1 200 OK\r\n\r\n", b"HTTP/1.1 099 OK\r\n\r\n", b"HTTP/1.1 20 OK\r\n\r\n",
    b"HTTP/1.1 OK\r\n\r\n", b"HTTP/1.1\r\n\r\n", b"HTTP/1.1 200x OK\r\n\r\n",
    b"HTTP/1.1 200 O\x01K\r\n\r\n", b"\r\nHTTP/1.1 200 OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nX: a\x00\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\nContent-Length: 2\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\nContent-Length: 1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n",
]


@pytest.mark.parametrize("msg", BAD)
def test_rejections_whole_and_split(msg):
    # (the router answers any of these with 502; the status here is moot)
    r = parse(msg)
    assert r[0] == "error"
    for k in range(len(msg) + 1):
        assert parse_split(msg, k) == r, k


@pytest.mark.parametrize("msg,head,mode", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", False, "content_length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", True, "none"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", False, "none"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", False, "chunked"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", True, "none"),
    (b"HTTP/1.1 200 OK\r\n\r\n", False, "until_close"),
    (b"HTTP/1.0 200 OK\r\n\r\n", False, "until_close"),
    (b"HTTP/1.1 204 No Content\r\n\r\n", False, "none"),
    (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n", False, "none"),
    (b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", False, "none"),
    (b"HTTP/1.1 100 Continue\r\n\r\n", False, "none"),
    (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", False, "none"),
])
def test_body_mode(msg, head, mode):
    assert parse(msg, head)["body_mode"] == mode


def test_zero_content_length_on_204_and_1xx_is_dropped_as_envoy_does():
    for msg in (b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nA: b\r\n\r\n",
                b"HTTP/1.1 100 Continue\r\ncontent-length: 0\r\nA: b\r\n\r\n"):
        r = parse(msg)
        assert r["content_length"] is None and r["body_mode"] == "none"
        assert r["map_headers"] == [(b"a", b"b")]


@pytest.mark.parametrize("msg,connection,keep_alive", [
    (b"HTTP/1.1 200 OK\r\n\r\n", (False, False, False), True),
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", (True, False, False), False),
    (b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, CLOSE\r\n\r\n", (True, True, False), False),
    (b"HTTP/1.0 200 OK\r\n\r\n", (False, False, False), False),
    (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", (False, True, False), True),
    (b"HTTP/1.1 101 Switching Protocols\r\nConnection: x, Upgrade\r\nConnection: y\r\n\r\n",
     (False, False, True), True),
])
def test_connection_tokens_and_keep_alive(msg, connection, keep_alive):
    r = parse(msg)
    assert (r["connection"], r["keep_alive"]) == (connection, keep_alive)


def test_every_split_and_bytewise_give_the_same_result():
    for msg in (OK, b"HTTP/1.1 200 OK\nA: b\n\n", b"HTTP/1.1 200 OK\r\nX: a\r\n\tb\rc\r\n\r\n"):
        whole = parse(msg)
        for k in range(len(msg) + 1):
            assert parse_split(msg, k) == whole, k
        p = Http1ResponseParserForTest()
        out = "need_more"
        for i in range(len(msg)):
            out = p.feed(msg[i:i + 1])
            if out != "need_more":
                break
        assert out == whole


def test_limits():
    big = b"HTTP/1.1 200 OK\r\nX: " + b"a" * 2000 + b"\r\n\r\n"
    assert parse(big, max_request_headers_kb=1) == ("error", 431, "http1.headers_too_large")
    many = b"HTTP/1.1 200 OK\r\n" + b"".join(b"h%d: v\r\n" % i for i in range(6)) + b"\r\n"
    assert parse(many, max_headers_count=5) == ("error", 431, "http1.too_many_headers")
    assert len(parse(many, max_headers_count=6)["headers"]) == 6


def test_next_response_after_a_1xx():
    p = Http1ResponseParserForTest()
    assert p.feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n")["status"] == 100
    p.next_message()
    assert p.feed(b"")["status"] == 200
