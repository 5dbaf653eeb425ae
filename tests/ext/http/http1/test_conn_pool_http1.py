"""The HTTP/1.1 upstream pool (Http1ConnPoolImpl + its client codec) on a
bare Dispatcher, through Http1ConnPoolForTest, against real upstreams:
python's http.server with keep-alive, and raw socket servers scripted per
connection for the edge cases (the keep-alive race, bad responses, closes).

Each test runs in a forked child (the upstream threads start there): a crash
in the data plane fails one test, not the run."""
import functools
import os
import signal
import socket
import struct
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from envoy_fast import _worker
from helpers import free_port, scripted_server

POOL_FAILURE_OVERFLOW = 0
POOL_FAILURE_REMOTE_CONNECTION_FAILURE = 1
POOL_FAILURE_TIMEOUT = 3
RESET_LOCAL = 0
RESET_CONNECTION_FAILURE = 1
RESET_CONNECTION_TERMINATION = 2
RESET_PROTOCOL_ERROR = 5


def isolated(fn):
    """Run the test body in a forked child; report its failure or its death."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code, msg = 0, b""
            try:
                os.close(r)
                fn(*args, **kwargs)
            except BaseException:
                msg, code = traceback.format_exc().encode(), 1
            try:
                while msg:
                    msg = msg[os.write(w, msg):]
            finally:
                os._exit(code)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            report = f.read().decode(errors="replace")
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            pytest.fail("test process died with signal %d (%s)\n%s"
                        % (sig, signal.Signals(sig).name, report), pytrace=False)
        if os.WEXITSTATUS(status) != 0:
            pytest.fail(report, pytrace=False)
    return wrapper


# ----------------------------------------------------------------- upstreams

class KeepAliveHandler(BaseHTTPRequestHandler):
    """Answers every method with "<method> <path> <client port>" (the port
    tells connections apart); ?close adds connection: close."""
    protocol_version = "HTTP/1.1"

    def _answer(self):
        n = int(self.headers.get("content-length") or 0)
        got = self.rfile.read(n) if n else b""
        body = ("%s %s %d %s" % (self.command, self.path, self.client_address[1],
                                 got.decode())).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        if "close" in self.path:
            self.send_header("connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = _answer

    def log_message(self, *args):
        pass


def http_server(protocol="HTTP/1.1"):
    handler = type("H", (KeepAliveHandler,), {"protocol_version": protocol})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def read_request(c, timeout=5.0):
    """One request's head and body (content-length or chunked) from socket c;
    None at EOF."""
    c.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = c.recv(65536)
        if not d:
            return None
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        while not (rest.endswith(b"\r\n\r\n")
                   and (rest.startswith(b"0\r\n") or b"\r\n0\r\n" in rest)):
            d = c.recv(65536)
            if not d:
                break
            rest += d
    else:
        n = 0
        for line in lower.split(b"\r\n")[1:]:
            if line.startswith(b"content-length:"):
                n = int(line.split(b":")[1])
        while len(rest) < n:
            d = c.recv(65536)
            if not d:
                break
            rest += d
    return head + b"\r\n\r\n", rest


def ok(body=b"ok", extra=b""):
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


class Pool:
    def __init__(self, port, **kw):
        self.d = _worker.Dispatcher()
        self.p = _worker.Http1ConnPoolForTest(self.d, "127.0.0.1", port, **kw)

    def __getattr__(self, name):
        return getattr(self.p, name)

    def turn(self, until, timeout=5.0, what="condition"):
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, "timed out waiting for " + what
            self.d.run_for_test(0.005)

    def run(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.d.run_for_test(0.005)

    def done(self, sid):
        r = self.p.response(sid)
        return r["end"] or r["reset"] is not None or r["failure"] is not None

    def get(self, path=b"/", timeout=5.0, **kw):
        sid = self.p.request(path=path, **kw)
        self.turn(lambda: self.done(sid), timeout, "response of %r" % path)
        return self.p.response(sid)


def settled(pool):
    """No stream left anywhere: every circuit-breaker count back to 0 but
    the idle connections."""
    c = pool.counts()
    assert c["busy"] == c["pending"] == c["connecting"] == 0, c
    assert pool.stat("upstream_rq_active") == 0
    assert pool.stat("upstream_rq_pending_active") == 0
    _, pending, requests = pool.breaker_counts()
    assert pending == 0 and requests == 0


# ------------------------------------------------------------- keep-alive

@isolated
def test_keepalive_one_connection_for_sequential_requests():
    srv = http_server()
    pool = Pool(srv.server_address[1])
    ports = set()
    for i in range(6):
        r = pool.get(b"/r%d" % i)
        assert r["status"] == 200 and r["end"] and r["reset"] is None
        method, path, port, _ = r["body"].decode().split(" ")
        assert (method, path) == ("GET", "/r%d" % i)
        ports.add(port)
        assert r["reused"] == (i > 0)
    assert len(ports) == 1
    assert pool.stat("upstream_cx_total") == 1
    assert pool.stat("upstream_cx_http1_total") == 1
    assert pool.stat("upstream_rq_total") == 6
    assert pool.stat("host.rq_total") == 6
    assert pool.counts()["ready"] == 1
    settled(pool)
    srv.shutdown()


@isolated
def test_max_requests_per_connection_retires_the_connection():
    srv = http_server()
    pool = Pool(srv.server_address[1], max_requests_per_connection=2)
    ports = [pool.get(b"/%d" % i)["body"].split(b" ")[2] for i in range(5)]
    assert ports[0] == ports[1] != ports[2] == ports[3] != ports[4]
    assert pool.stat("upstream_cx_total") == 3
    assert pool.stat("upstream_cx_max_requests") == 2
    pool.turn(lambda: pool.stat("upstream_cx_active") == 1, what="retired connections closed")
    assert pool.stat("upstream_cx_destroy_local") == 2
    settled(pool)
    srv.shutdown()


@isolated
def test_connection_close_response_retires_the_connection():
    srv = http_server()
    pool = Pool(srv.server_address[1])
    a = pool.get(b"/close")
    b = pool.get(b"/next")
    assert a["status"] == b["status"] == 200
    assert (b"connection", b"close") in a["headers"]
    assert a["body"].split(b" ")[2] != b["body"].split(b" ")[2]
    assert not b["reused"]
    assert pool.stat("upstream_cx_total") == 2
    assert pool.stat("upstream_cx_close_notify") == 1
    settled(pool)
    srv.shutdown()


@isolated
def test_http10_upstream_gets_a_connection_per_request():
    srv = http_server("HTTP/1.0")
    pool = Pool(srv.server_address[1])
    a = pool.get(b"/a")
    b = pool.get(b"/b")
    assert a["status"] == b["status"] == 200
    assert a["body"].startswith(b"GET /a ") and b["body"].startswith(b"GET /b ")
    assert pool.stat("upstream_cx_total") == 2
    assert not b["reused"]
    settled(pool)
    srv.shutdown()


@pytest.mark.parametrize("response,kept", [
    (b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok", True),
    (b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok", False),
    (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: Keep-Alive, CLOSE\r\n\r\nok", False),
    (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nproxy-connection: close\r\n\r\nok", False),
    (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok", True),
])
@isolated
def test_which_responses_keep_the_connection(response, kept):
    # Envoy's shouldCloseConnection (HTTP/1.0 keeps it with keep-alive).
    handler, _ = one_response(response, requests=2)
    with scripted_server(handler) as up:
        pool = Pool(up.port)
        assert pool.get()["body"] == b"ok"
        r = pool.get()
        assert r["body"] == b"ok" and r["reused"] == kept
        assert pool.stat("upstream_cx_close_notify") == (0 if kept else 2)
        assert pool.stat("upstream_cx_total") == (1 if kept else 2)
        settled(pool)


@isolated
def test_close_delimited_body_ends_with_the_connection():
    def handler(c):
        read_request(c)
        c.sendall(b"HTTP/1.0 200 OK\r\nx-a: 1\r\n\r\npart one,")
        time.sleep(0.05)
        c.sendall(b" part two")
        c.close()

    with scripted_server(handler) as up:
        pool = Pool(up.port)
        r = pool.get()
        assert r["status"] == 200 and r["end"] and r["reset"] is None
        assert r["body"] == b"part one, part two"
        assert pool.stat("upstream_cx_total") == 1
        pool.turn(lambda: pool.stat("upstream_cx_active") == 0)
        settled(pool)


@isolated
def test_upstream_closing_an_idle_connection_is_not_an_error():
    conns = []

    def handler(c):
        conns.append(c)
        read_request(c)
        c.sendall(ok(b"first"))
        time.sleep(0.05)
        c.close()                   # an idle keep-alive timeout upstream

    with scripted_server(handler) as up:
        pool = Pool(up.port)
        assert pool.get()["body"] == b"first"
        # The FIN reaches the idle (still read-registered) connection: gone.
        pool.turn(lambda: pool.counts()["ready"] == 0, what="idle connection dropped")
        assert pool.stat("upstream_cx_destroy_remote") == 1
        r = pool.get()
        assert r["status"] == 200 and not r["reused"]
        assert pool.stat("upstream_rq_keepalive_race_retry") == 0
        assert pool.stat("upstream_cx_total") == 2
        settled(pool)


@isolated
def test_bytes_on_an_idle_connection_close_it():
    def handler(c):
        read_request(c)
        c.sendall(ok())
        time.sleep(0.05)
        c.sendall(b"HTTP/1.1 200 OK\r\n\r\n")   # nobody asked
        time.sleep(1)

    with scripted_server(handler) as up:
        pool = Pool(up.port)
        assert pool.get()["status"] == 200
        pool.turn(lambda: pool.counts()["ready"] == 0, what="idle connection closed")
        assert pool.stat("upstream_cx_destroy_local") == 1
        settled(pool)


@isolated
def test_idle_timeout_closes_idle_connections():
    srv = http_server()
    pool = Pool(srv.server_address[1], idle_timeout=0.2)
    assert pool.get()["status"] == 200
    assert pool.counts()["ready"] == 1
    pool.run(0.1)
    assert pool.counts()["ready"] == 1 and pool.stat("upstream_cx_idle_timeout") == 0
    pool.turn(lambda: pool.counts()["ready"] == 0, timeout=2, what="idle timeout")
    assert pool.stat("upstream_cx_idle_timeout") == 1
    # A connection in use is not timed out.
    sid = pool.request(path=b"/slow")
    pool.turn(lambda: pool.response(sid)["end"])
    assert pool.stat("upstream_cx_total") == 2
    settled(pool)
    srv.shutdown()


# --------------------------------------------------------- keep-alive race

def racing_upstream(rst=False):
    """Connection 1 answers one request, then reads the second and closes
    without a byte of answer (the upstream's keep-alive timeout racing the
    request), with a FIN or (rst) a RST. Later connections answer every
    request."""
    count = [0]
    got = []

    def handler(c):
        count[0] += 1
        mine = count[0]
        while True:
            req = read_request(c)
            if req is None:
                return
            got.append((mine, req))
            if mine == 1 and len([g for g in got if g[0] == 1]) == 2:
                if rst:
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.close()
                return
            c.sendall(ok(b"conn %d" % mine))

    return handler, got


@pytest.mark.parametrize("rst", [False, True])
@isolated
def test_keepalive_race_get_is_retried_on_a_fresh_connection(rst):
    handler, got = racing_upstream(rst)
    with scripted_server(handler) as up:
        pool = Pool(up.port)
        assert pool.get(b"/one")["body"] == b"conn 1"
        r = pool.get(b"/two")
        assert r["status"] == 200 and r["reset"] is None
        assert r["body"] == b"conn 2"
        assert r["reused"]                       # the caller saw the first try only
        events = [e for e in pool.events if e[1] == 1]
        assert [e[0] for e in events] == ["ready", "headers", "end"]
        assert pool.stat("upstream_rq_keepalive_race_retry") == 1
        assert pool.stat("upstream_rq_total") == 2
        # The same request reached both connections, byte for byte.
        (a,) = [req for conn, req in got if conn == 1 and b"/two" in req[0]]
        (b,) = [req for conn, req in got if conn == 2]
        assert a == b
        # The retry's connection is pooled as any other.
        assert pool.get(b"/three")["body"] == b"conn 2"
        settled(pool)


@isolated
def test_keepalive_race_post_with_body_sent_is_not_retried():
    handler, got = racing_upstream()
    with scripted_server(handler) as up:
        pool = Pool(up.port)
        assert pool.get(b"/one")["status"] == 200
        r = pool.get(b"/post", method="POST", body=b"payload",
                     headers=(("host", "h"), ("content-length", "7")))
        assert r["status"] is None
        assert r["reset"] == RESET_CONNECTION_TERMINATION
        assert pool.stat("upstream_rq_keepalive_race_retry") == 0
        assert up.accepted == 1
        settled(pool)


@isolated
def test_keepalive_race_put_with_body_is_retried():
    # Idempotent: the body is held and sent again.
    handler, got = racing_upstream()
    with scripted_server(handler) as up:
        pool = Pool(up.port)
        assert pool.get(b"/one")["status"] == 200
        r = pool.get(b"/put", method="PUT", body=b"payload",
                     headers=(("host", "h"), ("content-length", "7")))
        assert r["status"] == 200 and r["body"] == b"conn 2"
        (b,) = [req for conn, req in got if conn == 2]
        assert b[1] == b"payload"
        assert pool.stat("upstream_rq_keepalive_race_retry") == 1
        settled(pool)


@isolated
def test_failure_on_a_fresh_connection_is_a_reset():
    def handler(c):
        read_request(c)
        c.close()

    with scripted_server(handler) as up:
        pool = Pool(up.port)
        r = pool.get()
        assert r["reset"] == RESET_CONNECTION_TERMINATION
        assert pool.stat("upstream_rq_keepalive_race_retry") == 0
        assert up.accepted == 1
        settled(pool)


@isolated
def test_keepalive_race_retry_is_made_once():
    count = [0]

    def handler(c):
        count[0] += 1
        req = read_request(c)
        if count[0] == 1:
            c.sendall(ok())
            read_request(c)
        c.close()               # the retry's connection fails too

    with scripted_server(handler) as up:
        pool = Pool(up.port)
        assert pool.get()["status"] == 200
        r = pool.get()
        assert r["reset"] == RESET_CONNECTION_TERMINATION
        assert pool.stat("upstream_rq_keepalive_race_retry") == 1
        assert up.accepted == 2
        settled(pool)


# ---------------------------------------------------------- circuit breakers

def held_upstream():
    """Answers each request when the test releases it (event per request)."""
    release = threading.Semaphore(0)

    def handler(c):
        while read_request(c) is not None:
            release.acquire()
            c.sendall(ok())

    return handler, release


@isolated
def test_max_connections_queues_and_max_pending_overflows():
    handler, release = held_upstream()
    with scripted_server(handler) as up:
        pool = Pool(up.port, max_connections=1, max_pending_requests=1)
        first = pool.request()
        pool.turn(lambda: pool.response(first)["ready"])
        more = [pool.request() for _ in range(4)]
        # One waits, three overflow at once (Envoy, observed).
        assert pool.pending(more[0])
        assert [pool.response(s)["failure"] for s in more[1:]] == [POOL_FAILURE_OVERFLOW] * 3
        assert pool.stat("upstream_rq_pending_overflow") == 3
        assert pool.stat("upstream_rq_pending_total") == 2
        assert pool.stat("upstream_cx_total") == 1
        release.release()
        pool.turn(lambda: pool.response(first)["end"])
        pool.turn(lambda: pool.response(more[0])["ready"])
        assert pool.response(more[0])["reused"]
        release.release()
        pool.turn(lambda: pool.response(more[0])["end"])
        assert pool.stat("upstream_cx_total") == 1
        settled(pool)


@isolated
def test_waiting_request_gets_a_new_connection_when_the_busy_one_retires():
    # max_connections 1: the second request waits; the first response says
    # connection: close, so the wait ends on a fresh connection.
    srv = http_server()
    pool = Pool(srv.server_address[1], max_connections=1)
    first = pool.request(path=b"/close")
    second = pool.request(path=b"/after")
    assert pool.pending(second)
    pool.turn(lambda: pool.response(second)["end"], what="second response")
    assert pool.response(first)["status"] == pool.response(second)["status"] == 200
    assert not pool.response(second)["reused"]
    assert pool.stat("upstream_cx_total") == 2
    settled(pool)
    # Kept alive: the waiting request takes the same connection after it.
    pool = Pool(srv.server_address[1], max_connections=1)
    a, b = pool.request(path=b"/a"), pool.request(path=b"/b")
    assert pool.pending(a) and pool.pending(b)
    pool.turn(lambda: pool.response(b)["end"], what="second response")
    assert pool.response(b)["reused"] and pool.stat("upstream_cx_total") == 1
    assert pool.stat("upstream_cx_overflow") == 1
    settled(pool)
    srv.shutdown()


@isolated
def test_max_requests_overflows():
    handler, release = held_upstream()
    with scripted_server(handler) as up:
        pool = Pool(up.port, max_requests=1)
        first = pool.request()
        pool.turn(lambda: pool.response(first)["ready"])
        second = pool.request()
        assert pool.response(second)["failure"] == POOL_FAILURE_OVERFLOW
        # Envoy 1.40 (observed): max_requests is an active, not a pending, overflow.
        assert pool.stat("upstream_rq_active_overflow") == 1
        assert pool.stat("upstream_rq_pending_overflow") == 0
        release.release()
        pool.turn(lambda: pool.response(first)["end"])
        settled(pool)


@isolated
def test_cancel_pending_request():
    handler, release = held_upstream()
    with scripted_server(handler) as up:
        pool = Pool(up.port, max_connections=1)
        first = pool.request()
        pool.turn(lambda: pool.response(first)["ready"])
        second = pool.request()
        assert pool.pending(second)
        pool.cancel(second)
        assert pool.stat("upstream_rq_cancelled") == 1
        release.release()
        pool.turn(lambda: pool.response(first)["end"])
        pool.run(0.05)
        assert not pool.response(second)["ready"]
        settled(pool)


@isolated
def test_connect_failure_and_timeout_fail_the_stream():
    pool = Pool(free_port())
    r = pool.get()
    assert r["failure"] == POOL_FAILURE_REMOTE_CONNECTION_FAILURE
    assert pool.stat("upstream_cx_connect_fail") == 1
    settled(pool)
    # A listener whose accept queue is full: the SYN is never answered.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(0)
    filler = socket.create_connection(s.getsockname(), timeout=2)
    pool = Pool(s.getsockname()[1], connect_timeout=0.2)
    r = pool.get()
    assert r["failure"] == POOL_FAILURE_TIMEOUT
    assert pool.stat("upstream_cx_connect_timeout") == 1
    settled(pool)
    filler.close()
    s.close()


# ------------------------------------------------------------ response framing

def one_response(response, pieces=1, delay=0.02, then_close=False, requests=1):
    """A server answering each of `requests` requests with `response` (bytes,
    sent in `pieces` writes)."""
    seen = []

    def handler(c):
        for _ in range(requests):
            req = read_request(c)
            if req is None:
                return
            seen.append(req)
            step = max(1, len(response) // pieces)
            for i in range(0, len(response), step):
                c.sendall(response[i:i + step])
                if pieces > 1:
                    time.sleep(delay)
        if then_close:
            c.close()
        else:
            time.sleep(2)

    return handler, seen


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
    handler, _ = one_response(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789",
                              then_close=True)
    with scripted_server(handler) as up:
        pool = Pool(up.port)
        r = pool.get()
        assert r["status"] == 200 and r["body"] == b"0123456789"
        assert not r["end"]
        assert r["reset"] == RESET_CONNECTION_TERMINATION
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


@isolated
def test_caller_reset_closes_the_connection():
    handler, release = held_upstream()
    with scripted_server(handler) as up:
        pool = Pool(up.port)
        sid = pool.request()
        pool.turn(lambda: pool.response(sid)["ready"])
        pool.reset(sid)
        pool.turn(lambda: pool.stat("upstream_cx_active") == 0)
        assert pool.response(sid)["reset"] is None      # the caller is not told
        settled(pool)
        release.release()


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


# --------------------------------------------------------- cluster manager

def cluster_manager_for(port, **cluster_extra):
    """A ClusterManagerImpl with cluster "up" (127.0.0.1:port) built from a
    real config's plan on a bare Dispatcher (through TcpProxyForTest)."""
    import yaml
    from envoy_fast._worker import Dispatcher, TcpProxyForTest
    from envoy_fast.config import load_bootstrap
    from envoy_fast.server.plan import build_plan
    from envoy_fast.stats.store import StatsLayout, StatsStore
    from helpers import bootstrap, cluster, listener, tcp_proxy_filter

    cfg = bootstrap([listener("l0", 1, [{"filters": [tcp_proxy_filter("up")]}])],
                    [cluster("up", [port], **cluster_extra)])
    bs = load_bootstrap(config_yaml=yaml.safe_dump(cfg))
    layout = StatsLayout(bs, 1)
    store = StatsStore(layout)
    plan = build_plan(bs, layout, {"l0": -1})
    (tp_plan,) = plan.listeners[0].filter_chains[0].filters
    d = Dispatcher()
    tp = TcpProxyForTest(d, plan, tp_plan, store.mem)
    return d, tp, store


