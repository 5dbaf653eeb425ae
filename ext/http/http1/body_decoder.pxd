# Http1BodyDecoder: HTTP/1 message body framing, both directions, sans-I/O.
# decode() moves body bytes (chunk framing removed) from the input buffer to
# an output buffer: whole slices change hands (OwnedBuffer.move_n), only what
# has arrived is handled, so a body of any size streams through. Trailers
# are parsed under the head limits and dropped, or kept in `trailers` when
# keep_trailers (http_protocol_options.enable_trailers).
#
#   decoder.start(parser.body_mode(), parser.content_length)
#   rc = decoder.decode(read_buffer, body_out)     # after draining the head
#   HTTP1_BODY_DONE: read_buffer now starts at the next message (pipelining).

cdef enum Http1BodyStatus:
    HTTP1_BODY_NEED_MORE = 0
    HTTP1_BODY_DONE = 1
    HTTP1_BODY_ERROR = 2

# chunked framing states (Http1BodyDecoder.state)
cdef enum Http1ChunkState:
    HTTP1_CHUNK_SIZE = 0            # hex digits of a chunk-size line
    HTTP1_CHUNK_EXT                 # after SP, HT or ';': skipped up to CR
    HTTP1_CHUNK_SIZE_LF             # CR seen, LF next
    HTTP1_CHUNK_DATA                # `remaining` data bytes
    HTTP1_CHUNK_DATA_END            # CR* LF after the data
    HTTP1_CHUNK_TRAILERS            # trailer lines up to the empty one
    HTTP1_CHUNK_DONE


@cython.final
cdef class Http1BodyDecoder:
    cdef int mode                   # Http1BodyMode
    cdef int state                  # Http1ChunkState (chunked only)
    cdef bint done
    cdef uint64_t remaining         # Content-Length / current chunk bytes left
    cdef int digits                 # hex digits in the chunk-size line
    cdef uint64_t body_bytes        # body bytes delivered so far
    cdef bint keep_trailers
    cdef HttpHeaderMap trailers     # when keep_trailers: the message's trailers
    cdef Http1HeadParser trailer_parser     # trailer lines, same limits as heads
    cdef int error_status           # 400 (431 for trailers over the limits)
    cdef const char *error_detail   # static string (response code details)

    cdef void start(self, int mode, int64_t content_length) noexcept
    cdef int decode(self, OwnedBuffer input, OwnedBuffer output) noexcept
    cdef int on_eof(self) noexcept
    cdef int _error(self, int status, const char *detail) noexcept
    cdef int _chunk_framing(self, OwnedBuffer input) noexcept
    cdef int _trailers(self, OwnedBuffer input) noexcept
