"""The replies the connection manager makes itself, byte for byte against
the real Envoy 1.40 (date blanked): the same raw request to both, the same
status line, headers in the same order, the same body; and both keep the
socket open for delayed_close_timeout after a reply that closes."""
import socket

import pytest

from hcm_harness import Hcm, nodate
from helpers import (bootstrap, closed_within, free_port, http_connection_manager_filter, listener,
                     read_http_response, run_envoy)


CASES = {
    "unknown_method": b"FOO / HTTP/1.1\r\nHost: a\r\n\r\n",
    "lowercase_method": b"get / HTTP/1.1\r\nHost: a\r\n\r\n",
    "http10": b"GET / HTTP/1.0\r\n\r\n",
    "http10_with_host": b"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
    "no_host": b"GET / HTTP/1.1\r\n\r\n",
    "te_gzip": b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
    "cl_and_te": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    "two_cl": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
    "space_in_name": b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
    "ctl_in_value": b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n",
    "head_too_large": b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * (61 * 1024) + b"\r\n\r\n",
    "too_many_headers": b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(
        b"X-%d: 1\r\n" % i for i in range(101)) + b"\r\n",
    "upgrade_not_configured": b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
}


@pytest.fixture(scope="module")
def envoy():
    port = free_port()
    cfg = bootstrap([listener("l", port, [{"filters": [http_connection_manager_filter([
        {"match": {"prefix": "/"},
         "direct_response": {"status": 200, "body": {"inline_string": "hello"}}}], stat_prefix="p")]}])], [])
    with run_envoy(cfg, wait=[port]):
        yield port


def envoy_reply(port, data):
    """Envoy's bytes for `data` until it has sent one whole response, and
    whether the socket was still open 0.3 s later."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(data)
    head, body, extra = read_http_response(s)
    still_open = not closed_within(s, 0.3)
    s.close()
    return head + b"\r\n\r\n" + body + extra, still_open


@pytest.mark.parametrize("case", sorted(CASES))
def test_own_replies_match_envoy(envoy, case):
    data = CASES[case]
    want, want_open = envoy_reply(envoy, data)
    h = Hcm()
    try:
        c = h.connect()
        c.send(data)
        r = c.response()
        assert nodate(r.raw) == nodate(want)
        assert c.still_open(0.3) == want_open
        if not want_open:
            return
        # Nothing after the reply is read: a request sent now goes unanswered.
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert c.still_open(0.1) and c.buf == b""
        # and the socket closes once delayed_close_timeout (1 s) has passed.
        c.wait_eof(timeout=3)
        assert h.stats()["downstream_cx_delayed_close_timeout"] == 1
    finally:
        h.close()
