# cython: language_level=3
"""envoy_fast's worker data plane: Dispatcher, buffers, connections,
listeners, filter chains, tcp_proxy, clusters and connection pools."""

cimport cython
from cpython.exc cimport PyErr_CheckSignals
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_DECREF, Py_REFCNT
from libc.stdint cimport uint16_t, uint32_t, uint64_t, int64_t
from includes.system cimport *
from includes.pylist cimport ef_list_clear
import os as _os
import threading as _threading
import logging as _logging
import socket as _socket
import msgspec as _msgspec

cdef object _upstream_log = _logging.getLogger("envoy_fast.upstream")
cdef object _listener_log = _logging.getLogger("envoy_fast.worker")

include "event/dispatcher.pyx"
include "common/live_list.pyx"
include "buffer/owned_buffer.pyx"
include "network/address.pyx"
include "network/filter_manager.pyx"
include "network/transport_socket.pyx"
include "network/connection_impl.pyx"
include "transport_sockets/raw_buffer.pyx"
include "network/listener.pyx"
include "upstream/upstream.pyx"
include "upstream/conn_pool_base.pyx"
include "upstream/cluster_manager.pyx"
include "stream_info/stream_info.pyx"
include "filters/network/tcp_proxy.pyx"
include "http/http1/parser.pyx"
include "http/http1/response_parser.pyx"
include "http/header_map.pyx"
include "http/http1/body_decoder.pyx"
include "http/http1/encoder.pyx"
include "http/filter.pyx"
include "http/router/config_impl.pyx"
include "http/router/route_entry_impl.pyx"
include "http/http1/conn_pool.pyx"
include "http/http1/codec_client.pyx"
include "http/http1/conn_pool_for_test.pyx"
include "http/conn_manager_config.pyx"
include "http/conn_manager_stream.pyx"
include "http/conn_manager_utility.pyx"
include "http/conn_manager_impl.pyx"
include "http/router/router_utility.pyx"
include "http/router/router.pyx"
include "http/router/upstream_request.pyx"
include "http/health_check_filter.pyx"
include "stats/stats.pyx"
include "debug_counters.pyx"
include "for_test.pyx"
include "http/http1/codec_for_test.pyx"
include "http/conn_manager_for_test.pyx"
include "http/router/config_impl_for_test.pyx"
include "http/router/router_for_test.pyx"

cdef object _control_decoder = _msgspec.msgpack.Decoder()
# Reopens the application log file (set by the main process before fork).
cdef object _reopen_app_log = None


cdef class ControlChannel(FileEventHandler):
    """Length-prefixed msgpack frames from the main process. EOF means main
    is gone: the worker stops. A frame may come with descriptors (SCM_RIGHTS,
    sent with its first bytes): they queue in `fds`, in order, for the frame
    that claims them."""

    cdef int on_file_event(self, uint32_t events) except -1:
        cdef bytes chunk
        cdef Py_ssize_t n
        try:
            chunk, fds, flags, _ = _socket.recv_fds(self.sock, 65536, MAX_CONTROL_FDS)
        except BlockingIOError:
            return 0
        if fds:
            self.fds.extend(fds)
        if flags & _socket.MSG_CTRUNC and self.worker.dispatcher.error_log is not None:
            self.worker.dispatcher.error_log("control channel: descriptors truncated")
        if not chunk:
            self.sock.detach()
            self.unregister()
            self.worker.dispatcher.exit_requested = True
            return 0
        self.pending += chunk
        while len(self.pending) >= 4:
            n = int.from_bytes(self.pending[:4], "big")
            if len(self.pending) < 4 + n:
                break
            frame = bytes(self.pending[4:4 + n])
            del self.pending[:4 + n]
            try:
                self.worker.on_control_message(_control_decoder.decode(frame))
            except Exception as exc:
                # One bad message is refused alone: the worker keeps its
                # state and the frames after it still apply.
                self.worker.dispatcher.handler_errors += 1
                if self.worker.dispatcher.error_log is not None:
                    self.worker.dispatcher.error_log("control message refused: %s" % (exc,))
        return 0

    cdef void on_handler_error(self, object exc) noexcept:
        self.pending = bytearray()


