"""The L4 hot path creates no Python object per read or write event.

A Worker runs in this process; an echo upstream and a client run in other
processes. Between two quiet points the client makes thousands of round trips
on one connection; the number of Python memory blocks allocated in this
process must not grow with them.
"""
import select
import socket
import subprocess
import sys
import textwrap

from envoy_fast import _worker
from envoy_fast.config import load_bootstrap
from envoy_fast.server.plan import build_plan
from envoy_fast.stats.store import StatsLayout, StatsStore

from helpers import echo_server

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


def test_no_python_objects_per_event():
    trips = 5000
    with echo_server() as up:
        listen, store, worker = _worker_for(up.port)
        client = subprocess.Popen([sys.executable, "-c", CLIENT, str(listen.getsockname()[1]),
                                   str(trips)], stdout=subprocess.PIPE)
        samples = []
        try:
            while len(samples) < 2:
                worker.run_for_test(0.02)
                r, _, _ = select.select([client.stdout], [], [], 0)
                if r:
                    assert client.stdout.readline() == b"quiet\n"
                    worker.run_for_test(0.1)     # let the last bytes settle
                    samples.append(sys.getallocatedblocks())
            client.wait(timeout=10)
            worker.run_for_test(0.1)
        finally:
            client.kill()
        grown = samples[1] - samples[0]
        print("allocated blocks grew by", grown)
        # 2 read and 2 write events per trip: 20000 events. A handful of
        # blocks may move (freelists, caches); one per event would be 20000.
        assert grown < 200, "allocated blocks grew by %d over %d round trips" % (grown, trips)
        values = store.values()
        assert values["tcp.t.downstream_cx_rx_bytes_total"] == 100 * (500 + trips)
        assert worker.handler_errors_for_test() == 0
        listen.close()
