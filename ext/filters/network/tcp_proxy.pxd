# tcp_proxy network filter (Envoy source/common/tcp_proxy/tcp_proxy.h).
#
# on_new_connection: read-disable downstream, initialize_upstream_connection
#   -> pick a cluster (weighted), circuit breaker, maybe_tunnel
#   -> TcpConnPool.new_stream: on_generic_pool_ready | on_generic_pool_failure
# on_data -> upstream.write;  on_upstream_data -> downstream.write
# A half-close passes through; a full close closes the other side after its
# pending bytes (upstream_flush_*). Back-pressure: a write buffer above its
# high watermark read-disables the other connection.

cdef enum:  # TcpProxyStat: offsets in a tcp_proxy's stats block (names: TCP_PROXY_STATS)
    TCP_DOWNSTREAM_CX_TOTAL
    TCP_DOWNSTREAM_CX_NO_ROUTE
    TCP_DOWNSTREAM_CX_RX_BYTES_TOTAL
    TCP_DOWNSTREAM_CX_TX_BYTES_TOTAL
    TCP_DOWNSTREAM_FLOW_CONTROL_PAUSED_READING_TOTAL
    TCP_DOWNSTREAM_FLOW_CONTROL_RESUMED_READING_TOTAL
    TCP_IDLE_TIMEOUT
    TCP_MAX_DOWNSTREAM_CONNECTION_DURATION
    TCP_UPSTREAM_FLUSH_TOTAL
    TCP_UPSTREAM_FLUSH_ACTIVE
    TCP_STATS_COUNT

cdef class TcpProxyFilter


@cython.final
cdef class TcpProxyConfig(NetworkFilterFactory):
    cdef str stat_prefix
    cdef int64_t *stats
    cdef list clusters              # ThreadLocalCluster
    cdef list weights               # int, same order
    cdef int total_weight
    cdef double idle_timeout        # 0: off
    cdef int max_connect_attempts
    cdef double max_downstream_connection_duration   # 0: none
    cdef list access_loggers        # envoy_fast.accesslog loggers; None: no logging

    cdef ThreadLocalCluster pick_cluster(self, Dispatcher dispatcher)


@cython.final
cdef class TcpConnPool(TcpPoolCallbacks):
    """The generic-pool adapter between tcp_proxy and a TCP pool (Envoy's TcpProxy::TcpConnPool)."""
    cdef TcpProxyFilter parent
    cdef TcpConnPoolImpl pool
    cdef PendingStream handle

    cdef int new_stream(self) except -1
    cdef int cancel(self) except -1


@cython.final
cdef class _DownstreamCallbacks(ConnectionCallbacks):
    cdef TcpProxyFilter parent


@cython.final
cdef class _UpstreamCallbacks(TcpUpstreamCallbacks):
    cdef TcpProxyFilter parent
    cdef bint flushing              # counted in upstream_flush_active


@cython.final
cdef class TcpProxyFilter(ReadFilter):
    cdef TcpProxyConfig config
    cdef Dispatcher dispatcher
    cdef ConnectionImpl downstream
    cdef ConnectionImpl upstream
    cdef TcpConnectionData upstream_conn_data
    cdef ThreadLocalCluster cluster
    cdef TcpConnPool generic_conn_pool
    cdef _DownstreamCallbacks downstream_callbacks
    cdef _UpstreamCallbacks upstream_callbacks
    cdef Timer idle_timer
    cdef Timer duration_timer
    cdef StreamInfoImpl stream_info
    cdef bint logged
    cdef bint downstream_paused     # we read-disabled downstream for back-pressure
    cdef bint upstream_paused

    cdef int initialize_upstream_connection(self) except -1
    cdef int maybe_tunnel(self, ThreadLocalCluster cluster) except -1
    cdef int on_generic_pool_ready(self, TcpConnectionData conn_data, HostImpl host) except -1
    cdef int on_generic_pool_failure(self, int reason, HostImpl host) except -1
    cdef int on_upstream_data(self, OwnedBuffer data, bint end_stream) except -1
    cdef int on_downstream_event(self, int event) except -1
    cdef int on_upstream_event(self, int event) except -1
    cdef int on_init_failure(self) except -1
    cdef int on_idle_timeout(self) except -1
    cdef int on_max_downstream_connection_duration(self) except -1
    cdef int close_both(self) except -1
    cdef void disable_timers(self)
    cdef int maybe_log(self) except -1
