"""The HTTP/1.1 pool's request path creates no Python object per request once
warm: keep-alive GETs one after the other through Http1ConnPoolImpl (its
encoder recycled, the client's header map, buffers and parser state reused),
driven from C (Http1LoopForTest) against an upstream in another process,
counted by alloc_counter.c as in the L4 test."""
from envoy_fast import _worker
from alloc_helpers import (alloc_counter, assert_no_objects_per, counted, keepalive_upstream,  # noqa: F401
                           script_process)


def _run(d, loop, target):
    while loop.done < target:
        d.run_for_test(0.01)


def test_no_python_objects_per_request(alloc_counter):  # noqa: F811
    proc, port = script_process(keepalive_upstream())
    try:
        d = _worker.Dispatcher()
        pool = _worker.Http1ConnPoolForTest(d, "127.0.0.1", port)
        warm, n = 200, 3000
        loop = _worker.Http1LoopForTest(pool, warm + n)
        _run(d, loop, warm)
        _, allocs, freed, held = counted(alloc_counter, lambda: _run(d, loop, warm + n))
        assert_no_objects_per("requests", n, allocs, freed, held, max_held=100)
        assert loop.failed == 0
        assert loop.reused == warm + n - 1          # one connection throughout
        assert loop.body_bytes == 5 * (warm + n)
        assert pool.stat("upstream_cx_total") == 1
    finally:
        proc.kill()
        proc.wait()
