"""The router filter (Envoy router_test.cc's ground) without a connection
manager: RouterForTest (ext/http/router/router_for_test.pyx) builds the
clusters, route table and router from the plan Structs of a bootstrap, on a
bare Dispatcher; each request is a stream whose callbacks record what the
router sends downstream. Upstreams are real servers on 127.0.0.1; where a
reply is Envoy's own (local replies), the real Envoy runs the same config
and the status, body and response flags must be the same."""
import socket
import threading
import time

import pytest
import yaml

from envoy_fast._worker import Dispatcher, RouterForTest
from envoy_fast.config import load_bootstrap
from envoy_fast.server.plan import build_plan
from envoy_fast.stats.store import StatsLayout, StatsStore
from helpers import blackhole_server, bootstrap, cluster, free_port, listener, scripted_server

HCM = ("type.googleapis.com/envoy.extensions.filters.network."
       "http_connection_manager.v3.HttpConnectionManager")
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
CE = b"upstream connect error or disconnect/reset before headers. "


def hcm(routes, port_log=None, **router):
    cfg = {"@type": HCM, "stat_prefix": "ing",
           "route_config": {"virtual_hosts": [{"name": "v", "domains": ["*"], "routes": routes}]},
           "http_filters": [{"name": "envoy.filters.http.router",
                             "typed_config": dict({"@type": ROUTER}, **router)}]}
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": cfg}


def route(prefix, cluster_name, **action):
    return {"match": {"prefix": prefix}, "route": dict({"cluster": cluster_name}, **action)}


def config(routes, clusters, port=1, **router):
    return bootstrap([listener("l0", port, [{"filters": [hcm(routes, **router)]}])], clusters)


class Router:
    """The router of config(routes, clusters), stats in a StatsStore."""

    def __init__(self, routes, clusters, buffer_limit=1 << 20, **router):
        self.cfg = config(routes, clusters, **router)
        bs = load_bootstrap(config_yaml=yaml.safe_dump(self.cfg))
        self.layout = StatsLayout(bs, 1)
        self.store = StatsStore(self.layout)
        plan = build_plan(bs, self.layout, {"l0": -1})
        (hcm_plan,) = plan.listeners[0].filter_chains[0].filters
        self.d = Dispatcher()
        self.rt = RouterForTest(self.d, plan, hcm_plan, self.store.mem, buffer_limit)

    def pump(self, pred, timeout=10.0, what="condition"):
        deadline = time.monotonic() + timeout
        while not pred():
            assert time.monotonic() < deadline, "timed out waiting for " + what
            self.d.run_for_test(0.005)

    def get(self, path=b"/", method=b"GET", extra=b"", end_stream=True):
        return self.rt.request(b"%s %s HTTP/1.1\r\nhost: a\r\n%s\r\n" % (method, path, extra),
                               end_stream)

    def complete(self, s, timeout=10.0):
        """Run until stream `s` has its whole response (or a reset); its events."""
        self.pump(lambda: s.destroyed, timeout, "the response")
        return s.events

    def stats(self, prefix="cluster.up."):
        return {k[len(prefix):]: v for k, v in self.store.values().items() if k.startswith(prefix)}


def read_request(c):
    """One request off upstream connection c (head + content-length body);
    None at EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        d = c.recv(65536)
        if not d:
            return None
        data += d
    head, _, body = data.partition(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v)
    while len(body) < n:
        d = c.recv(65536)
        if not d:
            break
        body += d
    return head + b"\r\n\r\n" + body


def respond(*responses, keep=False):
    """An upstream handler answering the requests of all its connections,
    in arrival order, with the next of `responses` (bytes; None closes the
    connection without answering; (seconds, response) sleeps first). With
    `keep`, a connection stays open after the responses run out. Each
    connection's handler returns the requests it read."""
    lock = threading.Lock()
    queue = list(responses)

    def handler(c):
        c.settimeout(10)
        seen = []
        while True:
            with lock:
                if not queue and not keep:
                    return seen
            req = read_request(c)
            if req is None:
                return seen
            seen.append(req)
            with lock:
                handler.requests.append(req)
                if not queue:
                    r = b"" if keep else None
                else:
                    r = queue.pop(0)
            if isinstance(r, tuple):
                time.sleep(r[0])
                r = r[1]
            if r is None:
                return seen
            c.sendall(r)
    handler.requests = []
    return handler


