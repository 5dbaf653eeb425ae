"""Integration tests: in EF_DEBUG builds, every envoy_fast a test starts
through helpers.run_envoy_fast() must end with its workers' live objects
(connections, pool clients, pending streams, slices, timers...) back to
what they were when each worker's loop started (uvloop's debug-build
tearDown check)."""
import pytest

import helpers


def _debug_build() -> bool:
    try:
        from envoy_fast import _worker
    except ImportError:
        return False
    return bool(getattr(_worker, "DEBUG_BUILD", False))


@pytest.fixture(autouse=True)
def no_live_objects_left():
    """Fail the test if a worker it ran kept objects alive after its traffic
    ended (EF_DEBUG builds only; a no-op in release builds)."""
    if not _debug_build():
        yield
        return
    helpers.DEBUG_LEAKS = []
    try:
        yield
        leaks = helpers.DEBUG_LEAKS
    finally:
        helpers.DEBUG_LEAKS = None
    assert not leaks, "\n".join(leaks)
