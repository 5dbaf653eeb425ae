"""The HTTP/1.1 upstream pool (Http1ConnPoolImpl + its client codec) on a
bare Dispatcher, through Http1ConnPoolForTest, against real upstreams:
keep-alive and what retires a connection, circuit breakers, flow control,
the cluster manager's pools. Framing: test_conn_pool_http1_framing.py; the
keep-alive race: test_conn_pool_http1_race.py.

Each test runs in a forked child (the upstream threads start there): a crash
in the data plane fails one test, not the run."""
import socket
import threading
import time

import pytest

from envoy_fast import _worker
from helpers import free_port, scripted_server
from http1_pool_harness import (POOL_FAILURE_OVERFLOW, POOL_FAILURE_REMOTE_CONNECTION_FAILURE,
                                POOL_FAILURE_TIMEOUT, Pool, cluster_manager_for, held_upstream,
                                http_server, isolated, ok, one_response, read_request, settled)


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


# ---------------------------------------------------------- circuit breakers

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
        # Envoy 1.40 (observed): the second request waits for a connection of
        # its own, then overflows when attached to it: an active, not a
        # pending, overflow, and the new connection stays in the pool.
        pool.turn(lambda: pool.response(second).get("failure") is not None)
        assert pool.response(second)["failure"] == POOL_FAILURE_OVERFLOW
        assert pool.stat("upstream_rq_active_overflow") == 1
        assert pool.stat("upstream_rq_pending_overflow") == 0
        assert pool.stat("upstream_cx_total") == 2
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


# --------------------------------------------------------- cluster manager

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
