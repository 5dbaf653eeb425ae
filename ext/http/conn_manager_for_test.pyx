# Test-only handles on the HTTP connection manager: an HCM config built from
# a plan without a Worker, downstream connections adopted from accepted
# sockets, and HTTP filters that answer in known ways. The data plane never
# uses them.


cdef int _http_pause_timer_for_test(object ctx) except -1:
    cdef HttpPauseFilterForTest f = <HttpPauseFilterForTest>ctx
    f.timer = None
    if f.decoder_callbacks is not None:
        f.decoder_callbacks.continue_decoding()
    return 0


@cython.final
cdef class HttpPauseFilterForTest(HttpStreamDecoderFilter):
    """Stops the request headers and resumes them `delay` seconds later from
    a timer (the body meanwhile is buffered by the stream)."""
    cdef double delay
    cdef Timer timer

    cdef int decode_headers(self, HttpHeaderMap headers, bint end_stream) except -1:
        self.timer = Timer.new(self.decoder_callbacks.dispatcher, _http_pause_timer_for_test, self)
        self.timer.enable(self.delay)
        return HTTP_FILTER_HEADERS_STOP_ITERATION

    cdef int on_destroy(self) except -1:
        if self.timer is not None:
            self.timer.disable()
            self.timer = None
        self.decoder_callbacks = None
        return 0


cdef int _http_flow_timer_for_test(object ctx) except -1:
    cdef HttpFlowFilterForTest f = <HttpFlowFilterForTest>ctx
    f.timer = None
    if f.decoder_callbacks is not None:
        f.decoder_callbacks.on_decoder_filter_below_write_buffer_low_watermark()
    return 0


@cython.final
cdef class HttpFlowFilterForTest(HttpStreamDecoderFilter):
    """Says its upstream is backed up when the request headers pass (the
    HCM stops reading the downstream) and drained `delay` seconds later."""
    cdef double delay
    cdef Timer timer

    cdef int decode_headers(self, HttpHeaderMap headers, bint end_stream) except -1:
        self.decoder_callbacks.on_decoder_filter_above_write_buffer_high_watermark()
        self.timer = Timer.new(self.decoder_callbacks.dispatcher, _http_flow_timer_for_test, self)
        self.timer.enable(self.delay)
        return HTTP_FILTER_HEADERS_CONTINUE

    cdef int on_destroy(self) except -1:
        if self.timer is not None:
            self.timer.disable()
            self.timer = None
        self.decoder_callbacks = None
        return 0


@cython.final
cdef class HttpHeaderEncoderFilterForTest(HttpStreamEncoderFilter):
    """Adds `x-test-encoder: <n>` to each response: n counts the encoder
    filters the response went through before this one."""

    cdef int encode_headers(self, HttpHeaderMap headers, bint end_stream) except -1:
        cdef int i = headers.find(b"x-test-encoder", 14)
        if i >= 0:
            headers.append_value(i, b"1", 1, b",", 1)
        else:
            headers.add(b"x-test-encoder", 14, b"1", 1, HTTP1_HEADER_OTHER)
        return HTTP_FILTER_HEADERS_CONTINUE


