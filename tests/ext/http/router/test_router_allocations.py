"""Python objects per proxied request on the L7 path: a Worker (connection
manager + router + HTTP/1 pool) runs in this process, a keep-alive upstream
and a client in others. Between two quiet points the client sends thousands
of GETs on one connection; alloc_counter.c (tests/ext) counts every
allocator call of the object and memory domains and every tuple, list, dict
and float freed while the worker runs. One object per
request would be thousands; what is left is per loop turn of the test's
own run_for_test calls (the router reuses its filters, attempts and their
decoders)."""
from alloc_helpers import (alloc_counter, client_process, count_between_quiet_points,  # noqa: F401
                           hcm_router_yaml, keepalive_upstream, quiet_point_client, script_process,
                           worker_for)

CLIENT = quiet_point_client("""
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
""", 500)

# A keep-alive upstream: every request gets "ok".
UPSTREAM = keepalive_upstream(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")

YAML = hcm_router_yaml("ing", """
    - {match: {prefix: "/"}, route: {cluster: up}}
""")


def test_objects_per_proxied_request(alloc_counter):  # noqa: F811
    trips = 3000
    up, up_port = script_process(UPSTREAM)
    listen, store, worker = worker_for(YAML, up_port)
    client = client_process(CLIENT, listen.getsockname()[1], trips)
    try:
        allocs, freed, held = count_between_quiet_points(alloc_counter, worker, client, wait=30)
    finally:
        client.kill()
        up.kill()
        up.wait()
    per_request = (allocs + freed) / trips
    print("over %d requests: %d allocations, %d free-list objects (%.2f per request), "
          "%d blocks still held" % (trips, allocs, freed, per_request, held))
    values = store.values()
    assert values["cluster.up.upstream_rq_200"] == 500 + trips
    assert values["cluster.up.upstream_cx_total"] == 1
    assert per_request < 0.1, "%.2f Python objects per request" % per_request
    assert held < 300, "allocated blocks grew by %d over %d requests" % (held, trips)
    listen.close()
