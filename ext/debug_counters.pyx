# Live-object counters of EF_DEBUG builds (uvloop's loop.pyx DEBUG counters
# and print_debug_info). Included last: it names classes of every subsystem.
#
# Each type below is counted from allocation to the real free (debug.h wraps
# its tp_alloc/tp_dealloc slots at import), so a connection kept alive by a
# reference cycle or a forgotten list counts as live. Release builds install
# nothing: the classes themselves carry no counting code.
#
# A worker snapshots the counts when its loop starts (listeners, their
# resume timers, the access-log tick already exist then); after traffic has
# ended every count must be back to that snapshot. Tests read them through
# Worker.debug_counters() in-process, or from a running server by sending a
# worker SIGUSR2 (EF_DEBUG builds with EF_DEBUG_COUNTERS_DIR set): it writes
# <dir>/<pid>.json. The control channel's {"op": "debug_counters", "path"}
# writes the same JSON to `path`.

from cpython.object cimport PyTypeObject
from includes.debug cimport ef_debug_track, ef_debug_live

# Per connection or per stream: what must not outlive the traffic.
cdef tuple _DEBUG_TRACKED = (
    ConnectionImpl, FilterManager, OwnedBuffer, Timer,
    ActiveTcpSocket, ActiveTcpConnection, TcpListener,
    ActiveTcpClient, PendingStream,
    TcpConnPool, TcpProxyFilter,
    RawBufferSocket, StreamInfoImpl, TcpConnectionData,
)
# What the debug counters report besides object counts, and which of them
# must return to their value at start.
cdef tuple _DEBUG_CHECKED_EXTRA = ("slices_in_use", "connections_open", "timers_armed")

cdef dict _debug_at_start = None
cdef object _debug_worker = None

DEBUG_BUILD = bool(EF_DEBUG)

if EF_DEBUG:
    for _t in _DEBUG_TRACKED:
        if ef_debug_track(<PyTypeObject*>_t) < 0:
            raise RuntimeError("EF_DEBUG: too many tracked types")


cdef dict _debug_counts(Dispatcher d):
    cdef dict out = {}
    for t in _DEBUG_TRACKED:
        out[t.__name__] = ef_debug_live(<PyTypeObject*>t)
    allocated, free = buffer_slices_for_test()
    out["slices_allocated"] = allocated
    out["slices_free"] = free
    out["slices_in_use"] = allocated - free
    out["connections_open"] = d.live_connections
    out["timers_armed"] = d.timers_armed
    return out


def debug_leaks(dict counters):
    """From a debug_counters() answer: {name: excess} for every checked
    count above its value when the loop started plus what the worker holds
    by design since ("standing": sockets adopted from a dead sibling);
    empty: nothing leaked."""
    live = counters["live"]
    start = counters.get("at_start") or {}
    standing = counters.get("standing") or {}
    out = {}
    for name in [t.__name__ for t in _DEBUG_TRACKED] + list(_DEBUG_CHECKED_EXTRA):
        # Fewer than at start is no leak (listeners stopped, say).
        excess = live.get(name, 0) - start.get(name, 0) - standing.get(name, 0)
        if excess > 0:
            out[name] = excess
    return out


cdef int _debug_start(Worker w) except -1:
    """The loop starts: remember the counts, answer SIGUSR2 if asked to."""
    global _debug_at_start, _debug_worker
    import signal
    _debug_at_start = _debug_counts(w.dispatcher)
    _debug_worker = w
    path = _os.environ.get("EF_DEBUG_COUNTERS_DIR")
    if path:
        signal.signal(signal.SIGUSR2, _debug_on_signal)
        # Tests signal only workers that announced this: before it, SIGUSR2
        # would still kill the process.
        open(_os.path.join(path, "%d.ready" % _os.getpid()), "w").close()
    return 0


def _debug_on_signal(signum, frame):
    path = _os.environ.get("EF_DEBUG_COUNTERS_DIR")
    if _debug_worker is not None and path:
        _debug_write(_debug_worker, _os.path.join(path, "%d.json" % _os.getpid()))


cdef int _debug_write(Worker w, str path) except -1:
    import json
    cdef dict counters = w.debug_counters()
    if debug_leaks(counters):
        counters["held_by"] = _debug_holders()
        # Cycles are freed by the collector, not by refcounting: say which.
        import gc
        gc.collect()
        counters["live_after_gc"] = _debug_counts(w.dispatcher)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(counters, f)
    _os.replace(tmp, path)
    return 0


cdef list _debug_holders():
    """For each live tracked object: its type, its reference count and the
    types referring to it (where a leak is held); a count above the
    referrers found means a reference held from C."""
    import gc, sys
    cdef ConnectionImpl c
    tracked = set(_DEBUG_TRACKED)
    out = []
    objs = gc.get_objects()
    for o in objs:
        if type(o) in tracked and type(o) is not Timer and type(o) is not TcpListener:
            refs = [r for r in gc.get_referrers(o) if r is not objs and type(r).__name__ != "frame"]
            entry = {"type": type(o).__name__, "refcount": sys.getrefcount(o) - 2,
                     "held_by": sorted(type(r).__name__ for r in refs)}
            if type(o) is ConnectionImpl:
                c = o
                entry["connection"] = {"state": c.state, "fd": c.fd,
                                       "kernel_mask": c.kernel_mask, "epoll_mask": c.epoll_mask,
                                       "dirty": c.dirty}
            out.append(entry)
            if len(out) >= 20:
                break
    return out


def debug_counts_for_test(Dispatcher d):
    """EF_DEBUG builds: the live counts now, as Worker.debug_counters()'s
    "live" (None in release builds)."""
    counts = None
    if EF_DEBUG:
        counts = _debug_counts(d)
    return counts