cdef class Worker:
    """One worker's data plane, built from a plan (the typed Structs of
    envoy_fast.server.plan_types, made by the main process from the bootstrap
    config), running one Dispatcher."""

    def __init__(self, plan, stats_buffer, int worker_index, int control_fd=-1,
                 error_log=None):
        """`plan`: an envoy_fast.server.plan_types.WorkerPlan."""
        cdef int64_t[::1] view
        self.dispatcher = Dispatcher(
            seed=int.from_bytes(_os.urandom(8), "little") | 1, error_log=error_log)
        view = memoryview(stats_buffer).cast("B").cast("q")
        self.stats_view = view
        self.stats_row = &view[worker_index * <Py_ssize_t>plan.nstats]
        self.shared_row = &view[<Py_ssize_t>plan.shared_row * <Py_ssize_t>plan.nstats]
        self.timers = _WorkerTimers.__new__(_WorkerTimers)
        self.timers.worker = self
        self.context = FactoryContext.__new__(FactoryContext)
        self.context.worker = self
        self.context.dispatcher = self.dispatcher
        self.context.stats_row = self.stats_row
        self.context.shared_row = self.shared_row
        self.cluster_manager = ClusterManagerImpl(self.context)
        self.context.cluster_manager = self.cluster_manager
        for c in plan.clusters:
            self.cluster_manager.add_or_update_cluster(c)
        self.listeners = []
        self.tcp_listeners = []
        for l in plan.listeners:
            self.build_listener(l)

        self.adopted = {}
        if control_fd >= 0:
            self.control = ControlChannel.__new__(ControlChannel)
            self.control.fd = control_fd
            self.control.sock = _socket.socket(fileno=control_fd)
            self.control.sock.setblocking(False)
            self.control.fds = []
            self.control.worker = self
            self.control.pending = bytearray()
            self.dispatcher.register(self.control, EPOLLIN)

    cdef list create_access_loggers(self, list plan):
        if self.access_logs is None:
            from envoy_fast.accesslog import AccessLogManager
            self.access_logs = AccessLogManager()
            self.set_tick(self.access_logs.flush)
            self.set_reopen_logs(self.access_logs.reopen)
        return self.access_logs.create(plan)

    cdef build_listener(self, object plan):
        cdef ActiveTcpListener active = ActiveTcpListener.from_plan(self.context, plan)
        if _listener_log.isEnabledFor(_logging.WARNING):
            active.log = _listener_log
        self.listeners.append(active)
        # fd -1: the listener has stopped listening (/drain_listeners) before
        # this worker started; it stays known by name.
        if plan.fd >= 0:
            self.tcp_listeners.append(self.listen_on(active, plan.fd))

    cdef TcpListener listen_on(self, ActiveTcpListener active, int fd):
        cdef TcpListener tl = TcpListener.__new__(TcpListener)
        tl.fd = fd
        # Accepted sockets inherit TCP_NODELAY: one setsockopt here instead
        # of one per connection.
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &_one, sizeof(int))
        tl.cb = active
        tl.resume_timer = Timer.new(self.dispatcher, _on_listener_resume, tl)
        active.listener = tl
        self.dispatcher.register(tl, EPOLLIN)
        return tl

    def on_control_message(self, msg):
        """Main's requests: drain, stop_listening, adopt, release, shutdown,
        reopen_logs, cluster (add or update one), remove_cluster, drain_close."""
        op = msg.get("op") if isinstance(msg, dict) else None
        if op == "shutdown":
            self.dispatcher.exit_requested = True
        elif op == "stop_listening":
            self.stop_listening(msg.get("stop"))
        elif op == "drain":
            self.drain(float(msg.get("deadline", 600.0)), msg.get("stop"))
        elif op == "adopt":
            names = msg["listeners"]
            fds = self.control.fds[:len(names)]
            del self.control.fds[:len(names)]
            self.adopt(msg["slot"], names, fds)
        elif op == "release":
            self.release(msg["slot"])
        elif op == "drain_close":
            # Health check failed (or back): HTTP/1 responses close their
            # connections meanwhile.
            http_conn_managers_set_drain_close(bool(msg.get("on")))
        elif op == "cluster":
            # A cluster added or changed at run time: the same plan Struct
            # as at start-up, as plain data in the frame.
            self.cluster_manager.add_or_update_cluster(
                _plan_types().convert(msg["cluster"], _plan_types().AnyClusterPlan))
        elif op == "remove_cluster":
            self.cluster_manager.remove_cluster(msg["name"])
        elif op == "debug_counters":
            _debug_write(self, msg["path"])
        elif op == "reopen_logs":
            if self.on_reopen_logs is not None:
                self.on_reopen_logs()
            if _reopen_app_log is not None:
                _reopen_app_log()

    def adopt(self, int slot, list names, list fds):
        """Accept on listen sockets of another slot (`fds`, one per listener
        in `names`) while that slot has no worker."""
        cdef list tls = self.adopted.setdefault(slot, [])
        by_name = {(<ActiveTcpListener>a).name: a for a in self.listeners}
        for name, fd in zip(names, fds):
            active = by_name.get(name)
            if active is None or self.draining:   # a draining worker accepts no more
                _os.close(fd)
            else:
                tls.append(self.listen_on(active, fd))
        for fd in fds[len(names):]:
            _os.close(fd)

    def release(self, int slot):
        """That slot's own worker is back: leave its sockets to it."""
        cdef TcpListener tl
        for tl in self.adopted.pop(slot, ()):
            tl.stop(False)

    def drain(self, double deadline_s, stop=None):
        """Stop accepting (`stop`: as stop_listening), let open connections
        finish, exit when none are left; at the deadline close what remains
        (tcp_proxy has no graceful way to end a connection) and exit."""
        if self.draining:
            return
        self.draining = True
        self.stop_listening(stop)
        # HTTP/1 connections: idle ones close now, busy ones after their
        # response (connection: close).
        http_conn_managers_start_drain()
        self.timers.drain_deadline = Timer.new(self.dispatcher, _on_drain_deadline, self.timers)
        self.timers.drain_deadline.enable(deadline_s)
        self.timers.drain_check = Timer.new(self.dispatcher, _on_drain_check, self.timers)
        self.timers.drain_check.enable(0.0)

    def stop_listening(self, stop=None):
        """Stop accepting on every socket this worker holds, its own and any
        it adopted. The listeners named in `stop` (every one when None) stop
        for good: their queued connections are served, then new clients are
        refused. The others only leave this worker (a reload keeps them for
        the next generation)."""
        cdef TcpListener tl
        listening = list(self.tcp_listeners)
        for tls in self.adopted.values():
            listening.extend(tls)
        self.tcp_listeners = []
        self.adopted = {}
        for tl in listening:
            tl.stop(stop is None or tl.cb.name in stop)

    def set_tick(self, callback):
        """Call `callback()` every 100 ms on the loop (access-log flushing)."""
        self.on_tick = callback
        if self.timers.tick is None:
            self.timers.tick = Timer.new(self.dispatcher, _on_tick, self.timers)
            self.timers.tick.enable(0.1)

    def set_reopen_logs(self, callback):
        self.on_reopen_logs = callback

    def run(self):
        """Run the event loop until shutdown (or EOF on the control channel)."""
        if EF_DEBUG:
            _debug_start(self)
        try:
            self.dispatcher.run()
        finally:
            if self.access_logs is not None:
                self.access_logs.flush()

    def run_for_test(self, double seconds):
        self.dispatcher.run_for_test(seconds)

    def close_all(self):
        cdef ActiveTcpListener l
        for l in self.listeners:
            l.close_all_for_shutdown()

    def debug_counters(self):
        """EF_DEBUG builds: live objects by type, slices, open connections
        and armed timers, now ("live") and when the loop started
        ("at_start"), and what is held by design since ("standing");
        debug_leaks() compares them. None in release builds."""
        cdef Py_ssize_t adopted
        counters = None
        if EF_DEBUG:
            # A sibling's sockets, served while it is down: a TcpListener and
            # its resume timer each, until the sibling is back.
            adopted = sum([len(tls) for tls in self.adopted.values()])
            counters = {"pid": _os.getpid(), "live": _debug_counts(self.dispatcher),
                        "at_start": _debug_at_start,
                        "standing": {"TcpListener": adopted, "Timer": adopted}}
        return counters

    def live_connections_for_test(self):
        return self.dispatcher.live_connections

    def free_connections_for_test(self):
        """Closed connections kept for reuse (Dispatcher.free_connections)."""
        return self.dispatcher.free_connections_len

    def handler_errors_for_test(self):
        return self.dispatcher.handler_errors

    def pool_counts_for_test(self, str cluster):
        return self.context.get_thread_local_cluster(cluster).pool_counts_for_test()

    def choose_host_for_test(self, str cluster):
        return self.context.get_thread_local_cluster(cluster).choose_host_for_test()

    @property
    def cluster_manager_for_test(self):
        return self.cluster_manager

