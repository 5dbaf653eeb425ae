"""Keep-alive HTTP requests create no Python object per request once warm:
the connection's stream, header maps, filter wrappers and buffers are
reused. The HCM alone (a test filter that reuses itself) and the whole
worker path (router, pool) are measured; the loop runs in this process, the
client (and the upstream) in others; alloc_counter.c counts as in the L4
test."""
import os
import select
import socket
import subprocess
import sys
import textwrap

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from envoy_fast import _worker  # noqa: E402
from envoy_fast.config import load_bootstrap  # noqa: E402
from envoy_fast.server.plan import build_plan  # noqa: E402
from envoy_fast.stats.store import StatsLayout, StatsStore  # noqa: E402
from test_hot_path_allocations import alloc_counter  # noqa: E402,F401 (fixture)

# Keep-alive GETs on one connection: warm-up, a quiet point, the counted
# run, a quiet point.
CLIENT = textwrap.dedent("""
    import socket, sys, time
    c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    req = ("GET %s HTTP/1.1\\r\\nHost: h\\r\\nUser-Agent: t\\r\\n\\r\\n" % sys.argv[3]).encode()
    buf = b""
    def trips(n):
        global buf
        for _ in range(n):
            c.sendall(req)
            while True:
                end = buf.find(b"\\r\\n\\r\\n")
                if end >= 0:
                    head = buf[:end]
                    cl = int(head.split(b"content-length: ")[1].split(b"\\r\\n")[0])
                    if len(buf) >= end + 4 + cl:
                        assert head.startswith(b"HTTP/1.1 200"), head
                        buf = buf[end + 4 + cl:]
                        break
                buf += c.recv(65536)
    trips(300)
    print("quiet", flush=True); time.sleep(0.6)
    trips(int(sys.argv[2]))
    print("quiet", flush=True); time.sleep(0.6)
    c.close()
""")

UPSTREAM = textwrap.dedent("""
    import socket, threading
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    print(s.getsockname()[1], flush=True)
    RESP = b"HTTP/1.1 200 OK\\r\\ncontent-length: 5\\r\\nx-up: 1\\r\\n\\r\\nhello"
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
""")

CONFIG = """
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: %d}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: p
          route_config:
            virtual_hosts:
            - name: v
              domains: ["*"]
              routes:
              - match: {prefix: "/up"}
                route: {cluster: up}
              - match: {prefix: "/"}
                direct_response: {status: 200, body: {inline_string: "hello"}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: up
    load_assignment:
      cluster_name: up
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}}]}]
"""


def _count(counter, loop, client):
    """(allocations, free-list objects, blocks held) between the client's
    two quiet points."""
    samples = []
    counter.install()
    try:
        while len(samples) < 2:
            _run_counted(counter, loop, 0.02)
            r, _, _ = select.select([client.stdout], [], [], 0)
            if r:
                assert client.stdout.readline() == b"quiet\n"
                _run_counted(counter, loop, 0.1)
                samples.append((counter.counts(), sys.getallocatedblocks()))
        client.wait(timeout=10)
        loop.run_for_test(0.1)
    finally:
        counter.uninstall()
    (allocs0, freed0), blocks0 = samples[0]
    (allocs1, freed1), blocks1 = samples[1]
    return allocs1 - allocs0, freed1 - freed0, blocks1 - blocks0


def test_connection_manager_allocates_nothing_per_request(alloc_counter):  # noqa: F811
    from hcm_harness import plan
    trips = 3000
    listen = socket.socket()
    listen.bind(("127.0.0.1", 0))
    listen.listen(4)
    d = _worker.Dispatcher()
    hcm = _worker.HttpConnectionManagerForTest(d, plan(), ["static"])
    client = subprocess.Popen([sys.executable, "-c", CLIENT, str(listen.getsockname()[1]),
                               str(trips), "/"], stdout=subprocess.PIPE)
    try:
        accepted, _ = listen.accept()
        accepted.setblocking(False)
        hcm.downstream(accepted.detach())
        allocs, freed, held = _count(alloc_counter, hcm, client)
        print("HCM over %d requests: %d allocations, %d free-list objects, %d blocks held"
              % (trips, allocs, freed, held))
        assert client.returncode == 0
        assert hcm.stats()["downstream_rq_2xx"] == 300 + trips
        assert allocs < trips // 10, "%d allocations over %d requests" % (allocs, trips)
        assert freed < trips // 10, "%d tuples/lists/dicts/floats over %d requests" % (freed, trips)
        assert held < 100, "allocated blocks grew by %d over %d requests" % (held, trips)
    finally:
        client.kill()
        hcm.close()
        listen.close()


def _run_counted(counter, worker, seconds):
    counter.start()
    try:
        worker.run_for_test(seconds)
    finally:
        counter.stop()


@pytest.mark.parametrize("path", ["/direct", "/up"])
def test_whole_worker_path_allocates_nothing_per_request(alloc_counter, path):  # noqa: F811
    trips = 3000
    up = subprocess.Popen([sys.executable, "-c", UPSTREAM], stdout=subprocess.PIPE)
    listen = socket.socket()
    listen.bind(("127.0.0.1", 0))
    listen.listen(128)
    listen.setblocking(False)
    client = None
    try:
        up_port = int(up.stdout.readline())
        bs = load_bootstrap(config_yaml=CONFIG % (listen.getsockname()[1], up_port))
        layout = StatsLayout(bs, 1)
        store = StatsStore(layout)
        worker = _worker.Worker(build_plan(bs, layout, {"l": listen.fileno()}), store.mem, 0)
        client = subprocess.Popen([sys.executable, "-c", CLIENT, str(listen.getsockname()[1]),
                                   str(trips), path], stdout=subprocess.PIPE)
        allocs, freed, held = _count(alloc_counter, worker, client)
        print("%s over %d requests: %d allocations, %d free-list objects, %d blocks still held"
              % (path, trips, allocs, freed, held))
        assert client.returncode == 0
        values = store.values()
        assert values["http.p.downstream_rq_2xx"] == 300 + trips
        # One object per request would be `trips`; what is left is per loop
        # turn of the test's own run_for_test calls.
        assert allocs < trips // 10, "%d allocations over %d requests" % (allocs, trips)
        assert freed < trips // 10, "%d tuples/lists/dicts/floats over %d requests" % (freed, trips)
        assert held < 200, "allocated blocks grew by %d over %d requests" % (held, trips)
        assert worker.handler_errors_for_test() == 0
    finally:
        if client is not None:
            client.kill()
        up.kill()
        up.wait()
        listen.close()
