"""The http_connection_manager end to end: the same YAML through envoy_fast
and through the real Envoy, the same raw requests on keep-alive
connections, with an upstream that answers each request with the request it
received. Compared: the responses byte for byte (date, request ids and the
upstream service time blanked), so both the request the upstream sees
(headers added, removed, kept, in order) and the response the client sees.
Then drain: SIGTERM and /healthcheck/fail as Envoy's drainClose()."""
import re
import signal
import socket
import time

import pytest

from helpers import (ThreadedServer, bootstrap, closed_within, cluster, free_port,
                     http_connection_manager_filter, listener, read_http_response, run_impl, wait_for)


class HeadEcho(ThreadedServer):
    """Answers each request with 200 and, as body, the request (head and
    body) exactly as received; keep-alive."""

    def __init__(self):
        super().__init__(backlog=64)

    @staticmethod
    def _serve(c):
        buf = b""
        with c:
            while True:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                    continue
                head = buf[:end]
                cl = 0
                chunked = False
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        cl = int(v)
                    if k.strip().lower() == b"transfer-encoding":
                        chunked = True
                if chunked:
                    while not buf.endswith(b"0\r\n\r\n"):
                        buf += c.recv(65536)
                    msg, buf = buf, b""
                else:
                    while len(buf) < end + 4 + cl:
                        buf += c.recv(65536)
                    msg, buf = buf[:end + 4 + cl], buf[end + 4 + cl:]
                c.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: keep-alive\r\n"
                          b"keep-alive: timeout=5\r\n\r\n%s" % (len(msg), msg))


def config(port, upstream_port, **hcm_extra):
    hcm = http_connection_manager_filter([
        {"match": {"prefix": "/up"}, "route": {"cluster": "echo"}},
        {"match": {"prefix": "/"},
         "direct_response": {"status": 200, "body": {"inline_string": "hello"}}}],
        stat_prefix="p", **hcm_extra)
    hcm["typed_config"]["route_config"]["virtual_hosts"][0]["request_headers_to_add"] = [
        {"header": {"key": "x-remote", "value": "%DOWNSTREAM_REMOTE_ADDRESS%"}}]
    return bootstrap([listener("l", port, [{"filters": [hcm]}])],
                     [cluster("echo", [upstream_port])], admin_port=free_port())


_BLANKS = [
    (re.compile(rb"date: [^\r]+\r\n"), b"date: <date>\r\n"),
    (re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"), b"<uuid>"),
    (re.compile(rb"x-envoy-upstream-service-time: \d+"), b"x-envoy-upstream-service-time: <ms>"),
    (re.compile(rb"x-forwarded-for: ([^\r]*)"), None),
    (re.compile(rb"x-remote: 127\.0\.0\.1:\d+"), b"x-remote: 127.0.0.1:<port>"),
]


def normalize(raw, own_ip):
    for pat, rep in _BLANKS:
        if rep is None:
            raw = pat.sub(lambda m: m.group(0).replace(own_ip, b"<proxy-ip>"), raw)
        else:
            raw = pat.sub(rep, raw)
    return raw


def read_response(s, head_request=False):
    """One response off a blocking socket (content-length framed, or
    headers only); returns its bytes."""
    head, body, extra = read_http_response(s, no_body=head_request)
    assert not extra, "more than one response: %r" % (body + extra)
    return head + b"\r\n\r\n" + body


# (request bytes, pieces of the exchange: each a response to read)
EXCHANGES = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /up/x?q=1 HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, foo\r\nFoo: 1\r\n"
    b"Keep-Alive: 1\r\nProxy-Connection: x\r\nTE: trailers\r\nX-Forwarded-For: 1.2.3.4\r\n"
    b"User-Agent: z\r\n\r\n",
    b"GET /up HTTP/1.1\r\nHost: a\r\nTE: gzip\r\nX-Request-Id: abc\r\nX-Forwarded-Proto: https\r\n\r\n",
    b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"HEAD /up HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /up HTTP/1.1\r\nHost: a\r\nfoo_bar: 1\r\n\r\n",
    b"GET http://other.example:8080/up/abs HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /up HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2\r\n\r\n",
    b"GET /up HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 2.2.2.2\r\n\r\n",
]


def _own_ipv4():
    import subprocess
    out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    addrs = [l.split()[3].split("/")[0] for l in out.splitlines()]
    addrs = [a for a in addrs if not a.startswith("127.")]
    return (addrs[0] if addrs else "127.0.0.1").encode()


