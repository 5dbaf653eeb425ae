"""Differential HTTP tests: the same Envoy YAML through the real Envoy and
through envoy_fast, the same raw bytes sent to both, and what each side
answered (and what its upstream received) compared after normalising what
legitimately differs (dates, generated ids, timings, port numbers).

    from http_diff import assert_same
    r = assert_same(CONFIG, b"GET / HTTP/1.1\\r\\nhost: a\\r\\n\\r\\n")
    assert r.status == 404          # r: Envoy's side, parsed

CONFIG is Envoy v3 YAML with placeholders `{{NAME}}` the harness fills per
side with free loopback ports: LISTEN, LISTEN2 (listeners), ADMIN (added
when the config has no admin), UPSTREAM, UPSTREAM2, UPSTREAM3 (an
`http_upstream.EchoUpstream` each), DEAD (nothing listens: connection
refused), BLACKHOLE (SYNs dropped: connect timeout).

A request is bytes, or a list of bytes and floats (send, pause seconds),
e.g. `[head, 0.3, body]`; `parallel=[req, ...]` opens one connection per
request, each started `stagger` seconds after the previous one. On a
mismatch both sides are printed in full, with a diff.

The peer compared with Envoy is envoy_fast, or a second Envoy when
HTTP_DIFF_PEER=envoy (checks the harness and the cases' expectations).
A config envoy_fast refuses fails the case with envoy_fast's refusal text.
"""
from __future__ import annotations

import contextlib
import difflib
import functools
import json
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import pytest
import yaml

import helpers
from http_upstream import EchoUpstream, body_repr, header_value

Request = Union[bytes, Sequence[Union[bytes, float]]]
PLACEHOLDER = re.compile(r"\{\{([A-Z0-9_]+)\}\}")
PLACEHOLDER_BYTES = re.compile(rb"\{\{([A-Z0-9_]+)\}\}")
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-([0-9a-f])[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}\b")


def peer_impl() -> str:
    return os.environ.get("HTTP_DIFF_PEER", "envoy_fast")


# ------------------------------------------------------------- the client

class Response:
    """One response as the client parsed it."""

    def __init__(self, version: str, status: int, reason: str, headers: List[Tuple[str, str]],
                 body: bytes, framing: str, trailers: List[Tuple[str, str]]) -> None:
        self.version, self.status, self.reason = version, status, reason
        self.headers, self.body, self.framing, self.trailers = headers, body, framing, trailers

    def header(self, name: str) -> Optional[str]:
        return header_value(self.headers, name)

    def echo(self) -> Optional[dict]:
        """The upstream's JSON echo carried in the body, if it is one."""
        if self.header("content-type") != "application/json":
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def __repr__(self) -> str:
        return "<Response %s %d %r>" % (self.version, self.status, self.body[:60])


class Exchange:
    """What one connection got: responses (1xx interim ones included, in
    order), bytes after a 101, whether the proxy closed, unparsed bytes."""

    def __init__(self) -> None:
        self.responses: List[Response] = []
        self.tunnel = b""
        self.closed = False
        self.garbage = b""
        self.client_port = 0
        self.error = ""

    @property
    def finals(self) -> List[Response]:
        return [r for r in self.responses if not (100 <= r.status < 200 and r.status != 101)]

    # Envoy's side of the first final response, for the cases' assertions.
    @property
    def status(self) -> Optional[int]:
        return self.finals[0].status if self.finals else None

    @property
    def body(self) -> bytes:
        return self.finals[0].body if self.finals else b""

    def header(self, name: str) -> Optional[str]:
        return self.finals[0].header(name) if self.finals else None


def _request_methods(data: bytes) -> List[str]:
    return [m.decode() for m in re.findall(rb"(?:\A|\r?\n\r?\n)([A-Za-z]+) \S+ HTTP/", data)]


