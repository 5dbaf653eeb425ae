# Http1ConnPoolImpl, Http1RequestEncoder and the HTTP pool interfaces (shape
# and contracts in conn_pool.pxd); the client codec (Http1ActiveClient) is in
# codec_client.pyx.

cdef extern from "Python.h":
    Py_ssize_t _http1_refcnt "Py_REFCNT" (PyObject *o)

cdef enum:
    # Body bytes of an idempotent request held for a keep-alive race retry;
    # past this the request is not retried (its body is not kept).
    _HTTP1_REPLAY_BODY_LIMIT = 65536
    _HTTP1_SPARE_ENCODERS = 64


cdef class HttpResponseDecoder:

    cdef int decode_1xx_headers(self, HttpHeaderMap headers) except -1:
        return 0

    cdef int decode_headers(self, HttpHeaderMap headers, bint end_stream) except -1:
        return 0

    cdef int decode_data(self, OwnedBuffer data, bint end_stream) except -1:
        data.drain_all()
        return 0

    cdef int decode_trailers(self, HttpHeaderMap trailers) except -1:
        return 0

    cdef int on_reset_stream(self, int reason) except -1:
        return 0

    cdef int on_above_write_buffer_high_watermark(self) except -1:
        return 0

    cdef int on_below_write_buffer_low_watermark(self) except -1:
        return 0


cdef class HttpPoolCallbacks:

    cdef int on_pool_ready(self, Http1RequestEncoder encoder, HostImpl host) except -1:
        return encoder.reset_stream()

    cdef int on_pool_failure(self, int reason, HostImpl host) except -1:
        return 0


cdef inline bint _http1_method_idempotent(int m) noexcept:
    # RFC 9110 9.2.2: safe to send twice.
    return m == HTTP1_METHOD_GET or m == HTTP1_METHOD_HEAD or m == HTTP1_METHOD_OPTIONS \
        or m == HTTP1_METHOD_TRACE or m == HTTP1_METHOD_PUT or m == HTTP1_METHOD_DELETE


cdef inline bint _http1_method_bodiless(int m) noexcept:
    # Envoy's HeaderUtility::requestShouldHaveNoBody: no "content-length: 0"
    # is added to a headers-only request of these methods.
    return m == HTTP1_METHOD_GET or m == HTTP1_METHOD_HEAD or m == HTTP1_METHOD_DELETE \
        or m == HTTP1_METHOD_TRACE or m == HTTP1_METHOD_CONNECT


cdef bint _http1_connection_upgrade(HttpHeaderMap h) noexcept:
    """A Connection header holds the token "upgrade"."""
    cdef int i = h.get(HTTP1_HEADER_CONNECTION)
    while i >= 0:
        if _http1_has_token(h.value_at(i), h.entries[i].value_len, b"upgrade", 7):
            return True
        i = h.next_same(i)
    return False


cdef void _http1_buffer_copy(OwnedBuffer dst, OwnedBuffer src) noexcept:
    """Append a copy of src's bytes to dst (src unchanged)."""
    cdef BufferCursor c
    cdef const char *p = src.peek(src.len)
    cdef size_t k
    if p != NULL:
        dst.add(p, src.len)             # one slice (a request head): one copy
        return
    if not src.seek(&c, 0):
        return
    while True:
        p = src.chunk(&c, &k)
        if p == NULL or k == 0:
            break
        dst.add(p, k)
        src.advance(&c, k)


