"""The codec against the real Envoy 1.40 (the oracle), on what a client or
an upstream can observe: for each request head, chunked body or upstream
response in the corpora below, Envoy's verdict (the status it answers, what
it forwards) must be what our parsers decide. One Envoy (HCM -> router ->
a scripted upstream) serves every case."""
import socket

import pytest

from envoy_fast._worker import Http1MessageStreamForTest
from helpers import (bootstrap, cluster, free_port, listener, run_envoy, scripted_server,
                     wait_for, wait_port)

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3." \
      "HttpConnectionManager"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


def hcm(cluster_name):
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": {
        "@type": HCM, "stat_prefix": "h",
        "route_config": {"virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": cluster_name}}]}]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}]}}


def upstream(c):
    """Reads one request (head, and a body up to its end or a short pause);
    answers with the response hex-encoded in a /raw/<hex> path, else 200.
    Returns what it received."""
    c.settimeout(0.5)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            d = c.recv(65536)
            if not d:
                return data
            data += d
        path = data.split(b" ", 2)[1]
        if path.startswith(b"/raw/"):
            c.sendall(bytes.fromhex(path[5:].decode()))
            return data
        while not data.endswith(b"\r\n0\r\n\r\n") and b"transfer-encoding: chunked" in data:
            d = c.recv(65536)
            if not d:
                break
            data += d
    except socket.timeout:
        pass
    c.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
    return data


def exchange(port, msg):
    """Send msg; the final response's status (0: none) and its body,
    de-chunked (Envoy's own framing, read with our response decoder)."""
    decoder = Http1MessageStreamForTest(is_request=False)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(msg)
        try:
            while True:
                d = s.recv(65536)
                done = [m for m in (decoder.feed(d) if d else decoder.eof())
                        if not isinstance(m, tuple) and m["head"]["status"] >= 200]
                if done:
                    return done[0]["head"]["status"], done[0]["body"]
                if not d:
                    return 0, b""
        except (socket.timeout, ConnectionResetError):
            return 0, b""


@pytest.fixture(scope="module")
def envoy():
    port = free_port()
    with scripted_server(upstream) as up:
        cfg = bootstrap([listener("l", port, [{"filters": [hcm("up")]}])],
                        [cluster("up", [up.port])])
        with run_envoy(cfg, wait=[port]):
            wait_port(port)
            yield port, up


def our_request(msg):
    """What our codec makes of a request stream: ("error", status, detail)
    or the first message (head dict, body)."""
    s = Http1MessageStreamForTest(keep_trailers=False)
    out = s.feed(msg)
    return out[0] if out else "need_more"


def forwarded(up, path):
    """The request the upstream received for `path` (its handler records
    it just after answering)."""
    def find():
        for r in list(up.results):
            if r.split(b" ", 2)[1:2] == [path]:
                return r
        return None
    wait_for(lambda: find() is not None, 5, what="upstream saw " + path.decode())
    return find()


# -------------------------------------------------------------- header values

FOLDS = [
    b"X: a\r\n b\r\n", b"X: a\r\n\tb\r\n  c\r\nY: d\r\n", b"X: a \r\n   b  \r\n", b"X: \r\n b\r\n",
    b"X: a\n b\n", b"X: a\rb\r\n", b"X: \rab\r\n", b"X: a\r\r\n", b"X: a\r\n \r\n", b"X: a\r\n\r\n b\r\n",
]


def test_obs_fold_and_bare_cr_reach_the_upstream_as_envoy_forwards_them(envoy):
    port, up = envoy
    for i, lines in enumerate(FOLDS):
        path = b"/fold%d" % i
        msg = b"GET " + path + b" HTTP/1.1\r\nHost: a\r\n" + lines + b"\r\n"
        ours = our_request(msg)
        status, _ = exchange(port, msg)
        if isinstance(ours, tuple):
            assert status == ours[1], lines
            continue
        assert status == 200, lines
        up_headers = forwarded(up, path).split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
        theirs = [h.split(b": ", 1) for h in up_headers if h[:2] in (b"x:", b"y:")]
        mine = [[n, v] for n, v in ours["head"]["map_headers"] if n in (b"x", b"y")]
        assert theirs == mine, lines


# ------------------------------------------------------------- request heads

HEADS = [
    b"GET abc HTTP/1.1\r\nHost: a\r\n\r\n", b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET ftp://ex.com/a HTTP/1.1\r\n\r\n", b"GET http:/ex.com/a HTTP/1.1\r\n\r\n",
    b"GET http:// HTTP/1.1\r\n\r\n", b"GET http://ex.com:99999/ HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", b"GET / HTTP/1.1\r\nHost: a\"b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a{b\r\n\r\n", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\xffb\r\n\r\n", b"GET / HTTP/1.1\r\n b\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX_Y: 1\r\n\r\n", b"GET / HTTP/1.1\r\nHost: a@b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n", b"GET\t/tab \tHTTP/1.1\t\r\nHost: a\r\n\r\n",
    b"GET /frag#x HTTP/1.1\r\nHost: a\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\n\r\n", b"CONNECT ex.com:443 HTTP/1.1\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", b"GET http://ex.com?x=1 HTTP/1.1\r\n\r\n",
]


def expected_status(ours):
    """Envoy's status for our parse: the codec's error, or the HCM's 400 for
    what it checks after the codec (missing Host, a '#' fragment in the path:
    path_normalization_failed), the router's 404, else the upstream's 200."""
    if isinstance(ours, tuple):
        return ours[1]
    head = ours["head"]
    if head["missing_host"] or b"#" in head["map_path"]:
        return 400
    if head["method"] == "CONNECT" or not head["map_path"].startswith(b"/"):
        return 404      # no prefix route matches CONNECT, "*" or "?x" paths
    return 200