def parse_responses(buf: bytes, methods: List[str], eof: bool):
    """-> (responses, consumed bytes, tunnel started, complete). Reparses
    from the start each time (bodies in these tests are small)."""
    out: List[Response] = []
    pos = 0
    final_no = 0
    while pos < len(buf):
        end = buf.find(b"\r\n\r\n", pos)
        if end < 0:
            return out, pos, False, False
        lines = buf[pos:end].decode("latin-1").split("\r\n")
        first = lines[0].split(" ", 2)
        if len(first) < 2 or not first[0].startswith("HTTP/") or not first[1].isdigit():
            return out, pos, False, False
        version, status, reason = first[0], int(first[1]), first[2] if len(first) > 2 else ""
        headers = []
        for line in lines[1:]:
            n, _, v = line.partition(":")
            headers.append((n, v.strip(" \t")))
        hmap = {n.lower(): v for n, v in headers}
        p = end + 4
        body, framing, trailers = b"", "none", []
        interim = 100 <= status < 200 and status != 101
        method = methods[final_no] if final_no < len(methods) else "GET"
        if status == 101:
            out.append(Response(version, status, reason, headers, b"", "none", []))
            return out, p, True, True
        if interim or status in (204, 304) or method == "HEAD":
            pass
        elif "chunked" in hmap.get("transfer-encoding", "").lower():
            framing = "chunked"
            parts = []
            while True:
                le = buf.find(b"\r\n", p)
                if le < 0:
                    return out, pos, False, False
                size = int(buf[p:le].split(b";")[0].strip() or b"0", 16)
                p = le + 2
                if size == 0:
                    break
                if len(buf) < p + size + 2:
                    return out, pos, False, False
                parts.append(buf[p:p + size])
                p += size + 2
            while True:
                le = buf.find(b"\r\n", p)
                if le < 0:
                    return out, pos, False, False
                line = buf[p:le]
                p = le + 2
                if not line:
                    break
                n, _, v = line.decode("latin-1").partition(":")
                trailers.append((n, v.strip()))
            body = b"".join(parts)
        elif "content-length" in hmap:
            framing = "length"
            n = int(hmap["content-length"])
            if len(buf) < p + n:
                if eof:     # truncated: keep what came, marked
                    out.append(Response(version, status, reason, headers, buf[p:], "truncated", []))
                    return out, len(buf), False, True
                return out, pos, False, False
            body = buf[p:p + n]
            p += n
        else:
            framing = "close"
            if not eof:
                return out, pos, False, False
            body = buf[p:]
            p = len(buf)
        out.append(Response(version, status, reason, headers, body, framing, trailers))
        if not interim:
            final_no += 1
        pos = p
    return out, pos, False, True


def exchange(port: int, request: Request, *, responses: int = 1, timeout: float = 10.0,
             quiet: float = 0.05, wait_close: float = 0.0, tunnel_wait: float = 0.3) -> Exchange:
    """Send `request` on a new connection to 127.0.0.1:`port` and read until
    `responses` final responses are complete and nothing more arrives for
    `quiet` s (or EOF, or `timeout`). `wait_close` > 0: then wait that long
    for the proxy to close (`closed`)."""
    segs = [request] if isinstance(request, bytes) else list(request)
    data = b"".join(s for s in segs if isinstance(s, bytes))
    methods = _request_methods(data)
    ex = Exchange()
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    ex.client_port = sock.getsockname()[1]
    sent = threading.Event()

    def send():
        try:
            for s in segs:
                if isinstance(s, bytes):
                    sock.sendall(s)
                else:
                    time.sleep(float(s))
        except OSError as e:
            ex.error = "send: %s" % e
        finally:
            sent.set()

    t = threading.Thread(target=send, daemon=True)
    t.start()
    buf = b""
    eof = False
    deadline = time.monotonic() + timeout
    last_data = time.monotonic()
    tunnel = False
    try:
        sock.setblocking(False)
        while True:
            now = time.monotonic()
            if now >= deadline:
                ex.error = ex.error or "timed out after %.1fs" % timeout
                break
            rs, fin, tunnel, complete = parse_responses(buf, methods, eof)
            finals = [r for r in rs if not (100 <= r.status < 200 and r.status != 101)]
            if eof:
                break
            if sent.is_set() and complete and (len(finals) >= responses or tunnel):
                if now - last_data >= (tunnel_wait if tunnel else quiet):
                    break
            r, _, _ = select.select([sock], [], [], 0.01)
            if r:
                try:
                    d = sock.recv(1 << 20)
                except ConnectionResetError:
                    d = b""
                    ex.error = ex.error or "reset by the proxy"
                except BlockingIOError:
                    continue
                if not d:
                    eof = True
                else:
                    buf += d
                    last_data = time.monotonic()
        rs, fin, tunnel, _ = parse_responses(buf, methods, eof)
        ex.responses = rs
        if tunnel:
            ex.tunnel = buf[fin:]
        else:
            ex.garbage = buf[fin:]
        ex.closed = eof
        if not eof and wait_close > 0:
            end = time.monotonic() + wait_close
            while time.monotonic() < end:
                r, _, _ = select.select([sock], [], [], 0.02)
                if r:
                    try:
                        d = sock.recv(65536)
                    except (ConnectionResetError, BlockingIOError):
                        d = b""
                    if not d:
                        ex.closed = True
                        break
                    ex.garbage += d
    finally:
        sock.close()
        t.join(timeout=5)
    return ex


