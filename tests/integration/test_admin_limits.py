"""The admin cannot be made to freeze the main process.

Regexes are RE2 (linear time, Envoy's errors); a request's size and the time
its head takes are bounded; and slow renders (thousands of listeners) run off
the event loop, so /ready, signals and worker supervision go on meanwhile.
Every request here goes through a real socket to a running envoy-fast, and
where Envoy's answer is observable, the real Envoy gets the same request.
"""
import http.client
import os
import random
import signal
import socket
import threading
import time
import urllib.parse
import urllib.request

import pytest

from helpers import (RssSampler, bootstrap, cluster, free_port, listener,
                     require_peer, run_envoy, run_envoy_fast, tcp_proxy_filter, wait_closed,
                     wait_for)

CATASTROPHIC = "([a-z_.0-9]+)+#"


def small_config():
    admin, lp = free_port(), free_port()
    return bootstrap([listener("l0", lp, [{"filters": [tcp_proxy_filter("up")]}])],
                     [cluster("up", [free_port()])], admin)


def raw_request(port, data, timeout=5.0):
    """Send raw bytes; return (status, body, seconds) of the answer, or
    (None, b"", seconds) if the connection closed without one."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
        c.sendall(data)
        reply, _ = wait_closed(c, timeout)
    took = time.monotonic() - t0
    if not reply:
        return None, b"", took
    head, _, body = reply.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        body = dechunk(body)
    return int(head.split(b" ")[1]), body, took


def dechunk(data):
    out = b""
    while data:
        size, _, data = data.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            break
        out, data = out + data[:n], data[n + 2:]
    return out


def get(port, path, timeout=5.0):
    return raw_request(port, b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                       % path.encode(), timeout)


@pytest.fixture(scope="module")
def ef():
    with run_envoy_fast(small_config()) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def envoy():
    require_peer("envoy")
    with run_envoy(small_config()) as proxy:
        yield proxy


# ----------------------------------------------------------------- regexes


def test_catastrophic_filter_is_answered_at_once(ef):
    # Python's backtracking engine never finishes this pattern on a stat name;
    # RE2 answers in linear time (Envoy: 15 ms, nothing matches).
    q = "/stats?filter=" + urllib.parse.quote(CATASTROPHIC)
    for path in (q, q + "&format=json", "/stats/prometheus" + q[6:]):
        status, body, took = get(ef.admin_port, path, timeout=5)
        assert status == 200, (path, body)
        assert took < 3, (path, took)
    assert get(ef.admin_port, q)[1] == b""
    assert get(ef.admin_port, "/ready")[:2] == (200, b"LIVE\n")


@pytest.mark.parametrize("path", [
    "/stats?filter=(", "/stats?filter=(%3F%3Dx)", "/stats?filter=a**",
    "/stats/prometheus?filter=(", "/clusters?filter=(", "/stats?filter=%5Cp%7BFoo%7D",
])
def test_invalid_regex_as_envoy(ef, envoy, path):
    mine = get(ef.admin_port, path)[:2]
    theirs = get(envoy.admin_port, path)[:2]
    assert mine == theirs
    assert mine[0] == 400 and mine[1].startswith(b"Invalid re2 regex")


def test_re2_syntax_without_envoy(ef):
    # Look-ahead is not RE2: a 400 with RE2's reason, as Envoy answers.
    assert get(ef.admin_port, "/stats?filter=(%3F%3Dx)")[:2] == (
        400, b"Invalid re2 regex: invalid perl operator: (?=")
    status, body, _ = get(ef.admin_port, "/stats?filter=%5Eserver%5C.live%24")
    assert (status, body) == (200, b"server.live: 1\n")


# ------------------------------------------------------------ request limits


def test_huge_content_length_is_413_without_buffering(ef):
    main = ef.proc.pid
    with RssSampler([main]) as rss:
        with socket.create_connection(("127.0.0.1", ef.admin_port), timeout=5) as c:
            c.sendall(b"POST /healthcheck/ok HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: 4000000000\r\n\r\n")

            def push():                            # 64 MiB of a 4 GB body
                chunk = b"x" * (1 << 20)
                try:
                    for _ in range(64):
                        c.sendall(chunk)
                except OSError:
                    pass                           # closed after the 413
            sender = threading.Thread(target=push)
            sender.start()
            reply, _ = wait_closed(c, 10)
            sender.join(10)
    assert reply.startswith(b"HTTP/1.1 413 "), reply[:100]
    assert rss.growth_kb()[main] < 16 * 1024, rss.growth_kb()
    assert get(ef.admin_port, "/ready")[:2] == (200, b"LIVE\n")


def test_small_bodies_are_read_and_dropped(ef):
    # A body within bounds (plain or chunked) does not end the connection.
    req = (b"POST /healthcheck/ok HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
           b"POST /healthcheck/ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"3\r\nabc\r\n0\r\n\r\n"
           b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    with socket.create_connection(("127.0.0.1", ef.admin_port), timeout=5) as c:
        c.sendall(req)
        reply, _ = wait_closed(c, 5)
    assert reply.count(b"HTTP/1.1 200 OK") == 3, reply
    assert reply.endswith(b"LIVE\n")


def test_long_request_line_is_414(ef):
    status, body, _ = get(ef.admin_port, "/stats?filter=" + "a" * 70000)
    assert (status, body) == (414, b"URI Too Long")
    status, _, _ = get(ef.admin_port, "/stats?filter=" + "a" * 20000)
    assert status == 414


def test_large_headers_are_431_as_envoy(ef, envoy):
    big = b"GET /ready HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 70000 + b"\r\n\r\n"
    many = (b"GET /ready HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-%d: a\r\n" % i for i in range(200)) + b"\r\n")
    for req in (big, many):
        mine = raw_request(ef.admin_port, req)[:2]
        assert mine == (431, b"Request Header Fields Too Large")
        assert raw_request(envoy.admin_port, req)[:2] == mine


def test_unknown_method_is_400_as_envoy(ef, envoy):
    req = b"FOO /stats HTTP/1.1\r\nHost: x\r\n\r\n"
    mine = raw_request(ef.admin_port, req)[:2]
    assert mine == (400, b"Bad Request")
    assert raw_request(envoy.admin_port, req)[:2] == mine
    # Known methods other than POST still read (Envoy answers them as GET).
    req = b"PUT /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert raw_request(ef.admin_port, req)[:2] == (200, b"LIVE\n")
    assert raw_request(envoy.admin_port, req)[0] == 200


def test_slow_headers_are_cut(ef):
    from envoy_fast.admin.http import HEADER_TIMEOUT_S
    silent = socket.create_connection(("127.0.0.1", ef.admin_port), timeout=5)
    with socket.create_connection(("127.0.0.1", ef.admin_port), timeout=5) as c:
        c.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        reply = b""
        while time.monotonic() - t0 < HEADER_TIMEOUT_S + 10:
            try:
                c.sendall(b"X")                     # one header byte a second
            except OSError:
                break
            try:
                c.settimeout(1)
                d = c.recv(1000)
                if not d:
                    break
                reply += d
            except socket.timeout:
                continue
            except OSError:
                break
        took = time.monotonic() - t0
    assert reply.startswith(b"HTTP/1.1 408 "), reply
    assert HEADER_TIMEOUT_S - 1 < took < HEADER_TIMEOUT_S + 5, took
    # A connection that never sends a byte is closed as soon.
    with silent:
        assert wait_closed(silent, 5)[0] == b""
    assert get(ef.admin_port, "/ready")[:2] == (200, b"LIVE\n")


# ------------------------------------------------- slow renders, off the loop


def port_below_ephemeral():
    """A free port the kernel does not hand out for port 0 (the listeners
    below bind port 0, and one could take an admin port from free_port())."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
    for _ in range(100):
        port = random.randrange(max(1024, low - 10000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise AssertionError("no free port below %d" % low)


def many_config(n):
    """n listeners (port 0) and n clusters: /stats/prometheus takes a while."""
    ls = [listener("l%d" % i, 0, [{"filters": [tcp_proxy_filter("c%d" % i, "tp%d" % i)]}])
          for i in range(n)]
    cs = [cluster("c%d" % i, [1]) for i in range(n)]
    return bootstrap(ls, cs, port_below_ephemeral())


def children(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        return {int(p) for p in f.read().split()}


def test_slow_render_does_not_stall_supervision():
    with run_envoy_fast(many_config(2000), concurrency=2) as proxy:
        url = "http://127.0.0.1:%d/stats/prometheus" % proxy.admin_port
        took = []

        def slow():
            # Read to the content-length: a worker forked meanwhile may hold
            # the connection open after main closes it.
            t0 = time.monotonic()
            with urllib.request.urlopen(url, timeout=60) as r:
                assert r.status == 200 and len(r.read()) > 1 << 20
            took.append(time.monotonic() - t0)

        def during_render(action):
            """(what action() returned, its seconds, the render's seconds),
            action() starting 50 ms into a render."""
            t = threading.Thread(target=slow)
            t.start()
            time.sleep(0.05)
            t0 = time.monotonic()
            res = action()
            action_s = time.monotonic() - t0
            t.join(60)
            return res, action_s, took[-1]

        slow()                                      # first flush, config read
        assert took[-1] > 0.2, "not slow enough to tell: %.2fs" % took[-1]

        # /ready while the render runs: answered long before the render ends.
        ready = [during_render(lambda: get(proxy.admin_port, "/ready", timeout=60))
                 for _ in range(3)]
        assert all(r[0][:2] == (200, b"LIVE\n") for r in ready)
        ratios = sorted(r[1] / r[2] for r in ready)
        assert ratios[1] < 1 / 3, ready

        # A worker killed while the render runs is replaced meanwhile.
        before = children(proxy.proc.pid)

        def kill_and_wait_successor():
            os.kill(min(before), signal.SIGKILL)
            wait_for(lambda: len(children(proxy.proc.pid) - before) == 1, timeout=30,
                     interval=0.005, what="a new worker")
        _, replaced_s, render_s = during_render(kill_and_wait_successor)
        assert replaced_s < render_s / 2, (replaced_s, render_s)

        # SIGTERM while a render runs is taken at once (main logs it and
        # starts the drain), and the process exits.
        def slow_or_cut():
            try:
                slow()
            except (OSError, http.client.HTTPException):
                pass                               # cut by the exit
        t = threading.Thread(target=slow_or_cut, daemon=True)
        t.start()
        time.sleep(0.05)
        t0 = time.monotonic()
        proxy.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "SIGTERM" in proxy.log(), timeout=30, what="SIGTERM taken")
        taken_s = time.monotonic() - t0
        proxy.proc.wait(timeout=60)
        print("renders %s, /ready %s, replaced in %.2fs, SIGTERM taken in %.2fs"
              % (["%.2f" % x for x in took], ["%.3f" % r[1] for r in ready], replaced_s,
                 taken_s))
        assert proxy.proc.returncode == 0
        assert taken_s < min(took) / 2, (taken_s, took)