@cython.final
cdef class Http1RequestEncoder:

    cdef void set_response_decoder(self, HttpResponseDecoder decoder) noexcept:
        self.decoder = decoder

    cdef inline ConnectionImpl connection(self):
        return self.client.connection if self.client is not None else None

    cdef int _write(self, OwnedBuffer data, bint end_stream) except -1:
        """Send `data` on the client's connection (never half-closed: the
        connection outlives the request), keeping a copy while a keep-alive
        race retry may need it."""
        cdef Http1ActiveClient client = self.client
        if client is None or client.connection is None:
            data.drain_all()
            return 0
        if self.retry_safe:
            _http1_buffer_copy(client.replay, data)
        return client.connection.write(data, False)

    cdef int encode_headers(self, HttpHeaderMap headers, bint end_stream) except -1:
        cdef Http1ActiveClient client = self.client
        cdef OwnedBuffer out
        cdef int m = headers.method, i, hidden_n = 0
        cdef int hidden[16]
        cdef size_t fl = 0
        cdef const char *framing = NULL
        if client is None:
            return 0
        if m < 0 or m >= HTTP1_METHOD_COUNT:
            raise ValueError("Http1RequestEncoder: request without a method")
        out = client.out
        self.method = m
        client.head_request = m == HTTP1_METHOD_HEAD
        self.chunked = False
        # An upgrade's body is the new protocol's bytes: never framed (Envoy
        # disables chunk encoding for it).
        self.upgrade = headers.get(HTTP1_HEADER_UPGRADE) >= 0 and _http1_connection_upgrade(headers)
        if headers.get(HTTP1_HEADER_CONTENT_LENGTH) < 0 and not self.upgrade:
            if end_stream:
                if not _http1_method_bodiless(m):
                    framing = b"content-length: 0\r\n"
                    fl = 19
            else:
                framing = b"transfer-encoding: chunked\r\n"
                fl = 28
                self.chunked = True
        # Framing is the encoder's: a transfer-encoding from downstream is
        # not copied (the body is re-chunked when needed). Hidden while
        # encoding (the caller's map keeps it, for logs).
        if headers.get(HTTP1_HEADER_TRANSFER_ENCODING) >= 0:
            for i in range(headers.count):
                if headers.entries[i].id == HTTP1_HEADER_TRANSFER_ENCODING and hidden_n < 16:
                    headers.entries[i].id = HTTP_HEADER_DEAD
                    hidden[hidden_n] = i
                    hidden_n += 1
        http1_encode_request_head(out, headers, framing, fl)
        for i in range(hidden_n):
            headers.entries[hidden[i]].id = HTTP1_HEADER_TRANSFER_ENCODING
        if end_stream:
            self.request_complete = True
        return self._write(out, False)

    cdef int encode_data(self, OwnedBuffer data, bint end_stream) except -1:
        cdef Http1ActiveClient client = self.client
        cdef OwnedBuffer out
        if client is None or self.request_complete:
            data.drain_all()
            return 0
        if data.len:
            self.body_sent = True
            if self.retry_safe and (not _http1_method_idempotent(self.method)
                                    or client.replay.len + data.len > _HTTP1_REPLAY_BODY_LIMIT):
                # A body byte of a non-idempotent request may reach the
                # upstream from here on: never send it twice.
                self.retry_safe = False
                client.replay.drain_all()
        if end_stream:
            self.request_complete = True
        if not self.chunked:
            if data.len:
                self._write(data, False)
            return 0
        out = client.out
        http1_encode_chunk(out, data)
        if end_stream:
            http1_encode_last_chunk(out, None)
        if out.len:
            self._write(out, False)
        return 0

    cdef int encode_trailers(self, HttpHeaderMap trailers) except -1:
        cdef Http1ActiveClient client = self.client
        cdef OwnedBuffer out
        if client is None or self.request_complete:
            return 0
        self.request_complete = True
        if not self.chunked:
            return 0                    # a content-length body has no trailers
        out = client.out
        # Trailers go upstream with enable_trailers only (Envoy's default
        # drops them); the body ends either way.
        http1_encode_last_chunk(out, trailers if client.pool.cluster.enable_trailers else None)
        return self._write(out, False)

    cdef int reset_stream(self) except -1:
        """The caller abandons the stream: its connection cannot carry
        another request (half a request or response is on it), so it closes.
        The decoder hears nothing more."""
        cdef Http1ActiveClient client = self.client
        self.decoder = None
        if client is None:
            return 0
        self.client = None
        client.encoder = None
        if client.connection is not None:
            client.connection.close(CLOSE_NO_FLUSH)
        return 0

    cdef int read_disable(self, bint disable) except -1:
        cdef Http1ActiveClient client = self.client
        if client is None or client.connection is None:
            return 0
        if disable:
            client.read_disabled += 1
        elif client.read_disabled:
            client.read_disabled -= 1
        else:
            return 0
        return client.connection.read_disable(disable)

    def __repr__(self):
        return "<Http1RequestEncoder reused=%d retried=%d>" % (self.reused, self.retried)


cdef int _http1_on_idle_timeout(object ctx) except -1:
    cdef Http1ActiveClient client = <Http1ActiveClient>ctx
    if client.parent is not None:
        return (<Http1ConnPoolImpl>client.parent).on_idle_timeout(client)
    return 0


