"""The HTTP/1.1 pool's request path creates no Python object per request once
warm: keep-alive GETs one after the other through Http1ConnPoolImpl (its
encoder recycled, the client's header map, buffers and parser state reused),
driven from C (Http1LoopForTest) against an upstream in another process,
counted by alloc_counter.c as in the L4 test."""
import os
import subprocess
import sys
import textwrap

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from envoy_fast import _worker  # noqa: E402
from test_hot_path_allocations import alloc_counter  # noqa: E402,F401 (fixture)

# Keep-alive upstream: answers each request head on a connection with a
# fixed 200; prints its port first.
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


def _run(d, loop, target, counter=None):
    if counter is not None:
        counter.start()
    try:
        while loop.done < target:
            d.run_for_test(0.01)
    finally:
        if counter is not None:
            counter.stop()


def test_no_python_objects_per_request(alloc_counter):  # noqa: F811
    proc = subprocess.Popen([sys.executable, "-c", UPSTREAM], stdout=subprocess.PIPE)
    try:
        port = int(proc.stdout.readline())
        d = _worker.Dispatcher()
        pool = _worker.Http1ConnPoolForTest(d, "127.0.0.1", port)
        warm, n = 200, 3000
        loop = _worker.Http1LoopForTest(pool, warm + n)
        _run(d, loop, warm)
        alloc_counter.install()
        try:
            a0, f0 = alloc_counter.counts()
            blocks0 = sys.getallocatedblocks()
            _run(d, loop, warm + n, alloc_counter)
            a1, f1 = alloc_counter.counts()
            blocks1 = sys.getallocatedblocks()
        finally:
            alloc_counter.uninstall()
        allocs, freed, held = a1 - a0, f1 - f0, blocks1 - blocks0
        print("over %d requests: %d allocations, %d free-list objects, %d blocks held"
              % (n, allocs, freed, held))
        assert loop.failed == 0
        assert loop.reused == warm + n - 1          # one connection throughout
        assert loop.body_bytes == 5 * (warm + n)
        assert pool.stat("upstream_cx_total") == 1
        # One object per request would be 3000; the loop's own run_for_test
        # calls (a few per turn, not per request) stay far below that.
        assert allocs < n // 10, "%d allocations over %d requests" % (allocs, n)
        assert freed < n // 10, "%d tuples/lists/dicts/floats over %d requests" % (freed, n)
        assert held < 100, "allocated blocks grew by %d over %d requests" % (held, n)
    finally:
        proc.kill()
        proc.wait()
