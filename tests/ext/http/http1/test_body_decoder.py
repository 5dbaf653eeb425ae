"""Http1BodyDecoder through its test hooks: Content-Length, chunked (with
extensions and trailers) and close-delimited bodies; whole, byte by byte
and split at every offset; pipelined messages; the chunk grammar Envoy 1.40
accepts and refuses (observed on the real binary, see test_codec_vs_envoy);
a large body streams without piling up."""
import pytest

from envoy_fast._worker import Http1BodyDecoderForTest, Http1MessageStreamForTest


def decode(mode, data, cl=-1, keep_trailers=False):
    d = Http1BodyDecoderForTest(keep_trailers)
    d.start(mode, cl)
    status, body, rest = d.feed(data)
    return status, body, rest, d.error(), d.trailers()


def decode_split(mode, data, cl=-1, keep_trailers=False, sizes=None):
    """Feed data in pieces (sizes: lengths; default one byte each)."""
    d = Http1BodyDecoderForTest(keep_trailers)
    d.start(mode, cl)
    body = b""
    status, rest = "need_more", b""
    i = 0
    pieces = []
    for n in sizes or [1] * len(data):
        pieces.append(data[i:i + n])
        i += n
    if i < len(data):
        pieces.append(data[i:])
    for j, piece in enumerate(pieces):
        status, out, rest = d.feed(piece)
        body += out
        if status != "need_more":
            rest += b"".join(pieces[j + 1:])
            break
    return status, body, rest, d.error(), d.trailers()


def test_content_length():
    assert decode("content_length", b"hello world!!", 11)[:3] == ("done", b"hello world", b"!!")
    assert decode("content_length", b"hel", 11)[:3] == ("need_more", b"hel", b"")
    assert decode("content_length", b"", 0)[:3] == ("done", b"", b"")
    assert decode("none", b"GET /")[:3] == ("done", b"", b"GET /")


def test_until_close_takes_everything_and_ends_at_eof():
    d = Http1BodyDecoderForTest()
    d.start("until_close")
    assert d.feed(b"abc") == ("need_more", b"abc", b"")
    assert d.feed(b"HTTP/1.1 200 OK\r\n") == ("need_more", b"HTTP/1.1 200 OK\r\n", b"")
    assert d.eof() == "done"
    assert d.body_bytes() == 20


def test_eof_cuts_a_framed_body_short():
    for mode, cl, data in [("content_length", 10, b"abc"), ("chunked", -1, b"5\r\nab")]:
        d = Http1BodyDecoderForTest()
        d.start(mode, cl)
        d.feed(data)
        assert d.eof() == "error"
        assert d.error() == (400, "http1.premature_eof")
    d = Http1BodyDecoderForTest()
    d.start("content_length", 3)
    d.feed(b"abc")
    assert d.eof() == "done"


CHUNKED = [
    # (wire, body, trailers kept)
    (b"5\r\nhello\r\n0\r\n\r\n", b"hello", []),
    (b"5;a=b\r\nhello\r\n6;x;y=\"q z\"\r\n world\r\n0;last\r\n\r\n", b"hello world", []),
    (b"A\r\n0123456789\r\n0\r\nX-T: 1\r\nx-u:  two \r\n\r\n", b"0123456789",
     [(b"x-t", b"1"), (b"x-u", b"two")]),
    (b"0000005\r\nhello\r\n0\r\n\r\n", b"hello", []),
    (b"5 \t \r\nhello\r\n0\r\n\r\n", b"hello", []),
    (b"5 x\r\nhello\r\n0\r\n\r\n", b"hello", []),
    (b"5;e\x00\x7f\xff\r\nhello\r\n0\r\n\r\n", b"hello", []),
    (b"5\r\nhello\n0\r\n\r\n", b"hello", []),
    (b"5\r\nhello\r\r\r\n0\r\n\r\n", b"hello", []),
    (b"0\r\n\n", b"", []),
    (b"0\r\nX: 1\n\r\n", b"", [(b"x", b"1")]),
    (b"0\r\nX: a\r\n b\r\nY: c\rd\r\n\r\n", b"", [(b"x", b"a b"), (b"y", b"cd")]),
    (b"0\r\nhost: a b\r\nContent-Length: 5\r\n\r\n", b"", [(b"host", b"a b"), (b"content-length", b"5")]),
    (b"1\r\na\r\n1\r\nb\r\n2\r\ncd\r\n0\r\n\r\n", b"abcd", []),
]