def run_exchanges(impl, hcm_extra, exchanges):
    upstream = HeadEcho()
    port = free_port()
    out = []
    try:
        with run_impl(impl, config(port, upstream.port, **hcm_extra)):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            for req in exchanges:
                s.sendall(req)
                out.append(read_response(s, head_request=req.startswith(b"HEAD")))
            s.close()
    finally:
        upstream.close()
    return [normalize(r, _own_ipv4()) for r in out]


@pytest.mark.parametrize("hcm_extra", [
    {},
    {"use_remote_address": True},
    {"use_remote_address": True, "preserve_external_request_id": True,
     "always_set_request_id_in_response": True, "server_name": "edge"},
    {"use_remote_address": True, "xff_num_trusted_hops": 2},
], ids=["defaults", "use_remote_address", "edge_options", "trusted_hops"])
def test_keep_alive_exchanges_match_envoy(hcm_extra):
    ours = run_exchanges("envoy_fast", hcm_extra, EXCHANGES)
    envoy = run_exchanges("envoy", hcm_extra, EXCHANGES)
    for req, a, b in zip(EXCHANGES, ours, envoy):
        assert a == b, "request %r" % req


def test_expect_100_continue_matches_envoy():
    req_head = b"POST /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
    results = {}
    for impl in ("envoy_fast", "envoy"):
        upstream = HeadEcho()
        port = free_port()
        try:
            with run_impl(impl, config(port, upstream.port)):
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(req_head)
                cont = read_response(s)
                s.sendall(b"abc")
                final = read_response(s)
                results[impl] = (cont, normalize(final, _own_ipv4()))
                s.close()
        finally:
            upstream.close()
    assert results["envoy_fast"][0] == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert results["envoy_fast"] == results["envoy"]


@pytest.mark.parametrize("impl", ["envoy_fast", "envoy"])
def test_healthcheck_fail_closes_after_each_response(impl):
    upstream = HeadEcho()
    port = free_port()
    try:
        with run_impl(impl, config(port, upstream.port)) as proxy:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            assert b"connection: close" not in read_response(s)
            proxy.admin("/healthcheck/fail", method="POST")
            time.sleep(0.2)
            s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            assert b"connection: close\r\n" in read_response(s)
            # Envoy closes at drain_timeout (5 s) + delayed_close_timeout (1 s).
            assert not closed_within(s, 4)
            assert closed_within(s, 4)
            wait_for(lambda: proxy.stats().get("http.p.downstream_cx_drain_close") == 1,
                     what="downstream_cx_drain_close")
            proxy.admin("/healthcheck/ok", method="POST")
            time.sleep(0.2)
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            assert b"connection: close" not in read_response(s)
    finally:
        upstream.close()


def test_sigterm_drain_closes_keep_alive_connections():
    """A draining worker closes a connection that never sent a byte at once,
    the others at drain_timeout (Envoy's drain sequence)."""
    upstream = HeadEcho()
    port = free_port()
    try:
        with run_impl("envoy_fast", config(port, upstream.port)) as proxy:
            idle = socket.create_connection(("127.0.0.1", port), timeout=5)
            idle.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            read_response(idle)
            silent = socket.create_connection(("127.0.0.1", port), timeout=5)
            time.sleep(0.2)
            proxy.proc.send_signal(signal.SIGTERM)
            assert closed_within(silent, 2)                  # never sent a byte: at once
            assert closed_within(idle, 10)                   # drain_timeout (5 s) later
    finally:
        upstream.close()


