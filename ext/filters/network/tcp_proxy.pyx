# tcp_proxy implementation (shape in tcp_proxy.pxd).

# The names of a tcp_proxy's stats block ("tcp.<stat_prefix>."), in
# TcpProxyStat order: the filter declares its stats, the shared-memory layout
# (envoy_fast/stats) is built from this table.
TCP_PROXY_STATS = (
    ("downstream_cx_total", "counter"),
    ("downstream_cx_no_route", "counter"),
    ("downstream_cx_rx_bytes_total", "counter"),
    ("downstream_cx_tx_bytes_total", "counter"),
    ("downstream_flow_control_paused_reading_total", "counter"),
    ("downstream_flow_control_resumed_reading_total", "counter"),
    ("idle_timeout", "counter"),
    ("max_downstream_connection_duration", "counter"),
    ("upstream_flush_total", "counter"),
    ("upstream_flush_active", "gauge"),
)
if len(TCP_PROXY_STATS) != TCP_STATS_COUNT:
    raise ImportError("tcp_proxy stat names and TcpProxyStat disagree")


cdef enum:  # why a downstream connection got no upstream (for the log)
    NO_UPSTREAM_CX_OVERFLOW
    NO_UPSTREAM_PENDING_OVERFLOW
    NO_UPSTREAM_NONE_HEALTHY
    NO_UPSTREAM_CONNECT_FAILURE
    NO_UPSTREAM_CONNECT_TIMEOUT

# One warning per cluster per this many seconds (per worker).
cdef double NO_UPSTREAM_LOG_INTERVAL = 1.0


cdef int _log_no_upstream(Dispatcher d, ClusterInfo info, int why, HostImpl host,
                          int attempts, str reason=None) except -1:
    """Warn that a downstream connection is closed for want of an upstream.
    Callers check `info.log is not None` first: with the level off, nothing
    is built. Rate-limited: a line at most every NO_UPSTREAM_LOG_INTERVAL,
    saying how many were left out since the last one."""
    if d.now < info.log_next:
        info.log_suppressed += 1
        return 0
    info.log_next = d.now + NO_UPSTREAM_LOG_INTERVAL
    if why == NO_UPSTREAM_CX_OVERFLOW:
        what = "upstream connection overflow (max_connections %d)" % info.connections.max
    elif why == NO_UPSTREAM_PENDING_OVERFLOW:
        what = "pending connection overflow (max_pending_requests %d)" % info.pending_requests.max
    elif why == NO_UPSTREAM_NONE_HEALTHY:
        what = "no healthy upstream host"
    else:
        if why == NO_UPSTREAM_CONNECT_TIMEOUT:
            cause = "connect timeout (%gs)" % info.connect_timeout
        elif reason:
            cause = reason
        else:
            cause = "connection failure"
        what = "upstream connect failed%s: %s (%d attempt%s)" % (
            (" to " + host.address_str) if host is not None else "", cause,
            attempts, "" if attempts == 1 else "s")
    more = ""
    if info.log_suppressed:
        more = " (and %d more since the last such line)" % info.log_suppressed
        info.log_suppressed = 0
    info.log.warning("cluster '%s': %s; closing the downstream connection%s", info.name, what, more)
    return 0