@isolated
def test_cluster_http_protocol_options_reach_the_pool():
    srv = http_server()
    options = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "common_http_protocol_options": {"max_requests_per_connection": 2, "idle_timeout": "0.3s"},
        "explicit_http_config": {"http_protocol_options": {}}}}
    d, tp, store = cluster_manager_for(srv.server_address[1],
                                       typed_extension_protocol_options=options)
    pool = _worker.Http1ConnPoolForTest.for_cluster(d, tp.cluster_manager, "up")

    def get():
        sid = pool.request()
        deadline = time.monotonic() + 5
        while not pool.response(sid)["end"] and time.monotonic() < deadline:
            d.run_for_test(0.01)
        return pool.response(sid)

    ports = [get()["body"].split(b" ")[2] for _ in range(3)]
    assert ports[0] == ports[1] != ports[2]
    assert store.values()["cluster.up.upstream_cx_max_requests"] == 1
    deadline = time.monotonic() + 3
    while pool.counts()["ready"] and time.monotonic() < deadline:
        d.run_for_test(0.01)
    assert store.values()["cluster.up.upstream_cx_idle_timeout"] == 1
    srv.shutdown()


@isolated
def test_thread_local_cluster_gives_one_http1_pool_per_host():
    srv = http_server()
    port = srv.server_address[1]
    d, tp, _ = cluster_manager_for(port)
    a = _worker.Http1ConnPoolForTest.for_cluster(d, tp.cluster_manager, "up")
    b = _worker.Http1ConnPoolForTest.for_cluster(d, tp.cluster_manager, "up")
    assert a.same_pool(b)
    assert a.host_address == "127.0.0.1:%d" % port
    assert _worker.Http1ConnPoolForTest.for_cluster(d, tp.cluster_manager, "nope") is None
    sid = a.request()
    deadline = time.monotonic() + 5
    while not a.response(sid)["end"] and time.monotonic() < deadline:
        d.run_for_test(0.01)
    assert a.response(sid)["status"] == 200
    assert a.stat("upstream_cx_http1_total") == 1
    srv.shutdown()


