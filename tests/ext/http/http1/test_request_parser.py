"""Http1RequestParser (the HTTP/1.1 request head) through its test hook:
whole, byte by byte, split at every offset; every rejection with Envoy's
status; the size and count limits; random valid heads against a reference."""
import random

import pytest

from envoy_fast._worker import Http1RequestParserForTest

KNOWN = {"host", "content-length", "transfer-encoding", "connection", "upgrade",
         "expect", "te", "x-forwarded-for", "x-forwarded-proto", "x-request-id"}


def parse(data, **kw):
    return Http1RequestParserForTest(**kw).feed(data)


def parse_bytewise(data, **kw):
    p = Http1RequestParserForTest(**kw)
    out = "need_more"
    for i in range(len(data)):
        out = p.feed(data[i:i + 1])
        if out != "need_more":
            break
    return out


def parse_split(data, k, **kw):
    p = Http1RequestParserForTest(**kw)
    first = p.feed(data[:k])
    if first != "need_more":
        return first
    return p.feed(data[k:])


def drop_buffered(r):
    if isinstance(r, dict):
        r = dict(r)
        r.pop("buffered")
    return r


GET = (b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8\r\n"
       b"Accept: */*\r\nX-Forwarded-For: 10.0.0.1\r\nX-Request-Id: abc\r\n\r\n")
POST = b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world"
CHUNKED = b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"


def test_get_with_headers():
    r = parse(GET)
    assert r["method"] == "GET"
    assert r["target"] == b"/index.html?q=1"
    assert r["version"] == "HTTP/1.1"
    assert r["headers"] == [(b"host", b"example.com", "host"),
                            (b"user-agent", b"curl/8", "user-agent"),
                            (b"accept", b"*/*", None),
                            (b"x-forwarded-for", b"10.0.0.1", "x-forwarded-for"),
                            (b"x-request-id", b"abc", "x-request-id")]
    assert r["known"] == {"host": 0, "user-agent": 1, "x-forwarded-for": 3, "x-request-id": 4}
    assert r["content_length"] is None and r["chunked"] is False
    assert r["head_len"] == len(GET)


def test_post_content_length_leaves_body_in_buffer():
    r = parse(POST)
    assert r["method"] == "POST" and r["content_length"] == 11
    assert r["head_len"] == POST.index(b"\r\n\r\n") + 4
    assert r["buffered"] == len(POST)


def test_chunked():
    r = parse(CHUNKED)
    assert r["chunked"] is True and r["content_length"] is None
    assert r["headers"][1] == (b"transfer-encoding", b"chunked", "transfer-encoding")
    assert parse(CHUNKED.replace(b"chunked", b"ChUnKeD"))["chunked"] is True


def test_http10_and_ows_trimmed_and_case_insensitive_names():
    r = parse(b"HEAD / HTTP/1.0\r\nhOsT:   a.b \t\r\nX-Y:  a b \r\nCONNECTION:keep-alive\r\nempty:\r\n\r\n")
    assert r["version"] == "HTTP/1.0" and r["method"] == "HEAD"
    assert r["headers"] == [(b"host", b"a.b", "host"), (b"x-y", b"a b", None),
                            (b"connection", b"keep-alive", "connection"),
                            (b"empty", b"", None)]


BARE_LF = b"\r\nPUT /x HTTP/1.0\nHost: a\r\nContent-Length: 2\n\nab"


@pytest.mark.parametrize("msg", [GET, POST, CHUNKED, BARE_LF])
def test_bytewise_and_every_split_give_the_same_result(msg):
    whole = drop_buffered(parse(msg))
    assert drop_buffered(parse_bytewise(msg)) == whole
    for k in range(len(msg) + 1):
        assert drop_buffered(parse_split(msg, k)) == whole, k


def test_pipelined_requests_parse_in_turn():
    p = Http1RequestParserForTest()
    assert p.feed(GET + POST)["target"] == b"/index.html?q=1"
    p.next_message()
    assert p.feed(b"")["target"] == b"/up"


