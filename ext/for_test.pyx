# Test-only handles on the event loop, connections, the network filter
# manager and tcp_proxy, so tests/ext/ can drive them with a Dispatcher and real sockets,
# without a Worker. The data plane never uses them. Tests go through these
# classes rather than through the cdef APIs, so a change of those APIs
# (timers as callback plus context, say) is absorbed here.


# ---------------------------------------------------------------- Dispatcher

cdef int _fire_timer_for_test(object ctx) except -1:
    ctx()           # the callable itself is the context: no cycle through self
    return 0


@cython.final
cdef class TimerForTest:
    """A Dispatcher timer that calls `callback()` when it fires."""
    cdef Timer timer

    def __init__(self, Dispatcher dispatcher, callback):
        self.timer = Timer.new(dispatcher, _fire_timer_for_test, callback)

    def enable(self, double timeout_s):
        """Arm (or re-arm) to fire `timeout_s` after the loop's current time."""
        self.timer.enable(timeout_s)

    def enable_common(self, double timeout_s):
        """enable() through the duration queues (a shared, configured duration)."""
        self.timer.enable_common(timeout_s)

    def disable(self):
        self.timer.disable()

    @property
    def enabled(self):
        return self.timer.enabled()


def dispatcher_exit_for_test(Dispatcher d):
    """Make the running loop return after this turn."""
    d.exit_requested = True


def deferred_delete_for_test(Dispatcher d, obj):
    """Keep `obj` alive until the current loop turn ends."""
    d.deferred_delete(obj)


def handler_errors_for_test(Dispatcher d):
    return d.handler_errors


# ---------------------------------------------------------------- connections

cdef dict _EVENT_NAMES = {CONN_EVENT_REMOTE_CLOSE: "remote_close",
                          CONN_EVENT_LOCAL_CLOSE: "local_close",
                          CONN_EVENT_CONNECTED: "connected"}


@cython.final
cdef class _ConnectionCallbacksForTest(ConnectionCallbacks):
    cdef list events

    cdef int on_event(self, int event) except -1:
        self.events.append(_EVENT_NAMES[event])
        return 0

    cdef int on_above_write_buffer_high_watermark(self) except -1:
        self.events.append("above_high_watermark")
        return 0

    cdef int on_below_write_buffer_low_watermark(self) except -1:
        self.events.append("below_low_watermark")
        return 0


@cython.final
cdef class ReadFilterForTest(ReadFilter):
    """A network read filter that appends what it sees to `log`:
    (name, "new_connection") and (name, "data", bytes, end_stream). It
    returns FILTER_STOP_ITERATION where asked; `drain` consumes the data;
    `close_on_data` closes the connection (no flush) and returns CONTINUE."""
    cdef str name
    cdef list log
    cdef bint stop_on_new_connection
    cdef bint stop_on_data
    cdef bint drain
    cdef bint close_on_data

    def __init__(self, str name, list log, bint stop_on_new_connection=False,
                 bint stop_on_data=False, bint drain=False, bint close_on_data=False):
        self.name = name
        self.log = log
        self.stop_on_new_connection = stop_on_new_connection
        self.stop_on_data = stop_on_data
        self.drain = drain
        self.close_on_data = close_on_data

    def set_stop(self, bint on_new_connection, bint on_data):
        self.stop_on_new_connection = on_new_connection
        self.stop_on_data = on_data

    def continue_reading(self):
        """ReadFilterCallbacks.continueReading(): resume the chain after us."""
        self.read_callbacks.continue_reading(self)

    # ReadFilter

    cdef int on_new_connection(self) except -1:
        self.log.append((self.name, "new_connection"))
        return FILTER_STOP_ITERATION if self.stop_on_new_connection else FILTER_CONTINUE

    cdef int on_data(self, OwnedBuffer data, bint end_stream) except -1:
        self.log.append((self.name, "data", data.to_bytes(), bool(end_stream)))
        if self.drain:
            data.drain_all()
        if self.close_on_data:
            self.read_callbacks.connection.close(CLOSE_NO_FLUSH)
            return FILTER_CONTINUE
        return FILTER_STOP_ITERATION if self.stop_on_data else FILTER_CONTINUE


cdef dict _STATE_NAMES = {CONN_OPEN: "open", CONN_CLOSING: "closing", CONN_CLOSED: "closed"}