def requests(up):
    """Every request the upstream read, over all its connections."""
    return list(up.handler.requests)


OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-up: 1\r\n\r\nok"
E503 = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nbusy"


def local_reply(events):
    (ev,) = [e for e in events if e[0] == "local_reply"]
    return ev[1], ev[2], dict(ev[3])


# ------------------------------------------------------------------ relaying


def test_get_is_relayed_with_envoy_headers():
    with scripted_server(respond(OK)) as up:
        r = Router([route("/", "up")], [cluster("up", [up.port])])
        s = r.get(b"/x?q=1")
        events = r.complete(s)
        up.wait_done()
    (req,) = requests(up)
    lines = req.split(b"\r\n")
    assert lines[0] == b"GET /x?q=1 HTTP/1.1"
    assert b"x-envoy-expected-rq-timeout-ms: 15000" in lines
    kind, status, headers, end = events[0]
    assert (kind, status, end) == ("headers", 200, False)
    names = [n for n, _ in headers]
    assert names[:2] == [b"content-length", b"x-up"]
    assert names[2] == b"x-envoy-upstream-service-time"
    assert int(dict(headers)[b"x-envoy-upstream-service-time"]) >= 0
    assert b"".join(e[1] for e in events if e[0] == "data") == b"ok"
    assert events[-1][0] == "data" and events[-1][2] is True
    st = r.stats()
    assert st["upstream_rq_200"] == st["upstream_rq_2xx"] == st["upstream_rq_completed"] == 1
    assert st["external.upstream_rq_200"] == st["external.upstream_rq_completed"] == 1
    assert r.rt.hcm_stats()["rq_total"] == 1
    assert s.log_fields["response_code_details"] == "via_upstream"
    assert s.log_fields["upstream_host"] == "127.0.0.1:%d" % up.port
    hist = r.store.histograms()
    assert hist["cluster.up.upstream_rq_time"].count == 1
    assert "cluster.up.upstream_rq_time" in hist


def test_keep_alive_reuses_the_upstream_connection_and_filters():
    with scripted_server(respond(OK, OK, OK, keep=True)) as up:
        r = Router([route("/", "up")], [cluster("up", [up.port])])
        for _ in range(3):
            r.complete(r.get())
        assert up.accepted == 1
        assert r.rt.spare_filters == 1           # one RouterFilter served all three


def test_post_body_streams_upstream():
    with scripted_server(respond(OK)) as up:
        r = Router([route("/", "up")], [cluster("up", [up.port])])
        s = r.get(b"/p", b"POST", b"content-length: 10\r\n", end_stream=False)
        s.data(b"hello", False)
        r.d.run_for_test(0.02)
        s.data(b"world", True)
        r.complete(s)
        up.wait_done()
    (req,) = requests(up)
    assert req.startswith(b"POST /p HTTP/1.1\r\n")
    assert req.endswith(b"\r\n\r\nhelloworld")


def test_suppress_envoy_headers():
    with scripted_server(respond(OK)) as up:
        r = Router([route("/", "up")], [cluster("up", [up.port])], suppress_envoy_headers=True)
        events = r.complete(r.get())
        up.wait_done()
    assert b"x-envoy-expected-rq-timeout-ms" not in requests(up)[0]
    assert b"x-envoy-upstream-service-time" not in dict(events[0][2])


# ------------------------------------------------------------- local replies


def test_no_route_404():
    r = Router([route("/only", "up")], [cluster("up", [free_port()])])
    s = r.get(b"/x")
    status, body, headers = local_reply(r.complete(s))
    assert (status, body) == (404, b"")
    assert s.log_fields["response_flags"] == ["NR"]
    assert s.log_fields["response_code_details"] == "route_not_found"
    st = r.rt.hcm_stats()
    assert st["no_route"] == 1 and st["rq_total"] == 1