def test_request_heads_same_verdict_as_envoy(envoy):
    port, _ = envoy
    mismatches = []
    for msg in HEADS:
        ours = our_request(msg)
        want = expected_status(ours)
        status, _ = exchange(port, msg)
        if status != want:
            mismatches.append((msg, want, status))
    assert mismatches == []


def test_absolute_form_goes_upstream_with_the_url_host_and_path(envoy):
    port, up = envoy
    cases = [(b"http://Example.COM:80/abs1?q", b"/abs1?q", b"Example.COM:80"),
             (b"HTTP://user@ex.com:8080/abs2/../b", b"/abs2/../b", b"ex.com:8080"),
             (b"https://ex.com:443/abs3", b"/abs3", b"ex.com:443")]
    for target, path, host in cases:
        msg = b"GET " + target + b" HTTP/1.1\r\nHost: other\r\n\r\n"
        ours = our_request(msg)["head"]
        assert (ours["map_path"], dict(ours["map_headers"])[b"host"]) == (path, host)
        assert exchange(port, msg)[0] == 200
        got = forwarded(up, path)
        assert got is not None and b"\r\nhost: " + host + b"\r\n" in got


# ------------------------------------------------------------ chunked bodies

CHUNKED = [
    b"5 \r\nhello\r\n0\r\n\r\n", b"5\nhello\r\n0\r\n\r\n", b"5\r\nhello\n0\r\n\r\n",
    b"5\r\nhelloXX0\r\n\r\n", b"5;a=b\r\nhello\r\n0\r\n\r\n", b'5;a="b c"\r\nhello\r\n0\r\n\r\n',
    b"x\r\n", b"ffffffffffffffffff\r\nab", b"0000005\r\nhello\r\n0\r\n\r\n", b"0\r\nX-T: 1\r\n\r\n",
    b"0\r\nX T: 1\r\n\r\n", b"-5\r\nhello\r\n0\r\n\r\n", b"0x5\r\nhello\r\n0\r\n\r\n",
    b"5\r\r\nhello\r\n0\r\n\r\n", b"5;e\x00\r\nhello\r\n0\r\n\r\n", b"5\t;a\r\nhello\r\n0\r\n\r\n",
    b"0\n\n", b"fffffffffffffff\r\nab", b"5 x\r\nhello\r\n0\r\n\r\n", b"5\r\nhello\r\r\n0\r\n\r\n",
    b"5\r\nhello\rX0\r\n\r\n", b"0\r\nX: a\r\n b\r\n\r\n", b"\r\n5\r\nhello\r\n0\r\n\r\n",
    b" 5\r\nhello\r\n0\r\n\r\n", b"0\r\nX: a\x00\r\n\r\n", b"0\r\nContent-Length: 5\r\n\r\n",
    b"0\r\nhost: a b\r\n\r\n", b"5\r\nhello\r\n0;x=1\r\n\r\n", b"0\r\n\n", b"0\r\nX: 1\n\r\n",
    b"5;a\nhello\r\n0\r\n\r\n", b"5\r\nhello\n\n0\r\n\r\n", b"5;a\rb\r\nhello\r\n0\r\n\r\n",
    b"0\r\n: a\r\n\r\n", b"1\r\na\r\n2\r\nbc\r\n0\r\n\r\n",
]


def test_chunked_bodies_same_verdict_and_body_as_envoy(envoy):
    port, up = envoy
    mismatches = []
    for i, body in enumerate(CHUNKED):
        path = b"/chunk%d" % i
        msg = b"POST " + path + b" HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body
        ours = our_request(msg)
        status, _ = exchange(port, msg)
        want = ours[1] if isinstance(ours, tuple) else 200
        if status != want:
            mismatches.append((body, want, status))
        elif isinstance(ours, dict):
            # the body Envoy forwarded, de-chunked, is the one we decoded
            got = forwarded(up, path)
            s = Http1MessageStreamForTest()
            [m] = s.feed(got)
            if m["body"] != ours["body"]:
                mismatches.append((body, ours["body"], m["body"]))
    assert mismatches == []


# ----------------------------------------------------------- upstream responses

RESPONSES = [
    b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok", b"HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok",
    b"http/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 099 OK\r\nContent-Length: 2\r\n\r\nok", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\nContent-Length: 2\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1  200  OK\r\nContent-Length: 2\r\n\r\nok", b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 O\x01K\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nHost: a b\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 600 OK\r\nContent-Length: 2\r\n\r\nok", b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
    b"HTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 100 Continue\r\nContent-Length: 1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x\r\nok\r\n0\r\nT: 1\r\n\r\n",
]


def test_upstream_responses_same_verdict_as_envoy(envoy):
    port, _ = envoy
    mismatches = []
    for resp in RESPONSES:
        s = Http1MessageStreamForTest(is_request=False)
        ours = [m for m in s.feed(resp) + s.eof()
                if isinstance(m, tuple) or m["head"]["status"] >= 200]
        msg = b"GET /raw/" + resp.hex().encode() + b" HTTP/1.1\r\nHost: a\r\n\r\n"
        status, body = exchange(port, msg)
        want = (502, None) if isinstance(ours[0], tuple) else (ours[0]["head"]["status"], ours[0]["body"])
        if (status, body if want[1] is not None else None) != want:
            mismatches.append((resp, want, (status, body)))
    assert mismatches == []
