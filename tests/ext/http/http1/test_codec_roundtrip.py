"""Encoders and parsers together: what http1_encode_* write parses back to
the same message (property-based, hypothesis), fed whole or in random
pieces; the reason phrases Envoy 1.40 writes; chunk framing moves data."""
import pytest
from hypothesis import given, settings, strategies as st

from envoy_fast._worker import (Http1MessageStreamForTest, http1_encode_request_for_test,
                                http1_encode_response_for_test, http1_reason_phrase_for_test)

TCHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~"
VCHARS = bytes(range(0x21, 0x7f)) + bytes(range(0x80, 0x100))
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "PROPFIND", "MKCOL", "MSEARCH"]
FRAMING = {b"content-length", b"transfer-encoding", b"host", b"connection"}

names = st.text(TCHARS, min_size=1, max_size=24).map(str.encode).filter(
    lambda n: n.lower() not in FRAMING)
# A value: visible bytes, obs-text, inner SP / HT; no leading/trailing blanks
values = st.one_of(st.just(b""), st.tuples(
    st.binary(min_size=1, max_size=1).filter(lambda b: b[0] in VCHARS),
    st.lists(st.sampled_from(list(VCHARS) + [0x20, 0x09]), max_size=40).map(bytes),
    st.binary(min_size=1, max_size=1).filter(lambda b: b[0] in VCHARS),
).map(lambda t: t[0] + t[1] + t[2] if t[1] else t[0]))
headers = st.lists(st.tuples(names, values), max_size=20)
paths = st.lists(st.sampled_from(list(range(0x21, 0x7f))), max_size=60).map(lambda p: b"/" + bytes(p))
hosts = st.text("abcdefghijklmnopqrstuvwxyz0123456789-.:", min_size=1, max_size=30).map(str.encode)
chunks = st.lists(st.binary(min_size=0, max_size=300), max_size=8)


def feed_in_pieces(stream, data, cuts):
    out = []
    prev = 0
    for c in sorted(set(min(c, len(data)) for c in cuts)) + [len(data)]:
        out += stream.feed(data[prev:c])
        prev = c
    return out


def lower(hs):
    return [(n.lower(), v) for n, v in hs]


@settings(max_examples=300, deadline=None)
@given(method=st.sampled_from(METHODS), path=paths, host=hosts, hs=headers, body=chunks,
       chunked=st.booleans(), trailers=st.lists(st.tuples(names, values), max_size=4),
       cuts=st.lists(st.integers(0, 4000), max_size=6))
def test_request_round_trip(method, path, host, hs, body, chunked, trailers, cuts):
    all_headers = hs + [(b"Host", host)]
    payload = b"".join(body)
    if chunked:
        all_headers.append((b"Transfer-Encoding", b"chunked"))
        wire = http1_encode_request_for_test(method, path, all_headers, body, trailers)
    else:
        all_headers.append((b"Content-Length", b"%d" % len(payload)))
        wire = http1_encode_request_for_test(method, path, all_headers) + payload
        trailers = []
    # pipelined after itself: the first ends exactly where the second starts
    s = Http1MessageStreamForTest(keep_trailers=True)
    msgs = feed_in_pieces(s, wire + wire, cuts)
    assert len(msgs) == 2 and msgs[0] == msgs[1]
    m = msgs[0]
    head = m["head"]
    assert (head["method"], head["target"], head["version"]) == (method, path, "HTTP/1.1")
    # host first (Envoy's encoder order), the rest as given; names lower-case
    want = [(b"host", host)] + lower(hs) + lower(all_headers[len(hs) + 1:])
    assert head["map_headers"] == want
    assert m["body"] == payload
    assert (m["trailers"] or []) == lower(trailers)


@settings(max_examples=300, deadline=None)
@given(status=st.integers(100, 999), hs=headers, body=chunks, chunked=st.booleans(),
       http10=st.booleans(), cuts=st.lists(st.integers(0, 4000), max_size=6))
def test_response_round_trip(status, hs, body, chunked, http10, cuts):
    bodyless = status < 200 or status in (204, 304)
    payload = b"" if bodyless else b"".join(body)
    if bodyless:
        wire = http1_encode_response_for_test(status, hs, http10)
    elif chunked:
        hs = hs + [(b"Transfer-Encoding", b"chunked")]
        wire = http1_encode_response_for_test(status, hs, http10, body)
    else:
        hs = hs + [(b"Content-Length", b"%d" % len(payload))]
        wire = http1_encode_response_for_test(status, hs, http10) + payload
    s = Http1MessageStreamForTest(is_request=False)
    [m] = feed_in_pieces(s, wire, cuts)
    assert m["head"]["status"] == status
    assert m["head"]["version"] == ("HTTP/1.0" if http10 else "HTTP/1.1")
    assert [(n, v) for n, v, _ in m["head"]["headers"]] == lower(hs)
    assert m["body"] == payload
    assert wire.split(b"\r\n", 1)[0].split(b" ", 2)[2].decode() == http1_reason_phrase_for_test(status)


def test_reason_phrases_are_envoys():
    # Read off Envoy 1.40 relaying each status from an upstream.
    assert http1_reason_phrase_for_test(200) == "OK"
    assert http1_reason_phrase_for_test(431) == "Request Header Fields Too Large"
    assert http1_reason_phrase_for_test(425) == "Too Early"
    assert http1_reason_phrase_for_test(599) == "Last Unassigned Server Error Code"
    for unknown in (299, 306, 418, 420, 509, 600, 999, 2000, -1):
        assert http1_reason_phrase_for_test(unknown) == "Unknown"
    assert http1_encode_response_for_test(2000, []) == b"HTTP/1.1 2000 Unknown\r\n\r\n"


def test_encoded_heads_and_chunks_byte_for_byte():
    assert http1_encode_request_for_test(
        "MSEARCH", b"/x?y", [(b"A", b"1"), (b"Host", b"h"), (b"b", b"2")]) == \
        b"MSEARCH /x?y HTTP/1.1\r\nhost: h\r\na: 1\r\nb: 2\r\n\r\n"
    assert http1_encode_response_for_test(404, [(b"X", b"y")], True) == \
        b"HTTP/1.0 404 Not Found\r\nx: y\r\n\r\n"
    wire = http1_encode_response_for_test(200, [], False, [b"", b"a" * 26, b"b" * 4096], [(b"T", b"v")])
    assert wire == (b"HTTP/1.1 200 OK\r\n\r\n1a\r\n" + b"a" * 26 + b"\r\n1000\r\n" + b"b" * 4096
                    + b"\r\n0\r\nt: v\r\n\r\n")
    assert http1_encode_response_for_test(200, [], False, []).endswith(b"\r\n\r\n0\r\n\r\n")


@settings(max_examples=200, deadline=None)
@given(body=chunks, cuts=st.lists(st.integers(0, 3000), max_size=10))
def test_chunked_body_any_split(body, cuts):
    wire = http1_encode_response_for_test(200, [(b"Transfer-Encoding", b"chunked")], False, body)
    s = Http1MessageStreamForTest(is_request=False)
    [m] = feed_in_pieces(s, wire, cuts)
    assert m["body"] == b"".join(body)


@pytest.mark.parametrize("n", [1, 15, 16, 255, 4096, 16384, 16385, 1 << 20])
def test_chunk_size_line(n):
    wire = http1_encode_response_for_test(200, [], False, [b"z" * n])
    assert wire.startswith(b"HTTP/1.1 200 OK\r\n\r\n%x\r\n" % n)
