# Http1ActiveClient: one pooled upstream connection and the client half of
# the HTTP/1.1 codec (Envoy's CodecClient + Http1::ClientConnectionImpl).
# Response heads are parsed by the codec's Http1ResponseParser and copied
# into the client's one HttpHeaderMap; bodies (content-length, chunked,
# close-delimited) come out of its Http1BodyDecoder as moved slices; after a
# 101 to an upgrade the bytes pass raw. Nothing per header or per read is a
# Python object. Every decoder callback may end or reset the stream, so the
# code after one checks the stream is still this client's.

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


cdef bint _http1_proxy_connection_close(HttpHeaderMap h) noexcept:
    """A proxy-connection header holds the token "close"."""
    cdef int i = h.get(HTTP1_HEADER_PROXY_CONNECTION)
    while i >= 0:
        if _http1_has_token(h.value_at(i), h.entries[i].value_len, b"close", 5):
            return True
        i = h.next_same(i)
    return False


@cython.final
cdef class Http1ActiveClient(ActiveClient):

    cdef int init_codec(self, int max_headers, size_t max_head_kb, bint keep_trailers) except -1:
        self.parser = Http1ResponseParser(max_head_kb, max_headers)
        self.body_decoder = Http1BodyDecoder(keep_trailers, max_head_kb, max_headers)
        self.headers = HttpHeaderMap.__new__(HttpHeaderMap)
        self.out = OwnedBuffer.new()
        self.body = OwnedBuffer.new()
        self.replay = OwnedBuffer.new()
        self.cstate = HTTP1_CLIENT_IDLE
        return 0

    cdef void start_response(self) noexcept:
        """A stream was attached: expect its response from the first byte."""
        self.cstate = HTTP1_CLIENT_HEAD
        self.parser.reset()
        self.head_request = False
        self.response_started = False
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
        """Parse what `data` holds of the response; every decoder callback
        may end or reset the stream, so each step checks it still is ours."""
        cdef Http1RequestEncoder e = self.encoder
        cdef int rc
        if data.len and not self.response_started:
            # From the first response byte the request is the upstream's:
            # no keep-alive race retry any more.
            self.response_started = True
            e.retry_safe = False
            self.replay.drain_all()
        while data.len and self.encoder is e:
            if self.cstate == HTTP1_CLIENT_HEAD:
                rc = self.parser.parse(data)
                if rc == HTTP1_PARSE_NEED_MORE:
                    break
                if rc == HTTP1_PARSE_ERROR:
                    return self.on_protocol_error()
                self.on_head(data, e)
            elif self.cstate == HTTP1_CLIENT_TUNNEL:
                self.body.move(data)
                break
            elif self.cstate == HTTP1_CLIENT_BODY:
                rc = self.body_decoder.decode(data, self.body)
                if rc == HTTP1_BODY_ERROR:
                    return self.on_protocol_error()
                if rc == HTTP1_BODY_NEED_MORE:
                    break
                self.end_body(e)
            else:
                break       # after the response: on_response_complete judged it
        if self.encoder is e and self.body.len and (self.cstate == HTTP1_CLIENT_BODY
                                                    or self.cstate == HTTP1_CLIENT_TUNNEL):
            self.flush_body(False)
        return 0

    cdef int on_head(self, OwnedBuffer data, Http1RequestEncoder e) except -1:
        """A complete head is parsed (not drained yet): tell the decoder."""
        cdef Http1ResponseParser p = self.parser
        cdef int status = p.status, mode
        cdef int64_t content_length = p.content_length
        cdef bint keep_alive = p.keep_alive(), end_stream
        cdef HttpResponseDecoder d = e.decoder
        self.headers.load_response(p)
        data.drain(p.head_len)
        mode = p.body_mode(self.head_request)
        p.reset()
        if status < 200 and status != 101:
            # 1xx: the final head is still to come (the router decides
            # whether 100-continue goes downstream).
            if d is not None:
                d.decode_1xx_headers(self.headers)
            return 0
        if not keep_alive or _http1_proxy_connection_close(self.headers):
            # Envoy's shouldCloseConnection: connection: close, HTTP/1.0
            # without keep-alive, proxy-connection: close.
            self.pool.cluster.stats[CLUSTER_UPSTREAM_CX_CLOSE_NOTIFY] += 1
            self.close_after = True
        if status == 101:
            self.close_after = True
            if e.upgrade:
                # Switched: from here the connection carries the new
                # protocol both ways until one side closes.
                self.cstate = HTTP1_CLIENT_TUNNEL
                if d is not None:
                    d.decode_headers(self.headers, False)
                return 0
        if mode == HTTP1_BODY_UNTIL_CLOSE:
            self.close_after = True
        self.body_decoder.start(mode, content_length)
        end_stream = mode == HTTP1_BODY_NONE or self.body_decoder.done
        if end_stream:
            self.cstate = HTTP1_CLIENT_IDLE
            e.decode_complete = True
        else:
            self.cstate = HTTP1_CLIENT_BODY
        if d is not None:
            d.decode_headers(self.headers, end_stream)
        if end_stream:
            self.on_response_complete(e)
        return 0

    cdef int flush_body(self, bint end_stream) except -1:
        cdef Http1RequestEncoder e = self.encoder
        if e is not None and e.decoder is not None:
            e.decoder.decode_data(self.body, end_stream)
        self.body.drain_all()
        return 0

    cdef int end_body(self, Http1RequestEncoder e) except -1:
        """The body is complete (its last bytes in self.body): hand it on
        with end_stream, or before the trailers (kept with enable_trailers)."""
        cdef HttpHeaderMap trailers = self.body_decoder.trailers
        self.cstate = HTTP1_CLIENT_IDLE
        if trailers is not None and trailers.live:
            if self.body.len:
                self.flush_body(False)
                if self.encoder is not e:
                    return 0
            e.decode_complete = True
            if e.decoder is not None:
                e.decoder.decode_trailers(trailers)
        else:
            e.decode_complete = True
            self.flush_body(True)
        return self.on_response_complete(e)

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
        if event == CONN_EVENT_REMOTE_CLOSE and (self.cstate == HTTP1_CLIENT_TUNNEL or (
                self.cstate == HTTP1_CLIENT_BODY and self.body_decoder.on_eof() == HTTP1_BODY_DONE)):
            # A close-delimited body ends with the connection.
            e.decode_complete = True
            e.decoder = None
            self.cstate = HTTP1_CLIENT_IDLE
            if d is not None:
                d.decode_data(self.body, True)
            self.body.drain_all()
            return 0
        if self.reserved_retry:
            # The keep-alive race retry could not connect.
            reason = HTTP_RESET_CONNECT_TIMEOUT if self.timed_out else HTTP_RESET_CONNECTION_FAILURE
        elif e.retry_safe and not e.retried and not self.response_started \
                and event == CONN_EVENT_REMOTE_CLOSE and pool is not None:
            return pool.retry_stream(e, self.replay)
        elif event == CONN_EVENT_REMOTE_CLOSE:
            # EOF inside a response (head or framed body) is the parser's
            # error in Envoy 1.40: 502 UPE before headers, UPE after them
            # (observed); with no response byte, a connection termination.
            reason = HTTP_RESET_PROTOCOL_ERROR if self.response_started \
                else HTTP_RESET_CONNECTION_TERMINATION
        else:
            reason = HTTP_RESET_LOCAL_RESET
        e.decoder = None
        self.cstate = HTTP1_CLIENT_IDLE
        if d is not None:
            d.on_reset_stream(reason)
        return 0

