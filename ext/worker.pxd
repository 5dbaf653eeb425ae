# The worker data plane is one extension module: every subsystem's .pxd is
# included here and its .pyx in worker.pyx, so cdef calls between subsystems
# are direct C calls (uvloop's loop.pxd does the same).
cimport cython
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_DECREF
from libc.stdint cimport uint32_t, uint64_t, int64_t
from includes.system cimport *

cdef class FactoryContext          # defined below; config classes build with it

include "includes/consts.pxi"
include "stats/stats.pxd"
include "event/dispatcher.pxd"
include "buffer/owned_buffer.pxd"
include "network/filter.pxd"
include "network/transport_socket.pxd"
include "network/connection_impl.pxd"
include "transport_sockets/raw_buffer.pxd"
include "network/listener.pxd"
include "upstream/upstream.pxd"
include "upstream/conn_pool_base.pxd"
include "upstream/cluster_manager.pxd"
include "stream_info/stream_info.pxd"
include "filters/network/tcp_proxy.pxd"
include "http/http1/parser.pxd"
include "http/http1/response_parser.pxd"
include "http/header_map.pxd"
include "http/http1/body_decoder.pxd"
include "http/http1/encoder.pxd"
include "http/filter.pxd"
include "http/http1/conn_pool.pxd"


cdef class Worker


cdef class ControlChannel(FileEventHandler):
    cdef Worker worker
    cdef bytearray pending
    cdef object sock                # socket.socket over fd (SCM_RIGHTS)
    cdef list fds                   # received descriptors, not yet claimed


cdef class FactoryContext:
    cdef Worker worker
    cdef Dispatcher dispatcher
    cdef int64_t *stats_row
    cdef int64_t *shared_row
    cdef ClusterManagerImpl cluster_manager

    cdef ThreadLocalCluster get_thread_local_cluster(self, str name)
    cdef NetworkFilterFactory network_filter_factory(self, object plan)
    cdef list access_loggers(self, list plan)


cdef class _WorkerTimers:
    cdef Worker worker
    cdef Timer drain_check
    cdef Timer drain_deadline
    cdef Timer tick


cdef class Worker:
    cdef Dispatcher dispatcher
    cdef object stats_view
    cdef int64_t *stats_row
    cdef int64_t *shared_row
    cdef list listeners             # ActiveTcpListener
    cdef list tcp_listeners         # TcpListener
    cdef dict adopted               # slot -> [TcpListener]: a sibling slot's sockets
    cdef ClusterManagerImpl cluster_manager
    cdef ControlChannel control
    cdef _WorkerTimers timers
    cdef bint draining
    cdef object on_tick
    cdef object on_reopen_logs
    cdef object access_logs         # envoy_fast.accesslog.AccessLogManager or None

    cdef FactoryContext context

    cdef list create_access_loggers(self, list plan)
    cdef build_listener(self, object plan)
    cdef TcpListener listen_on(self, ActiveTcpListener active, int fd)
