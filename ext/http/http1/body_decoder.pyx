# Http1BodyDecoder (see body_decoder.pxd). Framing bytes (chunk-size lines,
# CRLFs) are read where they lie and drained; data moves between buffers.

# Response code details of body errors (balsa's errors print as Envoy's
# generic http1.codec_error; a message cut short by EOF has no Envoy
# counterpart: the HCM / router report the disconnect instead).
cdef const char *HTTP1_DETAIL_PREMATURE_EOF = b"http1.premature_eof"

cdef signed char _http1_hex[256]
for _i in range(256):
    _http1_hex[_i] = int(chr(_i), 16) if chr(_i) in "0123456789abcdefABCDEF" else -1


@cython.final
cdef class Http1BodyDecoder:

    def __cinit__(self, bint keep_trailers=False,
                  size_t max_request_headers_kb=HTTP1_MAX_HEADERS_KB,
                  int max_headers_count=HTTP1_MAX_HEADERS_COUNT):
        self.keep_trailers = keep_trailers
        self.trailer_parser = Http1HeadParser(max_request_headers_kb, max_headers_count)
        self.trailer_parser.trailers = True
        self.trailers = HttpHeaderMap() if keep_trailers else None
        self.start(HTTP1_BODY_NONE, -1)

    cdef void start(self, int mode, int64_t content_length) noexcept:
        """Frame the next message's body: `mode` is an Http1BodyMode,
        `content_length` counts for HTTP1_BODY_CONTENT_LENGTH only."""
        self.mode = mode
        self.state = HTTP1_CHUNK_SIZE
        self.remaining = <uint64_t>content_length if (
            mode == HTTP1_BODY_CONTENT_LENGTH and content_length > 0) else 0
        self.digits = 0
        self.body_bytes = 0
        self.done = mode == HTTP1_BODY_NONE or (
            mode == HTTP1_BODY_CONTENT_LENGTH and content_length <= 0)
        self.error_status = 0
        self.error_detail = NULL
        if self.trailers is not None and self.trailers.count:
            self.trailers.clear()

    cdef int _error(self, int status, const char *detail) noexcept:
        self.error_status = status
        self.error_detail = detail
        return HTTP1_BODY_ERROR

    cdef int decode(self, OwnedBuffer input, OwnedBuffer output) noexcept:
        """Move the body bytes `input` holds to `output` (input must start
        at the body). NEED_MORE: all of input is used; DONE: the body is
        complete and input starts at what follows; ERROR: error_status and
        error_detail say why (nothing more on this connection)."""
        cdef size_t n
        cdef int rc
        if self.error_status:
            return HTTP1_BODY_ERROR
        if self.done:
            return HTTP1_BODY_DONE
        if self.mode == HTTP1_BODY_CONTENT_LENGTH:
            n = input.length()
            if <uint64_t>n > self.remaining:
                n = <size_t>self.remaining
            if n:
                output.move_n(input, n)
                self.remaining -= n
                self.body_bytes += n
            if self.remaining == 0:
                self.done = True
                return HTTP1_BODY_DONE
            return HTTP1_BODY_NEED_MORE
        if self.mode == HTTP1_BODY_UNTIL_CLOSE:
            self.body_bytes += input.length()
            output.move(input)
            return HTTP1_BODY_NEED_MORE
        while True:
            if self.state == HTTP1_CHUNK_DATA:
                n = input.length()
                if n == 0:
                    return HTTP1_BODY_NEED_MORE
                if <uint64_t>n > self.remaining:
                    n = <size_t>self.remaining
                output.move_n(input, n)
                self.remaining -= n
                self.body_bytes += n
                if self.remaining:
                    return HTTP1_BODY_NEED_MORE
                self.state = HTTP1_CHUNK_DATA_END
            elif self.state == HTTP1_CHUNK_TRAILERS:
                return self._trailers(input)
            else:
                rc = self._chunk_framing(input)
                if rc != HTTP1_BODY_DONE:
                    return rc

    cdef int _chunk_framing(self, OwnedBuffer input) noexcept:
        """Read framing bytes until the state is DATA or TRAILERS (DONE),
        input runs out (NEED_MORE, what was read drained) or a byte is
        wrong (ERROR). The grammar is balsa's as Envoy 1.40 runs it
        (observed): the size line is hex digits (at most 2^64-1), then
        optionally SP / HT / ';' and anything up to CR, then CRLF (a bare LF
        is refused); after the data, any CRs then LF."""
        cdef BufferCursor cur
        cdef const char *p
        cdef size_t n, k, used = 0
        cdef unsigned char c
        cdef int state = self.state, v
        input.seek(&cur, 0)
        while True:
            p = input.chunk(&cur, &n)
            if p == NULL:
                input.drain(used)
                self.state = state
                return HTTP1_BODY_NEED_MORE
            for k in range(n):
                c = <unsigned char>p[k]
                if state == HTTP1_CHUNK_SIZE:
                    v = _http1_hex[c]
                    if v >= 0:
                        if self.remaining > (<uint64_t>0xffffffffffffffff >> 4):
                            return self._error(400, HTTP1_DETAIL_CODEC_ERROR)
                        self.remaining = self.remaining * 16 + <uint64_t>v
                        self.digits += 1
                    elif self.digits == 0:
                        return self._error(400, HTTP1_DETAIL_CODEC_ERROR)
                    elif c == b'\r':
                        state = HTTP1_CHUNK_SIZE_LF
                    elif c == b' ' or c == b'\t' or c == b';':
                        state = HTTP1_CHUNK_EXT
                    else:
                        return self._error(400, HTTP1_DETAIL_CODEC_ERROR)
                elif state == HTTP1_CHUNK_EXT:
                    if c == b'\r':
                        state = HTTP1_CHUNK_SIZE_LF
                    elif c == b'\n':
                        return self._error(400, HTTP1_DETAIL_CODEC_ERROR)
                elif state == HTTP1_CHUNK_SIZE_LF:
                    if c != b'\n':
                        return self._error(400, HTTP1_DETAIL_CODEC_ERROR)
                    # The size line is complete.
                    input.drain(used + k + 1)
                    self.digits = 0
                    if self.remaining:
                        self.state = HTTP1_CHUNK_DATA
                    else:
                        self.state = HTTP1_CHUNK_TRAILERS
                        self.trailer_parser.reset()
                        self.trailer_parser.seen_line = True    # an empty first line ends them
                    return HTTP1_BODY_DONE
                else:   # HTTP1_CHUNK_DATA_END
                    if c == b'\n':
                        state = HTTP1_CHUNK_SIZE
                    elif c != b'\r':
                        return self._error(400, HTTP1_DETAIL_CODEC_ERROR)
            used += n
            input.advance(&cur, n)

    cdef int _trailers(self, OwnedBuffer input) noexcept:
        """The trailer section after the last chunk: header lines up to an
        empty one, under the head limits; kept when keep_trailers."""
        cdef Http1HeadParser t = self.trailer_parser
        cdef int rc = t._scan(input)
        if rc == HTTP1_PARSE_NEED_MORE:
            return HTTP1_BODY_NEED_MORE
        if rc == HTTP1_PARSE_DONE:
            rc = t._parse_header_lines(0)
        if rc == HTTP1_PARSE_ERROR:
            return self._error(t.error_status, t.error_detail)
        if self.keep_trailers and t.header_count:
            self.trailers.load_head(t.head, t.head_len, t.headers, t.header_count)
        input.drain(t.head_len)
        self.state = HTTP1_CHUNK_DONE
        self.done = True
        return HTTP1_BODY_DONE

    cdef int on_eof(self) noexcept:
        """The peer closed: DONE for a close-delimited body (or one already
        complete), else ERROR (the message was cut short)."""
        if self.error_status:
            return HTTP1_BODY_ERROR
        if self.done:
            return HTTP1_BODY_DONE
        if self.mode == HTTP1_BODY_UNTIL_CLOSE:
            self.done = True
            return HTTP1_BODY_DONE
        return self._error(400, HTTP1_DETAIL_PREMATURE_EOF)