@cython.final
cdef class HttpTerminalFilterForTest(HttpStreamDecoderFilter):
    """The last decoder filter of test chains. Modes:
    * "echo": 200 with content-length; body = request line, request headers
      (name: value lines) as the filter got them, a blank line, the body.
    * "chunked": the same echo, headers first with no length, then the body
      in two pieces (the HCM chunks it).
    * "local:<status>": send_local_reply(status, b"local reply").
    * "empty:<status>": that status, headers only (end_stream).
    * "hold": never answers (timers)."""
    cdef str mode
    cdef int status
    cdef OwnedBuffer body
    cdef HttpHeaderMap request
    cdef list destroyed             # appends the stream id on on_destroy

    cdef int decode_headers(self, HttpHeaderMap headers, bint end_stream) except -1:
        self.request = headers
        if self.mode == "local":
            self.decoder_callbacks.send_local_reply(self.status, b"local reply", 11, 0, b"test")
            return HTTP_FILTER_HEADERS_STOP_ITERATION
        if self.mode == "empty":
            self.respond_empty()
            return HTTP_FILTER_HEADERS_STOP_ITERATION
        if end_stream and self.mode != "hold":
            self.respond()
        return HTTP_FILTER_HEADERS_STOP_ITERATION

    cdef int decode_data(self, OwnedBuffer data, bint end_stream) except -1:
        if self.body is None:
            self.body = OwnedBuffer.new()
        self.body.move(data)
        if end_stream and self.mode != "hold":
            self.respond()
        return HTTP_FILTER_DATA_STOP_ITERATION_NO_BUFFER

    cdef int respond_empty(self):
        cdef HttpHeaderMap h = HttpHeaderMap()
        h.status = self.status
        self.decoder_callbacks.encode_headers(h, True)
        return 0

    cdef int respond(self):
        cdef HttpHeaderMap rq = self.request
        cdef HttpHeaderMap h = HttpHeaderMap()
        cdef OwnedBuffer out = OwnedBuffer.new()
        cdef OwnedBuffer second
        cdef bytes text
        cdef size_t half
        parts = [_HTTP1_METHOD_NAMES[rq.method], b" ", rq.path()[:rq.path_len], b"\n"]
        for name, value in rq.items_for_test():
            parts += [name, b": ", value, b"\n"]
        parts.append(b"\n")
        if self.body is not None:
            parts.append(self.body.to_bytes())
            self.body.drain_all()
        text = b"".join(parts)
        h.status = 200
        if self.mode == "chunked":
            self.decoder_callbacks.encode_headers(h, False)
            half = len(text) // 2
            out.add(text, half)
            self.decoder_callbacks.encode_data(out, False)
            second = OwnedBuffer.new()
            second.add(<const char*>text + half, len(text) - half)
            self.decoder_callbacks.encode_data(second, True)
            return 0
        length = str(len(text)).encode()
        h.add(b"content-length", 14, length, len(length), HTTP1_HEADER_CONTENT_LENGTH)
        self.decoder_callbacks.encode_headers(h, False)
        out.add(text, len(text))
        self.decoder_callbacks.encode_data(out, True)
        return 0

    cdef int on_destroy(self) except -1:
        if self.destroyed is not None:
            self.destroyed.append(self.decoder_callbacks.stream_id())
        self.decoder_callbacks = None
        self.request = None
        return 0


@cython.final
cdef class HttpStaticFilterForTest(HttpStreamDecoderFilter):
    """Answers every request with 200 "hello" from a header map and a
    buffer it reuses; its factory hands out the same filter each time (a
    stream ends before the next starts): the HCM's own per-request cost."""
    cdef HttpHeaderMap headers
    cdef OwnedBuffer body

    cdef int decode_headers(self, HttpHeaderMap headers, bint end_stream) except -1:
        if end_stream:
            self.headers.clear()
            self.headers.status = 200
            self.headers.add(b"content-length", 14, b"5", 1, HTTP1_HEADER_CONTENT_LENGTH)
            self.decoder_callbacks.encode_headers(self.headers, False)
            self.body.add(b"hello", 5)
            self.decoder_callbacks.encode_data(self.body, True)
        return HTTP_FILTER_HEADERS_STOP_ITERATION


@cython.final
cdef class _HttpFilterFactoryForTest(HttpFilterFactory):
    cdef str kind
    cdef str mode
    cdef int status
    cdef double delay
    cdef list destroyed
    cdef HttpStaticFilterForTest static

    cdef object create_filter(self):
        cdef HttpTerminalFilterForTest t
        cdef HttpPauseFilterForTest p
        cdef HttpFlowFilterForTest fl
        if self.kind == "static":
            if self.static is None:
                self.static = HttpStaticFilterForTest.__new__(HttpStaticFilterForTest)
                self.static.headers = HttpHeaderMap()
                self.static.body = OwnedBuffer.new()
            return self.static
        if self.kind == "terminal":
            t = HttpTerminalFilterForTest.__new__(HttpTerminalFilterForTest)
            t.mode = self.mode
            t.status = self.status
            t.destroyed = self.destroyed
            return t
        if self.kind == "flow":
            fl = HttpFlowFilterForTest.__new__(HttpFlowFilterForTest)
            fl.delay = self.delay
            return fl
        if self.kind == "pause":
            p = HttpPauseFilterForTest.__new__(HttpPauseFilterForTest)
            p.delay = self.delay
            return (p, HttpHeaderEncoderFilterForTest.__new__(HttpHeaderEncoderFilterForTest))
        return HttpHeaderEncoderFilterForTest.__new__(HttpHeaderEncoderFilterForTest)