def test_connection_refused_503_uf():
    r = Router([route("/", "up")], [cluster("up", [free_port()])])
    s = r.get()
    status, body, headers = local_reply(r.complete(s))
    assert status == 503
    assert body == CE + b"reset reason: remote connection failure"
    assert b"x-envoy-overloaded" not in headers
    assert s.log_fields["response_flags"] == ["UF"]
    assert s.log_fields["response_code_details"] == \
        "upstream_reset_before_response_started{remote_connection_failure|" \
        "delayed_connect_error:_Connection_refused}"
    st = r.stats()
    assert st["upstream_rq_503"] == st["upstream_rq_completed"] == 1


def test_connect_timeout_503_uf():
    with blackhole_server() as hole:
        r = Router([route("/", "up")], [cluster("up", [hole.port], connect_timeout="0.2s")])
        s = r.get()
        status, body, _ = local_reply(r.complete(s))
    assert (status, body) == (503, CE + b"reset reason: connection timeout")
    assert s.log_fields["response_flags"] == ["UF"]
    assert s.log_fields["response_code_details"] == \
        "upstream_reset_before_response_started{connection_timeout}"
    assert r.stats()["upstream_cx_connect_timeout"] == 1


def test_upstream_closes_before_headers_503_uc():
    with scripted_server(respond(None)) as up:
        r = Router([route("/", "up")], [cluster("up", [up.port])])
        s = r.get()
        status, body, _ = local_reply(r.complete(s))
    assert (status, body) == (503, CE + b"reset reason: connection termination")
    assert s.log_fields["response_flags"] == ["UC"]
    assert s.log_fields["response_code_details"] == \
        "upstream_reset_before_response_started{connection_termination}"


def test_invalid_upstream_response_502_upe():
    with scripted_server(respond(b"HTTP/1.1 abc nonsense\r\n\r\n")) as up:
        r = Router([route("/", "up")], [cluster("up", [up.port])])
        s = r.get()
        status, body, _ = local_reply(r.complete(s))
    assert (status, body) == (502, CE + b"reset reason: protocol error")
    assert s.log_fields["response_flags"] == ["UPE"]
    assert r.stats()["upstream_rq_502"] == 1


def test_no_healthy_upstream_503_uh():
    c = cluster("up", [free_port()])
    c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["health_status"] = "UNHEALTHY"
    c["common_lb_config"] = {"healthy_panic_threshold": {"value": 0}}
    r = Router([route("/", "up")], [c])
    s = r.get()
    status, body, _ = local_reply(r.complete(s))
    assert (status, body) == (503, b"no healthy upstream")
    assert s.log_fields["response_flags"] == ["UH"]
    assert s.log_fields["response_code_details"] == "no_healthy_upstream"
    st = r.stats()
    assert st["upstream_cx_none_healthy"] == 1 and st["upstream_rq_503"] == 1


def test_cluster_header_absent_503_nc():
    r = Router([{"match": {"prefix": "/"}, "route": {"cluster_header": "x-c"}}],
               [cluster("up", [free_port()])])
    s = r.get()
    status, body, _ = local_reply(r.complete(s))
    assert (status, body) == (503, b"")
    assert s.log_fields["response_flags"] == ["NC"]
    assert r.rt.hcm_stats()["no_cluster"] == 1


def test_pending_overflow_503_uo_with_overloaded_header():
    # One slow request in flight on the only connection allowed; of three
    # more, one waits (max_pending_requests 1) and two overflow at once.
    cb = {"thresholds": [{"max_connections": 1, "max_pending_requests": 1}]}
    with scripted_server(respond((0.5, OK), OK, keep=True)) as up:
        r = Router([route("/", "up")], [cluster("up", [up.port], circuit_breakers=cb)])
        first = r.get()
        r.pump(lambda: len(up.handler.requests) == 1, what="the first request upstream")
        streams = [r.get() for _ in range(3)]
        assert [s.destroyed for s in streams] == [False, True, True]
        for s in [first] + streams:
            r.complete(s)
    assert [s.events[0][1] for s in [first] + streams] == [200, 200, 503, 503]
    for s in streams[1:]:
        status, body, headers = local_reply(s.events)
        assert body == CE + b"reset reason: overflow"
        assert headers[b"x-envoy-overloaded"] == b"true"
        assert s.log_fields["response_flags"] == ["UO"]
    assert r.stats()["upstream_rq_pending_overflow"] == 2


