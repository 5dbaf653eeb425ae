"""What the allocation-count tests share: alloc_counter.c built for this
interpreter, counted runs of a loop, the deltas between a client's two quiet
points, a Worker built from YAML, and the small peers they run in other
processes (so that only the measured loop runs in the test's process).

alloc_counter.c counts every allocator call of Python's object and memory
domains and every tuple, list, dict and float freed (those come from free
lists, not from the allocator) between start() and stop()."""
import importlib.util
import os
import select
import shlex
import socket
import subprocess
import sys
import sysconfig
import textwrap

import pytest

ALLOC_COUNTER_C = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ext", "alloc_counter.c")

OK_HELLO = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-up: 1\r\n\r\nhello"


def keepalive_upstream(response: bytes = OK_HELLO) -> str:
    """A keep-alive upstream script: answers each request head on any of its
    connections with `response`; prints its port first."""
    return textwrap.dedent("""
        import socket, threading
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        print(s.getsockname()[1], flush=True)
        RESP = %r
        def serve(c):
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buf = b""
            while True:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
                while b"\\r\\n\\r\\n" in buf:
                    _, buf = buf.split(b"\\r\\n\\r\\n", 1)
                    c.sendall(RESP)
        while True:
            c, _ = s.accept()
            threading.Thread(target=serve, args=(c,), daemon=True).start()
    """) % (response,)


def quiet_point_client(trips_def: str, warm: int) -> str:
    """A client script (argv: port, trips, then the test's own) on one
    TCP_NODELAY connection `c`: `warm` round trips, a quiet point, argv[2]
    round trips, a quiet point ("quiet" on stdout, then 0.6 s idle).
    `trips_def` defines trips(n) (one round trip each)."""
    return textwrap.dedent("""
        import socket, sys, time
        c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    """) + textwrap.dedent(trips_def) + textwrap.dedent("""
        trips(%d)
        print("quiet", flush=True); time.sleep(0.6)
        trips(int(sys.argv[2]))
        print("quiet", flush=True); time.sleep(0.6)
        c.close()
    """) % warm


def one_listener_yaml(filter_yaml: str) -> str:
    """Bootstrap template: listener "l" with one network filter (YAML at the
    filter list's indentation) and cluster "up"; its two %d are the
    listener's port and the upstream's."""
    return """
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: %d}}
    filter_chains:
    - filters:
""" + textwrap.indent(textwrap.dedent(filter_yaml).strip("\n"), " " * 6) + """
  clusters:
  - name: up
    load_assignment:
      cluster_name: up
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}}]}]
"""


def hcm_router_yaml(stat_prefix: str, routes_yaml: str, filters_yaml: str = "") -> str:
    """one_listener_yaml with an http_connection_manager (router filter,
    after `filters_yaml`: YAML list items of other HTTP filters) whose single
    virtual host "v" (domains *) has `routes_yaml` (a YAML list of routes)."""
    filters = textwrap.indent(textwrap.dedent(filters_yaml).strip("\n"), " " * 4) + "\n" if filters_yaml else ""
    return one_listener_yaml(textwrap.dedent("""
        - name: envoy.filters.network.http_connection_manager
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
            stat_prefix: %s
            route_config:
              virtual_hosts:
              - name: v
                domains: ["*"]
                routes:
        %s
            http_filters:
        %s    - name: envoy.filters.http.router
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
        """) % (stat_prefix, textwrap.indent(textwrap.dedent(routes_yaml).strip("\n"), " " * 8),
                filters))