@isolated
def test_upstream_closing_keepalive_connections_at_random_fails_no_request():
    """The keep-alive race, many times: each upstream connection answers 1-3
    requests, then reads one more and closes unanswered (FIN or RST), or
    closes while idle. Sequential GETs through the pool: none fails."""
    import random
    rng = random.Random(9)

    def handler(c):
        budget = rng.randint(1, 3)
        idle_close = rng.random() < 0.3
        while True:
            req = read_request(c)
            if req is None:
                return
            if budget == 0:
                if rng.random() < 0.5:
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.close()
                return
            budget -= 1
            c.sendall(ok(b"x"))
            if budget == 0 and idle_close:
                c.close()
                return

    with scripted_server(handler) as up:
        pool = Pool(up.port)
        loop = _worker.Http1LoopForTest(pool.p, 300)
        pool.turn(lambda: loop.done == 300, timeout=30, what="300 requests")
        assert loop.failed == 0
        assert pool.stat("upstream_rq_keepalive_race_retry") > 20
        assert pool.stat("upstream_rq_total") == 300
        settled(pool)


@isolated
def test_keepalive_race_retry_that_cannot_connect_is_a_connection_failure():
    closed = threading.Event()
    holder = {}

    def handler(c):
        read_request(c)
        c.sendall(ok())
        read_request(c)
        holder["up"].sock.shutdown(socket.SHUT_RDWR)    # nothing listens any more
        closed.set()
        c.close()

    with scripted_server(handler) as up:
        holder["up"] = up
        pool = Pool(up.port)
        assert pool.get()["status"] == 200
        r = pool.get()
        assert closed.is_set()
        assert r["reset"] == RESET_CONNECTION_FAILURE
        assert pool.stat("upstream_rq_keepalive_race_retry") == 1
        assert pool.stat("upstream_cx_connect_fail") == 1
        settled(pool)