def test_pending_request_gets_a_connection_after_a_timeout_reset():
    # The only connection allowed is reset by the route timeout: the request
    # waiting for it gets a new one.
    cb = {"thresholds": [{"max_connections": 1}]}
    with scripted_server(respond((1.0, OK), OK)) as up:
        r = Router([route("/slow", "up", timeout="0.2s"), route("/", "up")],
                   [cluster("up", [up.port], circuit_breakers=cb)])
        first = r.get(b"/slow")
        r.pump(lambda: len(up.handler.requests) == 1, what="the first request upstream")
        second = r.get(b"/fast")
        assert local_reply(r.complete(first))[0] == 504
        assert r.complete(second)[0][:2] == ("headers", 200)


def test_route_timeout_504_ut():
    with scripted_server(respond((1.0, OK))) as up:
        r = Router([route("/", "up", timeout="0.2s")], [cluster("up", [up.port])])
        s = r.get()
        status, body, _ = local_reply(r.complete(s))
        up.wait_done()
    assert (status, body) == (504, b"upstream request timeout")
    assert s.log_fields["response_flags"] == ["UT"]
    assert s.log_fields["response_code_details"] == "response_timeout"
    assert b"x-envoy-expected-rq-timeout-ms: 200" in requests(up)[0]
    st = r.stats()
    assert st["upstream_rq_timeout"] == 1 and st["upstream_rq_504"] == 1


def test_route_timeout_after_headers_resets():
    slow_body = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc"

    def handler(c):
        read_request(c)
        c.sendall(slow_body)
        time.sleep(1.0)
    with scripted_server(handler) as up:
        r = Router([route("/", "up", timeout="0.3s")], [cluster("up", [up.port])])
        s = r.get()
        events = r.complete(s)
    assert events[0][:2] == ("headers", 200)
    assert events[-1] == ("reset", "response_timeout")
    assert s.log_fields["response_flags"] == ["UT"]


def test_per_try_timeout_then_retry_exhausted_504_urx_ut():
    with scripted_server(respond((1.0, OK), (1.0, OK))) as up:
        r = Router([route("/", "up", timeout="3s",
                          retry_policy={"retry_on": "5xx", "num_retries": 1,
                                        "per_try_timeout": "0.2s"})],
                   [cluster("up", [up.port])])
        s = r.get()
        status, body, _ = local_reply(r.complete(s))
        up.wait_done(2)
    assert (status, body) == (504, b"upstream request timeout")
    assert s.log_fields["response_flags"] == ["URX", "UT"]
    assert s.log_fields["response_code_details"] == "upstream_per_try_timeout"
    assert s.log_fields["upstream_request_attempt_count"] == 2
    st = r.stats()
    assert st["upstream_rq_per_try_timeout"] == 2
    assert st["upstream_rq_retry"] == 1 and st["upstream_rq_retry_limit_exceeded"] == 1
    assert b"x-envoy-expected-rq-timeout-ms: 200" in requests(up)[0]


# ------------------------------------------------------------------- retries


def test_retry_on_5xx_then_200():
    with scripted_server(respond(E503, OK, keep=True)) as up:
        r = Router([route("/", "up", retry_policy={"retry_on": "5xx", "num_retries": 2})],
                   [cluster("up", [up.port])])
        s = r.get()
        events = r.complete(s)
    assert events[0][:2] == ("headers", 200)
    assert b"".join(e[1] for e in events if e[0] == "data") == b"ok"
    st = r.stats()
    assert st["upstream_rq_retry"] == st["upstream_rq_retry_success"] == 1
    assert st["upstream_rq_200"] == 1 and "upstream_rq_503" not in st
    assert st["retry.upstream_rq_503"] == st["retry.upstream_rq_5xx"] == 1
    assert st["retry.upstream_rq_completed"] == 1
    assert s.log_fields["upstream_request_attempt_count"] == 2
    assert s.log_fields["response_flags"] == []