# --------------------------------------------------------------- one side

class Side:
    """One implementation running the config: the proxy process, its
    upstreams, its ports."""

    def __init__(self, impl: str, config: str) -> None:
        self.impl = impl
        self.ports: Dict[str, int] = {}
        self.upstreams: Dict[str, EchoUpstream] = {}
        self._stack = contextlib.ExitStack()
        names = set(PLACEHOLDER.findall(config))
        for n in sorted(names):
            if n.startswith("UPSTREAM"):
                up = self._stack.enter_context(helpers._closing(EchoUpstream, n))
                self.upstreams[n] = up
                self.ports[n] = up.port
            elif n == "BLACKHOLE":
                self.ports[n] = self._stack.enter_context(helpers.blackhole_server()).port
            else:
                self.ports[n] = helpers.free_port()
        if "ADMIN" not in self.ports:
            self.ports["ADMIN"] = helpers.free_port()
        text = PLACEHOLDER.sub(lambda m: str(self.ports[m.group(1)]), config)
        self.cfg = yaml.safe_load(text)
        self.cfg.setdefault("admin", {"address": {"socket_address": {
            "address": "127.0.0.1", "port_value": self.ports["ADMIN"]}}})
        self.ports["ADMIN"] = self.cfg["admin"]["address"]["socket_address"]["port_value"]
        self.proxy: Optional[helpers.Proxy] = None

    def start(self) -> "Side":
        try:
            if self.impl == "envoy":
                self.proxy = self._stack.enter_context(run_real_envoy(self.cfg))
            else:
                self.proxy = self._stack.enter_context(helpers.run_impl("envoy_fast", self.cfg))
        except BaseException:
            self._stack.close()
            raise
        return self

    def close(self) -> None:
        self._stack.close()

    @property
    def listen(self) -> int:
        return self.ports["LISTEN"]

    def reset(self) -> None:
        for up in self.upstreams.values():
            up.reset()

    def received(self) -> Dict[str, list]:
        return {n: list(up.received) for n, up in sorted(self.upstreams.items())}

    def counters(self, names: Sequence[str]) -> Dict[str, int]:
        if not names:
            return {}
        s = self.proxy.stats()
        return {n: s.get(n, 0) for n in names}


def run_real_envoy(cfg: dict):
    """The real Envoy, one worker, no hot restart, a random base id."""
    envoy = helpers.require_peer("envoy")
    base_id = str(int.from_bytes(os.urandom(3), "big") + 1)

    def command(path: str) -> List[str]:
        return [envoy, "-c", path, "--concurrency", "1", "--disable-hot-restart",
                "--base-id", base_id, "-l", "warning"]
    return helpers._run_process(cfg, command, None, 30.0, "envoy /ready")


@functools.lru_cache(maxsize=None)
def envoy_fast_refusal(config: str) -> str:
    """envoy_fast's validate-mode output when it refuses `config` (ports
    filled with placeholders' dummies), else ''."""
    text = PLACEHOLDER.sub(lambda m: str(10000 + hash(m.group(1)) % 20000), config)
    cfg = yaml.safe_load(text)
    path = helpers._write_config(cfg)
    try:
        r = subprocess.run([sys.executable, "-m", "envoy_fast", "--mode", "validate", "-c", path],
                           capture_output=True, text=True, timeout=60, cwd=helpers.ROOT)
    finally:
        os.unlink(path)
    return "" if r.returncode == 0 else (r.stdout + r.stderr).strip()


