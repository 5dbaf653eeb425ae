"""The keep-alive race in the HTTP/1.1 pool (beyond Envoy, docs/decisions.md):
a request that fails on a reused connection before any response byte is
sent again, once, on a fresh connection when that is safe."""
import socket
import struct
import threading

import pytest

from envoy_fast import _worker
from helpers import scripted_server
from http1_pool_harness import (RESET_CONNECTION_FAILURE, RESET_CONNECTION_TERMINATION, Pool,
                                isolated, ok, read_request, settled)


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