def test_incomplete_head_needs_more():
    assert parse(GET[:-1]) == "need_more"
    assert parse(GET[:-2]) == "need_more"
    assert parse(b"") == "need_more"


BAD = [
    # (request, status, detail): details as Envoy 1.40's access log prints
    # %RESPONSE_CODE_DETAILS% for each (read off the real binary)
    (b"get / HTTP/1.1\r\n\r\n", 400, "http1.codec_error"),
    (b"FOO / HTTP/1.1\r\n\r\n", 400, "http1.codec_error"),
    (b"G(T / HTTP/1.1\r\n\r\n", 400, "http1.codec_error"),
    (b"GET /a\x00b HTTP/1.1\r\n\r\n", 400, "http1.invalid_characters"),
    (b"GET / http/1.1\r\n\r\n", 400, "http1.codec_error"),
    (b"GET / HTTP/11.1\r\n\r\n", 400, "http1.codec_error"),
    (b"GET / HTTP/1.1x\r\n\r\n", 400, "http1.codec_error"),
    (b"GET / XYZ\r\n\r\n", 400, "http1.codec_error"),
    (b"M-SEARCH / HTTP/1.1\r\n\r\n", 400, "http1.codec_error"),
    (b"PRI * HTTP/1.1\r\n\r\n", 400, "http1.codec_error"),
    (b"GET \r\n\r\n", 400, "http1.codec_error"),
    (b"GET /a\x7f HTTP/1.1\r\n\r\n", 400, "http1.invalid_characters"),
    (b"GET /a\xff HTTP/1.1\r\n\r\n", 400, "http1.codec_error"),
    (b"GET / HTTP/1.1\r\nHost: a\r\n\r\r\n\r\n", 400, "http1.codec_error"),
    (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, "http1.codec_error"),
    (b"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400, "http1.codec_error"),
    (b"GET / HTTP/1.1\r\nHo(st: a\r\n\r\n", 400, "http1.codec_error"),
    (b"GET / HTTP/1.1\r\n: a\r\n\r\n", 400, "http1.codec_error"),
    (b"GET / HTTP/1.1\r\nnocolon\r\n\r\n", 400, "http1.codec_error"),
    (b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n", 400, "http1.invalid_characters"),
    (b"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n", 400, "http1.invalid_characters"),
    (b"GET / HTTP/1.1\r\nX: a\x7fb\r\n\r\n", 400, "http1.invalid_characters"),
    (b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", 400, "http1.codec_error"),
    (b"POST / HTTP/1.1\r\nContent-Length: 4\r\ncontent-length: 4\r\n\r\n", 400,
     "http1.codec_error"),
    (b"POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 400, "http1.codec_error"),
    (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "http1.codec_error"),
    (b"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", 400, "http1.codec_error"),
    (b"POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n", 400, "http1.codec_error"),
    (b"POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n", 400,
     "http1.codec_error"),
    (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400,
     "http1.codec_error"),
    (b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
     "http1.content_length_and_chunked_not_allowed"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400,
     "http1.content_length_and_chunked_not_allowed"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "http1.invalid_transfer_encoding"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 501,
     "http1.invalid_transfer_encoding"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
     "http1.invalid_transfer_encoding"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501,
     "http1.invalid_transfer_encoding"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
     501, "http1.invalid_transfer_encoding"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\n", 400,
     "http1.content_length_and_chunked_not_allowed"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: ,chunked\r\n\r\n", 501, "http1.invalid_transfer_encoding"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked,\r\n\r\n", 501, "http1.invalid_transfer_encoding"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n", 501, "http1.invalid_transfer_encoding"),
    (b"GET / HTTP/1.1\x0b\r\n\r\n", 400, "http1.invalid_characters"),
    (b"\tGET / HTTP/1.1\r\n\r\n", 400, "http1.codec_error"),
    (b"GET / HTTP/1.10\r\n\r\n", 400, "http1.codec_error"),
    # targets (Envoy's handlePath)
    (b"GET abc HTTP/1.1\r\n\r\n", 400, "http1.codec_error"),
    (b"GET * HTTP/1.1\r\n\r\n", 400, "http1.invalid_url"),
    (b"GET ftp://ex.com/a HTTP/1.1\r\n\r\n", 400, "http1.invalid_scheme"),
    (b"GET http:/ex.com/a HTTP/1.1\r\n\r\n", 400, "http1.codec_error"),
    (b"GET http:// HTTP/1.1\r\n\r\n", 400, "http1.invalid_url"),
    (b"GET http://ex.com:99999/ HTTP/1.1\r\n\r\n", 400, "http1.invalid_url"),
    (b"GET http://ex.com:8x/ HTTP/1.1\r\n\r\n", 400, "http1.invalid_url"),
    # obs-fold with no header before it
    (b"GET / HTTP/1.1\r\n b\r\nHost: a\r\n\r\n", 400, "http1.codec_error"),
]


@pytest.mark.parametrize("msg,status,detail", BAD)
def test_rejections(msg, status, detail):
    want = ("error", status, detail)
    assert parse(msg) == want
    assert parse_bytewise(msg) == want
    for k in range(len(msg) + 1):
        assert parse_split(msg, k) == want, k


def test_error_is_sticky():
    p = Http1RequestParserForTest()
    assert p.feed(b"get / HTTP/1.1\r\n\r\n")[0] == "error"
    assert p.feed(GET)[0] == "error"


def test_what_envoy_accepts():
    # Measured on Envoy 1.40 (balsa): bare LF line ends, empty lines before
    # the request line, runs of SP / HT in the request line, extra CRs before
    # a line end, obs-text and HT in values, other HTTP versions read as 1.0.
    r = parse(b"GET / HTTP/1.1\nHost: a\nX: b\n\n")
    assert r["headers"] == [(b"host", b"a", "host"), (b"x", b"b", None)]
    r = parse(b"\r\n\nGET  /p  HTTP/1.1 \r\nHost: a\r\r\nX: a\tb\xff\r\n\r\n")
    assert (r["method"], r["target"], r["version"]) == ("GET", b"/p", "HTTP/1.1")
    assert r["headers"] == [(b"host", b"a", "host"), (b"x", b"a\tb\xff", None)]
    r = parse(b"GET\t/t \t HTTP/1.1\t\r\nTransfer-Encoding:  CHUNKED \r\n\r\n")
    assert (r["method"], r["target"], r["version"], r["chunked"]) == ("GET", b"/t", "HTTP/1.1", True)
    assert parse(b"GET / HTTP/2.0\r\n\r\n")["version"] == "HTTP/1.0"
    # Content-Length: any digits up to 2^64-1 (held as 2^63-1 past that)
    assert parse(b"POST / HTTP/1.1\r\nContent-Length: 0000000000000000000005\r\n\r\n")["content_length"] == 5
    assert parse(b"POST / HTTP/1.1\r\nContent-Length: 1000000000000000000\r\n\r\n")["content_length"] == 10**18
    assert parse(b"POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n")["content_length"] == 2**63 - 1
    assert parse(b"GET / HTTP/1.2\r\n\r\n")["version"] == "HTTP/1.0"
    assert parse(b"GET /\r\nHost: a\r\n\r\n")["version"] == "HTTP/0.9"
    for m in ("PROPFIND", "MSEARCH", "UNSUBSCRIBE", "MKCALENDAR", "QUERY"):
        assert parse(m.encode() + b" / HTTP/1.1\r\n\r\n")["method"] == m


def head_of_size(total):
    """A GET head of exactly `total` bytes."""
    start = b"GET / HTTP/1.1\r\nX: "
    end = b"\r\n\r\n"
    return start + b"a" * (total - len(start) - len(end)) + end


def test_head_size_limit_default_60k():
    assert isinstance(parse(head_of_size(60 * 1024)), dict)
    assert parse(head_of_size(60 * 1024 + 1)) == ("error", 431, "http1.headers_too_large")
    # Refused as soon as 60 KiB hold no blank line, without waiting for one.
    p = Http1RequestParserForTest()
    assert p.feed(b"GET / HTTP/1.1\r\nX: " + b"a" * 40000) == "need_more"
    assert p.feed(b"a" * 30000) == ("error", 431, "http1.headers_too_large")
    assert parse(head_of_size(2048), max_request_headers_kb=1)[1] == 431
    assert isinstance(parse(head_of_size(1024), max_request_headers_kb=1), dict)


def test_header_count_limit_default_100():
    def with_headers(n):
        return b"GET / HTTP/1.1\r\n" + b"".join(b"h%d: v\r\n" % i for i in range(n)) + b"\r\n"
    assert len(parse(with_headers(100))["headers"]) == 100
    assert parse(with_headers(101)) == ("error", 431, "http1.too_many_headers")
    assert len(parse(with_headers(5), max_headers_count=5)["headers"]) == 5
    assert parse(with_headers(6), max_headers_count=5)[1] == 431


TCHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~"
VCHARS = "".join(chr(c) for c in range(0x21, 0x7f))
AUTHORITY = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%!$&'()*+,;=:@[]"
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "PROPFIND", "MKCOL"]


def reference(msg):
    """A plain Python reading of a valid head."""
    head, _, _ = msg.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    method, target, version = lines[0].split(b" ")
    headers = []
    cl = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        low = name.decode().lower()
        if low == "content-length":
            cl = int(value)
        headers.append((name.lower(), value.strip(b" \t"), low if low in KNOWN else None))
    return method.decode(), target, version.decode(), headers, cl


def test_random_valid_heads_match_reference():
    rnd = random.Random(1234)
    for _ in range(300):
        names = [rnd.choice(["Host", "Connection", "x-request-id", "UPGRADE", "te", "Expect",
                             "".join(rnd.choice(TCHARS) for _ in range(rnd.randint(1, 20)))])
                 for _ in range(rnd.randint(0, 30))]
        lines = []
        for n in names:
            if n.lower() in ("content-length", "transfer-encoding"):
                n = "X-" + n
            chars = AUTHORITY if n.lower() == "host" else VCHARS + " \t\x80"
            v = "".join(rnd.choice(chars) for _ in range(rnd.randint(0, 40)))
            lines.append(n.encode() + b":" + rnd.choice([b"", b" ", b"\t "]) + v.encode("latin-1"))
        if rnd.random() < 0.5:
            lines.insert(rnd.randint(0, len(lines)), b"Content-Length: %d" % rnd.randint(0, 10**12))
        target = "/" + "".join(rnd.choice(VCHARS) for _ in range(rnd.randint(0, 60)))
        msg = (b"%s %s HTTP/1.%d\r\n" % (rnd.choice(METHODS).encode(), target.encode(),
                                          rnd.randint(0, 1))
               + b"".join(line + b"\r\n" for line in lines) + b"\r\n")
        r = parse(msg)
        method, tgt, version, headers, cl = reference(msg)
        assert (r["method"], r["target"], r["version"], r["headers"], r["content_length"]) == \
            (method, tgt, version, headers, cl), msg
        k = rnd.randint(0, len(msg))
        assert drop_buffered(parse_split(msg, k)) == drop_buffered(r)


# ------------------------------------------------ the real Envoy as the oracle

DIRECT_RESPONSE = {
    "name": "envoy.filters.network.http_connection_manager",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.network."
                 "http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "h",
        "route_config": {"virtual_hosts": [{
            "name": "v", "domains": ["*"],
            "routes": [{"match": {"prefix": "/"},
                        "direct_response": {"status": 200, "body": {"inline_string": "ok"}}}]}]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}

def with_host(msg):
    """`msg` with a Host header after its request line (Envoy wants one)."""
    line_end = msg.index(b"\n") + 1
    return msg[:line_end] + b"Host: a\r\n" + msg[line_end:]


def envoy_status(port, msg):
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(msg)
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1])


def expected_status(result):
    """The status Envoy's HCM gives for our parse: our error's, 426 for a
    version other than HTTP/1.1 (accept_http_10 is off), else the route's 200."""
    if isinstance(result, tuple):
        return result[1]
    if result["method"] == "QUERY" and "content-type" not in result["known"]:
        return 400      # the HCM's query_missing_content_type
    return 200 if result["version"] == "HTTP/1.1" else 426


def test_same_status_as_envoy():
    from helpers import bootstrap, free_port, listener, run_envoy, wait_port
    port = free_port()
    cfg = bootstrap([listener("l", port, [{"filters": [DIRECT_RESPONSE]}])], [])
    corpus = [with_host(m) for m, _, _ in BAD]
    corpus += [GET, POST, CHUNKED, b"GET / HTTP/1.1\nHost: a\nX: b\n\n",
               b"\r\n\nGET  /p  HTTP/1.1 \r\nHost: a\r\r\nX: a\tb\xff\r\n\r\n",
               b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", b"GET /\r\nHost: a\r\n\r\n",
               b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ChUnKeD\r\n\r\n0\r\n\r\n",
               b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"h%d: v\r\n" % i for i in range(99)) + b"\r\n",
               b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"h%d: v\r\n" % i for i in range(100)) + b"\r\n",
               with_host(head_of_size(60 * 1024 - 9)), with_host(head_of_size(60 * 1024 - 8))]
    corpus += [m.encode() + b" / HTTP/1.1\r\nHost: a\r\n\r\n" for m in METHODS + ["PRI", "QUERY"]]
    corpus.append(b"QUERY / HTTP/1.1\r\nHost: a\r\nContent-Type: a/b\r\n\r\n")
    with run_envoy(cfg, wait=[port]):
        wait_port(port)
        mismatches = []
        for msg in corpus:
            mine = expected_status(parse(msg))
            theirs = envoy_status(port, msg)
            if mine != theirs:
                mismatches.append((msg[:80], mine, theirs))
    assert mismatches == []


# ------------------------------------- what the HCM reads beyond the fields

def head_of(msg):
    """The request head as the message stream hook reports it (target
    form, URL parts, flags, the HttpHeaderMap loaded from it)."""
    from envoy_fast._worker import Http1MessageStreamForTest
    out = Http1MessageStreamForTest().feed(msg)
    return out[0] if isinstance(out[0], tuple) else out[0]["head"]


@pytest.mark.parametrize("lines,value", [
    # observed on Envoy 1.40: what the upstream receives
    (b"X: a\r\n b\r\n", b"a b"), (b"X: a\r\n\tb\r\n  c\r\n", b"a\tb  c"),
    (b"X: a \r\n   b  \r\n", b"a    b"), (b"X: \r\n b\r\n", b"b"), (b"X: a\n b\n", b"a b"),
    (b"X: a\rb\r\n", b"ab"), (b"X: \rab\r\n", b"ab"), (b"X: a\r\r\n", b"a"),
])
def test_obs_fold_and_bare_cr_are_rewritten_as_envoy_forwards_them(lines, value):
    msg = b"GET / HTTP/1.1\r\nHost: a\r\n" + lines + b"Y: z\r\n\r\n"
    want = [(b"host", b"a", "host"), (b"x", value, None), (b"y", b"z", None)]
    assert parse(msg)["headers"] == want
    assert parse_bytewise(msg)["headers"] == want
    for k in range(len(msg) + 1):
        assert parse_split(msg, k)["headers"] == want, k
    assert head_of(msg)["map_headers"] == [(b"host", b"a"), (b"x", value), (b"y", b"z")]


def test_underscore_flags_for_headers_with_underscores_action():
    h = head_of(b"GET / HTTP/1.1\r\nHost: a\r\nX_A: 1\r\nB: 2\r\n_: 3\r\n\r\n")
    assert h["underscore"] == [1, 3]
    assert head_of(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")["underscore"] == []


@pytest.mark.parametrize("target,form,url,path,host", [
    (b"/a?b", "origin", None, b"/a?b", b"h"),
    (b"*", "asterisk", None, b"*", b"h"),
    (b"http://Ex.com:80/p?q", "absolute", ("http", b"Ex.com:80", b"/p?q"), b"/p?q", b"Ex.com:80"),
    (b"HTTPS://u:p@ex.com", "absolute", ("https", b"ex.com", b"/"), b"/", b"ex.com"),
    (b"http://ex.com?x=1", "absolute", ("http", b"ex.com", b"?x=1"), b"?x=1", b"ex.com"),
    (b"http://[::1]:8080/x", "absolute", ("http", b"[::1]:8080", b"/x"), b"/x", b"[::1]:8080"),
])
def test_target_forms(target, form, url, path, host):
    method = b"OPTIONS" if target == b"*" else b"GET"
    h = head_of(method + b" " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n")
    assert (h["target_form"], h.get("url"), h["map_path"]) == (form, url, path)
    assert dict(h["map_headers"])[b"host"] == host


def test_connect_takes_host_from_its_target():
    h = head_of(b"CONNECT ex.com:443 HTTP/1.1\r\n\r\n")
    assert (h["target_form"], h["missing_host"]) == ("authority", False)
    assert h["map_headers"] == [(b"host", b"ex.com:443")]


def test_missing_host_flag():
    assert head_of(b"GET / HTTP/1.1\r\n\r\n")["missing_host"] is True
    assert head_of(b"OPTIONS * HTTP/1.1\r\n\r\n")["missing_host"] is True
    assert head_of(b"GET / HTTP/1.0\r\n\r\n")["missing_host"] is False
    assert head_of(b"GET http://a/ HTTP/1.1\r\n\r\n")["missing_host"] is False
    assert head_of(b"GET / HTTP/1.1\r\nHost:\r\n\r\n")["missing_host"] is False


def test_host_must_be_an_authority():
    for bad in (b"a b", b'a"b', b"a{b", b"a/b", b"a\xffb", b"a\\b"):
        assert head_of(b"GET / HTTP/1.1\r\nHost: " + bad + b"\r\n\r\n") == \
            ("error", 400, "http.invalid_authority"), bad
    for good in (b"a@b", b"a:80", b"[::1]:80", b"a,b", b"x-y.z_~%!$&'()*+;="):
        assert head_of(b"GET / HTTP/1.1\r\nHost: " + good + b"\r\n\r\n")["missing_host"] is False


@pytest.mark.parametrize("value,tokens,keep_alive", [
    (b"close", (True, False, False), False), (b"Keep-Alive", (False, True, False), True),
    (b"foo, UPGRADE ,bar", (False, False, True), True), (b"", (False, False, False), True),
])
def test_connection_tokens(value, tokens, keep_alive):
    h = head_of(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: " + value + b"\r\n\r\n")
    assert (h["connection"], h["keep_alive"]) == (tokens, keep_alive)
    h10 = head_of(b"GET / HTTP/1.0\r\nConnection: " + value + b"\r\n\r\n")
    assert h10["keep_alive"] is (tokens[1] and not tokens[0])


def test_body_mode():
    assert head_of(POST)["body_mode"] == "content_length"
    assert head_of(CHUNKED)["body_mode"] == "chunked"
    assert head_of(GET)["body_mode"] == "none"
    assert head_of(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")["body_mode"] == "none"


def test_expect_100_continue_flag():
    assert head_of(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n\r\n")["expect_continue"]
    assert not head_of(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n")["expect_continue"]
    assert not head_of(GET)["expect_continue"]