@cython.final
cdef class ConnectionForTest:
    """A ConnectionImpl on a Dispatcher: server side over an fd the test
    hands over (a socketpair end), or client side connecting to an address.
    `events` lists what its ConnectionCallbacks heard, in order."""
    cdef ConnectionImpl conn
    cdef _ConnectionCallbacksForTest callbacks
    cdef readonly list events

    def __init__(self):
        raise TypeError("use ConnectionForTest.server() or .client()")

    @staticmethod
    def server(Dispatcher dispatcher, int fd, filters=(), size_t buffer_limit=0):
        """Adopt `fd` (connected, non-blocking) as an accepted connection;
        its read filters are initialised, then it joins epoll (as listeners do)."""
        cdef ConnectionForTest t = ConnectionForTest.__new__(ConnectionForTest)
        t.init(ConnectionImpl.new_server(dispatcher, fd, buffer_limit), filters)
        t.conn.filter_manager.initialize_read_filters()
        t.conn.update_epoll()
        return t

    @staticmethod
    def client(Dispatcher dispatcher, str host, int port, filters=(), size_t buffer_limit=0):
        """Connect to host:port (IPv4); "connected" is heard from the loop."""
        cdef sockaddr_storage addr
        cdef socklen_t addr_len
        cdef ConnectionForTest t = ConnectionForTest.__new__(ConnectionForTest)
        _fill_sockaddr(&addr, &addr_len, host, port)
        t.init(ConnectionImpl.new_client(dispatcher, &addr, addr_len, buffer_limit), filters)
        t.conn.connect()
        return t

    cdef init(self, ConnectionImpl conn, filters):
        cdef ReadFilter f
        self.conn = conn
        self.events = []
        self.callbacks = _ConnectionCallbacksForTest.__new__(_ConnectionCallbacksForTest)
        self.callbacks.events = self.events
        conn.add_callbacks(self.callbacks)
        for f in filters:
            conn.filter_manager.add_read_filter(f)

    def write(self, bytes data, bint end_stream=False):
        """write(), then the end of the loop turn, where queued writes leave."""
        cdef OwnedBuffer b = OwnedBuffer.new()
        b.add(data, len(data))
        self.conn.write(b, end_stream)
        self.conn.dispatcher.exec_queued_writes()

    def close(self, bint flush=True):
        self.conn.close(CLOSE_FLUSH_WRITE if flush else CLOSE_NO_FLUSH)

    def read_disable(self, bint disable):
        self.conn.read_disable(disable)

    def set_half_close(self, bint enabled):
        self.conn.half_close = enabled

    @property
    def state(self):
        return _STATE_NAMES[self.conn.state]

    @property
    def write_buffer_length(self):
        return self.conn.unsent_bytes()

    @property
    def read_buffer_length(self):
        return self.conn.read_buffer.len

    @property
    def bytes_read(self):
        return self.conn.bytes_read

    @property
    def bytes_written(self):
        return self.conn.bytes_written


# ---------------------------------------------------------------- tcp_proxy

cdef FactoryContext context_for_test(Dispatcher dispatcher, plan, int64_t *stats_row):
    """A worker's factory context without the Worker: stats rows in the
    caller's block (laid out as the plan says) and a cluster manager holding
    the plan's clusters."""
    cdef FactoryContext context = FactoryContext.__new__(FactoryContext)
    context.dispatcher = dispatcher
    context.stats_row = stats_row
    context.shared_row = stats_row + <Py_ssize_t>plan.shared_row * <Py_ssize_t>plan.nstats
    context.cluster_manager = ClusterManagerImpl(context)
    for c in plan.clusters:
        context.cluster_manager.add_or_update_cluster(c)
    return context


