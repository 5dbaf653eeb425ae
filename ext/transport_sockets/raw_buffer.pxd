# RawBufferSocket: plain bytes between a connection's buffers and its fd
# (Envoy source/common/network/raw_buffer_socket.h), with a splice() mode.
#
# Splice mode (enable_splice(a, b), one call, made by tcp_proxy when it is
# the only filter to see the bytes): once a read fills READ_MAX_BYTES, this
# socket's reads move bytes kernel-side through a pipe into the peer's
# socket, bypassing both buffers and the filter chain. The pipe belongs to
# the destination: it is that socket's pending_write_bytes, and a pipe the
# socket does not drain raises the destination's high watermark like its
# write buffer.

@cython.final
cdef class RawBufferSocket(TransportSocket):
    cdef RawBufferSocket splice_target  # peer we may splice into
    cdef RawBufferSocket splice_peer    # peer we are splicing into
    cdef size_t last_read               # bytes of the last buffered read
    cdef int pipe_r
    cdef int pipe_w
    cdef size_t pipe_cap
    cdef bint pipe_above_high

    @staticmethod
    cdef RawBufferSocket new(ConnectionImpl connection)
    cdef int maybe_start_splice(self, OwnedBuffer buffer) except -1
    cdef int splice_read(self, IoResult *result) except -1
    cdef int splice_flush(self, IoResult *result) except -1