def fail_if_envoy_fast_refuses(config: str) -> None:
    """A case whose config envoy_fast refuses fails, with the refusal, before
    anything starts (clearer than a proxy that never comes up)."""
    if peer_impl() != "envoy_fast":
        return
    out = envoy_fast_refusal(config)
    if out:
        pytest.fail("envoy_fast refuses the config:\n" + out, pytrace=False)


# ---------------------------------------------------------- normalisation

def _fill_ports(request: Request, side: Side) -> Request:
    """`{{NAME}}` in a request's bytes becomes that side's port (a Host
    naming the listener's own port)."""
    def fill(seg):
        if not isinstance(seg, bytes) or b"{{" not in seg:
            return seg
        return PLACEHOLDER_BYTES.sub(lambda m: str(side.ports[m.group(1).decode()]).encode(), seg)
    return fill(request) if isinstance(request, bytes) else [fill(s) for s in request]


def _sub_ports(text: str, side: Side, ex: Optional[Exchange]) -> str:
    ports = dict(side.ports)
    if ex is not None and ex.client_port:
        ports["CLIENT_PORT"] = ex.client_port
    for name, port in sorted(ports.items(), key=lambda kv: -len(str(kv[1]))):
        text = re.sub(r"(?<!\d)%d(?!\d)" % port, "{{%s}}" % name, text)
    return text


def normalise(text: str, side: Side, ex: Optional[Exchange] = None) -> str:
    """Values that legitimately differ between two runs: generated UUIDs
    (keeping the version/trace nibble Envoy sets), port numbers."""
    text = UUID.sub(lambda m: "<uuid:%s>" % m.group(1), text)
    return _sub_ports(text, side, ex)


# Response headers whose value differs per run; names and places still count.
VOLATILE = {"date": "<date>", "x-envoy-upstream-service-time": "<ms>"}


def response_view(r: Response) -> dict:
    echo = r.echo()
    headers = []
    for n, v in r.headers:
        low = n.lower()
        if low in VOLATILE:
            v = VOLATILE[low]
        elif low == "content-length" and v.isdigit() and echo is not None and int(v) == len(r.body):
            v = "<len of the echo>"     # the echo carries port numbers: lengths may differ
        headers.append("%s: %s" % (n, v))
    view = {"status_line": "%s %d %s" % (r.version, r.status, r.reason),
            "headers": headers, "framing": r.framing}
    if echo is not None:
        # The same request is in "upstreams", compared there (retries vary it).
        echo["headers"] = [h if not h.lower().startswith("x-envoy-expected-rq-timeout-ms:")
                           else h.split(":")[0] + ": <see upstreams>" for h in echo.get("headers", [])]
    view["body"] = echo if echo is not None else body_repr(r.body)
    if r.trailers:
        view["trailers"] = ["%s: %s" % h for h in r.trailers]
    return view


def exchange_view(ex: Exchange, check_close: bool) -> dict:
    v = {"responses": [response_view(r) for r in ex.responses]}
    if ex.tunnel:
        v["tunnel"] = body_repr(ex.tunnel)
    if ex.garbage:
        v["unparsed"] = body_repr(ex.garbage)
    if check_close:
        v["closed_by_proxy"] = ex.closed
    return v


def received_views(rs: list) -> List[dict]:
    """What an upstream received; a retry's x-envoy-expected-rq-timeout-ms
    is the time left (it varies), so only "no more than the first's" counts."""
    first: Dict[str, int] = {}
    out = []
    for r in rs:
        v = r.view()
        path = r.target.split("?")[0]
        for i, h in enumerate(v["headers"]):
            name, _, val = h.partition(": ")
            if name.lower() == "x-envoy-expected-rq-timeout-ms" and val.isdigit():
                if path in first and int(val) <= first[path]:
                    v["headers"][i] = "%s: <time left, <= %d>" % (name, first[path])
                first.setdefault(path, int(val))
        out.append(v)
    return out