@cython.final
cdef class TcpProxyForTest:
    """tcp_proxy without a Worker: a ClusterManagerImpl built from the
    cluster plans of `plan` (a plan_types.WorkerPlan: its clusters and stats
    geometry; its listeners are not built), a TcpProxyConfig from
    `tcp_proxy_plan` through the filter registry, stats written to worker
    row 0 of `stats_buffer` (a StatsStore's memory). `downstream(fd)` adopts
    an accepted socket as a listener does: a ConnectionImpl whose
    FilterManager runs one TcpProxyFilter."""
    cdef Dispatcher dispatcher
    cdef FactoryContext context
    cdef readonly ClusterManagerImpl cluster_manager
    cdef TcpProxyConfig config
    cdef int64_t[::1] stats_view
    cdef list filters                   # TcpProxyFilter, in downstream order
    cdef list downstreams               # ConnectionForTest, same order

    def __init__(self, Dispatcher dispatcher, plan, tcp_proxy_plan, stats_buffer):
        cdef NetworkFilterFactory factory
        if tcp_proxy_plan.access_log:
            # Access loggers belong to a Worker (its flush tick, reopen).
            raise ValueError("TcpProxyForTest: a plan with access_log needs a Worker")
        self.dispatcher = dispatcher
        self.stats_view = memoryview(stats_buffer).cast("B").cast("q")
        self.context = context_for_test(dispatcher, plan, &self.stats_view[0])
        self.cluster_manager = self.context.cluster_manager
        factory = self.context.network_filter_factory(tcp_proxy_plan)
        if type(factory) is not TcpProxyConfig:
            raise TypeError("TcpProxyForTest: %r is not a tcp_proxy plan" % (tcp_proxy_plan,))
        self.config = <TcpProxyConfig>factory
        self.filters = []
        self.downstreams = []

    def downstream(self, int fd, size_t buffer_limit=1 << 20):
        """Adopt `fd` (an accepted, non-blocking TCP socket) as a downstream
        connection of tcp_proxy, in a listener's order: callbacks, filter,
        on_new_connection, then epoll. Returns its ConnectionForTest."""
        cdef ConnectionForTest t = ConnectionForTest.__new__(ConnectionForTest)
        cdef ConnectionImpl conn = ConnectionImpl.new_server(self.dispatcher, fd, buffer_limit)
        t.init(conn, ())
        self.config.create_filter(conn.filter_manager, conn)
        self.filters.append(conn.filter_manager.read_filters[0])
        self.downstreams.append(t)
        conn.filter_manager.initialize_read_filters()
        conn.update_epoll()
        return t

    def stream_info(self, Py_ssize_t i):
        """What tcp_proxy recorded for downstream `i`: response_flags,
        upstream_host, upstream_cluster, upstream_request_attempt_count ..."""
        cdef TcpProxyFilter f = <TcpProxyFilter>self.filters[i]
        return f.stream_info.log_fields(self.dispatcher.now)

    def has_upstream(self, Py_ssize_t i):
        """Whether downstream `i`'s tcp_proxy holds an open upstream connection."""
        cdef TcpProxyFilter f = <TcpProxyFilter>self.filters[i]
        return f.upstream is not None and f.upstream.state == CONN_OPEN

    @property
    def live_connections(self):
        """Connections open on the dispatcher, downstream and upstream."""
        return self.dispatcher.live_connections

    def close(self):
        """Close every downstream connection still open (no flush)."""
        cdef ConnectionForTest t
        for t in self.downstreams:
            if t.conn.state != CONN_CLOSED:
                t.conn.close(CLOSE_NO_FLUSH)


# ---------------------------------------------------------------- HTTP/1 codec

cdef tuple _HTTP1_HEADER_ID_NAMES_FOR_TEST = (
    None, "host", "content-length", "transfer-encoding", "connection",
    "upgrade", "expect", "te", "x-forwarded-for", "x-forwarded-proto",
    "x-request-id", "keep-alive", "proxy-connection", "date", "server",
    "user-agent", "content-type", "x-envoy-original-path",
    "x-envoy-upstream-service-time", "x-envoy-expected-rq-timeout-ms")


@cython.final
cdef class HttpHeaderMapForTest:
    """An HttpHeaderMap loaded from a request head, edited through its cdef
    methods; encode() gives the header block as bytes."""
    cdef HttpHeaderMap map

    def __init__(self, head=None):
        cdef Http1RequestParser p
        cdef OwnedBuffer b
        self.map = HttpHeaderMap()
        if head is not None:
            p = Http1RequestParser()
            b = OwnedBuffer.new()
            b.append(head)
            if p.parse(b) != HTTP1_PARSE_DONE:
                raise ValueError("not a complete request head")
            self.map.load_request(p)

    def items(self):
        return self.map.items_for_test()

    def path(self):
        return self.map.buf[self.map.path_off:self.map.path_off + self.map.path_len]

    def add(self, bytes name, bytes value):
        self.map.add(name, len(name), value, len(value), HTTP1_HEADER_OTHER)

    def set_known(self, str name, bytes value):
        self.map.set_id(_HTTP1_HEADER_ID_NAMES_FOR_TEST.index(name), value, len(value))

    def get_known(self, str name):
        cdef int i = self.map.get(_HTTP1_HEADER_ID_NAMES_FOR_TEST.index(name))
        if i < 0:
            return None
        return self.map.value_at(i)[:self.map.entries[i].value_len]

    def find(self, bytes name):
        cdef int i = self.map.find(name, len(name))
        if i < 0:
            return None
        return self.map.value_at(i)[:self.map.entries[i].value_len]

    def remove(self, bytes name):
        return self.map.remove_name(name, len(name))

    def remove_known(self, str name):
        return self.map.remove_id(_HTTP1_HEADER_ID_NAMES_FOR_TEST.index(name))

    def append_value(self, bytes name, bytes value):
        cdef int i = self.map.find(name, len(name))
        self.map.append_value(i, value, len(value), b",", 1)

    def set_path(self, bytes path):
        self.map.set_path(path, len(path))

    def byte_size(self):
        return self.map.byte_size

    def encode(self, str first=None):
        cdef bytearray out = bytearray(self.map.headers_size())
        cdef char *p = out
        cdef char *end = self.map.write_headers(p, HTTP1_HEADER_OTHER if first is None
                                                else _HTTP1_HEADER_ID_NAMES_FOR_TEST.index(first))
        return bytes(out[:end - p])
