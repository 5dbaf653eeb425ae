# HTTP/1.1 encoders (Envoy's Http1 StreamEncoderImpl): heads from an
# HttpHeaderMap, chunk framing around body buffers. Body bytes are moved,
# never copied; a head is written in one run in place in the buffer's tail
# (http1_write_head).

cdef const char *http1_reason_phrase(int status, size_t *n) noexcept
cdef int http1_encode_request_head(OwnedBuffer out, HttpHeaderMap h,
                                   const char *extra, size_t extra_len) except -1
cdef int http1_encode_response_head(OwnedBuffer out, HttpHeaderMap h, bint http10) except -1
# One chunk: "<hex size>\r\n" + all of `data` (moved out of it) + "\r\n";
# nothing when data is empty (an empty chunk would end the body).
cdef void http1_encode_chunk(OwnedBuffer out, OwnedBuffer data) noexcept
# "0\r\n", the trailers (None: none), "\r\n".
cdef int http1_encode_last_chunk(OwnedBuffer out, HttpHeaderMap trailers) except -1
