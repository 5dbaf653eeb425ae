# RawBufferSocket (contracts in raw_buffer.pxd).


cdef int enable_splice(ConnectionImpl a, ConnectionImpl b) except -1:
    """Let bulk transfers between `a` and `b` bypass user space, when both are
    raw sockets; returns 1 when enabled."""
    if type(a.transport_socket) is not RawBufferSocket or \
            type(b.transport_socket) is not RawBufferSocket:
        return 0
    (<RawBufferSocket>a.transport_socket).splice_target = <RawBufferSocket>b.transport_socket
    (<RawBufferSocket>b.transport_socket).splice_target = <RawBufferSocket>a.transport_socket
    return 1


@cython.final
cdef class RawBufferSocket(TransportSocket):

    @staticmethod
    cdef RawBufferSocket new(ConnectionImpl connection):
        cdef RawBufferSocket s = RawBufferSocket.__new__(RawBufferSocket)
        s.callbacks = connection
        s.pipe_r = -1
        s.pipe_w = -1
        return s

    def __dealloc__(self):
        if self.pipe_r >= 0:
            close(self.pipe_r)
            close(self.pipe_w)

    cdef int do_read(self, OwnedBuffer buffer, size_t max_bytes, IoResult *result) except -1:
        cdef iovec iov[MAX_IOV]
        cdef int n
        cdef ssize_t r
        cdef ConnectionImpl dest
        result.action = IO_KEEP_OPEN
        result.bytes_processed = 0
        result.end_stream_read = False
        if self.callbacks is None:
            return 0
        if self.splice_target is not None:
            if self.splice_peer is None and self.last_read >= SPLICE_THRESHOLD:
                self.maybe_start_splice(buffer)
            if self.splice_peer is not None:
                dest = self.splice_peer.callbacks
                if dest is not None and dest.state == CONN_OPEN and self.splice_peer.pipe_w >= 0:
                    return self.splice_read(result)
                self.splice_peer = None         # the peer went: stay buffered
                self.splice_target = None
        n = buffer.reserve_for_read(iov, max_bytes)
        if n == 1:
            # recv() skips the iovec import of readv(): cheaper per small read.
            r = recv(self.callbacks.fd, iov[0].iov_base, iov[0].iov_len, 0)
        else:
            r = readv(self.callbacks.fd, iov, n)
        if r > 0:
            buffer.commit(<size_t>r)
            self.last_read = <size_t>r
            result.bytes_processed = <size_t>r
            return 0
        buffer.commit(0)
        if r == 0:
            result.end_stream_read = True
        elif errno != EAGAIN and errno != EINTR:
            result.action = IO_CLOSE
        return 0

    cdef int do_write(self, OwnedBuffer buffer, IoResult *result) except -1:
        cdef iovec iov[MAX_IOV]
        cdef int n, i
        cdef size_t total
        cdef ssize_t r
        cdef int fd
        result.action = IO_KEEP_OPEN
        result.bytes_processed = 0
        result.end_stream_read = False
        if self.callbacks is None:
            return 0
        fd = self.callbacks.fd
        while buffer.len:
            n = buffer.fill_iovec(iov, MAX_IOV)
            total = 0
            for i in range(n):
                total += iov[i].iov_len
            if n == 1:
                r = send(fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL)
            else:
                r = writev(fd, iov, n)
            if r < 0:
                if errno == EINTR:
                    continue
                if errno == EAGAIN:
                    return 0
                # EPIPE / ECONNRESET: the peer is gone.
                result.action = IO_CLOSE
                return 0
            buffer.drain(<size_t>r)
            result.bytes_processed += <size_t>r
            if <size_t>r < total:
                # A short writev means the socket buffer is full: wait for
                # EPOLLOUT rather than try again into a certain EAGAIN.
                return 0
        if self.pending_write_bytes:
            return self.splice_flush(result)
        return 0

    cdef void close_socket(self, int event) noexcept:
        if self.pipe_r >= 0:
            close(self.pipe_r)
            close(self.pipe_w)
            self.pipe_r = self.pipe_w = -1
            self.pending_write_bytes = 0
        self.splice_peer = None
        self.splice_target = None
        self.callbacks = None

    # splice(): kernel-side copy for bulk transfers

    cdef int maybe_start_splice(self, OwnedBuffer buffer) except -1:
        cdef RawBufferSocket dest = self.splice_target
        cdef ConnectionImpl conn = dest.callbacks
        cdef int fds[2]
        if conn is not None and conn.write_queued and conn.state == CONN_OPEN \
                and not conn.write_blocked and not conn.connecting:
            conn.flush_write_buffer()   # bytes queued this turn go before the switch
        if conn is None or conn.state != CONN_OPEN or conn.write_buffer.len \
                or conn.write_end_pending or buffer.len:
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

    cdef int splice_read(self, IoResult *result) except -1:
        cdef RawBufferSocket dest = self.splice_peer
        cdef ConnectionImpl conn = dest.callbacks
        cdef size_t room, cap
        cdef ssize_t r
        # The pipe is dest's write buffer: it holds no more than dest's
        # per_connection_buffer_limit_bytes either.
        cap = dest.pipe_cap
        if conn.buffer_limit and conn.buffer_limit < cap:
            cap = conn.buffer_limit
        if dest.pending_write_bytes >= cap:
            return 0
        room = cap - dest.pending_write_bytes
        r = splice(self.callbacks.fd, NULL, dest.pipe_w, NULL, room,
                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
        if r > 0:
            dest.pending_write_bytes += <size_t>r
            result.bytes_processed = <size_t>r
            if not conn.write_blocked:
                conn.flush_write_buffer()
            return 0
        if r == 0:
            result.end_stream_read = True
        elif errno != EAGAIN and errno != EINTR:
            result.action = IO_CLOSE
        return 0

    cdef int splice_flush(self, IoResult *result) except -1:
        cdef ssize_t w
        while self.pending_write_bytes:
            w = splice(self.pipe_r, NULL, self.callbacks.fd, NULL, self.pending_write_bytes,
                       SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
            if w < 0:
                if errno == EINTR:
                    continue
                if errno == EAGAIN:
                    if not self.pipe_above_high:
                        # A pipe the socket does not drain is a full write
                        # buffer: the source must stop reading.
                        self.pipe_above_high = True
                        self.callbacks.on_write_watermark(True)
                    return 0
                result.action = IO_CLOSE
                return 0
            self.pending_write_bytes -= <size_t>w
            result.bytes_processed += <size_t>w
        if self.pipe_above_high:
            self.pipe_above_high = False
            self.callbacks.on_write_watermark(False)
        return 0