def test_sigterm_exits_once_clients_are_gone_despite_idle_upstream_connections():
    """The pool's idle keep-alive connection to the upstream serves no
    client: a drain ends when the last downstream connection does."""
    upstream = HeadEcho()
    port = free_port()
    try:
        with run_impl("envoy_fast", config(port, upstream.port)) as proxy:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                c.sendall(b"GET /up HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                read_response(c)
            assert upstream.accepted == 1             # and pooled: HeadEcho keeps it open
            start = time.monotonic()
            proxy.proc.send_signal(signal.SIGTERM)
            proxy.proc.wait(timeout=10)
            assert time.monotonic() - start < 2.0
            assert proxy.proc.returncode == 0
    finally:
        upstream.close()


def test_client_connection_close_is_closed_after_the_response_at_once():
    """A client that said connection: close gets its FIN right after the
    response, without waiting for its own FIN or delayed_close_timeout (1 s);
    a close the proxy decides (max_requests_per_connection) keeps the delay."""
    upstream = HeadEcho()
    port = free_port()
    try:
        cfg = config(port, upstream.port, common_http_protocol_options={"max_requests_per_connection": 1})
        with run_impl("envoy_fast", cfg) as proxy:
            for req, most, least in (
                    (b"GET /up HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 0.5, 0.0),
                    (b"GET /up HTTP/1.1\r\nHost: a\r\n\r\n", 3.0, 0.8)):
                with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                    c.sendall(req)
                    assert b"connection: close" in read_response(c)
                    start = time.monotonic()
                    assert c.recv(1) == b""                  # the proxy's FIN; we never close
                    assert least <= time.monotonic() - start < most
            assert proxy.stats().get("http.p.downstream_cx_delayed_close_timeout") == 1
    finally:
        upstream.close()


def _blank_default(text):
    """Envoy's default format with the start time, duration, service time
    and request id blanked."""
    text = re.sub(r"^\[[^\]]+\] ", "[<time>] ", text, flags=re.M)
    text = re.sub(r'(" \d+ \S+ \d+ \d+ )\d+ (\d+|-) ', r"\1<ms> <ms> ", text)
    return re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", "<uuid>", text)


def test_access_log_one_line_per_request_as_envoy(tmp_path):
    """One record per request at its end; the operators the log format
    engine knows give Envoy's values (body bytes, flags, upstream host)."""
    fmt = ("%BYTES_RECEIVED% %BYTES_SENT% %RESPONSE_FLAGS% %UPSTREAM_HOST% %RESPONSE_CODE% "
           "%PROTOCOL% %RESPONSE_CODE_DETAILS% %REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% "
           "%REQ(:AUTHORITY)% %REQ(USER-AGENT):3% %RESP(CONTENT-LENGTH)% %RESP(X-MISSING)% "
           "%ACCESS_LOG_TYPE%\n")
    requests = [b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nUser-Agent: curl/8\r\n\r\nabc",
                b"GET /up?x=1 HTTP/1.1\r\nHost: b:80\r\n\r\n",
                b"GET / HTTP/1.1\r\n\r\n"]
    lines = {}
    for impl in ("envoy_fast", "envoy"):
        upstream = HeadEcho()
        port = free_port()
        path = str(tmp_path / ("%s.log" % impl))
        cfg = config(port, upstream.port, access_log=[{
            "name": "envoy.access_loggers.file",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                "path": path, "log_format": {"text_format_source": {"inline_string": fmt}}}},
            {"name": "envoy.access_loggers.file",       # Envoy's default format
             "typed_config": {
                 "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                 "path": path + ".default"}}])
        try:
            with run_impl(impl, cfg):
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                for req in requests:
                    s.sendall(req)
                    read_response(s)
                s.close()

                def logged():
                    try:
                        with open(path) as f:
                            return f.read().count("\n") == len(requests)
                    except OSError:
                        return False
                wait_for(logged, what="%s access log" % impl, timeout=20)
                time.sleep(0.3)
                with open(path) as f:
                    text = f.read()
                with open(path + ".default") as f:
                    text += _blank_default(f.read())
                lines[impl] = text.replace(":%d" % upstream.port, ":<port>")
        finally:
            upstream.close()
    assert lines["envoy_fast"] == lines["envoy"]


def test_route_idle_timeout_overrides_stream_idle_timeout():
    """A route's idle_timeout (0.5 s) replaces stream_idle_timeout (60 s): a
    request to an upstream that never answers gets Envoy's 504 after it."""
    results = {}
    for impl in ("envoy_fast", "envoy"):
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)                       # handshakes complete, nothing is read
        port = free_port()
        cfg = config(port, silent.getsockname()[1], stream_idle_timeout="60s")
        routes = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
            "typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
        routes[0]["route"]["idle_timeout"] = "0.5s"
        try:
            with run_impl(impl, cfg):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                t0 = time.monotonic()
                s.sendall(b"GET /up HTTP/1.1\r\nHost: a\r\n\r\n")
                raw = read_response(s)
                elapsed = time.monotonic() - t0
                results[impl] = normalize(raw, _own_ipv4())
                assert 0.4 <= elapsed < 5, (impl, elapsed)
                s.close()
        finally:
            silent.close()
    assert results["envoy_fast"].startswith(b"HTTP/1.1 504 Gateway Timeout\r\n")
    assert results["envoy_fast"].endswith(b"\r\n\r\nstream timeout")
    assert results["envoy_fast"] == results["envoy"]
