# HttpActiveStream: one request/response and its HTTP filter chain (Envoy's
# ConnectionManagerImpl::ActiveStream and Http::FilterManager); shapes in
# conn_manager_impl.pxd. The stream object and its filter wrappers belong to
# the connection and are reused for each request; only the filters are new.

cdef bytes _HCM_TEXT_PLAIN = b"text/plain"
cdef bytes _HCM_CONTINUE_100 = b"HTTP/1.1 100 Continue\r\n\r\n"


cdef int64_t *http_conn_manager_stats(HttpStreamFilterCallbacks callbacks) noexcept:
    """The http.<stat_prefix>. block of the HCM a filter runs in (the router
    charges no_route, rq_direct_response ... there); NULL outside an HCM."""
    if type(callbacks) is HttpActiveStreamDecoderFilter:
        return (<HttpActiveStreamDecoderFilter>callbacks).stream.config.stats
    if type(callbacks) is HttpActiveStreamEncoderFilter:
        return (<HttpActiveStreamEncoderFilter>callbacks).stream.config.stats
    return NULL


@cython.final
cdef class HttpActiveStreamDecoderFilter(HttpStreamDecoderFilterCallbacks):

    cdef ConnectionImpl connection(self):
        return self.stream.hcm.connection

    cdef uint64_t stream_id(self) noexcept:
        return self.stream.stream_id

    cdef int reset_stream(self) except -1:
        return self.stream.reset_stream()

    cdef object clear_route_cache(self):
        self.stream.refresh_cached_route()
        return None

    cdef int continue_decoding(self) except -1:
        return self.stream.continue_decoding(self)

    cdef int encode_headers(self, HttpHeaderMap headers, bint end_stream) except -1:
        return self.stream.encode_headers(0, headers, end_stream)

    cdef int encode_data(self, OwnedBuffer data, bint end_stream) except -1:
        return self.stream.encode_data(0, data, end_stream)

    cdef int encode_trailers(self, HttpHeaderMap trailers) except -1:
        return self.stream.encode_trailers(0, trailers)

    cdef int encode_1xx_headers(self, HttpHeaderMap headers) except -1:
        # Envoy's ActiveStreamDecoderFilter::encode1xxHeaders: without
        # proxy_100_continue every 1xx (100, 103) is swallowed here, the
        # final response follows alone.
        if not self.stream.config.proxy_100_continue:
            return 0
        return self.stream.encode_1xx_headers(headers)

    cdef int send_local_reply(self, int status, const char *body, size_t body_len,
                              int response_flag, const char *details) except -1:
        # The filter may amend the reply's headers (modify_local_reply_headers).
        self.stream.local_reply_filter = self.filter
        try:
            return self.stream.send_local_reply(status, body, body_len, response_flag, details)
        finally:
            self.stream.local_reply_filter = None

    cdef int on_decoder_filter_above_write_buffer_high_watermark(self) except -1:
        cdef HttpConnectionManagerImpl hcm = self.stream.hcm
        hcm.flow_paused += 1
        if hcm.flow_paused == 1 and hcm.connection is not None:
            hcm.config.stats[HTTP_DOWNSTREAM_FLOW_CONTROL_PAUSED_READING_TOTAL] += 1
            hcm.connection.read_disable(True)
        return 0

    cdef int on_decoder_filter_below_write_buffer_low_watermark(self) except -1:
        cdef HttpConnectionManagerImpl hcm = self.stream.hcm
        if hcm.flow_paused > 0:
            hcm.flow_paused -= 1
            if hcm.flow_paused == 0 and hcm.connection is not None:
                hcm.config.stats[HTTP_DOWNSTREAM_FLOW_CONTROL_RESUMED_READING_TOTAL] += 1
                hcm.connection.read_disable(False)
        return 0

    cdef int add_downstream_watermark_callbacks(self, object callbacks) except -1:
        cdef HttpActiveStream s = self.stream
        <HttpDownstreamWatermarkCallbacks?>callbacks
        if s.n_watermark_callbacks < len(s.watermark_callbacks):
            s.watermark_callbacks[s.n_watermark_callbacks] = callbacks
        else:
            s.watermark_callbacks.append(callbacks)
        s.n_watermark_callbacks += 1
        return 0

    cdef size_t decoder_buffer_limit(self) noexcept:
        return self.stream.hcm.connection.buffer_limit if self.stream.hcm.connection is not None else 0


