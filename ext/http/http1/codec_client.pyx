# Http1ActiveClient: one pooled upstream connection and the client half of
# the HTTP/1.1 codec (Envoy's CodecClient + Http1::ClientConnectionImpl):
# response heads parsed in place into the client's one HttpHeaderMap, bodies
# (content-length, chunked with trailers, close-delimited) handed on as
# moved slices. Nothing per header or per read is a Python object.

cdef const char *HTTP1_CLIENT_LAST_CHUNK = b"0\r\n\r\n"

cdef enum:
    _HTTP1_CHUNK_LINE_MAX = 4096        # a chunk-size line with its extensions


@cython.final
cdef class _Http1ClientReadFilter(ReadFilter):

    cdef int on_data(self, OwnedBuffer data, bint end_stream) except -1:
        cdef Http1ActiveClient client = self.client
        if client is not None:
            client.on_data(data, end_stream)
        else:
            data.drain_all()
        return FILTER_STOP_ITERATION


@cython.final
cdef class _Http1ClientWatermarks(ConnectionCallbacks):
    """The upstream connection's write buffer watermarks, to the stream's decoder."""

    cdef int on_above_write_buffer_high_watermark(self) except -1:
        cdef Http1ActiveClient c = self.client
        if c is not None and c.encoder is not None and c.encoder.decoder is not None:
            return c.encoder.decoder.on_above_write_buffer_high_watermark()
        return 0

    cdef int on_below_write_buffer_low_watermark(self) except -1:
        cdef Http1ActiveClient c = self.client
        if c is not None and c.encoder is not None and c.encoder.decoder is not None:
            return c.encoder.decoder.on_below_write_buffer_low_watermark()
        return 0


cdef inline bint _http1_token_in(const char *v, size_t n, const char *tok, size_t tn) noexcept:
    """A comma-separated header value holds `tok` (lower-case), any case."""
    cdef size_t s = 0, e, i
    while s < n:
        e = s
        while e < n and v[e] != b',':
            e += 1
        i = e
        while s < i and (v[s] == b' ' or v[s] == b'\t'):
            s += 1
        while i > s and (v[i - 1] == b' ' or v[i - 1] == b'\t'):
            i -= 1
        if i - s == tn and _http1_ieq(v + s, tok, tn):
            return True
        s = e + 1
    return False