@pytest.fixture(scope="module")
def alloc_counter(tmp_path_factory):
    """alloc_counter.c built for this interpreter (a C compiler and Python's
    headers are what building envoy_fast needs too)."""
    out = tmp_path_factory.mktemp("alloc_counter") / ("alloc_counter" + sysconfig.get_config_var("EXT_SUFFIX"))
    cc = shlex.split(sysconfig.get_config_var("CC") or "cc")
    r = subprocess.run(cc + ["-shared", "-fPIC", "-O1", "-I", sysconfig.get_paths()["include"],
                             ALLOC_COUNTER_C, "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    spec = importlib.util.spec_from_file_location("alloc_counter", str(out))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def script_process(script: str):
    """(process, port): a Python peer script that prints its port first."""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    return proc, int(proc.stdout.readline())


def client_process(script: str, *args):
    """A client script whose stdout says "quiet" at its quiet points."""
    return subprocess.Popen([sys.executable, "-c", script] + [str(a) for a in args],
                            stdout=subprocess.PIPE)


def counted(counter, fn):
    """(fn's result, allocations, free-list objects, blocks held): fn run
    once with the counter on."""
    counter.install()
    try:
        a0, f0 = counter.counts()
        blocks0 = sys.getallocatedblocks()
        counter.start()
        try:
            result = fn()
        finally:
            counter.stop()
        a1, f1 = counter.counts()
        blocks1 = sys.getallocatedblocks()
    finally:
        counter.uninstall()
    return result, a1 - a0, f1 - f0, blocks1 - blocks0


def run_counted(counter, loop, seconds):
    counter.start()
    try:
        loop.run_for_test(seconds)
    finally:
        counter.stop()


def count_between_quiet_points(counter, loop, client, wait: float = 10):
    """(allocations, free-list objects, blocks held) while `loop` runs
    between the client's two quiet points; the client has exited after."""
    samples = []
    counter.install()
    try:
        while len(samples) < 2:
            run_counted(counter, loop, 0.02)
            r, _, _ = select.select([client.stdout], [], [], 0)
            if r:
                assert client.stdout.readline() == b"quiet\n"
                run_counted(counter, loop, 0.1)      # let the last bytes settle
                samples.append((counter.counts(), sys.getallocatedblocks()))
        client.wait(timeout=wait)
        loop.run_for_test(0.1)
    finally:
        counter.uninstall()
    (allocs0, freed0), blocks0 = samples[0]
    (allocs1, freed1), blocks1 = samples[1]
    return allocs1 - allocs0, freed1 - freed0, blocks1 - blocks0


def assert_no_objects_per(unit: str, n: int, allocs: int, freed: int, held: int, max_held: int,
                          label: str = "") -> None:
    """The bar of the "nothing per event" tests: one object per `unit` would
    be n or more; what is left (a few per loop turn of the test's own
    run_for_test calls) stays under a tenth of that, and the heap holds
    fewer than `max_held` more blocks."""
    print("%sover %d %s: %d allocations, %d free-list objects, %d blocks still held"
          % (label, n, unit, allocs, freed, held))
    assert allocs < n // 10, "%d allocations over %d %s" % (allocs, n, unit)
    assert freed < n // 10, "%d tuples/lists/dicts/floats over %d %s" % (freed, n, unit)
    assert held < max_held, "allocated blocks grew by %d over %d %s" % (held, n, unit)


def listening_socket(backlog: int = 128) -> socket.socket:
    listen = socket.socket()
    listen.bind(("127.0.0.1", 0))
    listen.listen(backlog)
    listen.setblocking(False)
    return listen


def worker_for(yaml_template: str, upstream_port: int):
    """(listen socket, stats store, Worker) for a bootstrap whose two %d are
    the listener's port and the upstream's."""
    from envoy_fast import _worker
    from envoy_fast.config import load_bootstrap
    from envoy_fast.server.plan import build_plan
    from envoy_fast.stats.store import StatsLayout, StatsStore
    listen = listening_socket()
    bs = load_bootstrap(config_yaml=yaml_template % (listen.getsockname()[1], upstream_port))
    layout = StatsLayout(bs, 1)
    store = StatsStore(layout)
    plan = build_plan(bs, layout, {"l": listen.fileno()})
    return listen, store, _worker.Worker(plan, store.mem, 0)
