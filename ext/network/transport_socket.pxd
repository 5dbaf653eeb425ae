# Transport socket interface (Envoy envoy/network/transport_socket.h).
#
# A ConnectionImpl owns its fd and its buffers; it moves bytes between them
# and the wire only through its transport socket: plain bytes today
# (RawBufferSocket), TLS later. The connection is the socket's
# TransportSocketCallbacks (`callbacks`).
#
# Contracts:
# * do_read(buffer, max_bytes, &result): read at most about max_bytes into
#   buffer (or past it: splice); result.bytes_processed counts what was read,
#   end_stream_read is set on EOF, action IO_CLOSE on an error.
# * do_write(buffer, &result): write what the socket takes from buffer, then
#   anything the transport holds itself (pending_write_bytes); a blocked
#   write is not an error: the connection sees bytes left and waits for
#   EPOLLOUT.
# * pending_write_bytes: bytes taken from the connection, not yet on the wire
#   (a TLS record, the splice pipe): they count as write buffer for
#   flush-close and back-pressure.
# * close_socket(event): the connection is closing; free what the transport
#   holds and drop `callbacks`. The fd is the connection's to close.

cdef enum PostIoAction:
    IO_KEEP_OPEN = 0
    IO_CLOSE = 1

ctypedef struct IoResult:
    int action                  # PostIoAction
    size_t bytes_processed
    bint end_stream_read


cdef class TransportSocket:
    cdef ConnectionImpl callbacks       # the connection (TransportSocketCallbacks)
    cdef size_t pending_write_bytes

    cdef int do_read(self, OwnedBuffer buffer, size_t max_bytes, IoResult *result) except -1
    cdef int do_write(self, OwnedBuffer buffer, IoResult *result) except -1
    cdef int on_connected(self) except -1
    cdef void close_socket(self, int event) noexcept
