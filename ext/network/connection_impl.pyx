# ConnectionImpl: the socket read/write loop (contracts in connection_impl.pxd).


cdef void _conn_write_watermark(object ctx, bint above) noexcept:
    (<ConnectionImpl>ctx).on_write_watermark(above)


cdef int _one = 1


cdef class ConnectionImpl(FileEventHandler):

    def __init__(self):
        raise TypeError("ConnectionImpl is created by new_server()/new_client()")

    @staticmethod
    cdef ConnectionImpl new_server(Dispatcher dispatcher, int fd, size_t buffer_limit):
        cdef ConnectionImpl c = ConnectionImpl.__new__(ConnectionImpl)
        c.init_common(dispatcher, fd, buffer_limit)
        c.half_close = True
        return c

    @staticmethod
    cdef ConnectionImpl new_client(Dispatcher dispatcher, const sockaddr_storage *addr,
                                   socklen_t addr_len, size_t buffer_limit):
        cdef int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)
        cdef ConnectionImpl c
        if fd < 0:
            raise OSError(errno, "socket: " + strerror(errno).decode())
        c = ConnectionImpl.__new__(ConnectionImpl)
        c.init_common(dispatcher, fd, buffer_limit)
        c.is_client = True
        c.half_close = True
        memcpy(&c.remote_addr, addr, addr_len)
        c.remote_addr_len = addr_len
        return c

    cdef void init_common(self, Dispatcher dispatcher, int fd, size_t buffer_limit):
        self.dispatcher = dispatcher
        self.fd = fd
        self.pipe_r = -1
        self.pipe_w = -1
        self.buffer_limit = buffer_limit
        self.read_size = SLICE_SIZE
        self.read_buffer = OwnedBuffer.new()
        self.write_buffer = OwnedBuffer.new()
        self.write_buffer.set_watermarks(buffer_limit, _conn_write_watermark, self)
        self.filter_manager = FilterManager.__new__(FilterManager)
        self.filter_manager.connection = self
        self.callbacks = []
        self.rx_bytes_stat = &self.dummy_stat[0]
        self.tx_bytes_stat = &self.dummy_stat[1]
        self.last_activity = dispatcher.now
        dispatcher.live_connections += 1
        dispatcher.next_connection_id += 1
        self.connection_id = dispatcher.next_connection_id
        # Small request/response traffic: never wait for Nagle.
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &_one, sizeof(int))  # void

    def __dealloc__(self):
        if self.fd >= 0:
            close(self.fd)
        if self.pipe_r >= 0:
            close(self.pipe_r)
            close(self.pipe_w)

    cdef void add_callbacks(self, ConnectionCallbacks cb):
        self.callbacks.append(cb)

    cdef void remove_callbacks(self, ConnectionCallbacks cb):
        try:
            self.callbacks.remove(cb)
        except ValueError:
            pass

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
        cdef iovec iov[MAX_IOV]
        cdef size_t max_bytes = self.read_size
        cdef size_t room
        cdef int n
        cdef ssize_t r
        if self.splice_peer is not None:
            return self.splice_read()
        if self.buffer_limit:
            room = self.buffer_limit - self.read_buffer.len if self.buffer_limit > self.read_buffer.len else 0
            if room < SLICE_SIZE:
                room = SLICE_SIZE
            if room < max_bytes:
                max_bytes = room
        n = self.read_buffer.reserve_for_read(iov, max_bytes)
        if n == 1:
            # recv() skips the iovec import of readv(): cheaper per small read.
            r = recv(self.fd, iov[0].iov_base, iov[0].iov_len, 0)
        else:
            r = readv(self.fd, iov, n)
        if r > 0:
            self.read_buffer.commit(<size_t>r)
            # Read one slice at a time (a plain recv()) until a read fills
            # what was asked: then the peer is sending bulk, ask for more.
            self.read_size = READ_MAX_BYTES if <size_t>r >= max_bytes else SLICE_SIZE
            self.bytes_read += <uint64_t>r
            self.rx_bytes_stat[0] += r
            self.last_activity = self.dispatcher.now
            self.filter_manager.on_read()
            if r >= SPLICE_THRESHOLD and self.splice_target is not None and self.state == CONN_OPEN:
                self.maybe_start_splice()
            return 0
        self.read_buffer.commit(0)
        if r == 0:
            return self.on_read_eof()
        if errno == EAGAIN or errno == EINTR:
            return 0
        return self.close_socket(CONN_EVENT_REMOTE_CLOSE)

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
        cdef iovec iov[MAX_IOV]
        cdef int n, i
        cdef size_t total
        cdef ssize_t r
        self.write_queued = False       # a queued flush has nothing left to do
        while self.write_buffer.len:
            n = self.write_buffer.fill_iovec(iov, MAX_IOV)
            total = 0
            for i in range(n):
                total += iov[i].iov_len
            if n == 1:
                r = send(self.fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL)
            else:
                r = writev(self.fd, iov, n)
            if r < 0:
                if errno == EINTR:
                    continue
                if errno == EAGAIN:
                    break
                # EPIPE / ECONNRESET: the peer is gone.
                return self.close_socket(CONN_EVENT_REMOTE_CLOSE)
            self.write_buffer.drain(<size_t>r)
            self.bytes_written += <uint64_t>r
            self.tx_bytes_stat[0] += r
            self.last_activity = self.dispatcher.now
            if <size_t>r < total:
                # A short writev means the socket buffer is full: wait for
                # EPOLLOUT rather than try again into a certain EAGAIN.
                break
        if self.state == CONN_CLOSED:
            return 0
        if self.write_buffer.len:
            if not self.write_blocked:
                self.write_blocked = True
                self.update_epoll()
            return 0
        if self.pipe_bytes:
            return self.splice_flush()
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
        if self.write_buffer.len:
            return self.flush_write_buffer()
        if self.pipe_bytes:
            return self.splice_flush()
        return self.on_write_drained()

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
                (self.write_buffer.len or self.pipe_bytes):
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
        if self.pipe_r >= 0:
            close(self.pipe_r)
            close(self.pipe_w)
            self.pipe_r = self.pipe_w = -1
            self.pipe_bytes = 0
        self.read_buffer.drain_all()
        self.write_buffer.drain_all()
        self.write_buffer.watermark_ctx = None
        self.dispatcher.live_connections -= 1
        self.dispatcher.deferred.append(self)
        cbs = self.callbacks
        # Callbacks may be running below us on the stack: free them later.
        self.dispatcher.deferred.append(cbs)
        try:
            for cb in cbs:
                (<ConnectionCallbacks>cb).on_event(event)
        finally:
            self.callbacks = []
            self.filter_manager.clear()
            self.splice_peer = None
            self.splice_target = None
            self.pool_client = None
        return 0

    # splice(): kernel-side copy for tcp_proxy bulk transfers

    cdef int maybe_start_splice(self) except -1:
        cdef ConnectionImpl dest = self.splice_target
        cdef int fds[2]
        if dest.write_queued and dest.state == CONN_OPEN and not dest.write_blocked \
                and not dest.connecting:
            dest.flush_write_buffer()   # this read's bytes: written before the switch
        if dest.state != CONN_OPEN or dest.write_buffer.len or dest.write_end_pending \
                or self.read_buffer.len:
            return 0      # keep byte order: only switch with nothing in flight
        if dest.pipe_r < 0:
            if pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0:
                self.splice_target = None       # no pipes left: stay buffered
                return 0
            dest.pipe_r = fds[0]
            dest.pipe_w = fds[1]
            fcntl(fds[1], F_SETPIPE_SZ, <int>SPLICE_PIPE_SIZE)  # void: best effort
            dest.pipe_cap = <size_t>fcntl(fds[1], F_GETPIPE_SZ)
        self.splice_peer = dest
        return 0

    cdef int splice_read(self) except -1:
        cdef ConnectionImpl dest = self.splice_peer
        cdef size_t room, cap
        cdef ssize_t r
        if dest.state != CONN_OPEN or dest.pipe_w < 0:
            self.splice_peer = None
            self.splice_target = None
            return self.on_read_ready()
        # The pipe is dest's write buffer: it holds no more than dest's
        # per_connection_buffer_limit_bytes either.
        cap = dest.pipe_cap
        if dest.buffer_limit and dest.buffer_limit < cap:
            cap = dest.buffer_limit
        if dest.pipe_bytes >= cap:
            return 0
        room = cap - dest.pipe_bytes
        r = splice(self.fd, NULL, dest.pipe_w, NULL, room, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
        if r > 0:
            dest.pipe_bytes += <size_t>r
            self.bytes_read += <uint64_t>r
            self.rx_bytes_stat[0] += r
            self.last_activity = self.dispatcher.now
            if not dest.write_blocked:
                dest.splice_flush()
            return 0
        if r == 0:
            return self.on_read_eof()
        if errno == EAGAIN or errno == EINTR:
            return 0
        return self.close_socket(CONN_EVENT_REMOTE_CLOSE)

    cdef int splice_flush(self) except -1:
        cdef ssize_t w
        while self.pipe_bytes:
            w = splice(self.pipe_r, NULL, self.fd, NULL, self.pipe_bytes,
                       SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
            if w < 0:
                if errno == EINTR:
                    continue
                if errno == EAGAIN:
                    if not self.write_blocked:
                        self.write_blocked = True
                        self.update_epoll()
                    if not self.pipe_above_high:
                        # A pipe the socket does not drain is a full write
                        # buffer: the source must stop reading.
                        self.pipe_above_high = True
                        self.on_write_watermark(True)
                    return 0
                return self.close_socket(CONN_EVENT_REMOTE_CLOSE)
            self.pipe_bytes -= <size_t>w
            self.bytes_written += <uint64_t>w
            self.tx_bytes_stat[0] += w
            self.last_activity = self.dispatcher.now
        if self.pipe_above_high:
            self.pipe_above_high = False
            self.on_write_watermark(False)
        if self.state == CONN_CLOSED:
            return 0
        return self.on_write_drained()

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
