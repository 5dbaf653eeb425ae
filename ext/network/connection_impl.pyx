# ConnectionImpl: the socket read/write loop (contracts in connection_impl.pxd).


cdef void _conn_write_watermark(object ctx, bint above) noexcept:
    (<ConnectionImpl>ctx).on_write_watermark(above)


cdef int _one = 1


cdef inline ConnectionImpl _conn_alloc(Dispatcher dispatcher):
    # A closed connection the Dispatcher kept (recycle()), else a new one.
    cdef ConnectionImpl c = dispatcher.take_free_connection()
    if c is None:
        c = ConnectionImpl.__new__(ConnectionImpl)
    return c


cdef class ConnectionImpl(FileEventHandler):

    def __init__(self):
        raise TypeError("ConnectionImpl is created by new_server()/new_client()")

    @staticmethod
    cdef ConnectionImpl new_server(Dispatcher dispatcher, int fd, size_t buffer_limit,
                                   bint nodelay_inherited=False):
        """`nodelay_inherited`: accepted from a listen socket that has
        TCP_NODELAY, which Linux copies to the accepted one."""
        cdef ConnectionImpl c = _conn_alloc(dispatcher)
        c.init_common(dispatcher, fd, buffer_limit, not nodelay_inherited)
        c.half_close = True
        return c

    @staticmethod
    cdef ConnectionImpl new_client(Dispatcher dispatcher, const sockaddr_storage *addr,
                                   socklen_t addr_len, size_t buffer_limit):
        cdef int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)
        cdef ConnectionImpl c
        if fd < 0:
            raise OSError(errno, "socket: " + strerror(errno).decode())
        c = _conn_alloc(dispatcher)
        c.init_common(dispatcher, fd, buffer_limit, True)
        c.half_close = True
        memcpy(&c.remote_addr, addr, addr_len)
        c.remote_addr_len = addr_len
        return c

    cdef void init_common(self, Dispatcher dispatcher, int fd, size_t buffer_limit, bint set_nodelay):
        # A recycled connection keeps its objects; recycle() reset the rest.
        self.dispatcher = dispatcher
        self.fd = fd
        if self.transport_socket is None:
            self.transport_socket = RawBufferSocket.new(self)
            self.read_buffer = OwnedBuffer.new()
            self.write_buffer = OwnedBuffer.new()
            self.filter_manager = FilterManager.__new__(FilterManager)
            self.callbacks = []
        else:
            self.transport_socket.callbacks = self
        self.buffer_limit = buffer_limit
        self.read_size = SLICE_SIZE
        self.write_buffer.set_watermarks(buffer_limit, _conn_write_watermark, self)
        self.filter_manager.connection = self
        self.rx_bytes_stat = &self.dummy_stat[0]
        self.tx_bytes_stat = &self.dummy_stat[1]
        self.last_activity = dispatcher.now
        dispatcher.live_connections += 1
        dispatcher.next_connection_id += 1
        self.connection_id = dispatcher.next_connection_id
        # Small request/response traffic: never wait for Nagle.
        if set_nodelay:
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &_one, sizeof(int))  # void

    def __dealloc__(self):
        if self.fd >= 0:
            close(self.fd)

    cdef void recycle(self) noexcept:
        """Back to a new connection's state, for the Dispatcher's free list:
        called once the connection is closed and nothing holds it (the
        buffers are empty, the transport socket let go of its pipe, the
        filter manager and the callbacks were cleared on close). What
        init_common() sets is left to it."""
        cdef RawBufferSocket ts
        if self.state != CONN_CLOSED or self.fd >= 0 or self.kernel_mask or self.dirty \
                or self.write_queued or type(self.transport_socket) is not RawBufferSocket \
                or self.callbacks or self.filter_manager.connection is not None:
            return                      # not a plain closed connection: let it go
        ts = <RawBufferSocket>self.transport_socket
        if ts.pipe_r >= 0 or ts.splice_target is not None or ts.splice_peer is not None:
            return
        ts.last_read = 0
        ts.pipe_cap = 0
        ts.pipe_above_high = False
        ts.pending_write_bytes = 0
        self.read_buffer.drain_all()
        self.write_buffer.drain_all()
        self.write_buffer.above_high = False
        self.epoll_mask = 0
        self.state = CONN_OPEN
        self.connecting = False
        self.half_close = False
        self.read_end_seen = False
        self.write_end_pending = False
        self.write_end_sent = False
        self.write_blocked = False
        self.peer_closed = False
        self.read_disable_count = 0
        self.connect_errno = 0
        self.dummy_stat[0] = self.dummy_stat[1] = 0
        self.bytes_read = 0
        self.bytes_written = 0
        self.remote_addr_len = 0
        self.local_addr_len = 0
        self.next_free = self.dispatcher.free_connections
        self.dispatcher.free_connections = self
        self.dispatcher.free_connections_len += 1

    cdef void add_callbacks(self, ConnectionCallbacks cb):
        self.callbacks.append(cb)

    cdef int raise_event(self, int event) except -1:
        cdef ConnectionCallbacks cb
        for cb in list(self.callbacks):
            cb.on_event(event)
        return 0

    cdef void set_stats(self, int64_t *rx, int64_t *tx) noexcept:
        self.rx_bytes_stat = rx
        self.tx_bytes_stat = tx

    cdef int update_epoll(self) except -1:
        cdef uint32_t mask = 0
        if self.state == CONN_CLOSED:
            return 0
        if self.connecting or self.write_blocked:
            mask |= EPOLLOUT
        if self.state == CONN_OPEN and self.read_disable_count == 0 and not self.read_end_seen:
            mask |= EPOLLIN
        if mask == 0:
            # Not reading, nothing to write: still hear a reset (EPOLLERR), as
            # Envoy's early-close detection does. Edge-triggered, so a peer
            # FIN we are not ready to read does not wake the loop again.
            mask = EPOLLRDHUP | EPOLLET
        return self.set_epoll_mask(mask)

    cdef int read_disable(self, bint disable) except -1:
        if self.state == CONN_CLOSED:
            return 0
        if disable:
            self.read_disable_count += 1
            if self.read_disable_count == 1:
                self.update_epoll()
        elif self.read_disable_count > 0:
            self.read_disable_count -= 1
            if self.read_disable_count == 0:
                self.update_epoll()
        return 0

    cdef void on_write_watermark(self, bint above) noexcept:
        cdef ConnectionCallbacks cb
        cdef Py_ssize_t i
        # By index, no copy: this can run once per event under back-pressure.
        try:
            for i in range(len(self.callbacks)):
                if i >= len(self.callbacks):
                    break
                cb = <ConnectionCallbacks>self.callbacks[i]
                if above:
                    cb.on_above_write_buffer_high_watermark()
                else:
                    cb.on_below_write_buffer_low_watermark()
        except BaseException as exc:
            self.dispatcher.handler_errors += 1
            if self.dispatcher.error_log is not None:
                self.dispatcher.error_log("watermark callback error: %r" % (exc,))

    # FileEventHandler

    cdef int on_file_event(self, uint32_t events) except -1:
        if self.connecting:
            return self.on_connected(events)
        if (events & EPOLLOUT) or ((events & (EPOLLERR | EPOLLHUP)) and self.write_blocked):
            self.on_write_ready()
            if self.state == CONN_CLOSED:
                return 0
        elif (events & EPOLLERR) and not (self.epoll_mask & EPOLLIN):
            # Reset while we were not reading (back-pressure, half-closed, or
            # waiting for the upstream): its unread bytes are gone anyway.
            return self.close_socket(CONN_EVENT_REMOTE_CLOSE)
        if events & (EPOLLIN | EPOLLHUP | EPOLLERR):
            if self.state == CONN_OPEN and self.read_disable_count == 0 and not self.read_end_seen:
                self.on_read_ready()
        return 0

    cdef void on_handler_error(self, object exc) noexcept:
        try:
            self.close_socket(CONN_EVENT_LOCAL_CLOSE)
        except BaseException:
            self.unregister()

    # Reading

    cdef int on_read_ready(self) except -1:
        cdef IoResult result
        cdef size_t max_bytes = self.read_size
        cdef size_t room
        if self.buffer_limit:
            room = self.buffer_limit - self.read_buffer.len if self.buffer_limit > self.read_buffer.len else 0
            if room < SLICE_SIZE:
                room = SLICE_SIZE
            if room < max_bytes:
                max_bytes = room
        self.transport_socket.do_read(self.read_buffer, max_bytes, &result)
        if result.bytes_processed:
            # Read one slice at a time (a plain recv()) until a read fills
            # what was asked: then the peer is sending bulk, ask for more.
            self.read_size = READ_MAX_BYTES if result.bytes_processed >= max_bytes else SLICE_SIZE
            self.bytes_read += result.bytes_processed
            self.rx_bytes_stat[0] += <int64_t>result.bytes_processed
            self.last_activity = self.dispatcher.now
            if self.read_buffer.len:        # (spliced bytes went past it)
                self.filter_manager.on_read()
        if result.end_stream_read:
            return self.on_read_eof()
        if result.action == IO_CLOSE:
            return self.close_socket(CONN_EVENT_REMOTE_CLOSE)
        return 0

    cdef int on_read_eof(self) except -1:
        self.read_end_seen = True
        if not self.half_close:
            return self.close_socket(CONN_EVENT_REMOTE_CLOSE)
        if self.write_end_sent:
            # The peer has now ended both directions: however the close
            # happens from here (a filter may close us while passing the EOF
            # on), it is the peer's close, as Envoy reports it.
            self.peer_closed = True
        self.update_epoll()
        self.filter_manager.on_read()
        if self.state != CONN_CLOSED and self.write_end_sent:
            return self.close_socket(CONN_EVENT_REMOTE_CLOSE)
        return 0

    # Writing

    cdef int write(self, OwnedBuffer data, bint end_stream) except -1:
        if self.state != CONN_OPEN or self.write_end_pending:
            data.drain_all()
            return 0
        if self.filter_manager.write_filters is not None:
            if self.filter_manager.on_write(data, end_stream) == FILTER_STOP_ITERATION:
                return 0
        if data.len:
            self.write_buffer.move(data)
        if end_stream:
            self.write_end_pending = True
        if self.connecting or self.write_blocked:
            return 0                    # on_connected() / EPOLLOUT flush it
        if self.buffer_limit and self.write_buffer.len > self.buffer_limit:
            # Above the high watermark: no point holding it (uvloop's fast path).
            return self.flush_write_buffer()
        if not self.write_queued:
            self.write_queued = True
            self.dispatcher.queue_write(self)
        return 0

    cdef int on_queued_write(self) except -1:
        # End of the loop turn: everything written in it goes out together.
        if self.state == CONN_CLOSED or self.connecting or self.write_blocked:
            return 0
        return self.flush_write_buffer()

    cdef int flush_write_buffer(self) except -1:
        cdef IoResult result
        self.write_queued = False       # a queued flush has nothing left to do
        self.transport_socket.do_write(self.write_buffer, &result)
        if result.bytes_processed:
            self.bytes_written += result.bytes_processed
            self.tx_bytes_stat[0] += <int64_t>result.bytes_processed
            self.last_activity = self.dispatcher.now
        if result.action == IO_CLOSE:
            return self.close_socket(CONN_EVENT_REMOTE_CLOSE)
        if self.state == CONN_CLOSED:
            return 0
        if self.write_buffer.len or self.transport_socket.pending_write_bytes:
            if not self.write_blocked:
                self.write_blocked = True
                self.update_epoll()
            return 0
        return self.on_write_drained()

    cdef int on_write_drained(self) except -1:
        """Everything written: stop watching EPOLLOUT, send a pending EOF, finish a flush-close."""
        if self.write_blocked:
            self.write_blocked = False
            self.update_epoll()
        if self.write_end_pending and not self.write_end_sent:
            self.write_end_sent = True
            if self.read_end_seen:
                # Both directions done: close() sends the FIN, no shutdown().
                return self.close_socket(CONN_EVENT_LOCAL_CLOSE)
            shutdown(self.fd, SHUT_WR)  # void
        if self.state == CONN_CLOSING:
            return self.close_socket(CONN_EVENT_LOCAL_CLOSE)
        return 0

    cdef int on_write_ready(self) except -1:
        return self.flush_write_buffer()

    # Connecting (client side)

    cdef int connect(self) except -1:
        cdef int r = connect(self.fd, <sockaddr*>&self.remote_addr, self.remote_addr_len)
        if r < 0 and errno != EINPROGRESS:
            # Reported from the event loop, never from inside the caller.
            self.connect_errno = errno
        self.connecting = True
        return self.update_epoll()

    cdef int on_connected(self, uint32_t events) except -1:
        cdef int err = 0
        cdef socklen_t len = sizeof(int)
        if self.connect_errno == 0 and (events & (EPOLLERR | EPOLLHUP)):
            # Plain EPOLLOUT means connected; only an error event needs SO_ERROR.
            getsockopt(self.fd, SOL_SOCKET, SO_ERROR, &err, &len)  # void
            self.connect_errno = err if err else ECONNREFUSED
        if self.connect_errno:
            return self.close_socket(CONN_EVENT_REMOTE_CLOSE)
        self.connecting = False
        self.last_activity = self.dispatcher.now
        self.update_epoll()
        self.transport_socket.on_connected()
        if self.state == CONN_CLOSED:
            return 0
        self.raise_event(CONN_EVENT_CONNECTED)
        if self.state != CONN_CLOSED and not self.write_blocked and (self.write_buffer.len or self.write_end_pending):
            self.flush_write_buffer()
        return 0

    # Closing

    cdef int close(self, int close_type) except -1:
        if self.state == CONN_CLOSED:
            return 0
        if self.write_queued and not self.write_blocked and not self.connecting:
            # What was written in this turn goes out first, as if written at
            # once: NO_FLUSH drops only what the socket would not take.
            self.flush_write_buffer()
            if self.state == CONN_CLOSED:
                return 0
        if close_type == CLOSE_FLUSH_WRITE and not self.connecting and \
                (self.write_buffer.len or self.transport_socket.pending_write_bytes):
            if self.state == CONN_OPEN:
                self.state = CONN_CLOSING
                self.update_epoll()
            return 0
        return self.close_socket(CONN_EVENT_LOCAL_CLOSE)

    cdef int close_socket(self, int event) except -1:
        cdef list cbs
        if self.state == CONN_CLOSED:
            return 0
        if self.peer_closed:
            event = CONN_EVENT_REMOTE_CLOSE
        self.state = CONN_CLOSED
        self.unregister(True)
        self.transport_socket.close_socket(event)
        self.read_buffer.drain_all()
        self.write_buffer.drain_all()
        self.write_buffer.watermark_ctx = None
        self.dispatcher.live_connections -= 1
        # Kept until the batch ends (then recycled if nothing holds it).
        self.next_free = self.dispatcher.closed_connections
        self.dispatcher.closed_connections = self
        # Callbacks and filters may be running below us on the stack: the
        # lists keep them until the batch ends (release_closed).
        cbs = self.callbacks
        try:
            for cb in cbs:
                (<ConnectionCallbacks>cb).on_event(event)
        finally:
            self.filter_manager.clear()
        return 0

    cdef void release_closed(self) noexcept:
        """At the end of the batch that closed this connection: let go of
        its callbacks and filters (the lists stay, for recycle())."""
        ef_list_clear(self.callbacks)
        self.filter_manager.release_filters()
    # Python API for tests (write path and close semantics through a real
    # socket); never on the data path.

    @staticmethod
    def new_server_for_test(Dispatcher dispatcher, int fd, size_t buffer_limit=0):
        """A server-side connection over `fd` (non-blocking), which it then
        owns; it does not read (no filters), it only writes."""
        cdef ConnectionImpl c = ConnectionImpl.new_server(dispatcher, fd, buffer_limit)
        c.read_disable(True)
        return c

    def write_for_test(self, data, bint end_stream=False):
        cdef OwnedBuffer b = OwnedBuffer.new()
        b.append(data)
        self.write(b, end_stream)

    def close_for_test(self, bint flush):
        self.close(CLOSE_FLUSH_WRITE if flush else CLOSE_NO_FLUSH)

    def state_for_test(self):
        """(state, bytes in write_buffer, bytes written)."""
        return self.state, self.write_buffer.len, self.bytes_written