def test_retries_exhausted_on_responses_relay_the_last():
    with scripted_server(respond(E503, E503, keep=True)) as up:
        r = Router([route("/", "up", retry_policy={"retry_on": "gateway-error"})],
                   [cluster("up", [up.port])])
        s = r.get()
        events = r.complete(s)
    assert events[0][:2] == ("headers", 503)
    assert b"".join(e[1] for e in events if e[0] == "data") == b"busy"
    assert s.log_fields["response_flags"] == ["URX"]
    st = r.stats()
    assert st["upstream_rq_retry"] == 1 and st["upstream_rq_retry_limit_exceeded"] == 1
    assert st["upstream_rq_503"] == 1


def test_no_retry_policy_passes_a_503():
    with scripted_server(respond(E503)) as up:
        r = Router([route("/", "up")], [cluster("up", [up.port])])
        events = r.complete(r.get())
    assert events[0][:2] == ("headers", 503)
    assert up.accepted == 1


def test_retry_on_reset_then_200():
    # Round robin over [closes, answers]: of two requests, at least one
    # meets the closing host first and is retried on the other.
    with scripted_server(respond(None, None)) as bad, scripted_server(respond(OK, OK)) as good:
        r = Router([route("/", "up", retry_policy={"retry_on": "reset", "num_retries": 1})],
                   [cluster("up", [bad.port, good.port])])
        for _ in range(2):
            s = r.get()
            assert r.complete(s)[0][:2] == ("headers", 200)
        retries = r.stats()["upstream_rq_retry"]
        assert 1 <= retries <= 2 and bad.accepted == retries
    assert r.stats()["upstream_rq_retry_success"] == retries


def test_connect_failure_then_live_host():
    dead = free_port()
    with scripted_server(respond(OK, OK)) as up:
        r = Router([route("/", "up", retry_policy={"retry_on": "connect-failure"})],
                   [cluster("up", [dead, up.port])])
        for _ in range(2):
            s = r.get()
            assert r.complete(s)[0][:2] == ("headers", 200)
            assert s.log_fields["upstream_host"] == "127.0.0.1:%d" % up.port
    st = r.stats()
    assert 1 <= st["upstream_rq_retry"] <= 2
    assert st["upstream_cx_connect_fail"] == st["upstream_rq_retry"]


def test_retries_exhausted_on_failures_latest_reset_urx():
    r = Router([route("/", "up", retry_policy={"retry_on": "connect-failure", "num_retries": 2})],
               [cluster("up", [free_port()])])
    s = r.get()
    status, body, _ = local_reply(r.complete(s))
    assert (status, body) == (
        503, CE + b"retried and the latest reset reason: remote connection failure")
    assert s.log_fields["response_flags"] == ["URX", "UF"]
    st = r.stats()
    assert st["upstream_rq_retry"] == 2 and st["upstream_rq_retry_limit_exceeded"] == 1
    assert st["upstream_rq_503"] == 1


def test_retry_overflow_max_retries_zero():
    cb = {"thresholds": [{"max_retries": 0}]}
    with scripted_server(respond(E503)) as up:
        r = Router([route("/", "up", retry_policy={"retry_on": "5xx"})],
                   [cluster("up", [up.port], circuit_breakers=cb)])
        s = r.get()
        events = r.complete(s)
    assert events[0][:2] == ("headers", 503)
    assert s.log_fields["response_flags"] == ["UO"]
    assert r.stats()["upstream_rq_retry_overflow"] == 1


