# RouterUpstreamRequest and its response decoder (shape in router.pxd):
# one attempt of a request upstream (Envoy source/common/router/upstream_request.cc).


cdef int _router_on_per_try_timer(object ctx) except -1:
    return (<RouterUpstreamRequest>ctx).on_per_try_timeout()


@cython.final
cdef class RouterResponseDecoder(HttpResponseDecoder):

    cdef int decode_1xx_headers(self, HttpHeaderMap headers) except -1:
        cdef RouterUpstreamRequest ur = self.parent
        if ur is None or ur.parent is None:
            return 0
        return ur.parent.on_upstream_1xx_headers(ur, headers)

    cdef int decode_headers(self, HttpHeaderMap headers, bint end_stream) except -1:
        cdef RouterUpstreamRequest ur = self.parent
        if ur is None or ur.parent is None:
            return 0
        ur.awaiting_headers = False
        return ur.parent.on_upstream_headers(ur, headers, end_stream)

    cdef int decode_data(self, OwnedBuffer data, bint end_stream) except -1:
        cdef RouterUpstreamRequest ur = self.parent
        if ur is None or ur.parent is None:
            data.drain_all()
            return 0
        return ur.parent.on_upstream_data(ur, data, end_stream)

    cdef int decode_trailers(self, HttpHeaderMap trailers) except -1:
        cdef RouterUpstreamRequest ur = self.parent
        if ur is None or ur.parent is None:
            return 0
        return ur.parent.on_upstream_trailers(ur, trailers)

    cdef int on_reset_stream(self, int reason) except -1:
        cdef RouterUpstreamRequest ur = self.parent
        if ur is None:
            return 0
        ur.encoder = None           # the stream is over
        return ur.on_reset(reason)

    cdef int on_above_write_buffer_high_watermark(self) except -1:
        # The upstream connection is backed up: stop reading the downstream.
        cdef RouterUpstreamRequest ur = self.parent
        if ur is not None and ur.parent is not None and not ur.upstream_above_high:
            ur.upstream_above_high = True
            ur.parent.decoder_callbacks.on_decoder_filter_above_write_buffer_high_watermark()
        return 0

    cdef int on_below_write_buffer_low_watermark(self) except -1:
        cdef RouterUpstreamRequest ur = self.parent
        if ur is not None and ur.parent is not None and ur.upstream_above_high:
            ur.upstream_above_high = False
            ur.parent.decoder_callbacks.on_decoder_filter_below_write_buffer_low_watermark()
        return 0


