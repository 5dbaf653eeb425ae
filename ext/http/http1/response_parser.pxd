# Http1ResponseParser: the sans-I/O HTTP/1.x response head parser (Envoy's
# Http::Http1::ClientConnectionImpl head path), on the scanning and header
# code it shares with Http1RequestParser (Http1HeadParser). After DONE the
# caller copies what it keeps (HttpHeaderMap.load_response), drains
# head_len, and decodes the body in body_mode(request_was_head). A 1xx is a
# head of its own: drain it, reset() and parse the next head.

@cython.final
cdef class Http1ResponseParser(Http1HeadParser):
    cdef int status                 # 100..999
    cdef uint32_t reason_off        # the reason phrase, in head
    cdef uint32_t reason_len
    # A 1xx/204 carried `content-length: 0`: Envoy drops the header.
    cdef bint drop_content_length

    cdef int body_mode(self, bint request_was_head) noexcept