def test_retry_resends_the_body():
    with scripted_server(respond(E503, OK, keep=True)) as up:
        r = Router([route("/", "up", retry_policy={"retry_on": "5xx"})],
                   [cluster("up", [up.port])])
        s = r.get(b"/p", b"POST", b"content-length: 5\r\n", end_stream=False)
        s.data(b"hello", True)
        events = r.complete(s)
        up.wait_done()
    assert events[0][:2] == ("headers", 200)
    reqs = requests(up)
    assert len(reqs) == 2 and all(q.endswith(b"\r\n\r\nhello") for q in reqs)


def test_body_over_the_buffer_limit_abandons_retries():
    with scripted_server(respond(E503)) as up:
        r = Router([route("/", "up", retry_policy={"retry_on": "5xx"})],
                   [cluster("up", [up.port])], buffer_limit=8)
        s = r.get(b"/p", b"POST", b"content-length: 10\r\n", end_stream=False)
        s.data(b"0123456789", True)
        events = r.complete(s)
    assert events[0][:2] == ("headers", 503)
    st = r.stats()
    assert st["retry_or_shadow_abandoned"] == 1 and st["upstream_rq_retry"] == 0


# ------------------------------------------------------------ flow control


def test_downstream_back_pressure_pauses_upstream_reads():
    big = b"x" * (4 << 20)

    def handler(c):
        read_request(c)
        c.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(big))
        c.sendall(big)
    with scripted_server(handler) as up:
        r = Router([route("/", "up")], [cluster("up", [up.port])])
        s = r.get()
        r.pump(lambda: any(e[0] == "data" for e in s.events))
        s.downstream_watermark(True)
        r.d.run_for_test(0.05)
        n = len(s.events)
        r.d.run_for_test(0.2)
        assert len(s.events) == n               # nothing read while paused
        s.downstream_watermark(False)
        r.complete(s)
    assert sum(len(e[1]) for e in s.events if e[0] == "data") == len(big)


# ------------------------------------------- the request's x-envoy-* controls
# (Envoy's connection manager strips them from external requests; the router
# honours what reaches it, and none of them goes upstream.)


def test_request_timeout_headers():
    with scripted_server(respond((1.0, OK))) as up:
        r = Router([route("/", "up")], [cluster("up", [up.port])])
        s = r.get(extra=b"x-envoy-upstream-rq-timeout-ms: 200\r\n"
                        b"x-envoy-upstream-rq-timeout-alt-response: yes\r\n")
        status, body, _ = local_reply(r.complete(s))
        up.wait_done()
    assert (status, body) == (204, b"")
    assert s.log_fields["response_flags"] == ["UT"]
    (req,) = requests(up)
    assert b"x-envoy-upstream-rq-timeout" not in req
    assert b"x-envoy-expected-rq-timeout-ms: 200\r\n" in req


def test_request_retry_headers():
    with scripted_server(respond(E503, E503, OK, keep=True)) as up:
        r = Router([route("/", "up")], [cluster("up", [up.port])])
        s = r.get(extra=b"x-envoy-retry-on: reset, 5xx,unknown\r\nx-envoy-max-retries: 2\r\n"
                        b"x-other: 1\r\n")
        events = r.complete(s)
    assert events[0][:2] == ("headers", 200)
    reqs = requests(up)
    assert len(reqs) == 3
    assert all(b"x-envoy-retry-on" not in q and b"x-envoy-max-retries" not in q
               and b"x-other: 1" in q for q in reqs)
    assert r.stats()["upstream_rq_retry"] == 2


# ---------------------------------------------------------- stream endings


def test_reset_after_the_response_started():
    def handler(c):
        read_request(c)
        c.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf")
        time.sleep(0.1)
    with scripted_server(handler) as up:
        r = Router([route("/", "up", retry_policy={"retry_on": "reset"})],
                   [cluster("up", [up.port])])
        s = r.get()
        events = r.complete(s)
    assert [e[0] for e in events] == ["headers", "data", "reset"]
    assert events[1][1] == b"half"
    # EOF inside the body is a protocol error (Envoy 1.40, observed).
    assert events[-1] == ("reset", "upstream_reset_after_response_started{protocol_error}")
    assert s.log_fields["response_flags"] == ["UPE"]
    st = r.stats()
    assert st["upstream_rq_retry"] == 0          # never once the response started
    assert st["upstream_rq_200"] == 1 and "upstream_rq_503" not in st