def side_view(side: Side, exs: List[Exchange], check_close: bool, counters: Dict[str, int],
              volatile: Sequence[str] = ()) -> str:
    v = {"connections": [exchange_view(ex, check_close) for ex in exs],
         "upstreams": {n: received_views(rs) for n, rs in side.received().items()},
         "upstream_connections": {n: up.connections for n, up in sorted(side.upstreams.items())}}
    if counters:
        v["stats"] = counters
    text = json.dumps(v, indent=1, sort_keys=False)
    for ex in exs:
        text = normalise(text, side, ex)
    for name in volatile:   # headers a case declares run-dependent
        text = re.sub(r'"(%s): [^"]*"' % re.escape(name), r'"\1: <varies>"', text, flags=re.I)
    return text


# ------------------------------------------------------------------ pairs

class Pair:
    """Envoy and the peer, each running `config` with its own upstreams."""

    def __init__(self, config: str, peer_config: Optional[str] = None) -> None:
        self.config = config
        self.peer_config = peer_config or config   # another config: the harness's own tests
        self.envoy: Optional[Side] = None
        self.peer: Optional[Side] = None

    def __enter__(self) -> "Pair":
        fail_if_envoy_fast_refuses(self.peer_config)
        try:
            self.envoy = Side("envoy", self.config).start()
            self.peer = Side(peer_impl(), self.peer_config).start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for s in (self.peer, self.envoy):
            if s is not None:
                s.close()

    def run(self, side: Side, request: Optional[Request], parallel: Optional[List[Request]],
            stagger: float, stats: Sequence[str], **kw) -> Tuple[List[Exchange], Dict[str, int]]:
        side.reset()
        before = side.counters(stats)
        reqs = [request] if parallel is None else list(parallel)
        exs: List[Optional[Exchange]] = [None] * len(reqs)
        errors: List[BaseException] = []

        def go(i: int) -> None:
            try:
                exs[i] = exchange(side.listen, _fill_ports(reqs[i], side), **kw)
            except BaseException as e:  # reported below
                errors.append(e)
        threads = []
        for i in range(len(reqs)):
            t = threading.Thread(target=go, args=(i,), daemon=True)
            t.start()
            threads.append(t)
            if stagger and i + 1 < len(reqs):
                time.sleep(stagger)
        for t in threads:
            t.join(timeout=kw.get("timeout", 10.0) + 10)
        if errors:
            raise errors[0]
        counters = {}
        if stats:
            # Stream-end stats land after the last byte: wait until they settle.
            prev = None
            for _ in range(25):
                after = side.counters(stats)
                if after == prev:
                    break
                prev = after
                time.sleep(0.04)
            counters = {n: after[n] - before[n] for n in stats}
        return [e for e in exs if e is not None], counters

    def assert_same(self, request: Optional[Request] = None, *, parallel: Optional[List[Request]] = None,
                    stagger: float = 0.1, stats: Sequence[str] = (), check_close: bool = False,
                    volatile: Sequence[str] = (), deliberate: Optional[Tuple[int, str]] = None,
                    **kw) -> Exchange:
        """Run the request on both sides, compare, return Envoy's Exchange
        (or the list of them with `parallel`). `deliberate=(status, why)`: a
        documented difference (docs/decisions.md): envoy_fast must answer
        `status` instead of matching Envoy."""
        if check_close:
            kw.setdefault("wait_close", 3.0)
        e_exs, e_cnt = self.run(self.envoy, request, parallel, stagger, stats, **kw)
        e_text = side_view(self.envoy, e_exs, check_close, e_cnt, volatile)
        if os.environ.get("HTTP_DIFF_DUMP"):
            print("\n=== envoy, request %r:\n%s" % (request if parallel is None else parallel, e_text))
        p_exs, p_cnt = self.run(self.peer, request, parallel, stagger, stats, **kw)
        p_text = side_view(self.peer, p_exs, check_close, p_cnt, volatile)
        if deliberate is not None and self.peer.impl == "envoy_fast":
            got = [e.status for e in p_exs]
            assert got[0] == deliberate[0], "deliberate difference (%s): envoy_fast must answer %d, got %r\n%s" % (
                deliberate[1], deliberate[0], got, p_text)
            return e_exs if parallel is not None else e_exs[0]
        if e_text != p_text:
            req = request if parallel is None else parallel
            diff = "\n".join(difflib.unified_diff(e_text.splitlines(), p_text.splitlines(),
                                                  "envoy", self.peer.impl, lineterm="", n=3))
            pytest.fail("%s differs from Envoy\nrequest: %r\n\n--- diff:\n%s\n\n=== envoy:\n%s\n\n=== %s:\n%s"
                        % (self.peer.impl, req, diff, e_text, self.peer.impl, p_text), pytrace=False)
        return e_exs if parallel is not None else e_exs[0]

    def admin(self, path: str, method: str = "POST") -> None:
        """The same admin request to both sides (e.g. /healthcheck/fail)."""
        for side in (self.envoy, self.peer):
            side.proxy.admin(path, method)

    def envoy_only(self, request: Request, **kw) -> Exchange:
        return self.run(self.envoy, request, None, 0, (), **kw)[0][0]


