"""The L4 hot path creates no Python object per read or write event.

A Worker runs in this process; an echo upstream and a client run in other
processes. Between two quiet points the client makes thousands of round trips
on one connection. While the worker runs, a C counter (alloc_counter.c)
counts every allocator call of the Python object and memory domains and every
tuple, list, dict and float freed (those come from free lists, not from the
allocator): one temporary object per event would count tens of thousands.
"""
import importlib.util
import itertools
import os
import select
import shlex
import socket
import subprocess
import sys
import sysconfig
import textwrap

import pytest

from envoy_fast import _worker
from envoy_fast.config import load_bootstrap
from envoy_fast.server.plan import build_plan
from envoy_fast.stats.store import StatsLayout, StatsStore

CLIENT = textwrap.dedent("""
    import socket, sys, time
    c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    msg = b"x" * 100
    def trips(n):
        for _ in range(n):
            c.sendall(msg)
            got = b""
            while len(got) < len(msg):
                got += c.recv(4096)
    trips(500)
    print("quiet", flush=True); time.sleep(0.6)
    trips(int(sys.argv[2]))
    print("quiet", flush=True); time.sleep(0.6)
    c.close()
""")

# One connection, echoed until the peer closes; prints its port first.
ECHO = textwrap.dedent("""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    print(s.getsockname()[1], flush=True)
    c, _ = s.accept()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        d = c.recv(65536)
        if not d:
            break
        c.sendall(d)
""")


@pytest.fixture(scope="module")
def alloc_counter(tmp_path_factory):
    """alloc_counter.c built for this interpreter (a C compiler and Python's
    headers are what building envoy_fast needs too)."""
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "alloc_counter.c")
    out = tmp_path_factory.mktemp("alloc_counter") / ("alloc_counter" + sysconfig.get_config_var("EXT_SUFFIX"))
    cc = shlex.split(sysconfig.get_config_var("CC") or "cc")
    r = subprocess.run(cc + ["-shared", "-fPIC", "-O1", "-I", sysconfig.get_paths()["include"],
                             src, "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    spec = importlib.util.spec_from_file_location("alloc_counter", str(out))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _worker_for(upstream_port):
    listen = socket.socket()
    listen.bind(("127.0.0.1", 0))
    listen.listen(128)
    listen.setblocking(False)
    yaml_text = """
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: %d}}
    filter_chains:
    - filters:
      - name: t
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: t
          cluster: up
  clusters:
  - name: up
    load_assignment:
      cluster_name: up
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}}]}]
""" % (listen.getsockname()[1], upstream_port)
    bs = load_bootstrap(config_yaml=yaml_text)
    layout = StatsLayout(bs, 1)
    store = StatsStore(layout)
    plan = build_plan(bs, layout, {"l": listen.fileno()})
    return listen, store, _worker.Worker(plan, store.mem, 0)


def _run_counted(counter, worker, seconds):
    counter.start()
    try:
        worker.run_for_test(seconds)
    finally:
        counter.stop()


def _echo_process():
    proc = subprocess.Popen([sys.executable, "-c", ECHO], stdout=subprocess.PIPE)
    return proc, int(proc.stdout.readline())


def test_no_python_objects_per_event(alloc_counter):
    trips = 5000
    echo, echo_port = _echo_process()
    listen, store, worker = _worker_for(echo_port)
    client = subprocess.Popen([sys.executable, "-c", CLIENT, str(listen.getsockname()[1]),
                               str(trips)], stdout=subprocess.PIPE)
    samples = []
    alloc_counter.install()
    try:
        while len(samples) < 2:
            _run_counted(alloc_counter, worker, 0.02)
            r, _, _ = select.select([client.stdout], [], [], 0)
            if r:
                assert client.stdout.readline() == b"quiet\n"
                _run_counted(alloc_counter, worker, 0.1)     # let the last bytes settle
                samples.append((alloc_counter.counts(), sys.getallocatedblocks()))
        client.wait(timeout=10)
        worker.run_for_test(0.1)
    finally:
        alloc_counter.uninstall()
        client.kill()
        echo.kill()
        echo.wait()
    (allocs0, freed0), blocks0 = samples[0]
    (allocs1, freed1), blocks1 = samples[1]
    allocs, freed, held = allocs1 - allocs0, freed1 - freed0, blocks1 - blocks0
    print("over %d round trips: %d allocations, %d free-list objects, %d blocks still held"
          % (trips, allocs, freed, held))
    # 2 reads and 2 writes per trip: 20000 events. A few allocations per
    # loop turn (timers, the test's own calls) are not per event; one object
    # per event would be 10000 or more.
    assert allocs < trips // 10, "%d allocations over %d round trips" % (allocs, trips)
    assert freed < trips // 10, "%d tuples/lists/dicts/floats over %d round trips" % (freed, trips)
    assert held < 200, "allocated blocks grew by %d over %d round trips" % (held, trips)
    values = store.values()
    assert values["tcp.t.downstream_cx_rx_bytes_total"] == 100 * (500 + trips)
    assert worker.handler_errors_for_test() == 0
    listen.close()


def test_alloc_counter_counts_temporaries(alloc_counter):
    """The counter sees what the test must catch: temporary objects that are
    freed at once, from the allocator and from free lists."""
    def per_event(n, make):
        alloc_counter.install()
        try:
            a0, f0 = alloc_counter.counts()
            alloc_counter.start()
            for _ in itertools.repeat(None, n):      # no int per turn
                make()
            alloc_counter.stop()
            a1, f1 = alloc_counter.counts()
        finally:
            alloc_counter.uninstall()
        return (a1 - a0) + (f1 - f0)

    n, x, b, big = 1000, 7, b"xy", 100000
    assert per_event(n, lambda: None) < n // 10
    assert per_event(n, lambda: (x, x)) >= n         # tuple: free list
    assert per_event(n, lambda: x * 1.5) >= n        # float: free list
    assert per_event(n, lambda: b * 3) >= n          # bytes: allocator
    assert per_event(n, lambda: big + x) >= n        # int: allocator