@isolated
def test_removed_cluster_closes_its_idle_http_connections():
    srv = http_server()
    d, tp, store = cluster_manager_for(srv.server_address[1])
    pool = _worker.Http1ConnPoolForTest.for_cluster(d, tp.cluster_manager, "up")
    sid = pool.request()
    deadline = time.monotonic() + 5
    while not pool.response(sid)["end"] and time.monotonic() < deadline:
        d.run_for_test(0.01)
    assert pool.counts()["ready"] == 1
    assert tp.cluster_manager.remove_cluster("up")
    assert pool.counts()["ready"] == 0
    assert store.values()["cluster.up.upstream_cx_destroy_local"] == 1
    srv.shutdown()


@isolated
def test_upstream_write_watermarks_reach_the_decoder():
    # The upstream reads nothing for a while: the request body backs up on
    # the connection, the decoder hears "above", then "below" once it drains.
    go = threading.Event()
    body = b"x" * (8 << 20)

    def handler(c):
        go.wait(5)
        req = read_request(c, timeout=10)
        assert req is not None and len(req[1]) == len(body)
        c.sendall(ok())
        time.sleep(1)

    with scripted_server(handler) as up:
        pool = Pool(up.port, buffer_limit=64 * 1024)
        sid = pool.request(method="POST", body=body,
                           headers=(("host", "h"), ("content-length", str(len(body)))))
        pool.turn(lambda: ("above", sid) in pool.events, what="above high watermark")
        go.set()
        pool.turn(lambda: ("below", sid) in pool.events, timeout=10, what="below low watermark")
        pool.turn(lambda: pool.response(sid)["end"], timeout=10)
        assert pool.response(sid)["body"] == b"ok"
        settled(pool)


@isolated
def test_read_disable_holds_the_response_back():
    def handler(c):
        for _ in range(2):
            if read_request(c) is None:
                return
            time.sleep(0.1)
            c.sendall(ok(b"held"))
        time.sleep(1)

    with scripted_server(handler) as up:
        pool = Pool(up.port)
        sid = pool.request()
        pool.turn(lambda: pool.response(sid)["ready"])
        pool.read_disable(sid, True)
        pool.read_disable(sid, True)        # counted: two need two enables
        pool.run(0.4)
        assert pool.response(sid)["status"] is None
        pool.read_disable(sid, False)
        pool.run(0.1)
        assert pool.response(sid)["status"] is None
        pool.read_disable(sid, False)
        pool.turn(lambda: pool.response(sid)["end"])
        assert pool.response(sid)["body"] == b"held"
        # Balanced disables leave the connection as it was: reused next.
        sid = pool.request()
        pool.turn(lambda: pool.response(sid)["ready"])
        pool.read_disable(sid, True)
        pool.read_disable(sid, False)
        pool.turn(lambda: pool.response(sid)["end"])
        assert pool.response(sid)["reused"]
        settled(pool)