@cython.final
cdef class Http1ConnPoolImpl(ConnPoolImplBase):
    """The HTTP/1.1 pool of one host (Envoy's Http1::ConnPoolImpl)."""

    @staticmethod
    cdef Http1ConnPoolImpl new(Dispatcher dispatcher, HostImpl host):
        cdef Http1ConnPoolImpl pool = Http1ConnPoolImpl.__new__(Http1ConnPoolImpl)
        pool.init_pool(dispatcher, host)
        pool.reuses_clients = True
        pool.max_response_headers_kb = HTTP1_MAX_HEADERS_KB
        return pool

    cdef PendingStream new_http_stream(self, HttpPoolCallbacks callbacks, HttpResponseDecoder decoder):
        """Envoy's newStream: on_pool_ready now (returns None), on_pool_failure
        now (returns None), or later (returns the cancellable PendingStream)."""
        cdef Http1RequestEncoder e = None
        cdef Http1RequestEncoder head
        # max_requests is checked when the stream is attached to a client
        # (attach_stream_to_client, upstream_rq_active_overflow), as Envoy's:
        # with no ready client the stream waits and a connection is opened
        # for it first (observed on Envoy 1.40: that connection stays).
        # A finished encoder only the spare list holds is as good as new; one
        # its last caller still holds is that caller's: dropped from the list.
        while self.spare_head is not None:
            head = self.spare_head
            self.spare_head = head.next_spare
            head.next_spare = None
            self.spare_count -= 1
            if _http1_refcnt(<PyObject*>head) == 1:     # only `head` here
                e = head
                break
        if e is None:
            e = Http1RequestEncoder.__new__(Http1RequestEncoder)
            e.pool = self
        e.callbacks = callbacks
        e.decoder = decoder
        e.reused = False
        e.retried = False
        e.retry_safe = False
        e.chunked = False
        e.upgrade = False
        e.request_complete = False
        e.decode_complete = False
        e.body_sent = False
        e.method = -1
        return self.new_stream(e)

    cdef ActiveClient instantiate_active_client(self):
        cdef Http1ActiveClient client = Http1ActiveClient.__new__(Http1ActiveClient)
        cdef _Http1ClientReadFilter rf = _Http1ClientReadFilter.__new__(_Http1ClientReadFilter)
        cdef _Http1ClientWatermarks wm = _Http1ClientWatermarks.__new__(_Http1ClientWatermarks)
        cdef ConnectionImpl conn = ConnectionImpl.new_client(
            self.dispatcher, &self.host.address, self.host.address_len, self.cluster.buffer_limit)
        cdef int max_headers = self.cluster.max_response_headers_count
        client.init_codec(max_headers if max_headers > 0 else HTTP1_MAX_HEADERS_COUNT,
                          self.max_response_headers_kb, self.cluster.enable_trailers)
        client.pool = self
        # The upstream's FIN ends the connection at once (a close-delimited
        # body, an idle connection it dropped): HTTP/1 has no half-close.
        conn.half_close = False
        client.connection = conn
        client.capacity = 1
        rf.client = client
        conn.filter_manager.add_read_filter(rf)
        rf.initialized = True
        wm.client = client
        conn.add_callbacks(wm)
        self.cluster.stats[CLUSTER_UPSTREAM_CX_HTTP1_TOTAL] += 1
        return client

    cdef int on_pool_ready(self, ActiveClient client, object callbacks) except -1:
        cdef Http1ActiveClient c = <Http1ActiveClient>client
        cdef Http1RequestEncoder e = <Http1RequestEncoder>callbacks
        cdef HttpPoolCallbacks cb = e.callbacks
        cdef int64_t limit = self.cluster.max_requests_per_connection
        e.callbacks = None
        if c.idle_timer is not None:
            c.idle_timer.disable()
        e.client = c
        c.encoder = e
        e.reused = c.requests_served > 0
        e.retry_safe = e.reused
        c.requests_served += 1
        c.start_response()
        if limit > 0 and c.requests_served >= limit:
            # Its last request (Envoy drains it at attach and counts it then).
            self.cluster.stats[CLUSTER_UPSTREAM_CX_MAX_REQUESTS] += 1
            c.close_after = True
        return cb.on_pool_ready(e, self.host)

    cdef int on_pool_failure(self, int reason, object callbacks) except -1:
        cdef Http1RequestEncoder e = <Http1RequestEncoder>callbacks
        cdef HttpPoolCallbacks cb = e.callbacks
        e.callbacks = None
        e.decoder = None
        self.spare(e)
        if cb is None:
            return 0
        return cb.on_pool_failure(reason, self.host)

    cdef void spare(self, Http1RequestEncoder e):
        if self.spare_count < _HTTP1_SPARE_ENCODERS and e.next_spare is None \
                and e is not self.spare_head:
            e.next_spare = self.spare_head
            self.spare_head = e
            self.spare_count += 1

    cdef int end_stream(self, Http1ActiveClient client, bint reusable) except -1:
        """The stream of `client` is over (response complete): the connection
        takes the next request, or closes."""
        cdef Http1RequestEncoder e = client.encoder
        client.encoder = None
        if e is not None:
            e.client = None
            e.decoder = None
            self.spare(e)
        if client.read_disabled and client.connection is not None:
            # The stream's back-pressure ends with it.
            while client.read_disabled:
                client.read_disabled -= 1
                client.connection.read_disable(False)
        client.cstate = HTTP1_CLIENT_IDLE
        client.replay.drain_all()
        if not reusable:
            self.on_stream_closed(client, False)
            if client.connection is not None:
                client.connection.close(CLOSE_NO_FLUSH)
            return 0
        self.on_stream_closed(client, True)
        if client.encoder is None and client.state == CLIENT_READY:
            self.on_client_idle(client)
        return 0

    cdef int on_client_idle(self, Http1ActiveClient client) except -1:
        cdef double t = self.cluster.idle_timeout
        if t <= 0:
            return 0
        if client.idle_timer is None:
            client.idle_timer = Timer.new(self.dispatcher, _http1_on_idle_timeout, client)
        client.idle_timer.enable_common(t)
        return 0

    cdef int on_idle_timeout(self, Http1ActiveClient client) except -1:
        if client.encoder is not None or client.connection is None:
            return 0
        self.cluster.stats[CLUSTER_UPSTREAM_CX_IDLE_TIMEOUT] += 1
        return client.connection.close(CLOSE_NO_FLUSH)

    cdef int retry_stream(self, Http1RequestEncoder encoder, OwnedBuffer replay) except -1:
        """The keep-alive race: `encoder`'s request failed on a reused
        connection before any response byte. Send it again (`replay`: the
        bytes sent so far) on a fresh connection opened for it alone; the
        decoder hears only the second try."""
        cdef Http1ActiveClient client
        # The request already holds its place: the breaker cannot refuse it.
        self.cluster.connections.inc()
        client = <Http1ActiveClient>self.instantiate_active_client()
        client.capacity = 0             # takes no other stream
        client.reserved_retry = True
        client.encoder = encoder
        client.requests_served = 1
        client.start_response()
        client.head_request = encoder.method == HTTP1_METHOD_HEAD
        encoder.client = client
        encoder.retried = True
        encoder.retry_safe = False
        # Accounted as the stream it is (the failed client released it).
        client.active_streams = 1
        self.cluster.requests.inc()
        self.cluster.stats[CLUSTER_UPSTREAM_RQ_ACTIVE] += 1
        self.cluster.stats[CLUSTER_UPSTREAM_RQ_KEEPALIVE_RACE_RETRY] += 1
        self.host.rq_active += 1
        self.host.stats[HOST_RQ_ACTIVE] += 1
        if self.cluster.max_requests_per_connection == 1:
            self.cluster.stats[CLUSTER_UPSTREAM_CX_MAX_REQUESTS] += 1
            client.close_after = True
        self.init_active_client(client)
        if client.state == CLIENT_CONNECTING:
            # BUSY from the start: no waiting stream counts on it, and
            # close_excess_connecting_clients() leaves it alone.
            self.transition_active_client_state(client, CLIENT_BUSY)
        if encoder.client is client and client.connection is not None:
            client.connection.write(replay, False)     # sent once connected
        replay.drain_all()
        return 0

    cdef int on_connection_event(self, ActiveClient client, int event) except -1:
        cdef Http1ActiveClient c = <Http1ActiveClient>client
        cdef int was = c.state
        if was == CLIENT_CLOSED:
            return 0
        if event == CONN_EVENT_CONNECTED:
            if c.reserved_retry:
                # The keep-alive race retry's connection (BUSY, or DRAINING
                # since): its stream is attached already.
                c.reserved_retry = False
                c.connect_timer.disable()
                hist_record(self.cluster.connect_ms, (self.dispatcher.now - c.created) * 1000.0)
                return 0
            ConnPoolImplBase.on_connection_event(self, client, event)
            if c.encoder is None and c.state == CLIENT_READY:
                self.on_client_idle(c)
            return 0
        ConnPoolImplBase.on_connection_event(self, client, event)
        if c.reserved_retry and (event == CONN_EVENT_REMOTE_CLOSE or c.timed_out):
            # Its connect failed (the base counts CONNECTING clients only).
            self.cluster.stats[CLUSTER_UPSTREAM_CX_CONNECT_FAIL] += 1
            self.host.stats[HOST_CX_CONNECT_FAIL] += 1
        return c.on_close(event, was)

    def counts_for_test(self):
        d = ConnPoolImplBase.counts_for_test(self)
        d["spare_encoders"] = self.spare_count
        return d