def test_per_try_timeout_then_a_fast_retry():
    with scripted_server(respond((1.0, OK), OK, keep=True)) as up:
        r = Router([route("/", "up", timeout="5s",
                          retry_policy={"retry_on": "5xx", "per_try_timeout": "0.3s"})],
                   [cluster("up", [up.port])])
        s = r.get()
        events = r.complete(s)
    assert events[0][:2] == ("headers", 200)
    first, second = requests(up)
    assert b"x-envoy-expected-rq-timeout-ms: 300\r\n" in first
    assert b"x-envoy-expected-rq-timeout-ms: 300\r\n" in second
    st = r.stats()
    assert st["upstream_rq_per_try_timeout"] == 1 and st["upstream_rq_retry_success"] == 1
    assert s.log_fields["response_flags"] == []


def test_downstream_gone_mid_request_resets_the_upstream():
    got = []

    def handler(c):
        head = b""
        while b"\r\n\r\n" not in head:
            head += c.recv(65536)
        got.append(head)
        while c.recv(100):                       # b"" once the proxy closes
            pass
        got.append(b"")
    with scripted_server(handler) as up:
        r = Router([route("/", "up")], [cluster("up", [up.port])])
        s = r.get(b"/p", b"POST", b"content-length: 100\r\n", end_stream=False)
        s.data(b"x" * 10, False)
        r.pump(lambda: len(got) == 1, what="the head upstream")
        s.destroy()
        r.pump(lambda: len(got) == 2, what="the upstream connection to close")
        up.wait_done()
    assert got[1] == b""
    st = r.stats()
    assert st["upstream_cx_destroy_local_with_active_rq"] == 1
    assert r.rt.spare_filters == 1


@pytest.mark.parametrize("enable", [False, True])
def test_request_trailers_go_upstream_when_the_cluster_enables_them(enable):
    def handler(c):
        data = b""
        while data.count(b"\r\n\r\n") < 2:
            d = c.recv(65536)
            if not d:
                break
            data += d
        c.sendall(OK)
        return data
    extra = {}
    if enable:
        extra["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http_protocol_options": {"enable_trailers": True}}}}
    with scripted_server(handler) as up:
        r = Router([route("/", "up")], [cluster("up", [up.port], **extra)])
        s = r.get(b"/p", b"POST", b"transfer-encoding: chunked\r\n", end_stream=False)
        s.data(b"hello", False)
        s.trailers([(b"x-trailer", b"1")])
        events = r.complete(s)
        up.wait_done()
    assert events[0][:2] == ("headers", 200)
    (raw,) = up.results
    assert raw.endswith(b"\r\n\r\n5\r\nhello\r\n0\r\n" +
                        (b"x-trailer: 1\r\n" if enable else b"") + b"\r\n")


def test_a_filter_and_its_attempt_are_reused():
    with scripted_server(respond(E503, OK, OK, keep=True)) as up:
        r = Router([route("/", "up", retry_policy={"retry_on": "5xx"})],
                   [cluster("up", [up.port])])
        assert r.complete(r.get())[0][:2] == ("headers", 200)
        assert r.complete(r.get())[0][:2] == ("headers", 200)
    assert r.rt.spare_filters == 1


