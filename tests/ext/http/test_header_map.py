"""HttpHeaderMap: a parsed head's headers as offsets, edited in place."""
import pytest

from envoy_fast._worker import HttpHeaderMapForTest

HEAD = (b"GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nX-Custom: One\r\n"
        b"Connection: keep-alive\r\nx-custom: two\r\nAccept: */*\r\n\r\n")


def test_load_lowercases_names_and_keeps_order_and_values():
    m = HttpHeaderMapForTest(HEAD)
    assert m.items() == [(b"host", b"example.com"), (b"x-custom", b"One"),
                         (b"connection", b"keep-alive"), (b"x-custom", b"two"),
                         (b"accept", b"*/*")]
    assert m.path() == b"/a?b=1"
    assert m.get_known("host") == b"example.com"
    assert m.find(b"X-CUSTOM") == b"One"
    assert m.find(b"missing") is None


def test_remove_by_name_removes_every_entry_and_keeps_the_rest():
    m = HttpHeaderMapForTest(HEAD)
    assert m.remove(b"X-Custom") == 2
    assert m.remove_known("connection") == 1
    assert m.get_known("connection") is None
    assert m.encode() == b"host: example.com\r\naccept: */*\r\n"


def test_set_known_replaces_first_and_drops_duplicates_or_adds():
    m = HttpHeaderMapForTest(b"GET / HTTP/1.1\r\nhost: a\r\nx-request-id: 1\r\n"
                             b"x-request-id: 2\r\n\r\n")
    m.set_known("x-request-id", b"a-much-longer-value-than-before")
    m.set_known("x-forwarded-proto", b"http")
    assert m.items() == [(b"host", b"a"), (b"x-request-id", b"a-much-longer-value-than-before"),
                         (b"x-forwarded-proto", b"http")]
    assert m.get_known("x-forwarded-proto") == b"http"


def test_index_moves_to_the_next_entry_of_the_same_header():
    m = HttpHeaderMapForTest(b"GET / HTTP/1.1\r\nhost: a\r\nx-forwarded-for: 1.1.1.1\r\n"
                             b"x-forwarded-for: 2.2.2.2\r\n\r\n")
    m.set_known("x-forwarded-for", b"9.9.9.9")
    assert m.get_known("x-forwarded-for") == b"9.9.9.9"
    assert m.items()[1:] == [(b"x-forwarded-for", b"9.9.9.9")]


def test_append_value_and_byte_size():
    m = HttpHeaderMapForTest(b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n")
    before = m.byte_size()
    m.append_value(b"x-forwarded-for", b"10.0.0.1")
    assert m.find(b"x-forwarded-for") == b"1.2.3.4,10.0.0.1"
    assert m.byte_size() == before + len(b",10.0.0.1")


def test_added_headers_are_indexed_and_encoded_host_first():
    m = HttpHeaderMapForTest(b"GET / HTTP/1.1\r\nUser-Agent: t\r\nHost: h\r\n\r\n")
    m.add(b"X-Envoy-Expected-Rq-Timeout-Ms", b"15000")
    assert m.get_known("x-envoy-expected-rq-timeout-ms") == b"15000"
    assert m.encode(first="host") == (b"host: h\r\nuser-agent: t\r\n"
                                      b"x-envoy-expected-rq-timeout-ms: 15000\r\n")


def test_rewritten_path():
    m = HttpHeaderMapForTest(HEAD)
    m.set_path(b"/rewritten?b=1")
    assert m.path() == b"/rewritten?b=1"


@pytest.mark.parametrize("n", [1, 16, 17, 200])
def test_growth_past_the_initial_block_and_entry_array(n):
    m = HttpHeaderMapForTest(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    for i in range(n):
        m.add(b"x-h%d" % i, b"v" * 100)
    items = m.items()
    assert len(items) == n + 1
    assert items[-1] == (b"x-h%d" % (n - 1), b"v" * 100)
    assert m.find(b"x-h0") == b"v" * 100
