"""Keep-alive HTTP requests create no Python object per request once warm:
the connection's stream, header maps, filter wrappers and buffers are
reused. The HCM alone (a test filter that reuses itself) and the whole
worker path (router, pool) are measured; the loop runs in this process, the
client (and the upstream) in others; alloc_counter.c counts as in the L4
test."""
import socket

import pytest

from envoy_fast import _worker
from alloc_helpers import (alloc_counter, assert_no_objects_per, client_process,  # noqa: F401
                           count_between_quiet_points, hcm_router_yaml, keepalive_upstream,
                           quiet_point_client, script_process, worker_for)

# Keep-alive GETs on one connection: warm-up, a quiet point, the counted
# run, a quiet point.
CLIENT = quiet_point_client("""
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
""", 300)

CONFIG = hcm_router_yaml("p", """
    - match: {prefix: "/up"}
      route: {cluster: up}
    - match: {prefix: "/"}
      direct_response: {status: 200, body: {inline_string: "hello"}}
""")

# The same with the health_check filter in front of the router.
HC_CONFIG = hcm_router_yaml("p", """
    - match: {prefix: "/up"}
      route: {cluster: up}
""", """
    - name: envoy.filters.http.health_check
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck
        pass_through_mode: false
        headers: [{name: ":path", string_match: {exact: "/healthz"}}]
""")


def test_connection_manager_allocates_nothing_per_request(alloc_counter):  # noqa: F811
    from hcm_harness import plan
    trips = 3000
    listen = socket.socket()
    listen.bind(("127.0.0.1", 0))
    listen.listen(4)
    d = _worker.Dispatcher()
    hcm = _worker.HttpConnectionManagerForTest(d, plan(), ["static"])
    client = client_process(CLIENT, listen.getsockname()[1], trips, "/")
    try:
        accepted, _ = listen.accept()
        accepted.setblocking(False)
        hcm.downstream(accepted.detach())
        allocs, freed, held = count_between_quiet_points(alloc_counter, hcm, client)
        assert_no_objects_per("requests", trips, allocs, freed, held, max_held=100, label="HCM ")
        assert client.returncode == 0
        assert hcm.stats()["downstream_rq_2xx"] == 300 + trips
    finally:
        client.kill()
        hcm.close()
        listen.close()


@pytest.mark.parametrize("config,path", [(CONFIG, "/direct"), (CONFIG, "/up"), (HC_CONFIG, "/healthz"),
                                         (HC_CONFIG, "/up")], ids=["direct", "up", "health_check", "up_via_hc"])
def test_whole_worker_path_allocates_nothing_per_request(alloc_counter, config, path):  # noqa: F811
    trips = 3000
    allocs, freed, held, values, worker = _through_worker(alloc_counter, config, CLIENT, trips, path)
    assert_no_objects_per("requests", trips, allocs, freed, held, max_held=200, label=path + " ")
    assert values["http.p.downstream_rq_2xx"] == 300 + trips


def _through_worker(alloc_counter, config, client_script, trips, path):
    """(allocations, free-list objects, blocks held, stats, worker) while
    `client_script` runs `trips` requests for `path` through a Worker on
    `config` with a keep-alive upstream; the client and the worker's loop
    ended cleanly."""
    up, up_port = script_process(keepalive_upstream())
    listen = client = None
    try:
        listen, store, worker = worker_for(config, up_port)
        client = client_process(client_script, listen.getsockname()[1], trips, path)
        allocs, freed, held = count_between_quiet_points(alloc_counter, worker, client)
        assert client.returncode == 0
        assert worker.handler_errors_for_test() == 0
        return allocs, freed, held, store.values(), worker
    finally:
        if client is not None:
            client.kill()
        up.kill()
        up.wait()
        if listen is not None:
            listen.close()


# A new connection per request (Connection: close): warm-up, a quiet point,
# the counted run, a quiet point (quiet_point_client's own connection idles).
NEW_CONNECTION_CLIENT = quiet_point_client("""
    import socket as _socket
    req = ("GET %s HTTP/1.1\\r\\nHost: h\\r\\nConnection: close\\r\\n\\r\\n" % sys.argv[3]).encode()
    def trips(n):
        for _ in range(n):
            k = _socket.create_connection(("127.0.0.1", int(sys.argv[1])))
            k.sendall(req)
            buf = b""
            while True:
                d = k.recv(65536)
                if not d:
                    break
                buf += d
            assert buf.startswith(b"HTTP/1.1 200"), buf
            k.close()
""", 300)


@pytest.mark.skipif(_worker.DEBUG_BUILD, reason="EF_DEBUG builds keep no free list")
def test_a_new_connection_per_request_allocates_almost_nothing(alloc_counter):  # noqa: F811
    # Closed connections, their listener trackers and connection managers
    # (buffers, stream, parser, timers, filter wrappers) are recycled, and
    # the lists that empty at each close (a connection's callbacks and read
    # filters, the loop's deferred list) keep their arrays: nothing is
    # allocated per connection. Building them all anew cost 30 allocations
    # and 12 free-list objects per connection; `del l[:]` on those lists
    # cost 3.
    trips = 2000
    allocs, freed, held, values, worker = _through_worker(alloc_counter, CONFIG, NEW_CONNECTION_CLIENT,
                                                          trips, "/up")
    print("over %d connections: %d allocations, %d free-list objects, %d blocks still held"
          % (trips, allocs, freed, held))
    assert allocs < trips // 10
    assert freed < trips // 10
    assert held < 200
    assert values["http.p.downstream_rq_2xx"] == 300 + trips
    assert worker.free_connections_for_test() >= 1