def test_upstream_back_pressure_pauses_the_downstream():
    # A big upload to an upstream that reads slowly: the upstream connection's
    # write buffer passes its limit (the cluster's 1 MiB), the router tells
    # the downstream to stop, and to go on once it drained.
    size = 8 << 20
    got = []

    def handler(c):
        head = b""
        while b"\r\n\r\n" not in head:
            head += c.recv(65536)
        n = len(head.partition(b"\r\n\r\n")[2])
        time.sleep(0.3)
        while n < size:
            d = c.recv(65536)
            if not d:
                break
            n += len(d)
        got.append(n)
        c.sendall(OK)
    with scripted_server(handler) as up:
        r = Router([route("/", "up")], [cluster("up", [up.port])])
        s = r.get(b"/p", b"POST", b"content-length: %d\r\n" % size, end_stream=False)
        r.pump(lambda: r.rt.pool_counts("up") and
               list(r.rt.pool_counts("up").values())[0]["busy"] == 1, what="a connection")
        s.data(b"x" * size, True)
        events = r.complete(s)
    assert got == [size]
    kinds = [e[0] for e in events]
    assert kinds.index("above_high") < kinds.index("below_low") < kinds.index("headers")


def test_upgrade_tunnels_after_101():
    # The request stays open after its head (the connection manager passes
    # the client's bytes after the upgrade as body); the upstream's 101 and
    # its bytes come back as a response that does not end.
    def serve(c):
        c.settimeout(5)
        head = b""
        while b"\r\n\r\n" not in head:
            head += c.recv(65536)
        c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
                  b"connection: upgrade\r\n\r\n")
        while True:
            d = c.recv(65536)
            if not d:
                return head
            c.sendall(d)
    with scripted_server(serve) as up:
        r = Router([route("/", "up")], [cluster("up", [up.port])])
        s = r.get(b"/ws", extra=b"upgrade: websocket\r\nconnection: upgrade\r\n", end_stream=False)
        r.pump(lambda: any(e[0] == "headers" for e in s.events), what="the 101")
        s.data(b"ping-1", False)
        r.pump(lambda: any(e[0] == "data" for e in s.events), what="the echo")
        s.destroy()
        up.wait_done()
    assert s.events[0] == ("headers", 101, [(b"upgrade", b"websocket"),
                                            (b"connection", b"upgrade")], False)
    assert s.events[1] == ("data", b"ping-1", False)
    (head,) = up.results
    assert head.startswith(b"GET /ws HTTP/1.1\r\nhost: a\r\nupgrade: websocket\r\n"
                           b"connection: upgrade\r\n")
    assert r.stats()["upstream_rq_101"] == 1


E500 = b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n"
E409 = b"HTTP/1.1 409 Conflict\r\ncontent-length: 0\r\n\r\n"
E418 = b"HTTP/1.1 418 Teapot\r\ncontent-length: 0\r\n\r\n"


@pytest.mark.parametrize("policy, first, retried", [
    ({"retry_on": "gateway-error"}, E500, False),       # 502/503/504 only
    ({"retry_on": "5xx"}, E500, True),
    ({"retry_on": "retriable-4xx"}, E409, True),
    ({"retry_on": "retriable-4xx"}, E418, False),
    ({"retry_on": "retriable-status-codes", "retriable_status_codes": [418]}, E418, True),
    ({"retry_on": "retriable-status-codes", "retriable_status_codes": [418]}, E409, False),
    ({"retry_on": "connect-failure"}, E503, False),
])
def test_retry_on_policies(policy, first, retried):
    with scripted_server(respond(first, OK, keep=True)) as up:
        r = Router([route("/", "up", retry_policy=policy)], [cluster("up", [up.port])])
        events = r.complete(r.get())
    status = int(first.split(b" ")[1])
    assert events[0][1] == (200 if retried else status)
    assert r.stats()["upstream_rq_retry"] == (1 if retried else 0)


def test_internal_requests_count_under_internal():
    with scripted_server(respond(OK, OK, keep=True)) as up:
        r = Router([route("/", "up")], [cluster("up", [up.port])])
        r.complete(r.get(extra=b"x-envoy-internal: true\r\n"))
        r.complete(r.get())
    st = r.stats()
    assert st["upstream_rq_200"] == 2
    assert st["internal.upstream_rq_200"] == st["internal.upstream_rq_completed"] == 1
    assert st["external.upstream_rq_200"] == st["external.upstream_rq_completed"] == 1
    hist = r.store.histograms()
    assert hist["cluster.up.internal.upstream_rq_time"].count == 1
