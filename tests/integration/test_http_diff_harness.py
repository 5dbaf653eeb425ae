"""The differential HTTP harness itself (http_diff.py, http_upstream.py):
the scripted upstream does what its switches say, the client parses what
proxies send, two Envoys on one config compare equal, and a difference is
reported with both sides in full. Runs the real Envoy (a CI peer)."""
import json
import re
import socket

import pytest

import http_diff
from http_diff import Pair, exchange, get, hcm_config, parse_responses
from http_upstream import EchoUpstream, pattern_body


@pytest.fixture
def up():
    u = EchoUpstream()
    try:
        yield u
    finally:
        u.close()


def test_upstream_echoes_what_it_received(up):
    ex = exchange(up.port, get("/e?x=1", method="POST", headers=["X-Mixed: A", "x-b: 2"], body=b"hi"))
    r = ex.finals[0]
    assert r.status == 200 and r.framing == "length"
    echo = r.echo()
    assert echo["method"] == "POST" and echo["target"] == "/e?x=1"
    assert echo["headers"] == ["host: a.test", "X-Mixed: A", "x-b: 2", "content-length: 2"]
    assert echo["body"] == "hi" and echo["framing"] == "length"
    assert up.received[0].body == b"hi"


def test_upstream_switches(up):
    ex = exchange(up.port, get("/?size=100&chunked=1&trailers=1&status=201&hdr=x-a:1"))
    r = ex.finals[0]
    assert (r.status, r.framing, r.body, r.trailers) == (201, "chunked", pattern_body(100), [("x-trailer", "t")])
    assert r.header("x-a") == "1"
    r = exchange(up.port, get("/?size=10", method="HEAD")).finals[0]
    assert (r.header("content-length"), r.body) == ("10", b"")
    r = exchange(up.port, get("/?status=204")).finals[0]
    assert (r.status, r.header("content-length"), r.body) == (204, None, b"")
    ex = exchange(up.port, get("/?size=50&die=20"))
    assert ex.finals[0].framing == "truncated" and len(ex.finals[0].body) == 20 and ex.closed
    ex = exchange(up.port, get("/?nolen=1&size=5"))
    assert ex.finals[0].framing == "close" and ex.finals[0].body == b"01234"
    ex = exchange(up.port, get("/?early=103"))
    assert [x.status for x in ex.responses] == [103, 200]
    ex = exchange(up.port, get("/?reset=1"))
    assert ex.responses == [] and ex.closed


def test_upstream_fail_counter_and_keepalive(up):
    ex = exchange(up.port, get("/f?fail=2") + get("/f?fail=2") + get("/f?fail=2"), responses=3)
    assert [r.status for r in ex.finals] == [503, 503, 200]
    assert [json.loads(r.body)["req"] for r in ex.finals if r.status == 200] == [3]
    assert up.connections == 1


def test_upstream_upgrade_tunnel(up):
    ex = exchange(up.port, [get("/ws", headers=["connection: upgrade", "upgrade: websocket"]) + b"early",
                            0.1, b"late"])
    assert ex.responses[0].status == 101
    assert ex.tunnel == b"earlylate"


def test_client_parses_pipelined_head_and_close_delimited():
    buf = (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"          # HEAD: no body
           b"HTTP/1.1 100 Continue\r\n\r\n"
           b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
           b"HTTP/1.1 200 OK\r\n\r\nrest")
    rs, used, tunnel, complete = parse_responses(buf, ["HEAD", "GET", "GET"], eof=False)
    assert [r.status for r in rs] == [200, 100, 200] and not complete
    rs, used, tunnel, complete = parse_responses(buf, ["HEAD", "GET", "GET"], eof=True)
    assert [r.body for r in rs] == [b"", b"", b"abc", b"rest"] and complete and used == len(buf)


def test_normalise_keeps_what_matters():
    side = http_diff.Side.__new__(http_diff.Side)
    side.ports = {"LISTEN": 31337, "UPSTREAM": 40001}
    text = 'x 6f1c2d9e-1b2c-4d3e-8f00-0123456789ab 127.0.0.1:40001 131337 31337'
    assert http_diff.normalise(text, side) == "x <uuid:4> 127.0.0.1:{{UPSTREAM}} 131337 {{LISTEN}}"


CONFIG = hcm_config([
    {"match": {"prefix": "/dr"}, "direct_response": {"status": 201, "body": {"inline_string": "made"}}},
    {"match": {"prefix": "/"}, "route": {"cluster": "up", "retry_policy": {"retry_on": "5xx"}}}])


def test_envoy_against_itself(monkeypatch):
    """Both sides Envoy: everything that differs per run is normalised."""
    monkeypatch.setenv("HTTP_DIFF_PEER", "envoy")
    with Pair(CONFIG) as p:
        assert p.assert_same(get("/dr")).status == 201
        r = p.assert_same(get("/a?fail=1", headers=["x-request-id: mine"]),
                          stats=["cluster.up.upstream_rq_retry", "http.ingress.downstream_rq_2xx"])
        assert r.status == 200 and len(p.envoy.upstreams["UPSTREAM"].received) == 2
        ex = p.assert_same(get("/1") + get("/2?chunked=1") + get("/3", method="HEAD"), responses=3)
        assert [x.status for x in ex.finals] == [200, 200, 200]
        ex = p.assert_same(b"FOO / HTTP/1.1\r\nhost: a\r\n\r\n" + get("/after"), check_close=True)
        assert ex.status == 400 and ex.closed and len(ex.responses) == 1
        rs = p.assert_same(parallel=[get("/x?delay=0.3"), get("/y")], stagger=0.1)
        assert [x.status for x in rs] == [200, 200]


def test_a_difference_is_reported_with_both_sides(monkeypatch):
    monkeypatch.setenv("HTTP_DIFF_PEER", "envoy")
    other = re.sub(r"( *)stat_prefix: ingress", r"\1stat_prefix: ingress\n\1server_name: not-envoy", CONFIG)
    assert other != CONFIG
    with Pair(CONFIG, peer_config=other) as p:
        with pytest.raises(pytest.fail.Exception) as e:
            p.assert_same(get("/dr"))
    msg = str(e.value)
    assert "-      \"server: envoy\"" in msg and "+      \"server: not-envoy\"" in msg
    assert "=== envoy:" in msg and msg.count("\"status_line\": \"HTTP/1.1 201 Created\"") == 2


def test_a_config_envoy_fast_refuses_fails_the_case_with_the_refusal(monkeypatch):
    monkeypatch.setenv("HTTP_DIFF_PEER", "envoy_fast")
    assert http_diff.envoy_fast_refusal(CONFIG) == ""    # the harness's own config is served
    # Envoy takes codec_type HTTP2; envoy_fast refuses it: the case fails
    # (no skip) and says why, before either proxy starts.
    http2 = re.sub(r"( *)stat_prefix: ingress", r"\1stat_prefix: ingress\n\1codec_type: HTTP2", CONFIG)
    assert http2 != CONFIG
    with pytest.raises(pytest.fail.Exception) as e:
        with Pair(http2):
            pass
    msg = str(e.value)
    assert "envoy_fast refuses the config" in msg
    assert "codec_type HTTP2 is not supported by envoy_fast" in msg, msg