@contextlib.contextmanager
def pair(config: str) -> Iterator[Pair]:
    """Both implementations started on `config`, for several exchanges."""
    with Pair(config) as p:
        yield p


def assert_same(config: str, request: Optional[Request] = None, **kw):
    """Start both on `config`, run `request` on each, compare (see module doc)."""
    with Pair(config) as p:
        return p.assert_same(request, **kw)


# ---------------------------------------------------------------- configs

ROUTER = {"name": "envoy.filters.http.router", "typed_config": {
    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"


def hcm_config(routes: Optional[list] = None, *, virtual_hosts: Optional[list] = None,
               hcm: Optional[dict] = None, route_config: Optional[dict] = None,
               clusters: Optional[List[dict]] = None, router: Optional[dict] = None) -> str:
    """A one-listener HCM config as YAML text with placeholders: `routes` go
    in one virtual host for `*` (or give `virtual_hosts`); `hcm` fields merge
    into the HttpConnectionManager; default cluster `up` on {{UPSTREAM}}."""
    if virtual_hosts is None:
        virtual_hosts = [{"name": "all", "domains": ["*"],
                          "routes": routes or [{"match": {"prefix": "/"}, "route": {"cluster": "up"}}]}]
    rc = {"name": "local", "virtual_hosts": virtual_hosts}
    rc.update(route_config or {})
    rtr = json.loads(json.dumps(ROUTER))
    if router:
        rtr["typed_config"].update(router)
    h = {"@type": HCM_TYPE, "stat_prefix": "ingress", "route_config": rc, "http_filters": [rtr]}
    h.update(hcm or {})
    if clusters is None:
        clusters = [upstream_cluster("up", "UPSTREAM")]
    cfg = {"static_resources": {
        "listeners": [{"name": "http", "address": {"socket_address": {
            "address": "127.0.0.1", "port_value": "{{LISTEN}}"}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                            "typed_config": h}]}]}],
        "clusters": clusters}}
    text = yaml.safe_dump(cfg, sort_keys=False)
    # Placeholders were quoted strings: make them plain scalars again.
    return re.sub(r"'(\{\{[A-Z0-9_]+\}\})'", r"\1", text)


def upstream_cluster(name: str, *ports: str, hostname: str = "", **extra) -> dict:
    """A STATIC cluster over placeholder ports (`UPSTREAM`, `DEAD`, ...);
    `hostname`: each endpoint's."""
    eps = [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1",
                                                        "port_value": "{{%s}}" % p}}}} for p in ports]
    if hostname:
        for ep in eps:
            ep["endpoint"]["hostname"] = hostname
    c = {"name": name, "connect_timeout": "0.25s", "type": "STATIC",
         "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": eps}]}}
    c.update(extra)
    return c


def get(path: str = "/", host: str = "a.test", headers: Sequence[str] = (), method: str = "GET",
        body: bytes = b"", version: str = "HTTP/1.1") -> bytes:
    """A well-formed request; `headers` are raw "name: value" lines."""
    lines = ["%s %s %s" % (method, path, version)]
    if host is not None:
        lines.append("host: " + host)
    lines += list(headers)
    if body and not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        lines.append("content-length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
