"""Python objects per proxied request on the L7 path: a Worker (connection
manager + router + HTTP/1 pool) runs in this process, a keep-alive upstream
and a client in others. Between two quiet points the client sends thousands
of GETs on one connection; alloc_counter.c (tests/ext) counts every
allocator call of the object and memory domains and every tuple, list, dict
and float freed while the worker runs. One object per
request would be thousands; what is left is per loop turn of the test's
own run_for_test calls (the router reuses its filters, attempts and their
decoders)."""
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

from envoy_fast import _worker
from envoy_fast.config import load_bootstrap
from envoy_fast.server.plan import build_plan
from envoy_fast.stats.store import StatsLayout, StatsStore

CLIENT = textwrap.dedent("""
    import socket, sys, time
    c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    req = b"GET /x HTTP/1.1\\r\\nhost: a\\r\\n\\r\\n"
    def trips(n):
        buf = b""
        for _ in range(n):
            c.sendall(req)
            while True:
                i = buf.find(b"\\r\\n\\r\\n")
                if i >= 0 and len(buf) >= i + 4 + 2:
                    buf = buf[i + 6:]
                    break
                buf += c.recv(65536)
    trips(500)
    print("quiet", flush=True); time.sleep(0.6)
    trips(int(sys.argv[2]))
    print("quiet", flush=True); time.sleep(0.6)
    c.close()
""")

# A keep-alive upstream: every request gets "ok"; prints its port first.
UPSTREAM = textwrap.dedent("""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    print(s.getsockname()[1], flush=True)
    c, _ = s.accept()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    while True:
        d = c.recv(65536)
        if not d:
            break
        buf += d
        while b"\\r\\n\\r\\n" in buf:
            _, _, buf = buf.partition(b"\\r\\n\\r\\n")
            c.sendall(b"HTTP/1.1 200 OK\\r\\ncontent-length: 2\\r\\n\\r\\nok")
""")


@pytest.fixture(scope="module")
def alloc_counter(tmp_path_factory):
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "alloc_counter.c")
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
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ing
          route_config:
            virtual_hosts:
            - {name: v, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: up}}]}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
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


def test_objects_per_proxied_request(alloc_counter):
    trips = 3000
    up = subprocess.Popen([sys.executable, "-c", UPSTREAM], stdout=subprocess.PIPE)
    up_port = int(up.stdout.readline())
    listen, store, worker = _worker_for(up_port)
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
                _run_counted(alloc_counter, worker, 0.1)
                samples.append((alloc_counter.counts(), sys.getallocatedblocks()))
        client.wait(timeout=30)
        worker.run_for_test(0.1)
    finally:
        alloc_counter.uninstall()
        client.kill()
        up.kill()
        up.wait()
    (allocs0, freed0), blocks0 = samples[0]
    (allocs1, freed1), blocks1 = samples[1]
    allocs, freed, held = allocs1 - allocs0, freed1 - freed0, blocks1 - blocks0
    per_request = (allocs + freed) / trips
    print("over %d requests: %d allocations, %d free-list objects (%.2f per request), "
          "%d blocks still held" % (trips, allocs, freed, per_request, held))
    values = store.values()
    assert values["cluster.up.upstream_rq_200"] == 500 + trips
    assert values["cluster.up.upstream_cx_total"] == 1
    assert per_request < 0.1, "%.2f Python objects per request" % per_request
    assert held < 300, "allocated blocks grew by %d over %d requests" % (held, trips)
    listen.close()