@pytest.mark.parametrize("wire,body,trailers", CHUNKED)
def test_chunked_whole_bytewise_and_every_split(wire, body, trailers):
    after = b"GET /next HTTP/1.1\r\n\r\n"
    data = wire + after
    want = ("done", body, after, None, trailers)
    assert decode("chunked", data, keep_trailers=True) == want
    assert decode("chunked", data)[:4] == want[:4]
    assert decode("chunked", data)[4] is None
    d = Http1BodyDecoderForTest(True)
    d.start("chunked")
    got = b""
    for i in range(len(wire)):
        status, out, rest = d.feed(wire[i:i + 1])
        got += out
        assert status == ("done" if i == len(wire) - 1 else "need_more"), i
        # data moves at once; only a trailer section waits for its end
        assert len(rest) <= len(wire) - len(body)
    assert (got, d.trailers()) == (body, trailers)
    for k in range(len(data) + 1):
        assert decode_split("chunked", data, keep_trailers=True, sizes=[k]) == want, k


BAD_CHUNKED = [
    # refused by Envoy 1.40 (400 http1.codec_error unless said)
    b"x\r\n", b"-5\r\nhello\r\n0\r\n\r\n", b"0x5\r\nhello\r\n0\r\n\r\n", b" 5\r\nhello\r\n",
    b"\r\n5\r\nhello\r\n", b"5\nhello\r\n0\r\n\r\n", b"5\r\r\nhello\r\n", b"5;a\nhello\r\n",
    b"5;a\rb\r\nhello\r\n", b"5\r\nhelloXX0\r\n\r\n", b"5\r\nhello\rX0\r\n\r\n",
    b"5\r\nhello\n\n0\r\n\r\n", b"0\n\n", b"ffffffffffffffffff\r\nab", b"10000000000000000\r\n",
    b"0\r\nX T: 1\r\n\r\n", b"0\r\n: a\r\n\r\n", b"0\r\n\rGET / HTTP/1.1\r\n\r\n",
]


@pytest.mark.parametrize("wire", BAD_CHUNKED)
def test_chunked_rejections(wire):
    want = ("error", (400, "http1.codec_error"))
    r = decode("chunked", wire)
    assert (r[0], r[3]) == want
    r = decode_split("chunked", wire)
    assert (r[0], r[3]) == want


def test_chunked_invalid_character_in_a_trailer():
    r = decode("chunked", b"0\r\nX: a\x00\r\n\r\n")
    assert (r[0], r[3]) == ("error", (400, "http1.invalid_characters"))


def test_largest_chunk_size_is_accepted():
    # 16 hex digits (2^64 - 1): accepted, as by Envoy; the data streams.
    d = Http1BodyDecoderForTest()
    d.start("chunked")
    assert d.feed(b"ffffffffffffffff\r\nab") == ("need_more", b"ab", b"")


def test_trailer_limits():
    big = b"0\r\nX: " + b"a" * 2000 + b"\r\n\r\n"
    r = decode("chunked", big)
    assert r[0] == "done"
    d = Http1BodyDecoderForTest(False, 1)
    d.start("chunked")
    assert d.feed(big)[0] == "error" and d.error() == (431, "http1.headers_too_large")
    many = b"0\r\n" + b"".join(b"t%d: v\r\n" % i for i in range(6)) + b"\r\n"
    d = Http1BodyDecoderForTest(False, 60, 5)
    d.start("chunked")
    assert d.feed(many)[0] == "error" and d.error() == (431, "http1.too_many_headers")