cdef class FactoryContext:
    """What config classes build themselves with (Envoy's FactoryContext):
    this worker's stats rows, dispatcher, clusters, access logs."""

    cdef ThreadLocalCluster get_thread_local_cluster(self, str name):
        cdef ThreadLocalCluster tlc = self.cluster_manager.get_thread_local_cluster(name)
        if tlc is None:
            raise ValueError("unknown cluster %r" % (name,))
        return tlc

    cdef NetworkFilterFactory network_filter_factory(self, object plan):
        """The factory of a network filter plan, from its registry record."""
        global _registry
        if _registry is None:
            from envoy_fast.extensions import registry as _r
            _registry = _r
        return _registry.for_plan(plan).factory(self, plan)

    cdef list access_loggers(self, list plan):
        return self.worker.create_access_loggers(plan)


cdef object _registry = None


cdef object _plan_types():
    from envoy_fast.server import plan_types
    return plan_types


cdef class _WorkerTimers:
    """The worker's own timers: drain progress and the periodic tick."""


cdef int _on_drain_check(object ctx) except -1:
    # Done when no downstream connection is left: an idle pooled upstream
    # connection serves no one (Envoy does not wait on its pools either).
    cdef _WorkerTimers timers = <_WorkerTimers>ctx
    cdef ActiveTcpListener l
    cdef Py_ssize_t downstream = 0
    for l in timers.worker.listeners:
        downstream += l.num_connections
    if downstream == 0:
        timers.worker.dispatcher.exit_requested = True
    else:
        timers.drain_check.enable(0.05)
    return 0


cdef int _on_drain_deadline(object ctx) except -1:
    cdef Worker w = (<_WorkerTimers>ctx).worker
    w.close_all()
    w.dispatcher.exit_requested = True
    return 0


cdef int _on_tick(object ctx) except -1:
    cdef _WorkerTimers timers = <_WorkerTimers>ctx
    if timers.worker.on_tick is not None:
        timers.worker.on_tick()
    timers.tick.enable(0.1)
    return 0


def atomic_add(buffer, Py_ssize_t index, int64_t delta):
    """Atomically add `delta` to int64 slot `index` of a shared buffer (main
    uses it to take back a dead worker's circuit-breaker counts)."""
    cdef int64_t[::1] view = memoryview(buffer).cast("B").cast("q")
    return ef_atomic_add(&view[index], delta)


def set_app_log_reopen(callback):
    """`callback()` reopens the application log on a reopen_logs request."""
    global _reopen_app_log
    _reopen_app_log = callback


def set_parent_death_signal(int sig):
    """Have the kernel signal this worker when the main process dies."""
    prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)


def slice_counts_for_test():
    return buffer_slices_for_test()
