# HttpConnectionManagerImpl: one downstream connection's HTTP/1.1 (shape and
# contracts in conn_manager_impl.pxd). The request side is the parser plus
# the body framing; the response side frames what the encoder filters pass
# (content-length kept, chunked when neither a length nor the end is known,
# no body for HEAD/204/304) straight into the connection's write path.

cdef int _hcm_on_idle_timer(object ctx) except -1:
    return (<HttpConnectionManagerImpl>ctx).on_idle_timeout()

cdef int _hcm_on_stream_idle_timer(object ctx) except -1:
    return (<HttpConnectionManagerImpl>ctx).on_stream_idle_timeout()

cdef int _hcm_on_request_timer(object ctx) except -1:
    return (<HttpConnectionManagerImpl>ctx).on_request_timeout()

cdef int _hcm_on_max_stream_timer(object ctx) except -1:
    return (<HttpConnectionManagerImpl>ctx).on_max_stream_duration()

cdef int _hcm_on_headers_timer(object ctx) except -1:
    return (<HttpConnectionManagerImpl>ctx).on_headers_timeout()

cdef int _hcm_on_duration_timer(object ctx) except -1:
    return (<HttpConnectionManagerImpl>ctx).on_max_duration()

cdef int _hcm_on_delayed_close_timer(object ctx) except -1:
    return (<HttpConnectionManagerImpl>ctx).on_delayed_close()

cdef int _hcm_on_drain_timer(object ctx) except -1:
    return (<HttpConnectionManagerImpl>ctx).on_drain_timeout()

cdef int _hcm_on_resume_timer(object ctx) except -1:
    return (<HttpConnectionManagerImpl>ctx).resume_dispatch()


@cython.final
cdef class _HttpConnManagerConnectionCallbacks(ConnectionCallbacks):

    cdef int on_event(self, int event) except -1:
        if self.parent is not None:
            return self.parent.on_event(event)
        return 0

    cdef int on_above_write_buffer_high_watermark(self) except -1:
        # The client reads slower than the response comes: tell the stream's
        # filters (the router stops reading its upstream).
        cdef HttpConnectionManagerImpl p = self.parent
        cdef Py_ssize_t i = 0
        if p is not None:
            while p.stream.active and i < p.stream.n_watermark_callbacks:
                (<HttpDownstreamWatermarkCallbacks>p.stream.watermark_callbacks[i]) \
                    .on_above_write_buffer_high_watermark()
                i += 1
        return 0

    cdef int on_below_write_buffer_low_watermark(self) except -1:
        cdef HttpConnectionManagerImpl p = self.parent
        cdef Py_ssize_t i = 0
        if p is not None:
            while p.stream.active and i < p.stream.n_watermark_callbacks:
                (<HttpDownstreamWatermarkCallbacks>p.stream.watermark_callbacks[i]) \
                    .on_below_write_buffer_low_watermark()
                i += 1
        return 0


cdef const char *_HCM_IN6_LOOPBACK = b"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01"    # ::1


cdef bint _hcm_wrapper_held(HttpActiveStream s) except -1:
    """A filter outlived the stream and still holds one of its wrappers
    (each is held only by its list otherwise)."""
    cdef object w
    for w in s.decoder_filters or ():
        if Py_REFCNT(w) > 2:            # the list's reference and w's
            return True
    for w in s.encoder_filters or ():
        if Py_REFCNT(w) > 2:
            return True
    return False


cdef int _hcm_recycle_closed(HttpConnectionManagerConfig cfg) except -1:
    """The closed managers of `cfg`, their call stacks gone: onto the free
    list while it has room and nothing outside holds their objects; the
    others get their cycles cut."""
    cdef HttpConnectionManagerImpl m
    while cfg.closed_managers is not None:
        m = cfg.closed_managers
        cfg.closed_managers = m.next_free
        m.next_free = None
        # (EF_DEBUG builds count objects from allocation to free: there
        # nothing is kept.)
        if EF_DEBUG or cfg.free_managers_len >= HCM_FREE_LIST_MAX or not m.recycle():
            m.release()
    return 0


