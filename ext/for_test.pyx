# Test-only handles on the event loop, connections and the network filter
# manager, so tests/ext/ can drive them with a Dispatcher and real sockets,
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
