"""The L4 hot path creates no Python object per read or write event.

A Worker runs in this process; an echo upstream and a client run in other
processes. Between two quiet points the client makes thousands of round trips
on one connection. While the worker runs, a C counter (alloc_counter.c)
counts every allocator call of the Python object and memory domains and every
tuple, list, dict and float freed (those come from free lists, not from the
allocator): one temporary object per event would count tens of thousands.
"""
import itertools
import textwrap

from alloc_helpers import (alloc_counter, assert_no_objects_per, client_process,  # noqa: F401
                           count_between_quiet_points, counted, one_listener_yaml, quiet_point_client,
                           script_process, worker_for)

CLIENT = quiet_point_client("""
    msg = b"x" * 100
    def trips(n):
        for _ in range(n):
            c.sendall(msg)
            got = b""
            while len(got) < len(msg):
                got += c.recv(4096)
""", 500)

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


YAML = one_listener_yaml("""
    - name: t
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
        stat_prefix: t
        cluster: up
""")


def test_no_python_objects_per_event(alloc_counter):  # noqa: F811
    trips = 5000
    echo, echo_port = script_process(ECHO)
    listen, store, worker = worker_for(YAML, echo_port)
    client = client_process(CLIENT, listen.getsockname()[1], trips)
    try:
        allocs, freed, held = count_between_quiet_points(alloc_counter, worker, client)
    finally:
        client.kill()
        echo.kill()
        echo.wait()
    # 2 reads and 2 writes per trip: 20000 events. A few allocations per
    # loop turn (timers, the test's own calls) are not per event; one object
    # per event would be 10000 or more.
    assert_no_objects_per("round trips", trips, allocs, freed, held, max_held=200)
    values = store.values()
    assert values["tcp.t.downstream_cx_rx_bytes_total"] == 100 * (500 + trips)
    assert worker.handler_errors_for_test() == 0
    listen.close()


def test_alloc_counter_counts_temporaries(alloc_counter):  # noqa: F811
    """The counter sees what the test must catch: temporary objects that are
    freed at once, from the allocator and from free lists."""
    def per_event(n, make):
        def run():
            for _ in itertools.repeat(None, n):      # no int per turn
                make()
        _, allocs, freed, _ = counted(alloc_counter, run)
        return allocs + freed

    n, x, b, big = 1000, 7, b"xy", 100000
    assert per_event(n, lambda: None) < n // 10
    assert per_event(n, lambda: (x, x)) >= n         # tuple: free list
    assert per_event(n, lambda: x * 1.5) >= n        # float: free list
    assert per_event(n, lambda: b * 3) >= n          # bytes: allocator
    assert per_event(n, lambda: big + x) >= n        # int: allocator