@cython.final
cdef class TcpProxyConfig(NetworkFilterFactory):

    @staticmethod
    def from_plan(FactoryContext ctx, plan):
        """tcp_proxy's registry factory: a TcpProxyConfig from its TcpProxyPlan
        (envoy_fast.extensions.network.tcp_proxy)."""
        cdef TcpProxyConfig tp = TcpProxyConfig.__new__(TcpProxyConfig)
        tp.stat_prefix = plan.stat_prefix
        tp.stats = &ctx.stats_row[<int>plan.stats_base]
        tp.clusters = [ctx.get_thread_local_cluster(name) for name, _ in plan.clusters]
        tp.weights = [w for _, w in plan.clusters]
        tp.total_weight = sum(tp.weights)
        tp.idle_timeout = plan.idle_timeout
        tp.max_connect_attempts = plan.max_connect_attempts
        tp.max_downstream_connection_duration = plan.max_downstream_connection_duration
        tp.allows_splice = True
        if plan.access_log:
            tp.access_loggers = ctx.access_loggers(list(plan.access_log))
        return tp

    cdef int create_filter(self, FilterManager manager, ConnectionImpl conn) except -1:
        cdef TcpProxyFilter f = TcpProxyFilter.__new__(TcpProxyFilter)
        f.config = self
        f.dispatcher = conn.dispatcher
        manager.add_read_filter(f)
        return 0

    cdef ThreadLocalCluster pick_cluster(self, Dispatcher dispatcher):
        cdef int pick
        cdef Py_ssize_t i
        if len(self.clusters) == 1:
            return <ThreadLocalCluster>self.clusters[0]
        pick = <int>(dispatcher.random() % <uint64_t>self.total_weight)
        for i in range(len(self.clusters)):
            pick -= <int>self.weights[i]
            if pick < 0:
                return <ThreadLocalCluster>self.clusters[i]
        return <ThreadLocalCluster>self.clusters[len(self.clusters) - 1]


@cython.final
cdef class TcpConnPool(TcpPoolCallbacks):

    cdef int new_stream(self) except -1:
        # The pool may answer before returning (ready client, overflow), and
        # the filter then drops us: hold a reference across the call.
        cdef TcpConnPool keep = self
        cdef PendingStream handle = self.pool.new_stream(self)
        if keep.parent is not None:
            keep.handle = handle
        return 0

    cdef int cancel(self) except -1:
        cdef PendingStream h = self.handle
        self.handle = None
        self.parent = None
        if h is not None:
            h.cancel()
        return 0

    cdef int on_pool_ready(self, TcpConnectionData conn_data, HostImpl host) except -1:
        cdef TcpProxyFilter parent = self.parent
        self.handle = None
        self.parent = None
        if parent is None:
            return conn_data.release()
        return parent.on_generic_pool_ready(conn_data, host)

    cdef int on_pool_failure(self, int reason, HostImpl host) except -1:
        cdef TcpProxyFilter parent = self.parent
        self.handle = None
        self.parent = None
        if parent is None:
            return 0
        return parent.on_generic_pool_failure(reason, host)


@cython.final
cdef class _DownstreamCallbacks(ConnectionCallbacks):

    cdef int on_event(self, int event) except -1:
        if self.parent is not None:
            return self.parent.on_downstream_event(event)
        return 0

    cdef int on_above_write_buffer_high_watermark(self) except -1:
        # Downstream cannot take more: stop reading upstream.
        cdef TcpProxyFilter p = self.parent
        if p is not None and p.upstream is not None and not p.upstream_paused:
            p.upstream_paused = True
            p.upstream.read_disable(True)
        return 0

    cdef int on_below_write_buffer_low_watermark(self) except -1:
        cdef TcpProxyFilter p = self.parent
        if p is not None and p.upstream is not None and p.upstream_paused:
            p.upstream_paused = False
            p.upstream.read_disable(False)
        return 0


@cython.final
cdef class _UpstreamCallbacks(TcpUpstreamCallbacks):

    cdef int on_upstream_data(self, OwnedBuffer data, bint end_stream) except -1:
        if self.parent is not None:
            return self.parent.on_upstream_data(data, end_stream)
        data.drain_all()
        return 0

    cdef int on_event(self, int event) except -1:
        cdef TcpProxyFilter p = self.parent
        if self.flushing and event != CONN_EVENT_CONNECTED:
            self.flushing = False
            if p is not None:
                p.config.stats[TCP_UPSTREAM_FLUSH_ACTIVE] -= 1
        if p is not None:
            return p.on_upstream_event(event)
        return 0

    cdef int on_above_write_buffer_high_watermark(self) except -1:
        # Upstream cannot take more: stop reading downstream.
        cdef TcpProxyFilter p = self.parent
        if p is not None and p.downstream is not None and not p.downstream_paused:
            p.downstream_paused = True
            p.config.stats[TCP_DOWNSTREAM_FLOW_CONTROL_PAUSED_READING_TOTAL] += 1
            p.downstream.read_disable(True)
        return 0

    cdef int on_below_write_buffer_low_watermark(self) except -1:
        cdef TcpProxyFilter p = self.parent
        if p is not None and p.downstream is not None and p.downstream_paused:
            p.downstream_paused = False
            p.config.stats[TCP_DOWNSTREAM_FLOW_CONTROL_RESUMED_READING_TOTAL] += 1
            p.downstream.read_disable(False)
        return 0