@cython.final
cdef class HttpActiveStreamEncoderFilter(HttpStreamEncoderFilterCallbacks):

    cdef ConnectionImpl connection(self):
        return self.stream.hcm.connection

    cdef uint64_t stream_id(self) noexcept:
        return self.stream.stream_id

    cdef int reset_stream(self) except -1:
        return self.stream.reset_stream()

    cdef object clear_route_cache(self):
        self.stream.refresh_cached_route()
        return None

    cdef int continue_encoding(self) except -1:
        return self.stream.continue_encoding(self)

    cdef size_t encoder_buffer_limit(self) noexcept:
        return self.stream.hcm.connection.buffer_limit if self.stream.hcm.connection is not None else 0


@cython.final
cdef class HttpActiveStream:

    # -- the request arrives (HttpConnectionManagerImpl.on_head runs these)

    cdef int begin_partial(self) except -1:
        """Stream accounting from the first byte of a request (a protocol
        error or a header timeout answers a stream with no parsed head)."""
        cdef HttpConnectionManagerImpl hcm = self.hcm
        cdef HttpConnectionManagerConfig cfg = self.config
        cdef double now = hcm.dispatcher.now
        self.active = True
        self.stream_id += 1
        cfg.stats[HTTP_DOWNSTREAM_RQ_TOTAL] += 1
        cfg.stats[HTTP_DOWNSTREAM_RQ_HTTP1_TOTAL] += 1
        cfg.stats[HTTP_DOWNSTREAM_RQ_ACTIVE] += 1
        hcm.accumulated_requests += 1
        hcm.idle_since = 0
        self.start_time = hcm.head_start if hcm.head_start > 0 else now
        self.last_activity = now
        self.idle_timeout = cfg.stream_idle_timeout
        self.route = None
        self.version = HTTP1_VERSION_11
        self.is_head = False
        self.saw_connection_close = False
        self.force_trace = False
        self.remote_complete = False
        self.decoding_done = False
        self.has_trailers = False
        self.filters_created = False
        self.upgrade_type = None
        self.upgrade = False
        self.local_reply_sent = False
        self.response_started = False
        self.local_complete = False
        self.chunk_encoding = False
        self.no_response_body = False
        self.response_status = 0
        self.response_headers = None
        self.stream_info.reset_for_stream(self.start_time)
        self.stream_info.downstream_remote_address = None     # the peer's
        if cfg.access_loggers is not None:
            self.stream_info.start_time = _wall_clock()
        return 0

    # The head checks and header mutations (conn_manager_utility.pyx).

    cdef int check_request_head(self) except -1:
        return http_check_request_head(self)

    cdef bint upgrade_allowed(self):
        """Envoy's createUpgradeFilterChain: the route's upgrade_configs
        entry for the type decides (enabled or not, even without an HCM
        upgrade_config); else the HCM's enabled upgrade_configs."""
        cdef HttpConnectionManagerConfig cfg = self.config
        cdef bytes t = self.upgrade_type
        if not t:
            return False
        if self.route is not None and (<RouteEntryImpl>self.route).upgrade_types is not None:
            for rt, en in (<RouteEntryImpl>self.route).upgrade_types:
                if rt == t or (isinstance(rt, str) and rt.encode() == t):
                    return bool(en)
        return t in cfg.upgrade_types

    cdef int mutate_request_headers(self) except -1:
        return http_mutate_request_headers(self)

    cdef int set_remote_address(self) except -1:
        return http_set_remote_address(self)

    cdef int refresh_cached_route(self) except -1:
        """The request's route from the route table (None: no route, the
        router answers 404), told to every filter of the chain; a route's
        idle_timeout replaces stream_idle_timeout."""
        cdef HttpActiveStreamDecoderFilter d
        cdef HttpActiveStreamEncoderFilter e
        cdef object route = None
        if self.config.route_config is not None:
            route = (<RouteConfigImpl>self.config.route_config).route(
                self.request_headers, self.hcm.dispatcher.random())
        self.route = route
        self.idle_timeout = self.config.stream_idle_timeout
        if route is not None and (<RouteEntryImpl>route).idle_timeout >= 0:
            self.idle_timeout = (<RouteEntryImpl>route).idle_timeout
        if self.decoder_filters is not None:
            for d in self.decoder_filters:
                d.route = route
            for e in self.encoder_filters:
                e.route = route
        return 0

    cdef int create_filter_chain(self) except -1:
        """This stream's filters from the config's factories, placed in the
        connection's wrappers (made on the first stream)."""
        cdef HttpConnectionManagerConfig cfg = self.config
        cdef HttpFilterFactory factory
        cdef HttpActiveStreamDecoderFilter d
        cdef HttpActiveStreamEncoderFilter e
        cdef Py_ssize_t nd = 0, ne = 0, i
        cdef bint first = self.decoder_filters is None
        cdef object made
        if first:
            self.decoder_filters = []
            self.encoder_filters = []
        for factory in cfg.filter_factories:
            made = factory.create_filter()
            if type(made) is tuple:
                dec, enc = made
            elif isinstance(made, HttpStreamDecoderFilter):
                dec, enc = made, None
            else:
                dec, enc = None, made
            if dec is not None:
                if first:
                    d = HttpActiveStreamDecoderFilter.__new__(HttpActiveStreamDecoderFilter)
                    d.stream = self
                    d.index = len(self.decoder_filters)
                    d.dispatcher = self.hcm.dispatcher
                    d.stream_info = self.stream_info
                    self.decoder_filters.append(d)
                d = <HttpActiveStreamDecoderFilter>self.decoder_filters[nd]
                nd += 1
                d.filter = <HttpStreamDecoderFilter?>dec
                d.route = self.route
                d.headers_continued = False
                d.end_stream = False
                d.filter.set_decoder_filter_callbacks(d)
            if enc is not None:
                if first:
                    e = HttpActiveStreamEncoderFilter.__new__(HttpActiveStreamEncoderFilter)
                    e.stream = self
                    e.dispatcher = self.hcm.dispatcher
                    e.stream_info = self.stream_info
                    self.encoder_filters.insert(0, e)   # encoders run in reverse
                e = <HttpActiveStreamEncoderFilter>self.encoder_filters[
                    len(self.encoder_filters) - 1 - ne]
                ne += 1
                e.filter = <HttpStreamEncoderFilter?>enc
                e.route = self.route
                e.headers_continued = False
                e.end_stream = False
                e.filter.set_encoder_filter_callbacks(e)
        if first:
            for i in range(len(self.encoder_filters)):
                (<HttpActiveStreamEncoderFilter>self.encoder_filters[i]).index = i
        self.filters_created = True
        return 0

    # -- decoding: the request through the decoder filters

    cdef int decode_headers(self, int start, bint end_stream) except -1:
        cdef uint64_t id = self.stream_id
        cdef int status
        cdef HttpActiveStreamDecoderFilter d
        cdef Py_ssize_t i
        self.last_activity = self.hcm.dispatcher.now
        for i in range(start, len(self.decoder_filters)):
            d = <HttpActiveStreamDecoderFilter>self.decoder_filters[i]
            d.end_stream = end_stream
            status = d.filter.decode_headers(self.request_headers, end_stream)
            if self.stream_id != id or not self.active or self.local_complete:
                return 0
            if status == HTTP_FILTER_HEADERS_STOP_ITERATION:
                return 0
            d.headers_continued = True
        if end_stream:
            self.decoding_done = True
        return 0

    cdef int decode_data(self, int start, OwnedBuffer data, bint end_stream) except -1:
        cdef uint64_t id = self.stream_id
        cdef int status
        cdef HttpActiveStreamDecoderFilter d
        cdef Py_ssize_t i
        self.last_activity = self.hcm.dispatcher.now
        self.stream_info.bytes_received += data.len
        for i in range(start, len(self.decoder_filters)):
            d = <HttpActiveStreamDecoderFilter>self.decoder_filters[i]
            if d.end_stream:
                data.drain_all()
                return 0
            d.end_stream = end_stream
            status = d.filter.decode_data(data, end_stream)
            if self.stream_id != id or not self.active or self.local_complete:
                return 0
            if status == HTTP_FILTER_DATA_STOP_ITERATION_AND_BUFFER or \
                    (status == HTTP_FILTER_DATA_CONTINUE and not d.headers_continued):
                d.end_stream = False        # it will see the end on continue
                return self.buffer_request_data(data)
            if status == HTTP_FILTER_DATA_STOP_ITERATION_NO_BUFFER:
                data.drain_all()
                return 0
        data.drain_all()                    # past the last filter: nobody's
        if end_stream:
            self.decoding_done = True
        return 0

    cdef int decode_trailers(self, int start) except -1:
        cdef uint64_t id = self.stream_id
        cdef int status
        cdef HttpActiveStreamDecoderFilter d
        cdef Py_ssize_t i
        for i in range(start, len(self.decoder_filters)):
            d = <HttpActiveStreamDecoderFilter>self.decoder_filters[i]
            d.end_stream = True
            status = d.filter.decode_trailers(self.request_trailers)
            if self.stream_id != id or not self.active or self.local_complete:
                return 0
            if status == HTTP_FILTER_TRAILERS_STOP_ITERATION:
                return 0
        self.decoding_done = True
        return 0

    cdef int buffer_request_data(self, OwnedBuffer data) except -1:
        if self.buffered_request is None:
            self.buffered_request = OwnedBuffer.new()
        if data is not self.buffered_request:
            self.buffered_request.move(data)
        if self.hcm.connection.buffer_limit and \
                self.buffered_request.len > self.hcm.connection.buffer_limit:
            self.config.stats[HTTP_DOWNSTREAM_RQ_TOO_LARGE] += 1
            self.buffered_request.drain_all()
            return self.send_local_reply(413, b"Payload Too Large", 17, 0,
                                         b"request_payload_too_large")
        return 0

    cdef int continue_decoding(self, HttpActiveStreamDecoderFilter f) except -1:
        """Resume the chain after `f`: headers if they stopped there, then
        the body buffered, then the trailers."""
        cdef uint64_t id = self.stream_id
        cdef Py_ssize_t k = f.index
        cdef bint buffered = self.buffered_request is not None and self.buffered_request.len > 0
        cdef bint hdr_end = False, end
        if not self.active or self.local_complete:
            return 0
        if not f.headers_continued:
            f.headers_continued = True
            hdr_end = self.remote_complete and not buffered and not self.has_trailers
            self.decode_headers(k + 1, hdr_end)
            if self.stream_id != id or not self.active or self.local_complete or hdr_end:
                return 0
        end = self.remote_complete and not self.has_trailers
        if buffered or (end and k + 1 < len(self.decoder_filters) and
                        not (<HttpActiveStreamDecoderFilter>self.decoder_filters[k + 1]).end_stream):
            if self.buffered_request is None:
                self.buffered_request = OwnedBuffer.new()
            f.end_stream = end
            self.decode_data(k + 1, self.buffered_request, end)
            if self.stream_id != id or not self.active or self.local_complete:
                return 0
        if self.has_trailers and self.remote_complete and self.request_trailers is not None:
            self.decode_trailers(k + 1)
        return 0

    # -- encoding: the response through the encoder filters, to the codec

    cdef int encode_headers(self, int start, HttpHeaderMap headers, bint end_stream) except -1:
        cdef uint64_t id = self.stream_id
        cdef int status
        cdef HttpActiveStreamEncoderFilter e
        cdef Py_ssize_t i
        if not self.active or self.response_started:
            return 0
        self.response_headers = headers
        self.last_activity = self.hcm.dispatcher.now
        if self.filters_created:
            for i in range(start, len(self.encoder_filters)):
                e = <HttpActiveStreamEncoderFilter>self.encoder_filters[i]
                e.end_stream = end_stream
                status = e.filter.encode_headers(headers, end_stream)
                if self.stream_id != id or not self.active:
                    return 0
                if status == HTTP_FILTER_HEADERS_STOP_ITERATION:
                    return 0
                e.headers_continued = True
        return self.hcm.write_response_head(self, headers, end_stream)

    cdef int encode_data(self, int start, OwnedBuffer data, bint end_stream) except -1:
        cdef uint64_t id = self.stream_id
        cdef int status
        cdef HttpActiveStreamEncoderFilter e
        cdef Py_ssize_t i
        if not self.active or self.local_complete:
            data.drain_all()
            return 0
        self.last_activity = self.hcm.dispatcher.now
        if self.filters_created:
            for i in range(start, len(self.encoder_filters)):
                e = <HttpActiveStreamEncoderFilter>self.encoder_filters[i]
                if e.end_stream:
                    data.drain_all()
                    return 0
                e.end_stream = end_stream
                status = e.filter.encode_data(data, end_stream)
                if self.stream_id != id or not self.active:
                    return 0
                if status == HTTP_FILTER_DATA_STOP_ITERATION_AND_BUFFER or \
                        (status == HTTP_FILTER_DATA_CONTINUE and not e.headers_continued):
                    e.end_stream = False
                    if self.buffered_response is None:
                        self.buffered_response = OwnedBuffer.new()
                    if data is not self.buffered_response:
                        self.buffered_response.move(data)
                    if self.hcm.connection.buffer_limit and \
                            self.buffered_response.len > self.hcm.connection.buffer_limit:
                        self.config.stats[HTTP_RS_TOO_LARGE] += 1
                        self.buffered_response.drain_all()
                        if not self.response_started:
                            self.local_reply_sent = False
                            return self.send_local_reply(500, b"Internal Server Error", 21, 0,
                                                         b"response_payload_too_large")
                        return self.reset_stream()
                    return 0
                if status == HTTP_FILTER_DATA_STOP_ITERATION_NO_BUFFER:
                    data.drain_all()
                    return 0
        if not self.response_started:
            data.drain_all()                # headers held by a filter: nothing to frame it
            return 0
        return self.hcm.write_response_data(self, data, end_stream)

    cdef int encode_trailers(self, int start, HttpHeaderMap trailers) except -1:
        cdef uint64_t id = self.stream_id
        cdef int status
        cdef HttpActiveStreamEncoderFilter e
        cdef Py_ssize_t i
        if not self.active or self.local_complete:
            return 0
        if self.filters_created:
            for i in range(start, len(self.encoder_filters)):
                e = <HttpActiveStreamEncoderFilter>self.encoder_filters[i]
                e.end_stream = True
                status = e.filter.encode_trailers(trailers)
                if self.stream_id != id or not self.active:
                    return 0
                if status == HTTP_FILTER_TRAILERS_STOP_ITERATION:
                    return 0
        return self.hcm.write_response_trailers(self, trailers)

    cdef int continue_encoding(self, HttpActiveStreamEncoderFilter f) except -1:
        cdef uint64_t id = self.stream_id
        cdef Py_ssize_t k = f.index
        cdef bint buffered = self.buffered_response is not None and self.buffered_response.len > 0
        cdef bint end
        if not self.active or self.response_headers is None:
            return 0
        if not f.headers_continued:
            f.headers_continued = True
            end = f.end_stream and not buffered
            self.encode_headers(k + 1, self.response_headers, end)
            if self.stream_id != id or not self.active or self.local_complete:
                return 0
        if buffered or (f.end_stream and not self.local_complete):
            end = f.end_stream
            if self.buffered_response is None:
                self.buffered_response = OwnedBuffer.new()
            self.encode_data(k + 1, self.buffered_response, end)
        return 0

    cdef int encode_1xx_headers(self, HttpHeaderMap headers) except -1:
        """An informational response (100 from an upstream with
        proxy_100_continue) goes straight out, before the final one."""
        cdef HttpConnectionManagerImpl hcm = self.hcm
        if not self.active or self.response_started:
            return 0
        http1_encode_response_head(hcm.out, headers, False)
        self.config.stats[HTTP_DOWNSTREAM_RQ_1XX] += 1
        self.config.listener_stats[HTTP_LISTENER_DOWNSTREAM_RQ_1XX] += 1
        return hcm.connection.write(hcm.out, False)

    cdef int send_local_reply(self, int status, const char *body, size_t body_len,
                              int response_flag, const char *details) except -1:
        """Envoy's sendLocalReply: :status, content-length and content-type
        (text/plain) when there is a body, through the encoder filters; a
        response already started can only be reset."""
        cdef char digits[24]
        cdef size_t n
        cdef HttpHeaderMap h
        cdef uint64_t id = self.stream_id
        if not self.active or self.local_complete:
            return 0
        if response_flag:
            self.stream_info.set_response_flag(response_flag)
        self.stream_info.response_code_details = details
        if self.response_started or self.local_reply_sent:
            return self.reset_stream()
        self.local_reply_sent = True
        if self.local_headers is None:
            self.local_headers = HttpHeaderMap()
        h = self.local_headers
        h.clear()
        h.status = status
        if self.local_reply_filter is not None:
            # Envoy runs modify_headers first: their headers lead
            # (x-envoy-overloaded, location, the route's; observed).
            self.local_reply_filter.modify_local_reply_headers(h)
            if self.stream_id != id or not self.active:
                return 0
        if body_len:
            n = format_uint(body_len, digits)
            h.add_lower(b"content-length", 14, digits, n, HTTP1_HEADER_CONTENT_LENGTH)
            h.add_lower(b"content-type", 12, b"text/plain", 10, HTTP1_HEADER_CONTENT_TYPE)
        self.encode_headers(0, h, body_len == 0 or self.is_head)
        if body_len and not self.is_head and self.stream_id == id and self.active \
                and not self.local_complete:
            if self.local_body is None:
                self.local_body = OwnedBuffer.new()
            self.local_body.add(body, body_len)
            self.encode_data(0, self.local_body, True)
        return 0

    cdef int on_timeout(self, int status, const char *body, int stat,
                        int flag, const char *details) except -1:
        """A stream timer fired: count it, answer (or reset when the response
        has started)."""
        self.config.stats[stat] += 1
        if self.response_started:
            if flag:
                self.stream_info.set_response_flag(flag)
            return self.reset_stream()
        return self.send_local_reply(status, body, strlen(body), flag, details)

    cdef int reset_stream(self) except -1:
        """HTTP/1 has no stream reset: the connection goes (what was written
        first leaves)."""
        cdef HttpConnectionManagerImpl hcm = self.hcm
        if not self.active:
            return 0
        self.config.stats[HTTP_DOWNSTREAM_RQ_TX_RESET] += 1
        if not self.stream_info.response_flags:
            self.stream_info.set_response_flag(RF_LOCAL_RESET)
        hcm.closing = True
        if hcm.connection is not None and hcm.connection.state == CONN_OPEN:
            hcm.connection.close(CLOSE_FLUSH_WRITE)
        return 0

    cdef int log(self) except -1:
        """One access-log record for this request (Envoy logs each stream
        when it ends): the stream info's fields plus the HTTP ones."""
        cdef StreamInfoImpl info = self.stream_info
        cdef HttpHeaderMap rq = self.request_headers
        cdef double now = self.hcm.dispatcher.now
        cdef dict fields = info.log_fields(now)
        cdef dict req = {}
        if info.protocol:
            req = _hcm_header_dict(rq)
            req[":method"] = _HTTP1_METHOD_NAMES[rq.method].decode() if rq.method >= 0 else None
            req[":path"] = rq.buf[rq.path_off:rq.path_off + rq.path_len].decode("latin-1")
            req[":authority"] = req.get("host")
        fields["protocol"] = ("HTTP/1.1" if info.protocol == HTTP1_VERSION_11 else
                              "HTTP/1.0" if info.protocol else None)
        fields["response_code"] = info.response_code
        fields["request_headers"] = req
        fields["response_headers"] = _hcm_header_dict(self.response_headers)
        fields["request_duration_ms"] = (int((info.request_complete_mono - info.start_mono) * 1000.0)
                                         if info.request_complete_mono else None)
        fields["response_duration_ms"] = (int((info.first_tx_mono - info.start_mono) * 1000.0)
                                          if info.first_tx_mono else None)
        for logger in self.config.access_loggers:
            try:
                logger.log(fields)
            except Exception as exc:
                if self.hcm.dispatcher.error_log is not None:
                    self.hcm.dispatcher.error_log("access log: %r" % (exc,))
        return 0

    cdef int end_stream(self) except -1:
        """The stream is over: filters are destroyed (on_destroy) and every
        reference of this request dropped; the stream is ready for the next."""
        cdef HttpActiveStreamDecoderFilter d
        cdef HttpActiveStreamEncoderFilter e
        cdef HttpStreamFilterBase f
        if not self.active:
            return 0
        self.active = False
        if self.upgrade:
            self.upgrade = False
            self.config.stats[HTTP_DOWNSTREAM_CX_UPGRADES_ACTIVE] -= 1
        if self.filters_created:
            self.filters_created = False
            for d in self.decoder_filters:
                f = d.filter
                d.filter = None
                d.route = None
                if f is not None:
                    f.on_destroy()
            for e in self.encoder_filters:
                f = e.filter
                e.filter = None
                e.route = None
                if f is not None:
                    f.on_destroy()
        self.route = None
        self.response_headers = None
        while self.n_watermark_callbacks:
            self.n_watermark_callbacks -= 1
            self.watermark_callbacks[self.n_watermark_callbacks] = None
        if self.buffered_request is not None:
            self.buffered_request.drain_all()
        if self.buffered_response is not None:
            self.buffered_response.drain_all()
        if self.local_body is not None:
            self.local_body.drain_all()
        self.body.drain_all()
        return 0