def test_error_is_sticky_and_restart_clears_it():
    d = Http1BodyDecoderForTest()
    d.start("chunked")
    assert d.feed(b"zz")[0] == "error"
    assert d.feed(b"5\r\nhello\r\n0\r\n\r\n")[0] == "error"
    d.start("chunked")
    assert d.feed(b"5\r\nhello\r\n0\r\n\r\n")[:2] == ("done", b"hello")


# ------------------------------------------------------- messages in a stream

REQS = [
    b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
    b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n",
    b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3;x=1\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n",
    b"PUT /d HTTP/1.1\r\nHost: h\r\ncontent-length: 0\r\n\r\n",
]


def summarize(msgs):
    return [m if isinstance(m, tuple) else
            (m["head"].get("target"), m["head"].get("status"), m["body"], m["trailers"])
            for m in msgs]


def stream_all(data, pieces, **kw):
    s = Http1MessageStreamForTest(**kw)
    out = []
    i = 0
    for n in pieces:
        out += s.feed(data[i:i + n])
        i += n
    out += s.feed(data[i:])
    return summarize(out), s


def test_pipelined_requests_with_bodies_every_split_and_bytewise():
    data = b"".join(REQS)
    want = [(b"/a", None, b"hello", None), (b"/b", None, b"", None),
            (b"/c", None, b"abcde", [(b"t", b"1")]), (b"/d", None, b"", None)]
    assert stream_all(data, [], keep_trailers=True)[0] == want
    assert stream_all(data, [1] * len(data), keep_trailers=True)[0] == want
    for k in range(len(data) + 1):
        assert stream_all(data, [k], keep_trailers=True)[0] == want, k


def test_an_error_stops_the_stream():
    data = REQS[0] + b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + REQS[1]
    out, s = stream_all(data, [])
    assert out == [(b"/a", None, b"hello", None), ("error", 400, "http1.codec_error")]
    assert s.feed(REQS[1]) == []


RESPONSES = [
    # (wire, request was HEAD, (status, body))
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", False, (200, b"hello")),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", True, (200, b"")),
    (b"HTTP/1.1 100 Continue\r\n\r\n", False, (100, b"")),
    (b"HTTP/1.1 204 No Content\r\n\r\n", False, (204, b"")),
    (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n", False, (304, b"")),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", False, (200, b"ok")),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", True, (200, b"")),
    (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
     False, (101, b"")),
]


def test_response_framing_in_one_stream_with_1xx_before_the_final():
    data = b"".join(w for w, _, _ in RESPONSES)
    heads = [h for w, h, r in RESPONSES if r[0] >= 200]
    want = [(None, r[0], r[1], None) for _, _, r in RESPONSES]
    for k in range(len(data) + 1):
        assert stream_all(data, [k], is_request=False, heads=heads)[0] == want, k
    assert stream_all(data, [1] * len(data), is_request=False, heads=heads)[0] == want


def test_response_until_close():
    s = Http1MessageStreamForTest(is_request=False)
    assert s.feed(b"HTTP/1.0 200 OK\r\n\r\nsome body") == []
    assert s.feed(b" and more") == []
    [m] = s.eof()
    assert m["body"] == b"some body and more" and m["head"]["keep_alive"] is False
    s = Http1MessageStreamForTest(is_request=False)
    s.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    assert s.eof() == [("error", 400, "http1.premature_eof")]


def test_a_large_body_streams_through():
    # 64 MiB in 256 KiB reads: never more than one read's worth waits in
    # the output, and nothing stays behind in the input.
    s = Http1MessageStreamForTest()
    assert s.feed(b"POST /big HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n") == []
    piece = b"40000\r\n" + b"x" * 0x40000 + b"\r\n"
    for _ in range(256):
        assert s.feed(piece, discard_body=True) == []
        assert s.buffered() == 0
    [m] = s.feed(b"0\r\n\r\n")
    assert m["body_len"] == 256 * 0x40000
    assert s.max_body_buffered <= 0x40000
