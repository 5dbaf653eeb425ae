# ConnectionImpl: one TCP connection, server (accepted) or client (connecting)
# side (Envoy source/common/network/connection_impl.h). It owns the fd and
# the buffers; bytes reach the wire only through its transport socket
# (network/transport_socket.pxd): RawBufferSocket by default.
#
# Contracts:
# * Reads: one transport do_read() per readable event into read_buffer
#   (level-triggered epoll reports the rest), then the filter manager's
#   on_read(). Reading stops
#   while read_disable_count > 0 (counted: N disables need N enables).
# * write(data, end_stream) moves `data` into write_buffer and queues the
#   connection on the Dispatcher: the buffer is written once, at the end of
#   the loop turn, so a reply built by several writes leaves in one writev
#   (a single write still costs one send). A write that takes the buffer
#   above its limit, and close(), write at once. What the socket does not
#   take waits for EPOLLOUT. Above the write buffer's
#   high watermark the callbacks hear on_above_write_buffer_high_watermark.
# * Half-close: with half_close enabled a read EOF is passed on as
#   end_stream; end_stream on write becomes shutdown(SHUT_WR) once the buffer
#   is flushed. The connection closes when both directions have ended.
# * close(CLOSE_FLUSH_WRITE) stops reading and closes once write_buffer is
#   flushed; close(CLOSE_NO_FLUSH) closes now. Callbacks hear LOCAL_CLOSE or
#   REMOTE_CLOSE exactly once, then every back-reference is cut.
# * Bytes the transport socket holds (pending_write_bytes: the splice pipe, a
#   TLS record) count as write buffer: close(CLOSE_FLUSH_WRITE) waits for them.

cdef enum ConnectionState:
    CONN_OPEN = 0
    CONN_CLOSING = 1        # flushing before close
    CONN_CLOSED = 2


cdef class ConnectionImpl(FileEventHandler):
    cdef int state
    cdef bint connecting
    cdef bint half_close
    cdef bint read_end_seen         # EOF read from the peer
    cdef bint write_end_pending     # end_stream written, shutdown after flush
    cdef bint write_end_sent        # shutdown(SHUT_WR) done
    cdef bint write_blocked         # waiting for EPOLLOUT
    cdef bint peer_closed           # the peer ended both directions
    cdef int read_disable_count
    cdef int connect_errno
    cdef size_t buffer_limit
    cdef size_t read_size           # bytes the next read asks for
    cdef OwnedBuffer read_buffer
    cdef OwnedBuffer write_buffer
    cdef FilterManager filter_manager
    cdef list callbacks             # ConnectionCallbacks
    cdef int64_t *rx_bytes_stat
    cdef int64_t *tx_bytes_stat
    cdef int64_t dummy_stat[2]
    cdef uint64_t connection_id
    cdef uint64_t bytes_read
    cdef uint64_t bytes_written
    cdef double last_activity
    cdef TransportSocket transport_socket
    cdef ConnectionImpl next_free   # Dispatcher's closed_connections / free_connections chain
    # addresses
    cdef sockaddr_storage remote_addr
    cdef socklen_t remote_addr_len
    cdef sockaddr_storage local_addr
    cdef socklen_t local_addr_len

    @staticmethod
    cdef ConnectionImpl new_server(Dispatcher dispatcher, int fd, size_t buffer_limit,
                                   bint nodelay_inherited=*)
    @staticmethod
    cdef ConnectionImpl new_client(Dispatcher dispatcher, const sockaddr_storage *addr,
                                   socklen_t addr_len, size_t buffer_limit)
    cdef void init_common(self, Dispatcher dispatcher, int fd, size_t buffer_limit, bint set_nodelay)
    cdef void recycle(self) noexcept
    cdef void add_callbacks(self, ConnectionCallbacks cb)
    cdef int raise_event(self, int event) except -1
    cdef void set_stats(self, int64_t *rx, int64_t *tx) noexcept
    cdef int update_epoll(self) except -1
    cdef int read_disable(self, bint disable) except -1
    cdef int write(self, OwnedBuffer data, bint end_stream) except -1
    cdef int flush_write_buffer(self) except -1
    cdef int on_queued_write(self) except -1
    cdef int on_read_ready(self) except -1
    cdef int on_read_eof(self) except -1
    cdef int on_write_ready(self) except -1
    cdef int on_connected(self, uint32_t events) except -1
    cdef int close(self, int close_type) except -1
    cdef int close_socket(self, int event) except -1
    cdef void release_closed(self) noexcept
    cdef int connect(self) except -1
    cdef int on_write_drained(self) except -1
    cdef void on_write_watermark(self, bint above) noexcept
    cdef inline size_t unsent_bytes(self) noexcept:
        # Bytes written to this connection, not yet on the wire.
        return self.write_buffer.len + self.transport_socket.pending_write_bytes
