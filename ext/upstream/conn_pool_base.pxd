# Connection pools (Envoy source/common/conn_pool/conn_pool_base.h and
# source/common/tcp/conn_pool.h).
#
# ConnPoolImplBase is protocol-neutral: it sets every client up (stats, host
# stats, connect timer, state, connect()), attaches streams, and runs the
# state machine; a protocol's pool only instantiates its client
# (instantiate_active_client) and tells its own callbacks class
# (on_pool_ready / on_pool_failure: TcpPoolCallbacks for TCP).
#
# An ActiveClient is CONNECTING, READY, BUSY, DRAINING or CLOSED; each state
# but CLOSED owns a list and every move goes through
# transition_active_client_state(). READY: it can take a stream now; BUSY: its
# streams use all its capacity; DRAINING: it takes no more streams and closes
# when its last one ends (drain_connections). A stream released on a reusable
# client (on_stream_closed(client, reusable=True): HTTP/1 keep-alive) gives
# its capacity back, BUSY -> READY, and a waiting stream gets it. A TCP client
# is never reused: releasing its stream closes it. Streams that find no READY
# client wait as PendingStreams while try_create_new_connections() opens
# connections within the cluster's max_connections; max_pending_requests caps
# the waiting.
#
#   new_stream ─┬─ ready client ──────────────> attach_stream_to_client ─> on_pool_ready
#               ├─ pending overflow ──────────> on_pool_failure(OVERFLOW)
#               └─ new_pending_stream, try_create_new_connections
#                      on_connection_event(CONNECTED) -> on_upstream_ready -> attach
#                      close while CONNECTING -> purge_pending_streams(failure)
#                          -> close_excess_connecting_clients (no stream waits for them)
#   READY (idle) client: still read; bytes or EOF close it, so a connection the
#   upstream closed is never handed to a stream.

cdef enum ActiveClientState:
    CLIENT_CONNECTING = 0
    CLIENT_READY = 1
    CLIENT_BUSY = 2
    CLIENT_DRAINING = 3
    CLIENT_CLOSED = 4

cdef enum PoolFailureReason:
    POOL_FAILURE_OVERFLOW = 0
    POOL_FAILURE_REMOTE_CONNECTION_FAILURE = 1
    POOL_FAILURE_TIMEOUT = 3

cdef class ConnPoolImplBase
cdef class ActiveClient


cdef class PendingStream(LinkedObject):
    cdef ConnPoolImplBase parent
    cdef object callbacks           # the protocol's callbacks (TcpPoolCallbacks)

    cdef int cancel(self) except -1


cdef class ActiveClient(LinkedObject):
    cdef ConnPoolImplBase parent
    cdef int state
    cdef ConnectionImpl connection
    cdef Timer connect_timer
    cdef bint timed_out
    cdef Py_ssize_t active_streams
    cdef double created             # monotonic, for upstream_cx_connect_ms / _length_ms
    cdef Py_ssize_t capacity        # streams this client can still take now


cdef class _ClientConnectionCallbacks(ConnectionCallbacks):
    cdef ActiveClient client


cdef class ConnPoolImplBase:
    cdef Dispatcher dispatcher
    cdef HostImpl host
    cdef ClusterInfo cluster
    cdef LinkedList ready_clients
    cdef LinkedList busy_clients
    cdef LinkedList connecting_clients
    cdef LinkedList draining_clients
    cdef LinkedList pending_streams
    cdef Py_ssize_t connecting_stream_capacity
    cdef bint reuses_clients        # a busy client takes streams again later (HTTP)
    cdef str last_failure_reason    # of the last failed connect (access logs)

    cdef void init_pool(self, Dispatcher dispatcher, HostImpl host)
    cdef PendingStream new_stream(self, object callbacks)
    cdef int attach_stream_to_client(self, ActiveClient client, object callbacks) except -1
    cdef PendingStream new_pending_stream(self, object callbacks)
    cdef int try_create_new_connections(self) except -1
    cdef bint try_create_new_connection(self) except -1
    cdef ActiveClient instantiate_active_client(self)
    cdef int init_active_client(self, ActiveClient client) except -1
    cdef int on_upstream_ready(self) except -1
    cdef int on_connection_event(self, ActiveClient client, int event) except -1
    cdef int on_connect_timeout(self, ActiveClient client) except -1
    cdef void transition_active_client_state(self, ActiveClient client, int new_state)
    cdef int on_pool_ready(self, ActiveClient client, object callbacks) except -1
    cdef int on_pool_failure(self, int reason, object callbacks) except -1
    cdef int purge_pending_streams(self, int reason) except -1
    cdef int on_pending_stream_cancel(self, PendingStream stream) except -1
    cdef int close_excess_connecting_clients(self) except -1
    cdef void remove_pending_stream(self, PendingStream stream)
    cdef int on_stream_closed(self, ActiveClient client, bint reusable) except -1
    cdef int drain_connections(self) except -1


# TCP pool: each stream is a whole upstream connection.

cdef class TcpUpstreamCallbacks(ConnectionCallbacks):
    """Receives an upstream connection's bytes (Envoy's Tcp::ConnectionPool::UpstreamCallbacks)."""
    cdef int on_upstream_data(self, OwnedBuffer data, bint end_stream) except -1


cdef class TcpConnectionData


cdef class TcpPoolCallbacks:
    """What a TCP stream's owner hears from the pool (Envoy's Tcp::ConnectionPool::Callbacks)."""
    cdef int on_pool_ready(self, TcpConnectionData conn_data, HostImpl host) except -1
    cdef int on_pool_failure(self, int reason, HostImpl host) except -1


@cython.final
cdef class ActiveTcpClient(ActiveClient):
    cdef TcpUpstreamCallbacks upstream_callbacks


@cython.final
cdef class TcpConnectionData:
    """A stream's hold on a pooled TCP connection (Envoy's
    Tcp::ConnectionPool::ConnectionData): the owner reads and writes
    connection(), hears it through add_upstream_callbacks(), and release()s it."""
    cdef ActiveTcpClient client

    cdef inline ConnectionImpl connection(self) noexcept:
        return self.client.connection if self.client is not None else None
    cdef void add_upstream_callbacks(self, TcpUpstreamCallbacks callbacks)
    cdef int release(self) except -1


@cython.final
cdef class _TcpClientReadFilter(ReadFilter):
    """Envoy's ActiveTcpClient::ConnReadFilter: hands upstream bytes to the stream."""
    cdef ActiveTcpClient client


@cython.final
cdef class TcpConnPoolImpl(ConnPoolImplBase):
    pass