@cython.final
cdef class HttpConnectionManagerImpl(ReadFilter):

    # -- network ReadFilter

    cdef int on_new_connection(self) except -1:
        cdef HttpConnectionManagerConfig cfg = self.config
        cdef ConnectionImpl conn = self.read_callbacks.connection
        cdef HttpActiveStream s
        cdef sockaddr_in *a4
        cdef sockaddr_in6 *a6
        self.connection = conn
        cfg.stats[HTTP_DOWNSTREAM_CX_TOTAL] += 1
        cfg.stats[HTTP_DOWNSTREAM_CX_ACTIVE] += 1
        cfg.stats[HTTP_DOWNSTREAM_CX_HTTP1_TOTAL] += 1
        cfg.stats[HTTP_DOWNSTREAM_CX_HTTP1_ACTIVE] += 1
        conn.set_stats(&cfg.stats[HTTP_DOWNSTREAM_CX_RX_BYTES_TOTAL],
                       &cfg.stats[HTTP_DOWNSTREAM_CX_TX_BYTES_TOTAL])
        if self.stream is None:
            self.create_connection_objects()
        s = self.stream
        self.connection_callbacks.parent = self
        conn.add_callbacks(self.connection_callbacks)
        s.stream_info.connection_id = conn.connection_id
        if cfg.needs_addresses:
            s.stream_info.fill_downstream(conn)
        else:
            s.stream_info.set_peer(conn)
        # The peer's address as text, once: x-forwarded-for and
        # x-envoy-external-address use it per request.
        self.peer_internal = False
        self.peer_loopback = False
        self.local_port = _hcm_local_port(conn.fd) if (
            cfg.strip_port == _HCM_STRIP_PORT_MATCHING or cfg.append_x_forwarded_port) else -1
        # (Only use_remote_address writes it into requests.)
        self.peer_ip_len = format_ip(&conn.remote_addr, self.peer_ip) if cfg.use_remote_address else 0
        if conn.remote_addr.ss_family == AF_INET:
            a4 = <sockaddr_in*>&conn.remote_addr
            self.peer_loopback = (ntohl(a4.sin_addr.s_addr) >> 24) == 127
            self.peer_internal = cfg.n_internal_ranges > 0 and \
                _hcm_is_internal(cfg, 4, <const unsigned char *>&a4.sin_addr)
        elif conn.remote_addr.ss_family == AF_INET6:
            a6 = <sockaddr_in6*>&conn.remote_addr
            self.peer_loopback = memcmp(&a6.sin6_addr, _HCM_IN6_LOOPBACK, 16) == 0
            self.peer_internal = cfg.n_internal_ranges > 0 and \
                _hcm_is_internal(cfg, 6, <const unsigned char *>&a6.sin6_addr)
        self.created = self.dispatcher.now
        self.idle_since = self.created
        if self.idle_timer is not None:
            self.idle_timer.enable_common(cfg.idle_timeout)
        if self.duration_timer is not None:
            self.duration_timer.enable_common(cfg.max_connection_duration)
        cfg.live_managers = live_list_push(cfg.live_managers, self)
        return FILTER_CONTINUE

    cdef int create_connection_objects(self) except -1:
        """What serves a connection, made for this manager's first one and
        kept when it is recycled: connection callbacks, codec, response
        buffer, the stream and the timers the config asks for."""
        cdef HttpConnectionManagerConfig cfg = self.config
        cdef HttpActiveStream s
        self.connection_callbacks = _HttpConnManagerConnectionCallbacks.__new__(
            _HttpConnManagerConnectionCallbacks)
        self.parser = Http1RequestParser(cfg.max_request_headers_kb, cfg.max_headers_count)
        self.body_decoder = Http1BodyDecoder(cfg.enable_trailers, cfg.max_request_headers_kb,
                                             cfg.max_headers_count)
        self.out = OwnedBuffer.new()
        s = HttpActiveStream.__new__(HttpActiveStream)
        s.hcm = self
        s.config = cfg
        s.request_headers = HttpHeaderMap()
        s.stream_info = StreamInfoImpl.__new__(StreamInfoImpl)
        s.body = OwnedBuffer.new()
        s.watermark_callbacks = []
        self.stream = s
        if cfg.idle_timeout > 0:
            self.idle_timer = Timer.new(self.dispatcher, _hcm_on_idle_timer, self)
        if cfg.stream_idle_timeout > 0:
            self.stream_idle_timer = Timer.new(self.dispatcher, _hcm_on_stream_idle_timer, self)
        if cfg.max_stream_duration > 0:
            self.max_stream_timer = Timer.new(self.dispatcher, _hcm_on_max_stream_timer, self)
        if cfg.request_timeout > 0:
            self.request_timer = Timer.new(self.dispatcher, _hcm_on_request_timer, self)
        if cfg.request_headers_timeout > 0:
            self.headers_timer = Timer.new(self.dispatcher, _hcm_on_headers_timer, self)
        if cfg.max_connection_duration > 0:
            self.duration_timer = Timer.new(self.dispatcher, _hcm_on_duration_timer, self)
        return 0

    cdef int on_data(self, OwnedBuffer data, bint end_stream) except -1:
        if self.closing:
            # After a protocol error or the last response: read only to see
            # the client close.
            data.drain_all()
            if end_stream and self.connection is not None:
                self.connection.peer_closed = True      # Envoy: a remote close
                self.connection.close(CLOSE_FLUSH_WRITE)
            return FILTER_STOP_ITERATION
        self.dispatch()
        if end_stream and self.connection is not None and self.connection.state == CONN_OPEN:
            # The client went away (Envoy's HCM does not half-close): an
            # unfinished stream is reset; what was written leaves first.
            if self.stream.active:
                self.stream.stream_info.set_response_flag(RF_DOWNSTREAM_CONNECTION_TERMINATION)
                if self.stream.upgrade:
                    self.stream.stream_info.response_code_details = "downstream_remote_disconnect"
                self.config.stats[HTTP_DOWNSTREAM_RQ_RX_RESET] += 1
            self.closing = True
            self.connection.peer_closed = True          # Envoy: a remote close
            self.connection.close(CLOSE_FLUSH_WRITE)
        return FILTER_STOP_ITERATION

    # -- request side

    cdef int dispatch(self) except -1:
        """Parse and decode what the connection has read, one request at a
        time; bytes of a pipelined request wait in the read buffer until the
        current response is complete."""
        cdef OwnedBuffer data = self.connection.read_buffer
        cdef HttpActiveStream s = self.stream
        cdef HttpConnectionManagerConfig cfg = self.config
        cdef int rc
        self.dispatching = True
        try:
            while not self.closing and self.connection is not None \
                    and self.connection.state == CONN_OPEN:
                if s.active:
                    if s.remote_complete:
                        # Pipelined bytes wait; stop reading when they pile up.
                        if self.connection.buffer_limit and data.len > self.connection.buffer_limit \
                                and not self.read_paused:
                            self.read_paused = True
                            self.connection.read_disable(True)
                        return 0
                    if data.len == 0:
                        return 0
                    self.decode_body(data)
                    if s.active and not s.remote_complete:
                        return 0
                    continue
                if data.len == 0:
                    return 0
                if self.head_start == 0:
                    # The first byte of a request: its head timers start.
                    self.head_start = self.dispatcher.now
                    self.idle_since = 0
                    if self.headers_timer is not None and not self.headers_timer.enabled():
                        self.headers_timer.enable_common(cfg.request_headers_timeout)
                    if cfg.stream_idle_timeout > 0 and not self.stream_idle_timer.enabled():
                        self.stream_idle_timer.enable_common(cfg.stream_idle_timeout)
                    if self.request_timer is not None and not self.request_timer.enabled():
                        self.request_timer.enable_common(cfg.request_timeout)
                    if self.max_stream_timer is not None and not self.max_stream_timer.enabled():
                        self.max_stream_timer.enable_common(cfg.max_stream_duration)
                rc = self.parser.parse(data)
                if rc == HTTP1_PARSE_NEED_MORE:
                    return 0
                if rc == HTTP1_PARSE_ERROR:
                    return self.send_protocol_error(self.parser.error_status,
                                                    self.parser.error_detail)
                self.on_head()
        finally:
            self.dispatching = False
        return 0

    cdef int on_head(self) except -1:
        """A complete request head: into the stream's header map, its body
        framing noted, the head drained, the stream begun."""
        cdef HttpActiveStream s = self.stream
        cdef Http1RequestParser p = self.parser
        s.request_headers.load_request(p)
        self.connection.read_buffer.drain(p.head_len)
        self.body_decoder.start(p.body_mode(), p.content_length)
        p.reset()
        s.begin_partial()
        self.head_start = 0
        s.remote_complete = self.body_decoder.done
        s.version = s.request_headers.version
        s.is_head = s.request_headers.method == HTTP1_METHOD_HEAD
        s.stream_info.protocol = s.version
        s.stream_info.request_headers = s.request_headers
        if not s.check_request_head():
            return 0
        s.mutate_request_headers()
        s.refresh_cached_route()
        if s.request_headers.method == HTTP1_METHOD_CONNECT and s.upgrade_type is None:
            # Envoy treats CONNECT as an upgrade of type "connect".
            s.upgrade_type = b"connect"
            if s.route is None:
                # Observed: no route → the router's 404, and the request
                # (whose bytes never end) leaves the connection closing.
                if s.remote_complete:
                    self.body_decoder.start(HTTP1_BODY_UNTIL_CLOSE, -1)
                    s.remote_complete = False
                s.upgrade_type = None
        if s.upgrade_type is not None:
            if not s.upgrade_allowed():
                # Envoy: an upgrade neither the HCM nor the route enables.
                self.config.stats[HTTP_DOWNSTREAM_RQ_WS_ON_NON_WS_ROUTE] += 1
                self.drain_state = HTTP_DRAIN_CLOSING
                return s.send_local_reply(403, NULL, 0, 0, b"upgrade_failed")
            s.upgrade = True
            self.config.stats[HTTP_DOWNSTREAM_CX_UPGRADES_TOTAL] += 1
            self.config.stats[HTTP_DOWNSTREAM_CX_UPGRADES_ACTIVE] += 1
            if s.remote_complete:
                # No body framing: every byte after the head is the new
                # protocol's (sent upstream before the 101 too, as Envoy
                # does), and the request ends only with the connection.
                self.body_decoder.start(HTTP1_BODY_UNTIL_CLOSE, -1)
                s.remote_complete = False
        if s.idle_timeout > 0 and (self.config.stream_idle_timeout <= 0
                                   or s.idle_timeout < self.config.stream_idle_timeout):
            # The route's idle_timeout is shorter (or the only one).
            if self.stream_idle_timer is None:
                self.stream_idle_timer = Timer.new(self.dispatcher, _hcm_on_stream_idle_timer, self)
            self.stream_idle_timer.enable_common(s.idle_timeout)
        s.create_filter_chain()
        if s.remote_complete:
            s.stream_info.request_complete_mono = self.dispatcher.now
        return s.decode_headers(0, s.remote_complete)

    cdef int decode_body(self, OwnedBuffer data) except -1:
        """The request body as it arrives (Content-Length or chunked framing
        off: Http1BodyDecoder), each read's worth passed on as one piece."""
        cdef HttpActiveStream s = self.stream
        cdef Http1BodyDecoder dec = self.body_decoder
        cdef int rc = dec.decode(data, s.body)
        if rc == HTTP1_BODY_ERROR:
            return self.send_protocol_error(dec.error_status, dec.error_detail)
        if rc == HTTP1_BODY_DONE:
            s.remote_complete = True
            s.stream_info.request_complete_mono = self.dispatcher.now
            if dec.trailers is not None and dec.trailers.live:
                s.has_trailers = True
                s.request_trailers = dec.trailers
        elif s.body.len == 0:
            return 0
        s.decode_data(0, s.body, s.remote_complete and not s.has_trailers)
        if s.has_trailers and s.active and not s.local_complete:
            s.decode_trailers(0)
        return 0

    cdef int send_protocol_error(self, int status, const char *details) except -1:
        """The request cannot be parsed (or is refused at the codec): Envoy's
        local reply (the reason phrase as body), connection: close, and
        nothing more read from this connection."""
        cdef HttpActiveStream s = self.stream
        cdef const char *body
        cdef size_t n
        self.config.stats[HTTP_DOWNSTREAM_CX_PROTOCOL_ERROR] += 1
        self.drain_state = HTTP_DRAIN_CLOSING
        if self.connection is not None:
            self.connection.read_buffer.drain_all()
        if not s.active:
            s.begin_partial()
            self.head_start = 0
        s.stream_info.set_response_flag(RF_DOWNSTREAM_PROTOCOL_ERROR)
        self.closing = True
        if s.response_started:
            return s.reset_stream()
        body = http1_reason_phrase(status, &n)
        return s.send_local_reply(status, body, n, 0, details)

    # -- response side

    cdef int write_response_head(self, HttpActiveStream s, HttpHeaderMap headers,
                                 bint end_stream) except -1:
        """Envoy's ActiveStream::encodeHeaders (response header mutation,
        connection close decisions, stats) and the HTTP/1 encoder's head."""
        cdef HttpConnectionManagerConfig cfg = self.config
        cdef HttpHeaderMap h = headers
        cdef HttpHeaderMap rq = s.request_headers
        cdef int status = h.status, i
        cdef bint framing, tunnel
        cdef OwnedBuffer out = self.out
        s.response_status = status
        # Envoy's order: date, server, then mutateResponseHeaders.
        tunnel = s.upgrade and status == 101
        if not tunnel:
            h.remove_id(HTTP1_HEADER_CONNECTION)
            h.remove_id(HTTP1_HEADER_UPGRADE)
        h.remove_id(HTTP1_HEADER_TRANSFER_ENCODING)
        h.remove_id(HTTP1_HEADER_KEEP_ALIVE)
        h.remove_id(HTTP1_HEADER_PROXY_CONNECTION)
        if h.get(HTTP1_HEADER_DATE) < 0:
            h.add_lower(b"date", 4, http_date_value(), 29, HTTP1_HEADER_DATE)
        if cfg.server_header_transformation == HTTP_SERVER_HEADER_OVERWRITE or \
                (cfg.server_header_transformation == HTTP_SERVER_HEADER_APPEND_IF_ABSENT
                 and h.get(HTTP1_HEADER_SERVER) < 0):
            h.set_id(HTTP1_HEADER_SERVER, cfg.server_name, len(cfg.server_name))
        # Envoy echoes the request id of a traced request (mutateResponseHeaders).
        if cfg.always_set_request_id_in_response or s.force_trace:
            i = rq.get(HTTP1_HEADER_X_REQUEST_ID)
            if i >= 0:
                h.set_id(HTTP1_HEADER_X_REQUEST_ID, rq.value_at(i), rq.entries[i].value_len)
        # Whether this response is the connection's last.
        if tunnel:
            pass        # the request goes on as the tunnel's downstream half
        elif not s.remote_complete:
            # Envoy does not wait for the rest of a request it has answered.
            self.drain_state = HTTP_DRAIN_CLOSING
            cfg.stats[HTTP_DOWNSTREAM_RQ_RESPONSE_BEFORE_RQ_COMPLETE] += 1
        if self.drain_state == HTTP_DRAIN_NOT_DRAINING and (cfg.draining or _http_drain_close):
            # Envoy's drainClose(): this response says connection: close,
            # the connection goes at drain_timeout.
            self.start_drain_sequence()
            cfg.stats[HTTP_DOWNSTREAM_CX_DRAIN_CLOSE] += 1
        if s.version != HTTP1_VERSION_11:
            if h.get(HTTP1_HEADER_CONTENT_LENGTH) < 0:
                self.drain_state = HTTP_DRAIN_CLOSING     # close-delimited body
            if not s.saw_connection_close:
                h.set_id(HTTP1_HEADER_CONNECTION, b"keep-alive", 10)
        if self.drain_state == HTTP_DRAIN_NOT_DRAINING and s.saw_connection_close:
            self.drain_state = HTTP_DRAIN_CLOSING
        if self.drain_state == HTTP_DRAIN_NOT_DRAINING and cfg.max_requests_per_connection > 0 \
                and self.accumulated_requests >= cfg.max_requests_per_connection:
            self.drain_state = HTTP_DRAIN_CLOSING
            cfg.stats[HTTP_DOWNSTREAM_CX_MAX_REQUESTS_REACHED] += 1
        if self.drain_state != HTTP_DRAIN_NOT_DRAINING and not tunnel:
            h.set_id(HTTP1_HEADER_CONNECTION, b"close", 5)
        if status == 204:
            h.remove_id(HTTP1_HEADER_CONTENT_LENGTH)
        # Stats and what the access log needs.
        if 100 <= status < 600:
            cfg.stats[HTTP_DOWNSTREAM_RQ_1XX + status // 100 - 1] += 1
            cfg.listener_stats[HTTP_LISTENER_DOWNSTREAM_RQ_1XX + status // 100 - 1] += 1
        s.stream_info.response_code = status
        s.stream_info.response_headers = h
        s.stream_info.first_tx_mono = self.dispatcher.now
        # Framing (Envoy's StreamEncoderImpl::encodeHeadersBase), then the head.
        s.no_response_body = (s.is_head or status == 204 or status == 304 or status < 200) \
            and not tunnel      # after a 101 the bytes pass raw
        s.chunk_encoding = False
        framing = False
        if h.get(HTTP1_HEADER_CONTENT_LENGTH) >= 0 or status < 200 or status == 204 or status == 304:
            pass
        elif end_stream and not s.is_head:
            h.add_lower(b"content-length", 14, b"0", 1, HTTP1_HEADER_CONTENT_LENGTH)
            framing = True
        elif s.version != HTTP1_VERSION_11:
            pass                            # HTTP/1.0: the close ends the body
        else:
            # A HEAD response without a length says chunked, as Envoy's
            # (headers only, no body).
            h.add_lower(b"transfer-encoding", 17, b"chunked", 7, HTTP1_HEADER_TRANSFER_ENCODING)
            framing = True
            s.chunk_encoding = not s.is_head
        http1_encode_response_head(out, h, s.version != HTTP1_VERSION_11)
        if framing:
            # The codec's framing header is on the wire, not in the headers
            # (Envoy's %RESP(content-length)% does not see it).
            h.remove_at(h.count - 1)
        s.response_started = True
        self.connection.write(out, False)
        if end_stream:
            return self.on_stream_end(s)
        return 0

    cdef int write_response_data(self, HttpActiveStream s, OwnedBuffer data,
                                 bint end_stream) except -1:
        cdef OwnedBuffer out = self.out
        if s.no_response_body:
            data.drain_all()
        elif s.chunk_encoding:
            s.stream_info.bytes_sent += data.len
            http1_encode_chunk(out, data)
            if end_stream:
                http1_encode_last_chunk(out, None)
        else:
            s.stream_info.bytes_sent += data.len
            out.move(data)
        if out.len:
            self.connection.write(out, False)
        if end_stream:
            return self.on_stream_end(s)
        return 0

    cdef int write_response_trailers(self, HttpActiveStream s, HttpHeaderMap trailers) except -1:
        if s.chunk_encoding:
            http1_encode_last_chunk(self.out, trailers if self.config.enable_trailers else None)
            self.connection.write(self.out, False)
        return self.on_stream_end(s)

    cdef int on_stream_end(self, HttpActiveStream s) except -1:
        """The response is complete: the stream ends; the connection closes
        if this was its last response, else the next request may start."""
        cdef HttpConnectionManagerConfig cfg = self.config
        cdef double now = self.dispatcher.now
        cdef bint remote_complete
        if not s.active:
            return 0
        s.local_complete = True
        remote_complete = s.remote_complete
        s.stream_info.last_tx_mono = now
        cfg.stats[HTTP_DOWNSTREAM_RQ_ACTIVE] -= 1
        cfg.stats[HTTP_DOWNSTREAM_RQ_COMPLETED] += 1
        cfg.listener_stats[HTTP_LISTENER_DOWNSTREAM_RQ_COMPLETED] += 1
        if cfg.rq_time_hist != NULL:
            hist_record(cfg.rq_time_hist, (now - s.start_time) * 1000.0)
        if cfg.access_loggers is not None:
            s.log()
        s.end_stream()
        self.idle_since = now
        if self.flow_paused:
            self.flow_paused = 0
            if self.connection is not None:
                self.connection.read_disable(False)
        if self.drain_state == HTTP_DRAIN_CLOSING or self.closing or not remote_complete:
            # A tunnel that the upstream ended, or a response that came
            # before its request's end: the connection closes (Envoy: after
            # delayed_close_timeout, nothing more read).
            return self.close_after_response(remote_complete and s.saw_connection_close)
        if self.read_paused:
            self.read_paused = False
            self.connection.read_disable(False)
        if self.connection is not None and self.connection.read_buffer.len and not self.dispatching:
            # A pipelined request waits: it starts after this call stack
            # (a filter's) has unwound.
            if self.resume_timer is None:
                self.resume_timer = Timer.new(self.dispatcher, _hcm_on_resume_timer, self)
            self.resume_timer.enable(0.0)
        return 0

    cdef int resume_dispatch(self) except -1:
        if self.connection is not None and self.connection.state == CONN_OPEN \
                and not self.stream.active:
            self.dispatch()
            if self.connection is not None and self.connection.read_end_seen \
                    and self.connection.state == CONN_OPEN and not self.stream.active:
                self.closing = True
                self.connection.close(CLOSE_FLUSH_WRITE)
        return 0

    cdef int close_after_response(self, bint client_asked=False) except -1:
        """Envoy's FlushWriteAndDelay: the response leaves, then the socket
        closes when the client does or delayed_close_timeout has passed.
        `client_asked`: the client said connection: close and its request is
        all read; with nothing more in hand the socket closes once the
        response is out, as nginx and HAProxy do (a delay is there for a
        client that may still be sending, and this one has said it is not)."""
        self.closing = True
        if self.connection is None or self.connection.state != CONN_OPEN:
            return 0
        if client_asked and self.connection.read_buffer.len == 0:
            return self.connection.close(CLOSE_FLUSH_WRITE)
        self.connection.read_buffer.drain_all()
        if self.config.delayed_close_timeout > 0:
            if self.delayed_close_timer is None:
                self.delayed_close_timer = Timer.new(self.dispatcher, _hcm_on_delayed_close_timer, self)
            self.delayed_close_timer.enable_common(self.config.delayed_close_timeout)
            if self.read_paused:
                self.read_paused = False
                self.connection.read_disable(False)
            return 0
        return self.connection.close(CLOSE_FLUSH_WRITE)

    cdef int start_drain(self) except -1:
        """The listener drains: a connection that never sent a byte closes
        now (after a short grace if just accepted); the others start Envoy's
        drain sequence."""
        cdef double age, grace = HTTP_DRAIN_FIRST_REQUEST_GRACE_MS / 1000.0
        if self.connection is None or self.connection.state != CONN_OPEN or self.closing:
            return 0
        if self.accumulated_requests == 0 and self.head_start == 0 and not self.bytes_pending():
            # A connection accepted a moment ago may have its first request
            # on the wire (a listener hands over its accept queue as it
            # stops): give it a short grace, then close if nothing came. A
            # request that comes in time is answered with connection: close.
            age = self.dispatcher.now - self.connection.last_activity
            if age >= grace or self.drain_state != HTTP_DRAIN_NOT_DRAINING:
                self.closing = True
                return self.connection.close(CLOSE_FLUSH_WRITE)
            self.drain_state = HTTP_DRAIN_DRAINING
            if self.drain_timer is None:
                self.drain_timer = Timer.new(self.dispatcher, _hcm_on_drain_timer, self)
            self.drain_timer.enable(grace - age)
            return 0
        if self.drain_state == HTTP_DRAIN_NOT_DRAINING:
            self.config.stats[HTTP_DOWNSTREAM_CX_DRAIN_CLOSE] += 1
            self.start_drain_sequence()
        return 0

    cdef int start_drain_sequence(self) except -1:
        """Envoy's startDrainSequence: responses from now on carry
        connection: close; at drain_timeout the connection closes (after the
        response in progress, if any)."""
        if self.drain_state != HTTP_DRAIN_NOT_DRAINING:
            return 0
        if self.config.drain_timeout <= 0:
            self.drain_state = HTTP_DRAIN_CLOSING
            return 0
        self.drain_state = HTTP_DRAIN_DRAINING
        if self.drain_timer is None:
            self.drain_timer = Timer.new(self.dispatcher, _hcm_on_drain_timer, self)
        self.drain_timer.enable_common(self.config.drain_timeout)
        return 0

    cdef int on_drain_timeout(self) except -1:
        if self.connection is None or self.closing:
            return 0
        self.drain_state = HTTP_DRAIN_CLOSING
        if not self.stream.active and self.head_start == 0 and not self.bytes_pending():
            return self.close_after_response()
        return 0

    cdef bint bytes_pending(self):
        """Whether the peer's bytes wait unread (in read_buffer or the
        socket): a request that arrived but was not read yet is in flight,
        so a drain must not close under it; reading it answers it with
        connection: close instead."""
        cdef char c
        if self.connection.read_buffer.length() > 0:
            return True
        return recv(self.connection.fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0

    # -- connection events

    cdef int on_event(self, int event) except -1:
        cdef HttpConnectionManagerConfig cfg = self.config
        cdef HttpActiveStream s = self.stream
        cdef bint active_rq
        if event == CONN_EVENT_CONNECTED:
            return 0
        active_rq = s.active
        if active_rq:
            if event == CONN_EVENT_REMOTE_CLOSE:
                s.stream_info.set_response_flag(RF_DOWNSTREAM_CONNECTION_TERMINATION)
                if s.upgrade:
                    s.stream_info.response_code_details = "downstream_remote_disconnect"
            cfg.stats[HTTP_DOWNSTREAM_RQ_ACTIVE] -= 1
            if cfg.access_loggers is not None:
                s.log()
            s.end_stream()
        cfg.stats[HTTP_DOWNSTREAM_CX_ACTIVE] -= 1
        cfg.stats[HTTP_DOWNSTREAM_CX_HTTP1_ACTIVE] -= 1
        cfg.stats[HTTP_DOWNSTREAM_CX_DESTROY] += 1
        if event == CONN_EVENT_REMOTE_CLOSE:
            cfg.stats[HTTP_DOWNSTREAM_CX_DESTROY_REMOTE] += 1
            if active_rq:
                cfg.stats[HTTP_DOWNSTREAM_CX_DESTROY_REMOTE_ACTIVE_RQ] += 1
        else:
            cfg.stats[HTTP_DOWNSTREAM_CX_DESTROY_LOCAL] += 1
            if active_rq:
                cfg.stats[HTTP_DOWNSTREAM_CX_DESTROY_LOCAL_ACTIVE_RQ] += 1
        if active_rq:
            cfg.stats[HTTP_DOWNSTREAM_CX_DESTROY_ACTIVE_RQ] += 1
        if cfg.cx_length_hist != NULL:
            hist_record(cfg.cx_length_hist, (self.dispatcher.now - self.created) * 1000.0)
        cfg.live_managers = live_list_remove(cfg.live_managers, self)
        self.disable_timers()
        self.connection_callbacks.parent = None
        self.connection = None
        self.closing = True
        # The stream, its filter wrappers and the timers point back here:
        # refcounting alone would never free them, and the cyclic collector
        # would then run over thousands of connections' objects (CPU and
        # latency spikes). Once this call stack (which may still use them)
        # has unwound, the next connection recycles this manager or cuts
        # its cycles.
        self.next_free = cfg.closed_managers
        cfg.closed_managers = self
        return 0

    cdef bint recycle(self) except -1:
        """Make this closed manager ready to serve a new connection, keeping
        its objects; False (nothing changed) when something outside still
        holds one of them (a filter that outlived its stream keeps its
        wrapper): then it is not reused."""
        cdef HttpActiveStream s = self.stream
        cdef StreamInfoImpl info
        cdef Py_ssize_t held
        if s is None or s.active or self.connection is not None:
            return False
        info = s.stream_info
        if _hcm_wrapper_held(s):
            return False
        # The wrappers point at the stream and its stream info; anything
        # more is a holder from outside.
        held = (len(s.decoder_filters) if s.decoder_filters is not None else 0) + \
            (len(s.encoder_filters) if s.encoder_filters is not None else 0)
        if Py_REFCNT(s) > held + 2 or Py_REFCNT(info) > held + 2:
            return False                # (+ the manager's or the stream's, and ours)
        self.read_callbacks = None
        self.initialized = False
        self.drain_state = HTTP_DRAIN_NOT_DRAINING
        self.closing = False
        self.read_paused = False
        self.flow_paused = 0
        self.accumulated_requests = 0
        self.dispatching = False
        self.xff_key = None
        self.xff_address = None
        self.head_start = 0
        self.parser.reset()
        self.body_decoder.start(HTTP1_BODY_NONE, -1)
        self.out.drain_all()
        # What a big request grew is given back: a kept manager holds no
        # more memory than a new one.
        s.request_headers.shrink()
        if s.local_headers is not None:
            s.local_headers.shrink()
        if self.body_decoder.trailers is not None:
            self.body_decoder.trailers.shrink()
        s.request_trailers = None
        s.local_reply_filter = None
        s.route = None
        s.response_headers = None
        info.reset_for_stream(0)
        info.downstream_remote_address = None
        info.downstream_local_address = None
        self.next_free = self.config.free_managers
        self.config.free_managers = self
        self.config.free_managers_len += 1
        return True

    cdef int release(self) except -1:
        """Cut this closed manager's reference cycles, unless a filter
        outlived its stream and still holds a wrapper (the collector frees
        those)."""
        cdef HttpActiveStream s = self.stream
        self.drop_timers()
        if s is None or _hcm_wrapper_held(s):
            return 0
        s.decoder_filters = None
        s.encoder_filters = None
        s.local_reply_filter = None
        s.hcm = None
        self.stream = None
        return 0

    # -- timers: each checks the time of the last activity when it fires
    # (busy connections never touch the timer heap per request).

    cdef int on_idle_timeout(self) except -1:
        cdef double t = self.config.idle_timeout, idle
        if self.connection is None or self.closing:
            return 0
        if self.stream.active or self.head_start > 0 or self.idle_since == 0:
            self.idle_timer.enable(t)
            return 0
        idle = self.dispatcher.now - self.idle_since
        if idle < t:
            self.idle_timer.enable(t - idle)
            return 0
        self.config.stats[HTTP_DOWNSTREAM_CX_IDLE_TIMEOUT] += 1
        self.closing = True
        return self.connection.close(CLOSE_FLUSH_WRITE)

    cdef int on_stream_idle_timeout(self) except -1:
        cdef HttpActiveStream s = self.stream
        cdef double since, idle, t
        if self.connection is None or self.closing:
            return 0
        if s.active:
            since = s.last_activity
            t = s.idle_timeout
        elif self.head_start > 0:
            since = self.head_start
            t = self.config.stream_idle_timeout
        else:
            return 0
        if t <= 0:
            return 0
        idle = self.dispatcher.now - since
        if idle < t:
            self.stream_idle_timer.enable(t - idle)
            return 0
        if not s.active:
            s.begin_partial()
            self.head_start = 0
        # 504 when the whole request was read (Envoy), else 408.
        return s.on_timeout(504 if s.remote_complete else 408, b"stream timeout",
                            HTTP_DOWNSTREAM_RQ_IDLE_TIMEOUT, RF_STREAM_IDLE_TIMEOUT,
                            b"stream_idle_timeout")

    cdef bint stream_timer_due(self, Timer timer, double t, bint until_request_end) except -1:
        """For a timer armed at a request's first byte (request_timeout,
        max_stream_duration) and left armed across keep-alive requests:
        whether the current stream has now run `t` (one that ended, or with
        `until_request_end` one whose request was read or answered, is out of
        its reach); re-armed for the remainder otherwise. A due request not
        yet parsed is begun (begin_partial) so that it can be answered."""
        cdef HttpActiveStream s = self.stream
        cdef double since, elapsed
        if self.connection is None or self.closing:
            return False
        if s.active:
            if s.local_complete or (until_request_end and (s.remote_complete or s.response_started)):
                return False
            since = s.start_time
        elif self.head_start > 0:
            since = self.head_start
        else:
            return False
        elapsed = self.dispatcher.now - since
        if elapsed < t:
            timer.enable(t - elapsed)
            return False
        if not s.active:
            s.begin_partial()
            self.head_start = 0
        return True

    cdef int on_request_timeout(self) except -1:
        if not self.stream_timer_due(self.request_timer, self.config.request_timeout, True):
            return 0
        return self.stream.on_timeout(408, b"request timeout", HTTP_DOWNSTREAM_RQ_TIMEOUT, 0,
                                      b"request_overall_timeout")

    cdef int on_max_stream_duration(self) except -1:
        """Envoy's onStreamMaxDurationReached: a stream older than
        max_stream_duration (from its first byte) is answered 504 when its
        request was read whole, else 408, or reset once its response began."""
        if not self.stream_timer_due(self.max_stream_timer, self.config.max_stream_duration, False):
            return 0
        return self.stream.on_timeout(504 if self.stream.remote_complete else 408,
                                      b"downstream duration timeout",
                                      HTTP_DOWNSTREAM_RQ_MAX_DURATION_REACHED, 0, b"max_duration_timeout")

    cdef int on_headers_timeout(self) except -1:
        cdef HttpActiveStream s = self.stream
        cdef double elapsed, t = self.config.request_headers_timeout
        if self.connection is None or self.closing or s.active or self.head_start == 0:
            return 0
        elapsed = self.dispatcher.now - self.head_start
        if elapsed < t:
            self.headers_timer.enable(t - elapsed)
            return 0
        s.begin_partial()
        self.head_start = 0
        self.connection.read_buffer.drain_all()
        self.closing = True
        return s.on_timeout(408, b"request header timeout", HTTP_DOWNSTREAM_RQ_HEADER_TIMEOUT, 0,
                            b"request_header_timeout")

    cdef int on_max_duration(self) except -1:
        if self.connection is None or self.closing:
            return 0
        self.config.stats[HTTP_DOWNSTREAM_CX_MAX_DURATION_REACHED] += 1
        if self.accumulated_requests == 0 and self.head_start == 0:
            # Envoy: no codec yet (no byte received), close now.
            self.closing = True
            return self.connection.close(CLOSE_FLUSH_WRITE)
        return self.start_drain_sequence()

    cdef int on_delayed_close(self) except -1:
        if self.connection is not None and self.connection.state == CONN_OPEN:
            self.config.stats[HTTP_DOWNSTREAM_CX_DELAYED_CLOSE_TIMEOUT] += 1
            self.connection.close(CLOSE_FLUSH_WRITE)
        return 0

    cdef void disable_timers(self):
        if self.idle_timer is not None:
            self.idle_timer.disable()
        if self.stream_idle_timer is not None:
            self.stream_idle_timer.disable()
        if self.request_timer is not None:
            self.request_timer.disable()
        if self.max_stream_timer is not None:
            self.max_stream_timer.disable()
        if self.headers_timer is not None:
            self.headers_timer.disable()
        if self.duration_timer is not None:
            self.duration_timer.disable()
        if self.delayed_close_timer is not None:
            self.delayed_close_timer.disable()
        if self.resume_timer is not None:
            self.resume_timer.disable()
        if self.drain_timer is not None:
            self.drain_timer.disable()

    cdef void drop_timers(self):
        # Timers hold this object as their context: drop them (cycle).
        self.disable_timers()
        self.idle_timer = None
        self.stream_idle_timer = None
        self.request_timer = None
        self.max_stream_timer = None
        self.headers_timer = None
        self.duration_timer = None
        self.delayed_close_timer = None
        self.resume_timer = None
        self.drain_timer = None