@cython.final
cdef class RouterUpstreamRequest(HttpPoolCallbacks):
    """One attempt of a request upstream (Envoy's UpstreamRequest)."""

    cdef int reinit(self) except -1:
        self.handle = None
        self.encoder = None
        self.host = None
        self.pool = None
        if self.buffered_body is not None:
            self.buffered_body.drain_all()
        self.pending_trailers = None
        self.headers_accepted = False
        self.end_stream_accepted = False
        self.encode_complete = False
        self.awaiting_headers = True
        self.retried = False
        self.request_started = False
        self.create_per_try_timeout_on_request_complete = False
        self.calling_encode = False
        self.deferred_reset_reason = -1
        self.body_above_high = False
        self.upstream_above_high = False
        self.read_disabled = 0
        self.stream_reset = False
        self.transport_failure_reason = None
        return 0

    cdef int accept_headers(self, bint end_stream) except -1:
        cdef RouterUpstreamRequest keep = self
        cdef PendingStream h
        self.headers_accepted = True
        self.end_stream_accepted = end_stream
        # The pool may answer before returning: ready at once, or a failure
        # (overflow) that the router has already dealt with.
        if self.pool is None:       # the host left the cluster meanwhile
            return self.on_reset(HTTP_RESET_CONNECTION_FAILURE)
        h = self.pool.new_http_stream(self, self.decoder)
        if h is not None and self.parent is not None and self.encoder is None:
            self.handle = h
        return 0

    cdef int accept_data(self, OwnedBuffer data, bint end_stream) except -1:
        cdef RouterFilter parent = self.parent
        cdef size_t limit
        if end_stream:
            self.end_stream_accepted = True
        if self.encoder is None:
            if self.stream_reset or parent is None:
                data.drain_all()
                return 0
            # No connection yet: hold the body, pausing the downstream past
            # the cluster's buffer limit.
            if self.buffered_body is None:
                self.buffered_body = OwnedBuffer.new()
            self.buffered_body.move(data)
            limit = parent.cluster_info.buffer_limit
            if limit and not self.body_above_high and self.buffered_body.length() > limit:
                self.body_above_high = True
                parent.decoder_callbacks.on_decoder_filter_above_write_buffer_high_watermark()
            return 0
        if end_stream:
            self.encode_complete = True
        return self.encoder.encode_data(data, end_stream)

    cdef int accept_trailers(self, HttpHeaderMap trailers) except -1:
        self.end_stream_accepted = True
        if self.encoder is None:
            self.pending_trailers = trailers
            return 0
        self.encode_complete = True
        return self.encoder.encode_trailers(trailers)

    # --- HttpPoolCallbacks

    cdef int on_pool_ready(self, Http1RequestEncoder encoder, HostImpl host) except -1:
        cdef RouterFilter parent = self.parent
        cdef RouterUpstreamRequest keep = self
        cdef bint has_body, end, data_end
        cdef int i, reason
        self.handle = None
        if parent is None or self.stream_reset:
            return encoder.reset_stream()
        self.encoder = encoder
        self.host = host
        parent.stream_info.upstream_host = host
        if parent.logs_upstream and encoder.connection() is not None:
            parent.stream_info.fill_upstream(encoder.connection())
        for i in range(self.read_disabled):
            encoder.read_disable(True)
        if parent.downstream_end_stream:
            self.setup_per_try_timeout()
        else:
            self.create_per_try_timeout_on_request_complete = True
        has_body = self.buffered_body is not None and self.buffered_body.length() > 0
        end = self.end_stream_accepted and not has_body and self.pending_trailers is None
        # A reset while we write is handled once the writing is done.
        self.calling_encode = True
        self.request_started = True
        encoder.encode_headers(parent.downstream_headers, end)
        if end:
            self.encode_complete = True
        else:
            data_end = self.end_stream_accepted and self.pending_trailers is None
            if (has_body or data_end) and self.encoder is not None:
                if self.buffered_body is None:
                    self.buffered_body = OwnedBuffer.new()
                if data_end:
                    self.encode_complete = True
                encoder.encode_data(self.buffered_body, data_end)
            if self.pending_trailers is not None and self.encoder is not None:
                self.encode_complete = True
                encoder.encode_trailers(self.pending_trailers)
                self.pending_trailers = None
        self.calling_encode = False
        if self.body_above_high:
            self.body_above_high = False
            if self.parent is not None:
                parent.decoder_callbacks.on_decoder_filter_below_write_buffer_low_watermark()
        if self.deferred_reset_reason >= 0:
            reason = self.deferred_reset_reason
            self.deferred_reset_reason = -1
            return self.on_reset(reason)
        return 0

    cdef int on_pool_failure(self, int reason, HostImpl host) except -1:
        cdef RouterFilter parent = self.parent
        cdef int reset_reason
        self.handle = None
        if parent is None or self.stream_reset:
            return 0
        self.host = host
        parent.stream_info.upstream_host = host
        if reason == POOL_FAILURE_OVERFLOW:
            reset_reason = HTTP_RESET_OVERFLOW
        elif reason == POOL_FAILURE_TIMEOUT:
            reset_reason = HTTP_RESET_CONNECT_TIMEOUT
        else:
            reset_reason = HTTP_RESET_CONNECTION_FAILURE
        if reset_reason != HTTP_RESET_OVERFLOW and self.pool is not None:
            self.transport_failure_reason = self.pool.last_failure_reason
            parent.stream_info.upstream_transport_failure_reason = self.transport_failure_reason
        return self.on_reset(reset_reason)

    # --- the attempt's end

    cdef int on_reset(self, int reason) except -1:
        """The stream ended without a whole response (Envoy's
        UpstreamRequest::onResetStream)."""
        cdef RouterFilter parent = self.parent
        if parent is None or self.stream_reset:
            return 0
        if self.calling_encode:
            self.deferred_reset_reason = reason
            return 0
        self.awaiting_headers = False
        if self.per_try_timer is not None:
            self.per_try_timer.disable()
        return parent.on_upstream_reset(self, reason, self.transport_failure_reason)

    cdef int reset_stream(self) except -1:
        """Abandon the attempt: cancel the wait for a connection, or close
        the connection (it cannot be reused mid-exchange)."""
        cdef PendingStream h = self.handle
        cdef Http1RequestEncoder e = self.encoder
        self.stream_reset = True
        self.handle = None
        self.encoder = None
        if self.per_try_timer is not None:
            self.per_try_timer.disable()
        if h is not None:
            h.cancel()
        if e is not None:
            e.reset_stream()
        return 0

    cdef int setup_per_try_timeout(self) except -1:
        cdef RouterFilter parent = self.parent
        self.create_per_try_timeout_on_request_complete = False
        if parent is None or parent.per_try_timeout <= 0:
            return 0
        if self.per_try_timer is None:
            self.per_try_timer = Timer.new(parent.dispatcher, _router_on_per_try_timer, self)
        if parent.per_try_timeout == parent.route_entry.retry_policy.per_try_timeout:
            self.per_try_timer.enable_common(parent.per_try_timeout)
        else:
            self.per_try_timer.enable(parent.per_try_timeout)       # the client's
        return 0

    cdef int on_per_try_timeout(self) except -1:
        cdef RouterFilter parent = self.parent
        # Once the response has started, only the route timeout applies.
        if parent is None or parent.downstream_response_started:
            return 0
        return parent.on_per_try_timeout(self)

    cdef int release_downstream(self) except -1:
        """The router lets this attempt go: undo what it did to the
        downstream (back-pressure) and to its connection (paused reads)."""
        cdef RouterFilter parent = self.parent
        cdef int i
        if self.per_try_timer is not None:
            self.per_try_timer.disable()
        if self.encoder is not None:
            for i in range(self.read_disabled):
                self.encoder.read_disable(False)
        self.read_disabled = 0
        if parent is not None:
            if self.body_above_high:
                self.body_above_high = False
                parent.decoder_callbacks.on_decoder_filter_below_write_buffer_low_watermark()
            if self.upstream_above_high:
                self.upstream_above_high = False
                parent.decoder_callbacks.on_decoder_filter_below_write_buffer_low_watermark()
        return 0

    cdef int read_disable(self, bint disable) except -1:
        if disable:
            self.read_disabled += 1
        elif self.read_disabled > 0:
            self.read_disabled -= 1
        else:
            return 0
        if self.encoder is not None:
            self.encoder.read_disable(disable)
        return 0
