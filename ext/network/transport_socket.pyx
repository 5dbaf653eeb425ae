# TransportSocket: the interface's defaults (contracts in transport_socket.pxd).


cdef class TransportSocket:

    cdef int do_read(self, OwnedBuffer buffer, size_t max_bytes, IoResult *result) except -1:
        result.action = IO_CLOSE
        result.bytes_processed = 0
        result.end_stream_read = False
        return 0

    cdef int do_write(self, OwnedBuffer buffer, IoResult *result) except -1:
        result.action = IO_CLOSE
        result.bytes_processed = 0
        result.end_stream_read = False
        return 0

    cdef int on_connected(self) except -1:
        return 0

    cdef void close_socket(self, int event) noexcept:
        self.callbacks = None