cdef int _on_idle_timer(object ctx) except -1:
    return (<TcpProxyFilter>ctx).on_idle_timeout()


cdef int _on_max_duration_timer(object ctx) except -1:
    return (<TcpProxyFilter>ctx).on_max_downstream_connection_duration()


@cython.final
cdef class TcpProxyFilter(ReadFilter):
    """One downstream connection's tcp_proxy (Envoy's TcpProxy::Filter)."""

    # ReadFilter

    cdef int on_new_connection(self) except -1:
        cdef TcpProxyConfig config = self.config
        cdef ConnectionImpl down = self.read_callbacks.connection
        self.downstream = down
        config.stats[TCP_DOWNSTREAM_CX_TOTAL] += 1
        down.set_stats(&config.stats[TCP_DOWNSTREAM_CX_RX_BYTES_TOTAL],
                       &config.stats[TCP_DOWNSTREAM_CX_TX_BYTES_TOTAL])
        self.downstream_callbacks = _DownstreamCallbacks.__new__(_DownstreamCallbacks)
        self.downstream_callbacks.parent = self
        down.add_callbacks(self.downstream_callbacks)
        self.stream_info = StreamInfoImpl.__new__(StreamInfoImpl)
        if config.access_loggers is not None:
            self.stream_info.fill_downstream(down)
        # Nothing is read until the upstream is connected: the bytes would have
        # nowhere to go (Envoy read-disables the same way).
        down.read_disable(True)
        if config.max_downstream_connection_duration > 0:
            self.duration_timer = Timer.new(self.dispatcher, _on_max_duration_timer, self)
            self.duration_timer.enable_common(config.max_downstream_connection_duration)
        if config.idle_timeout > 0:
            # From accept, as Envoy: an upstream that never answers is idle too.
            self.idle_timer = Timer.new(self.dispatcher, _on_idle_timer, self)
            self.idle_timer.enable_common(config.idle_timeout)
        self.initialize_upstream_connection()
        return FILTER_STOP_ITERATION

    cdef int on_data(self, OwnedBuffer data, bint end_stream) except -1:
        if self.upstream is not None:
            self.upstream.write(data, end_stream)
        else:
            data.drain_all()
        return FILTER_STOP_ITERATION

    # Upstream selection

    cdef int initialize_upstream_connection(self) except -1:
        cdef ThreadLocalCluster cluster = self.config.pick_cluster(self.dispatcher)
        self.cluster = cluster
        self.stream_info.upstream_cluster_name = cluster.info.name
        if not cluster.info.connections.can_create():
            self.stream_info.set_response_flag(RF_UPSTREAM_OVERFLOW)
            cluster.info.stats[CLUSTER_UPSTREAM_CX_OVERFLOW] += 1
            if cluster.info.log is not None:
                _log_no_upstream(self.dispatcher, cluster.info, NO_UPSTREAM_CX_OVERFLOW, None, 0)
            return self.on_init_failure()
        self.stream_info.attempt_count += 1
        return self.maybe_tunnel(cluster)

    cdef int maybe_tunnel(self, ThreadLocalCluster cluster) except -1:
        cdef TcpConnPoolImpl pool = cluster.tcp_conn_pool(None)
        if pool is None:
            self.stream_info.set_response_flag(RF_NO_HEALTHY_UPSTREAM)
            cluster.info.stats[CLUSTER_UPSTREAM_CX_NONE_HEALTHY] += 1
            if cluster.info.log is not None:
                _log_no_upstream(self.dispatcher, cluster.info, NO_UPSTREAM_NONE_HEALTHY, None, 0)
            return self.on_init_failure()
        self.generic_conn_pool = TcpConnPool.__new__(TcpConnPool)
        self.generic_conn_pool.parent = self
        self.generic_conn_pool.pool = pool
        return self.generic_conn_pool.new_stream()

    cdef int on_generic_pool_ready(self, TcpConnectionData conn_data, HostImpl host) except -1:
        cdef ConnectionImpl up = conn_data.connection()
        cdef ConnectionImpl down = self.downstream
        self.generic_conn_pool = None
        if down is None or down.state != CONN_OPEN:
            return conn_data.release()
        self.upstream_conn_data = conn_data
        self.upstream = up
        self.stream_info.upstream_host = host
        if self.config.access_loggers is not None:
            self.stream_info.fill_upstream(up)
        self.upstream_callbacks = _UpstreamCallbacks.__new__(_UpstreamCallbacks)
        self.upstream_callbacks.parent = self
        conn_data.add_upstream_callbacks(self.upstream_callbacks)
        if self.config.allows_splice and down.filter_manager.write_filters is None \
                and len(down.filter_manager.read_filters) == 1:
            # Only tcp_proxy sees these bytes: bulk transfers may bypass
            # user space (ConnectionImpl's splice()).
            enable_splice(down, up)
        down.read_disable(False)
        return 0

    cdef int on_generic_pool_failure(self, int reason, HostImpl host) except -1:
        self.generic_conn_pool = None
        if self.downstream is None or self.downstream.state != CONN_OPEN:
            return 0
        # Every pool failure, overflow included, uses up one connect attempt
        # (Envoy counts a pending overflow in upstream_cx_connect_attempts_exceeded).
        if reason == POOL_FAILURE_OVERFLOW:
            self.stream_info.set_response_flag(RF_UPSTREAM_OVERFLOW)
        else:
            self.stream_info.upstream_host = host       # the host that failed, as Envoy logs it
            self.stream_info.set_response_flag(RF_UPSTREAM_CONNECTION_FAILURE)
            if self.config.access_loggers is not None:
                self.stream_info.upstream_transport_failure_reason = self.cluster.failure_reason(host)
        if self.stream_info.attempt_count < self.config.max_connect_attempts:
            # Each attempt picks a cluster and host again.
            return self.initialize_upstream_connection()
        self.stream_info.set_response_flag(RF_UPSTREAM_RETRY_LIMIT_EXCEEDED)
        self.cluster.info.stats[CLUSTER_UPSTREAM_CX_CONNECT_ATTEMPTS_EXCEEDED] += 1
        if self.cluster.info.log is not None:
            _log_no_upstream(self.dispatcher, self.cluster.info,
                             NO_UPSTREAM_PENDING_OVERFLOW if reason == POOL_FAILURE_OVERFLOW
                             else NO_UPSTREAM_CONNECT_TIMEOUT if reason == POOL_FAILURE_TIMEOUT
                             else NO_UPSTREAM_CONNECT_FAILURE, host, self.stream_info.attempt_count,
                             self.cluster.failure_reason(host))
        return self.on_init_failure()

    cdef int on_init_failure(self) except -1:
        # No upstream: close promptly, nothing sent (Envoy closes NoFlush).
        if self.downstream is not None:
            self.downstream.close(CLOSE_NO_FLUSH)
        return 0

    # Data from upstream

    cdef int on_upstream_data(self, OwnedBuffer data, bint end_stream) except -1:
        if self.downstream is not None:
            self.downstream.write(data, end_stream)
        else:
            data.drain_all()
        return 0

    # Connection events

    cdef int on_downstream_event(self, int event) except -1:
        cdef ConnectionImpl up = self.upstream
        if event == CONN_EVENT_CONNECTED:
            return 0
        self.stream_info.bytes_received = self.downstream.bytes_read
        self.stream_info.bytes_sent = self.downstream.bytes_written
        self.downstream = None
        self.downstream_callbacks.parent = None
        if self.generic_conn_pool is not None:
            # A pending upstream stream is cancelled with its downstream.
            self.generic_conn_pool.cancel()
            self.generic_conn_pool = None
        if up is not None and up.state == CONN_OPEN:
            if event == CONN_EVENT_REMOTE_CLOSE and up.unsent_bytes():
                self.config.stats[TCP_UPSTREAM_FLUSH_TOTAL] += 1
                self.config.stats[TCP_UPSTREAM_FLUSH_ACTIVE] += 1
                self.upstream_callbacks.flushing = True
                up.close(CLOSE_FLUSH_WRITE)
            else:
                up.close(CLOSE_NO_FLUSH if event == CONN_EVENT_LOCAL_CLOSE else CLOSE_FLUSH_WRITE)
        if self.upstream is not None and self.upstream.state == CONN_CLOSING:
            # Still flushing: the idle timeout bounds how long a peer that
            # stopped reading can hold it.
            if self.duration_timer is not None:
                self.duration_timer.disable()
                self.duration_timer = None
        else:
            self.disable_timers()
        return self.maybe_log()

    cdef int on_upstream_event(self, int event) except -1:
        cdef ConnectionImpl down = self.downstream
        if event == CONN_EVENT_CONNECTED:
            return 0
        self.upstream = None
        if self.upstream_callbacks is not None:
            self.upstream_callbacks.parent = None
        self.upstream_conn_data = None
        if down is not None and down.state == CONN_OPEN:
            down.close(CLOSE_FLUSH_WRITE)
        if self.downstream is None or self.downstream.state == CONN_CLOSED:
            self.disable_timers()
        return self.maybe_log()

    # Timers

    cdef int on_idle_timeout(self) except -1:
        cdef double latest = 0.0, idle
        cdef ConnectionImpl down = self.downstream
        if down is None and self.upstream is None:
            return 0
        # Activity only stamps last_activity; the timer checks it when it
        # fires, so busy connections never touch the timer heap.
        if down is not None:
            latest = down.last_activity
        if self.upstream is not None and self.upstream.last_activity > latest:
            latest = self.upstream.last_activity
        idle = self.dispatcher.now - latest
        if idle < self.config.idle_timeout:
            self.idle_timer.enable(self.config.idle_timeout - idle)
            return 0
        self.config.stats[TCP_IDLE_TIMEOUT] += 1
        self.stream_info.set_response_flag(RF_STREAM_IDLE_TIMEOUT)
        return self.close_both()

    cdef int on_max_downstream_connection_duration(self) except -1:
        if self.downstream is None and self.upstream is None:
            return 0
        self.config.stats[TCP_MAX_DOWNSTREAM_CONNECTION_DURATION] += 1
        self.stream_info.set_response_flag(RF_DURATION_TIMEOUT)
        return self.close_both()

    cdef int close_both(self) except -1:
        if self.upstream is not None:
            self.upstream.close(CLOSE_NO_FLUSH)
        if self.downstream is not None:
            self.downstream.close(CLOSE_NO_FLUSH)
        return 0

    cdef int maybe_log(self) except -1:
        """One access-log record when both connections are done (Envoy logs
        when the filter goes away)."""
        cdef object logger
        if self.config.access_loggers is None or self.logged or self.downstream is not None \
                or (self.upstream is not None and self.upstream.state != CONN_CLOSED):
            return 0
        self.logged = True
        fields = self.stream_info.log_fields(self.dispatcher.now)
        for logger in self.config.access_loggers:
            try:
                logger.log(fields)
            except Exception as exc:
                if self.dispatcher.error_log is not None:
                    self.dispatcher.error_log("access log: %r" % (exc,))
        return 0

    cdef void disable_timers(self):
        # Timers hold their context (this filter): drop them to cut the cycle.
        if self.idle_timer is not None:
            self.idle_timer.disable()
            self.idle_timer = None
        if self.duration_timer is not None:
            self.duration_timer.disable()
            self.duration_timer = None
