"""Shared pieces of the HTTP/1.1 pool tests (test_conn_pool_http1*.py):
the forked-child decorator (from helpers), real upstreams (python's http.server with
keep-alive, raw socket servers scripted per connection) and a Pool driver
around Http1ConnPoolForTest."""
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from envoy_fast import _worker
from helpers import isolated, read_http_request  # noqa: F401 (the pool tests take isolated from here)

POOL_FAILURE_OVERFLOW = 0
POOL_FAILURE_REMOTE_CONNECTION_FAILURE = 1
POOL_FAILURE_TIMEOUT = 3
RESET_LOCAL = 0
RESET_CONNECTION_FAILURE = 1
RESET_CONNECTION_TERMINATION = 2
RESET_PROTOCOL_ERROR = 5


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
    """One request's (head, body) (content-length or chunked) from socket c;
    None at EOF."""
    return read_http_request(c, timeout)


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


def held_upstream():
    """Answers each request when the test releases it (event per request)."""
    release = threading.Semaphore(0)

    def handler(c):
        while read_request(c) is not None:
            release.acquire()
            c.sendall(ok())

    return handler, release


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
