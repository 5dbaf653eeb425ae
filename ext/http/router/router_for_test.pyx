# Test-only: the router filter without a connection manager. RouterForTest
# builds the clusters, the route table and the router from plan Structs on a
# bare Dispatcher; each request() is one stream whose callbacks
# (_RouterStreamForTest) record what the router does to the downstream:
# response headers/data/trailers, local replies (with the router's
# modify_local_reply_headers applied, as the connection manager does),
# resets and flow-control calls. Upstreams are real servers on real sockets.


@cython.final
cdef class _RouterStreamForTest(HttpStreamDecoderFilterCallbacks):
    """One downstream stream as the router sees it."""
    cdef RouterForTest owner
    cdef RouterFilter filter
    cdef HttpHeaderMap headers
    cdef HttpHeaderMap trailers_map
    cdef readonly list events
    cdef list watermark_callbacks
    cdef readonly bint destroyed
    cdef readonly bint response_complete

    cdef ConnectionImpl connection(self):
        return None

    cdef int reset_stream(self) except -1:
        self.events.append(("reset", self.stream_info.response_code_details.decode()
                            if self.stream_info.response_code_details != NULL else None))
        return self.end()

    cdef int continue_decoding(self) except -1:
        return 0

    cdef int encode_headers(self, HttpHeaderMap headers, bint end_stream) except -1:
        self.events.append(("headers", headers.status, headers.items_for_test(), end_stream))
        if end_stream:
            self.response_complete = True
            self.end()
        return 0

    cdef int encode_data(self, OwnedBuffer data, bint end_stream) except -1:
        self.events.append(("data", data.to_bytes(), end_stream))
        data.drain_all()
        if end_stream:
            self.response_complete = True
            self.end()
        return 0

    cdef int encode_trailers(self, HttpHeaderMap trailers) except -1:
        self.events.append(("trailers", trailers.items_for_test()))
        self.response_complete = True
        return self.end()

    cdef int encode_1xx_headers(self, HttpHeaderMap headers) except -1:
        self.events.append(("1xx", headers.status, headers.items_for_test()))
        return 0

    cdef int send_local_reply(self, int status, const char *body, size_t body_len,
                              int response_flag, const char *details) except -1:
        cdef HttpHeaderMap h = HttpHeaderMap()
        h.status = status
        if response_flag:
            self.stream_info.set_response_flag(response_flag)
        self.stream_info.response_code_details = details
        self.filter.modify_local_reply_headers(h)
        self.events.append(("local_reply", status, body[:body_len] if body != NULL else b"",
                            h.items_for_test()))
        self.response_complete = True
        return self.end()

    cdef int on_decoder_filter_above_write_buffer_high_watermark(self) except -1:
        self.events.append(("above_high",))
        return 0

    cdef int on_decoder_filter_below_write_buffer_low_watermark(self) except -1:
        self.events.append(("below_low",))
        return 0

    cdef int add_downstream_watermark_callbacks(self, object callbacks) except -1:
        self.watermark_callbacks.append(callbacks)
        return 0

    cdef size_t decoder_buffer_limit(self) noexcept:
        return self.owner.buffer_limit

    cdef int end(self) except -1:
        # The connection manager ends the stream (on_destroy) with its response.
        if not self.destroyed:
            self.destroyed = True
            self.filter.on_destroy()
        return 0

    # --- the test's side

    def data(self, bytes body, bint end_stream=True):
        """More request body."""
        cdef OwnedBuffer b = OwnedBuffer.new()
        b.add(body, len(body))
        if not self.destroyed:
            self.filter.decode_data(b, end_stream)

    def trailers(self, list pairs):
        cdef bytes n, v
        self.trailers_map = HttpHeaderMap()
        for n, v in pairs:
            self.trailers_map.add(n, len(n), v, len(v), HTTP1_HEADER_OTHER)
        if not self.destroyed:
            self.filter.decode_trailers(self.trailers_map)

    def downstream_watermark(self, bint above):
        """The downstream connection's write buffer crossed a watermark."""
        cdef HttpDownstreamWatermarkCallbacks cb
        for cb in self.watermark_callbacks:
            if above:
                cb.on_above_write_buffer_high_watermark()
            else:
                cb.on_below_write_buffer_low_watermark()

    def destroy(self):
        """The downstream went away."""
        self.end()

    def request_headers(self):
        return self.headers.items_for_test()

    @property
    def log_fields(self):
        """The stream's StreamInfo as access logs get it."""
        return self.stream_info.log_fields(self.dispatcher.now)


@cython.final
cdef class RouterForTest:
    """The router of `hcm_plan` (an HttpConnectionManagerPlan: its route
    table and RouterPlan) with the clusters of `plan` (a WorkerPlan), stats
    in worker row 0 of `stats_buffer` (a StatsStore's memory)."""
    cdef Dispatcher dispatcher
    cdef FactoryContext context
    cdef readonly ClusterManagerImpl cluster_manager
    cdef RouteConfigImpl route_config
    cdef RouterFilterFactory factory
    cdef int64_t[::1] stats_view
    cdef size_t buffer_limit

    def __init__(self, Dispatcher dispatcher, plan, hcm_plan, stats_buffer,
                 size_t buffer_limit=1 << 20):
        self.dispatcher = dispatcher
        self.buffer_limit = buffer_limit
        self.stats_view = memoryview(stats_buffer).cast("B").cast("q")
        self.context = context_for_test(dispatcher, plan, &self.stats_view[0])
        self.cluster_manager = self.context.cluster_manager
        self.route_config = RouteConfigImpl.from_plan(self.context, hcm_plan.route_table)
        self.factory = <RouterFilterFactory>RouterFilterFactory.from_plan(
            self.context, hcm_plan.http_filters[len(hcm_plan.http_filters) - 1])

    def request(self, bytes head, bint end_stream=True):
        """Start a stream with the request head `head` (bytes up to the blank
        line); end_stream: no body follows."""
        cdef Http1RequestParser p = Http1RequestParser()
        cdef OwnedBuffer b = OwnedBuffer.new()
        cdef _RouterStreamForTest s = _RouterStreamForTest.__new__(_RouterStreamForTest)
        b.add(head, len(head))
        if p.parse(b) != HTTP1_PARSE_DONE:
            raise ValueError("not a complete request head")
        s.owner = self
        s.events = []
        s.watermark_callbacks = []
        s.dispatcher = self.dispatcher
        s.stream_info = StreamInfoImpl.__new__(StreamInfoImpl)
        s.headers = HttpHeaderMap()
        s.headers.load_request(p)
        s.route = self.route_config.route(s.headers, self.dispatcher.random())
        s.filter = <RouterFilter>self.factory.create_filter()
        s.filter.set_decoder_filter_callbacks(s)
        s.filter.decode_headers(s.headers, end_stream)
        return s

    def hcm_stats(self):
        """The http.<stat_prefix>. counters the router charged."""
        return {name: self.factory.own_stats[i]
                for i, (name, _) in enumerate(HTTP_CONN_MANAGER_STATS) if i < HTTP_STATS_COUNT}

    @property
    def spare_filters(self):
        return self.factory.spare_count

    def pool_counts(self, str cluster):
        return self.context.get_thread_local_cluster(cluster).pool_counts_for_test()