@cython.final
cdef class HttpConnectionManagerForTest:
    """An HttpConnectionManagerConfig from `plan` (an
    HttpConnectionManagerPlan; its stats block at slot 0 of a private stats
    row, histograms after it) whose HTTP filters are test filters:
    `filters` is a list of "pause:<seconds>", "flow:<seconds>", "encoder", and last
    "terminal:<mode>" (see HttpTerminalFilterForTest) or "static"
    (HttpStaticFilterForTest). `downstream(fd)`
    adopts an accepted socket as a listener does."""
    cdef Dispatcher dispatcher
    cdef FactoryContext context
    cdef readonly HttpConnectionManagerConfig config
    cdef object stats_mem
    cdef int64_t[::1] stats_view
    cdef readonly list destroyed
    cdef list downstreams

    def __init__(self, Dispatcher dispatcher, plan, filters=("terminal:echo",)):
        cdef _HttpFilterFactoryForTest f
        cdef int nslots = HTTP_STATS_COUNT + 2 * HIST_SLOTS
        self.dispatcher = dispatcher
        self.stats_mem = bytearray(8 * nslots)
        self.stats_view = memoryview(self.stats_mem).cast("B").cast("q")
        self.context = FactoryContext.__new__(FactoryContext)
        self.context.dispatcher = dispatcher
        self.context.stats_row = &self.stats_view[0]
        self.context.shared_row = &self.stats_view[0]
        import msgspec
        plan = msgspec.structs.replace(plan, stats_base=0, http_filters=[],
                                       downstream_cx_length_ms_slot=HTTP_STATS_COUNT,
                                       downstream_rq_time_slot=HTTP_STATS_COUNT + HIST_SLOTS)
        self.config = HttpConnectionManagerConfig.from_plan(self.context, plan)
        self.destroyed = []
        factories = []
        for spec in filters:
            kind, _, arg = spec.partition(":")
            f = _HttpFilterFactoryForTest.__new__(_HttpFilterFactoryForTest)
            f.kind = kind
            f.destroyed = self.destroyed
            if kind == "terminal":
                f.mode, _, status = arg.partition(":")
                f.status = int(status) if status else 200
            elif kind == "pause" or kind == "flow":
                f.delay = float(arg or 0)
            factories.append(f)
        self.config.filter_factories = factories
        self.downstreams = []

    def downstream(self, int fd, peer=("127.0.0.1", 0), size_t buffer_limit=1 << 20):
        """Adopt `fd` (accepted, non-blocking) as an HCM connection; `peer`
        is its remote address (ip, port). Returns its ConnectionForTest."""
        cdef ConnectionForTest t = ConnectionForTest.__new__(ConnectionForTest)
        cdef ConnectionImpl conn = ConnectionImpl.new_server(self.dispatcher, fd, buffer_limit)
        _fill_sockaddr(&conn.remote_addr, &conn.remote_addr_len, peer[0], peer[1])
        t.init(conn, ())
        self.config.create_filter(conn.filter_manager, conn)
        self.downstreams.append(t)
        conn.filter_manager.initialize_read_filters()
        conn.update_epoll()
        return t

    def stats(self):
        """{name: value} of the http.<stat_prefix>. block."""
        return {name: self.stats_view[i] for i, (name, _) in enumerate(HTTP_CONN_MANAGER_STATS)}

    def histogram_count(self, str name):
        """How many values histogram `name` recorded."""
        cdef int base = HTTP_STATS_COUNT if name == "downstream_cx_length_ms" \
            else HTTP_STATS_COUNT + HIST_SLOTS
        cdef int i
        cdef int64_t n = 0
        for i in range(HIST_BUCKETS):
            n += self.stats_view[base + i]
        return n

    def start_drain(self):
        self.config.start_drain()

    def manager_for_test(self, Py_ssize_t i):
        """The manager serving downstream `i` (opaque; None once closed)."""
        cdef ConnectionForTest t = <ConnectionForTest>self.downstreams[i]
        for f in t.conn.filter_manager.read_filters if t.conn.filter_manager.read_filters else ():
            return f
        return None

    def remote_address(self, Py_ssize_t i):
        """Downstream `i`'s last stream's remote address (stream info)."""
        m = self.manager_for_test(i)
        return (<HttpConnectionManagerImpl>m).stream.stream_info.remote_address() if m is not None else None

    def run_for_test(self, double seconds):
        self.dispatcher.run_for_test(seconds)

    @property
    def live_connections(self):
        return self.dispatcher.live_connections

    def close(self):
        cdef ConnectionForTest t
        for t in self.downstreams:
            if t.conn.state != CONN_CLOSED:
                t.conn.close(CLOSE_NO_FLUSH)


def http_uuid4_for_test(Dispatcher d):
    cdef char out[36]
    http_uuid4(d, out)
    return out[:36]


def http_date_for_test():
    return http_date_value()[:29]