@cython.final
cdef class Http1ActiveClient(ActiveClient):

    def __cinit__(self):
        self.hdrs = NULL

    def __dealloc__(self):
        free(self.hdrs)

    cdef int init_codec(self, int max_headers, size_t max_head_bytes) except -1:
        self.max_headers = max_headers
        self.max_head_bytes = max_head_bytes
        self.hdrs = <Http1Header*>malloc(max_headers * sizeof(Http1Header))
        if self.hdrs == NULL:
            raise MemoryError()
        self.headers = HttpHeaderMap.__new__(HttpHeaderMap)
        self.out = OwnedBuffer.new()
        self.body = OwnedBuffer.new()
        self.replay = OwnedBuffer.new()
        self.cstate = HTTP1_CLIENT_IDLE
        return 0

    cdef void start_response(self) noexcept:
        """A stream was attached: expect its response from the first byte."""
        self.cstate = HTTP1_CLIENT_HEAD
        self.scanned = 0
        self.line_start = 0
        self.remaining = 0
        self.head_request = False
        self.response_started = False
        self.headers_sent_up = False
        self.close_after = False
        self.replay.drain_all()

    cdef int on_data(self, OwnedBuffer data, bint end_stream) except -1:
        if self.encoder is None or self.cstate == HTTP1_CLIENT_IDLE:
            # Bytes no request asked for (an idle pooled connection, or
            # after a complete response): the connection cannot be trusted
            # with another request (Envoy closes it too).
            data.drain_all()
            if self.connection is not None:
                if self.encoder is not None:
                    return self.on_protocol_error()
                if end_stream:
                    self.connection.close_socket(CONN_EVENT_REMOTE_CLOSE)
                else:
                    self.connection.close(CLOSE_NO_FLUSH)
            return 0
        self.dispatch(data)
        if end_stream and self.connection is not None and self.connection.state != CONN_CLOSED:
            self.connection.close_socket(CONN_EVENT_REMOTE_CLOSE)
        return 0

    cdef int dispatch(self, OwnedBuffer data) except -1:
        cdef Http1RequestEncoder e = self.encoder
        cdef int r = 1
        if data.len and not self.response_started:
            # From the first response byte the request is the upstream's:
            # no keep-alive race retry any more.
            self.response_started = True
            e.retry_safe = False
            self.replay.drain_all()
        while r > 0 and data.len and self.encoder is e:
            if self.cstate == HTTP1_CLIENT_HEAD:
                r = self.parse_head(data)
            elif self.cstate == HTTP1_CLIENT_IDLE:
                # Bytes after the response: not reusable (checked in
                # on_response_complete); an open stream here is an error.
                data.drain_all()
                r = 0
            else:
                r = self.parse_body(data)
        if self.encoder is e and self.body.len and self.cstate != HTTP1_CLIENT_IDLE:
            self.flush_body(False)
        return 0

    # -- head

    cdef int parse_head(self, OwnedBuffer data) except -1:
        """1: the head was handled (data drained of it); 0: need more or the
        stream is gone."""
        cdef size_t n = data.len
        cdef size_t limit = n if n < self.max_head_bytes else self.max_head_bytes
        cdef ssize_t lf
        cdef char c
        cdef bint empty
        cdef size_t head_len = 0
        while self.scanned < limit:
            lf = data.find_byte(b'\n', self.scanned, limit)
            if lf < 0:
                self.scanned = limit
                break
            self.scanned = lf + 1
            empty = <size_t>lf == self.line_start
            if <size_t>lf == self.line_start + 1:
                data.copy_out(self.line_start, &c, 1)
                empty = c == b'\r'
            self.line_start = lf + 1
            if empty and lf > 1:
                head_len = lf + 1
                break
        if head_len == 0:
            if self.scanned >= self.max_head_bytes:
                self.on_protocol_error()
            return 0
        self.scanned = 0
        self.line_start = 0
        return self.on_head(data, data.linearize(head_len), head_len)

    cdef int on_head(self, OwnedBuffer data, const char *p, size_t head_len) except -1:
        cdef size_t i = 0, start, eol, next_line, colon, vs, ve
        cdef int status, count = 0, version
        cdef int64_t cl = -1, v64
        cdef bint chunked = False, te = False, te_bad = False, conn_close = False
        cdef bint keep_alive = False, end_stream
        cdef unsigned char ch
        cdef Http1Header *h
        cdef HttpResponseDecoder d
        cdef Http1RequestEncoder e = self.encoder
        # Status line: HTTP/1.x SP 3DIGIT [SP reason]
        next_line = <size_t>(<const char*>memchr(p, b'\n', head_len) - p) + 1
        eol = next_line - 1
        if eol > 0 and p[eol - 1] == b'\r':
            eol -= 1
        if eol < 12 or memcmp(p, b"HTTP/1.", 7) != 0 or not (48 <= p[7] <= 57) \
                or p[8] != b' ' or not (48 <= p[9] <= 57) or not (48 <= p[10] <= 57) \
                or not (48 <= p[11] <= 57) or (eol > 12 and p[12] != b' '):
            return self.on_protocol_error()
        version = HTTP1_VERSION_11 if p[7] != b'0' else HTTP1_VERSION_10
        status = (p[9] - 48) * 100 + (p[10] - 48) * 10 + (p[11] - 48)
        if status < 100:
            return self.on_protocol_error()
        for i in range(12, eol):
            ch = <unsigned char>p[i]
            if (ch < 0x20 and ch != b'\t') or ch == 0x7f:
                return self.on_protocol_error()
        i = next_line
        while True:
            next_line = <size_t>(<const char*>memchr(p + i, b'\n', head_len - i) - p) + 1
            eol = next_line - 1
            if eol > i and p[eol - 1] == b'\r':
                eol -= 1
            if eol == i:
                break
            if p[i] == b' ' or p[i] == b'\t':
                return self.on_protocol_error()         # obs-fold
            start = i
            while i < eol and p[i] != b':':
                if not _http1_tchar[<unsigned char>p[i]]:
                    return self.on_protocol_error()
                i += 1
            if i == eol or i == start:
                return self.on_protocol_error()
            colon = i
            i += 1
            while i < eol and (p[i] == b' ' or p[i] == b'\t'):
                i += 1
            vs = ve = i
            while i < eol:
                ch = <unsigned char>p[i]
                if (ch < 0x20 and ch != b'\t') or ch == 0x7f:
                    return self.on_protocol_error()
                i += 1
                if ch != b' ' and ch != b'\t':
                    ve = i
            if count == self.max_headers:
                return self.on_protocol_error()         # Envoy: 502 UPE
            h = &self.hdrs[count]
            h.name_off = start
            h.name_len = colon - start
            h.value_off = vs
            h.value_len = ve - vs
            h.id = _http1_header_id(p + start, colon - start)
            count += 1
            if h.id == HTTP1_HEADER_CONTENT_LENGTH:
                if ve == vs or ve - vs > 18:
                    return self.on_protocol_error()
                v64 = 0
                for i in range(vs, ve):
                    if p[i] < b'0' or p[i] > b'9':
                        return self.on_protocol_error()
                    v64 = v64 * 10 + (p[i] - 48)
                if cl >= 0 and cl != v64:
                    return self.on_protocol_error()
                cl = v64
            elif h.id == HTTP1_HEADER_TRANSFER_ENCODING:
                te = True
                # Only one final "chunked" is understood.
                if chunked or not (ve - vs == 7 and _http1_ieq(p + vs, b"chunked", 7)):
                    te_bad = True
                chunked = True
            elif h.id == HTTP1_HEADER_CONNECTION:
                if _http1_token_in(p + vs, ve - vs, b"close", 5):
                    conn_close = True
                if _http1_token_in(p + vs, ve - vs, b"keep-alive", 10):
                    keep_alive = True
            i = next_line
        self.headers.load_head(p, head_len, self.hdrs, count)
        self.headers.status = status
        self.headers.version = version
        data.drain(head_len)
        d = e.decoder
        if status < 200 and status != 101:
            # 1xx: the final head is still to come.
            self.cstate = HTTP1_CLIENT_HEAD
            if d is not None:
                d.decode_1xx_headers(self.headers)
            return 1
        if conn_close or (version == HTTP1_VERSION_10 and not keep_alive):
            self.pool.cluster.stats[CLUSTER_UPSTREAM_CX_CLOSE_NOTIFY] += 1
        if conn_close or version == HTTP1_VERSION_10:
            self.close_after = True
        end_stream = False
        if self.head_request or status == 204 or status == 304 or status < 200:
            end_stream = True
            if status == 101:
                self.close_after = True
        elif te:
            if te_bad or cl >= 0:
                return self.on_protocol_error()
            self.cstate = HTTP1_CLIENT_BODY_CHUNK_SIZE
        elif cl >= 0:
            self.remaining = cl
            self.cstate = HTTP1_CLIENT_BODY_LENGTH
            end_stream = cl == 0
        else:
            self.cstate = HTTP1_CLIENT_BODY_CLOSE
            self.close_after = True
        self.headers_sent_up = True
        if end_stream:
            self.cstate = HTTP1_CLIENT_IDLE
            e.decode_complete = True
        if d is not None:
            d.decode_headers(self.headers, end_stream)
        if end_stream:
            self.on_response_complete(e)
        return 1

    # -- body

    cdef int parse_body(self, OwnedBuffer data) except -1:
        cdef size_t take, lf
        cdef ssize_t f
        cdef const char *p
        cdef char c[2]
        cdef int64_t size
        cdef size_t i
        cdef int digits
        cdef Http1RequestEncoder e = self.encoder
        if self.cstate == HTTP1_CLIENT_BODY_LENGTH:
            take = <size_t>self.remaining if <size_t>self.remaining < data.len else data.len
            self.body.move_n(data, take)
            self.remaining -= take
            if self.remaining == 0:
                return self.end_body(e)
            return 1
        if self.cstate == HTTP1_CLIENT_BODY_CLOSE:
            self.body.move(data)
            return 1
        if self.cstate == HTTP1_CLIENT_BODY_CHUNK_DATA:
            take = <size_t>self.remaining if <size_t>self.remaining < data.len else data.len
            self.body.move_n(data, take)
            self.remaining -= take
            if self.remaining == 0:
                self.cstate = HTTP1_CLIENT_BODY_CHUNK_CRLF
            return 1
        if self.cstate == HTTP1_CLIENT_BODY_CHUNK_CRLF:
            if data.copy_out(0, c, 2) < 2:
                if c[0] != b'\r':
                    return self.on_protocol_error()
                return 0
            if c[0] == b'\r' and c[1] == b'\n':
                data.drain(2)
            else:
                return self.on_protocol_error()
            self.cstate = HTTP1_CLIENT_BODY_CHUNK_SIZE
            return 1
        if self.cstate == HTTP1_CLIENT_BODY_CHUNK_SIZE:
            f = data.find_byte(b'\n', 0, _HTTP1_CHUNK_LINE_MAX)
            if f < 0:
                if data.len >= _HTTP1_CHUNK_LINE_MAX:
                    return self.on_protocol_error()
                return 0
            lf = <size_t>f
            p = data.linearize(lf + 1)
            size = 0
            digits = 0
            i = 0
            while i < lf:
                if 48 <= p[i] <= 57:
                    size = size * 16 + (p[i] - 48)
                elif 97 <= p[i] <= 102:
                    size = size * 16 + (p[i] - 87)
                elif 65 <= p[i] <= 70:
                    size = size * 16 + (p[i] - 55)
                else:
                    break
                digits += 1
                if digits > 15:
                    return self.on_protocol_error()
                i += 1
            if digits == 0 or lf == 0 or p[lf - 1] != b'\r':
                return self.on_protocol_error()
            # After the size: optional whitespace and ";extensions".
            while i < lf - 1 and (p[i] == b' ' or p[i] == b'\t'):
                i += 1
            if i < lf - 1 and p[i] != b';':
                return self.on_protocol_error()
            data.drain(lf + 1)
            if size == 0:
                self.cstate = HTTP1_CLIENT_BODY_TRAILERS
            else:
                self.remaining = size
                self.cstate = HTTP1_CLIENT_BODY_CHUNK_DATA
            return 1
        if self.cstate == HTTP1_CLIENT_BODY_TRAILERS:
            return self.parse_trailers(data)
        return 0

    cdef int parse_trailers(self, OwnedBuffer data) except -1:
        """After the last chunk: the empty line, or trailers up to one."""
        cdef size_t n = data.len
        cdef size_t limit = n if n < self.max_head_bytes else self.max_head_bytes
        cdef ssize_t lf
        cdef char c
        cdef bint empty
        cdef size_t end = 0, i, eol, next_line, start, colon, vs, ve
        cdef const char *p
        cdef int count = 0
        cdef Http1Header *h
        cdef Http1RequestEncoder e = self.encoder
        cdef unsigned char ch
        while self.scanned < limit:
            lf = data.find_byte(b'\n', self.scanned, limit)
            if lf < 0:
                self.scanned = limit
                break
            self.scanned = lf + 1
            empty = <size_t>lf == self.line_start
            if <size_t>lf == self.line_start + 1:
                data.copy_out(self.line_start, &c, 1)
                empty = c == b'\r'
            self.line_start = lf + 1
            if empty:
                end = lf + 1
                break
        if end == 0:
            if self.scanned >= self.max_head_bytes:
                return self.on_protocol_error()
            return 0
        self.scanned = 0
        self.line_start = 0
        if end <= 2:
            data.drain(end)
            return self.end_body(e)
        p = data.linearize(end)
        i = 0
        while True:
            next_line = <size_t>(<const char*>memchr(p + i, b'\n', end - i) - p) + 1
            eol = next_line - 1
            if eol > i and p[eol - 1] == b'\r':
                eol -= 1
            if eol == i:
                break
            start = i
            while i < eol and p[i] != b':':
                if not _http1_tchar[<unsigned char>p[i]]:
                    return self.on_protocol_error()
                i += 1
            if i == eol or i == start:
                return self.on_protocol_error()
            colon = i
            i += 1
            while i < eol and (p[i] == b' ' or p[i] == b'\t'):
                i += 1
            vs = ve = i
            while i < eol:
                ch = <unsigned char>p[i]
                if (ch < 0x20 and ch != b'\t') or ch == 0x7f:
                    return self.on_protocol_error()
                i += 1
                if ch != b' ' and ch != b'\t':
                    ve = i
            if count == self.max_headers:
                return self.on_protocol_error()
            h = &self.hdrs[count]
            h.name_off = start
            h.name_len = colon - start
            h.value_off = vs
            h.value_len = ve - vs
            h.id = _http1_header_id(p + start, colon - start)
            count += 1
            i = next_line
        if self.trailers is None:
            self.trailers = HttpHeaderMap.__new__(HttpHeaderMap)
        self.trailers.load_head(p, end, self.hdrs, count)
        data.drain(end)
        if self.body.len:
            self.flush_body(False)
            if self.encoder is not e:
                return 0
        self.cstate = HTTP1_CLIENT_IDLE
        e.decode_complete = True
        if e.decoder is not None:
            e.decoder.decode_trailers(self.trailers)
        self.on_response_complete(e)
        return 1

    cdef int flush_body(self, bint end_stream) except -1:
        cdef Http1RequestEncoder e = self.encoder
        if e is not None and e.decoder is not None:
            e.decoder.decode_data(self.body, end_stream)
        self.body.drain_all()
        return 0

    cdef int end_body(self, Http1RequestEncoder e) except -1:
        """The body's last byte is in self.body: hand it on with end_stream."""
        self.cstate = HTTP1_CLIENT_IDLE
        e.decode_complete = True
        self.flush_body(True)
        self.on_response_complete(e)
        return 1

    # -- end of a stream

    cdef int on_response_complete(self, Http1RequestEncoder e) except -1:
        """The response of `e` is complete and told: the connection goes back
        to the pool unless something retires it."""
        cdef bint reusable
        if self.encoder is not e or self.parent is None:
            return 0                    # the stream was reset from a callback
        reusable = not self.close_after and e.request_complete and \
            self.connection is not None and self.connection.read_buffer.len == 0
        return self.pool.end_stream(self, reusable)

    cdef int on_protocol_error(self) except -1:
        """An invalid response: the stream is reset (502 UPE in the router)
        and the connection closes."""
        cdef Http1RequestEncoder e = self.encoder
        cdef HttpResponseDecoder d = None
        cdef bint tell
        if self.pool is not None:
            self.pool.cluster.stats[CLUSTER_UPSTREAM_CX_PROTOCOL_ERROR] += 1
        self.encoder = None
        self.cstate = HTTP1_CLIENT_IDLE
        if e is not None:
            tell = not e.decode_complete
            e.client = None
            d = e.decoder
            e.decoder = None
            if not tell:
                d = None
        if self.connection is not None:
            self.connection.read_buffer.drain_all()
            self.connection.close(CLOSE_NO_FLUSH)
        if d is not None:
            d.on_reset_stream(HTTP_RESET_PROTOCOL_ERROR)
        return 0

    cdef int on_close(self, int event, int was) except -1:
        """The connection closed (the pool has released it): finish, retry or
        reset its stream."""
        cdef Http1RequestEncoder e = self.encoder
        cdef HttpResponseDecoder d
        cdef Http1ConnPoolImpl pool = self.pool
        cdef int reason
        self.encoder = None
        self.pool = None                # the pool forgets a closed client
        if self.idle_timer is not None:
            self.idle_timer.disable()
            self.idle_timer = None
        if e is None or e.client is not self:
            return 0
        e.client = None
        if e.decode_complete:
            return 0
        d = e.decoder
        if self.cstate == HTTP1_CLIENT_BODY_CLOSE and event == CONN_EVENT_REMOTE_CLOSE:
            # A close-delimited body ends with the connection.
            e.decode_complete = True
            e.decoder = None
            self.cstate = HTTP1_CLIENT_IDLE
            if d is not None:
                d.decode_data(self.body, True)
            self.body.drain_all()
            return 0
        if was == CLIENT_CONNECTING:
            # The keep-alive race retry could not connect.
            reason = HTTP_RESET_CONNECT_TIMEOUT if self.timed_out else HTTP_RESET_CONNECTION_FAILURE
        elif e.retry_safe and not e.retried and not self.response_started \
                and event == CONN_EVENT_REMOTE_CLOSE and pool is not None:
            return pool.retry_stream(e, self.replay)
        elif event == CONN_EVENT_REMOTE_CLOSE:
            reason = HTTP_RESET_CONNECTION_TERMINATION
        else:
            reason = HTTP_RESET_LOCAL_RESET
        e.decoder = None
        self.cstate = HTTP1_CLIENT_IDLE
        if d is not None:
            d.on_reset_stream(reason)
        return 0

