# envoy.filters.http.health_check (Envoy's HealthCheckFilter): a request its
# header matchers all select is a health check. Not in pass-through mode the
# filter answers it (200, or 503 with LH once the server's health check
# failed: admin /healthcheck/fail) when the request has ended, and nothing
# goes upstream; in pass-through mode it goes on, unless the server's check
# failed (then 503 here). Every health check response carries
# x-envoy-upstream-healthchecked-cluster (the node's cluster); while the
# check is failed every response carries x-envoy-immediate-health-check-fail.
# One filter object per stream, reused through the factory's free list.

register_http_filter_factory("envoy.filters.http.health_check",
                             lambda ctx, plan: HealthCheckFilterFactory.from_plan(ctx, plan))

cdef enum:
    _HC_MAX_SPARE = 1024


@cython.final
cdef class HealthCheckFilterFactory(HttpFilterFactory):
    cdef bint pass_through_mode
    cdef list matchers                  # RouterHeaderMatcher, all must match
    cdef bytes cluster_name
    cdef HealthCheckFilter spare
    cdef int spare_count

    @staticmethod
    def from_plan(FactoryContext ctx, plan):
        """From a HealthCheckPlan (http_connection_manager_plan)."""
        cdef HealthCheckFilterFactory f = HealthCheckFilterFactory.__new__(HealthCheckFilterFactory)
        f.pass_through_mode = plan.pass_through_mode
        f.matchers = [RouterHeaderMatcher.from_plan(h) for h in plan.headers]
        f.cluster_name = plan.cluster_name.encode()
        return f

    cdef object create_filter(self):
        cdef HealthCheckFilter d = self.spare
        if d is not None:
            self.spare = d.next_spare
            d.next_spare = None
            self.spare_count -= 1
        else:
            d = HealthCheckFilter.__new__(HealthCheckFilter)
            d.config = self
            d.encoder = HealthCheckEncoderFilter.__new__(HealthCheckEncoderFilter)
            d.encoder.decoder = d
            d.pair = (d, d.encoder)
        d.health_check_request = False
        d.destroyed = False
        return d.pair


@cython.final
cdef class HealthCheckFilter(HttpStreamDecoderFilter):
    cdef HealthCheckFilterFactory config
    cdef HealthCheckEncoderFilter encoder
    cdef tuple pair                     # (self, encoder): made once, handed out per stream
    cdef bint health_check_request
    cdef bint destroyed
    cdef HealthCheckFilter next_spare

    cdef int set_decoder_filter_callbacks(self, HttpStreamDecoderFilterCallbacks callbacks) except -1:
        self.decoder_callbacks = callbacks
        return 0

    cdef int decode_headers(self, HttpHeaderMap headers, bint end_stream) except -1:
        cdef RouterHeaderMatcher m
        for m in self.config.matchers:
            if not m.match(headers):
                return HTTP_FILTER_HEADERS_CONTINUE
        self.health_check_request = True
        if self.config.pass_through_mode:
            if _http_drain_close:
                self.answer()
                return HTTP_FILTER_HEADERS_STOP_ITERATION
            return HTTP_FILTER_HEADERS_CONTINUE
        if end_stream:
            self.answer()
        return HTTP_FILTER_HEADERS_STOP_ITERATION

    cdef int decode_data(self, OwnedBuffer data, bint end_stream) except -1:
        if not self.health_check_request or self.config.pass_through_mode:
            return HTTP_FILTER_DATA_CONTINUE
        data.drain_all()
        if end_stream:
            self.answer()
        return HTTP_FILTER_DATA_STOP_ITERATION_NO_BUFFER

    cdef int decode_trailers(self, HttpHeaderMap trailers) except -1:
        if not self.health_check_request or self.config.pass_through_mode:
            return HTTP_FILTER_TRAILERS_CONTINUE
        self.answer()
        return HTTP_FILTER_TRAILERS_STOP_ITERATION

    cdef int answer(self) except -1:
        """The request has ended: Envoy's onComplete (empty body)."""
        if _http_drain_close:
            return self.decoder_callbacks.send_local_reply(
                503, NULL, 0, RF_FAILED_LOCAL_HEALTH_CHECK, "health_check_failed")
        return self.decoder_callbacks.send_local_reply(200, NULL, 0, 0, "health_check_ok")

    cdef int modify_local_reply_headers(self, HttpHeaderMap headers) except -1:
        return 0

    cdef int on_destroy(self) except -1:
        if self.destroyed:
            return 0
        self.destroyed = True
        self.decoder_callbacks = None
        self.encoder.encoder_callbacks = None
        if self.config.spare_count < _HC_MAX_SPARE:
            self.next_spare = self.config.spare
            self.config.spare = self
            self.config.spare_count += 1
        return 0


@cython.final
cdef class HealthCheckEncoderFilter(HttpStreamEncoderFilter):
    cdef HealthCheckFilter decoder

    cdef int set_encoder_filter_callbacks(self, HttpStreamEncoderFilterCallbacks callbacks) except -1:
        self.encoder_callbacks = callbacks
        return 0

    cdef int encode_headers(self, HttpHeaderMap headers, bint end_stream) except -1:
        cdef bytes cluster
        if self.decoder.health_check_request:
            cluster = self.decoder.config.cluster_name
            _router_set_named(headers, b"x-envoy-upstream-healthchecked-cluster", 38,
                              <const char *>cluster, len(cluster))
        if _http_drain_close:
            _router_set_named(headers, b"x-envoy-immediate-health-check-fail", 35, b"true", 4)
        return HTTP_FILTER_HEADERS_CONTINUE

    cdef int encode_data(self, OwnedBuffer data, bint end_stream) except -1:
        return HTTP_FILTER_DATA_CONTINUE

    cdef int encode_trailers(self, HttpHeaderMap trailers) except -1:
        return HTTP_FILTER_TRAILERS_CONTINUE

    cdef int on_destroy(self) except -1:
        return 0
