# Test hook of the HTTP/1.1 pool: an Http1ConnPoolImpl driven from Python on
# a bare Dispatcher, with real connections to a real upstream and no Worker.
# Every answer of the pool is recorded as an event tuple.


cdef int _http1_pool_method_for_test(str name) except -1:
    cdef bytes b = name.encode()
    cdef int m
    for m in range(HTTP1_METHOD_COUNT):
        if <bytes>_HTTP1_METHOD_NAMES[m] == b:
            return m
    raise ValueError("unknown method %r" % (name,))


cdef HttpHeaderMap _http1_pool_map_for_test(object items):
    cdef HttpHeaderMap m = HttpHeaderMap.__new__(HttpHeaderMap)
    cdef bytes n, v
    for name, value in items:
        n = name.encode() if isinstance(name, str) else name
        v = value.encode() if isinstance(value, str) else value
        m.add(n, len(n), v, len(v), HTTP1_HEADER_OTHER)
    return m


@cython.final
cdef class _Http1DecoderForTest(HttpResponseDecoder):
    cdef _Http1StreamForTest stream

    cdef int decode_1xx_headers(self, HttpHeaderMap headers) except -1:
        self.stream.record(("1xx", headers.status))
        return 0

    cdef int decode_headers(self, HttpHeaderMap headers, bint end_stream) except -1:
        r = self.stream.response
        r["status"] = headers.status
        r["headers"] = headers.items_for_test()
        r["end"] = bool(end_stream)
        self.stream.record(("headers", headers.status, bool(end_stream)))
        if end_stream:
            self.stream.on_end()
        return 0

    cdef int decode_data(self, OwnedBuffer data, bint end_stream) except -1:
        r = self.stream.response
        r["body"] += data.to_bytes()
        r["end"] = bool(end_stream)
        r["data_calls"] += 1
        data.drain_all()
        if end_stream:
            self.stream.record(("end", len(r["body"])))
            self.stream.on_end()
        return 0

    cdef int decode_trailers(self, HttpHeaderMap trailers) except -1:
        r = self.stream.response
        r["trailers"] = trailers.items_for_test()
        r["end"] = True
        self.stream.record(("trailers",))
        self.stream.on_end()
        return 0

    cdef int on_reset_stream(self, int reason) except -1:
        self.stream.response["reset"] = reason
        self.stream.record(("reset", reason))
        self.stream.encoder = None
        return 0

    cdef int on_above_write_buffer_high_watermark(self) except -1:
        self.stream.record(("above",))
        return 0

    cdef int on_below_write_buffer_low_watermark(self) except -1:
        self.stream.record(("below",))
        return 0


@cython.final
cdef class _Http1StreamForTest(HttpPoolCallbacks):
    cdef Http1ConnPoolForTest owner
    cdef int id
    cdef PendingStream handle
    cdef Http1RequestEncoder encoder
    cdef _Http1DecoderForTest decoder
    cdef HttpHeaderMap request
    cdef object body                    # bytes to send after the head, or None
    cdef bint end_stream                # the request ends with `body` (or the head)
    cdef dict response
    cdef object on_end_cb               # callable(id) once the response is complete

    cdef void record(self, tuple ev):
        self.owner.events.append(ev[:1] + (self.id,) + ev[1:])

    cdef void on_end(self):
        self.encoder = None
        if self.on_end_cb is not None:
            self.on_end_cb(self.id)

    cdef int on_pool_ready(self, Http1RequestEncoder encoder, HostImpl host) except -1:
        cdef OwnedBuffer b
        cdef bytes body = self.body
        self.handle = None
        self.encoder = encoder
        self.response["ready"] = True
        self.response["reused"] = bool(encoder.reused)
        self.record(("ready", bool(encoder.reused)))
        encoder.encode_headers(self.request, self.end_stream and body is None)
        if body is not None and self.encoder is encoder:
            b = OwnedBuffer.new()
            b.add(body, len(body))
            encoder.encode_data(b, self.end_stream)
        return 0

    cdef int on_pool_failure(self, int reason, HostImpl host) except -1:
        self.handle = None
        self.response["failure"] = reason
        self.record(("failure", reason))
        return 0


cdef class Http1ConnPoolForTest:
    """An Http1ConnPoolImpl to one host. Made with an address (its own
    cluster info with the given limits) or around a pool a cluster manager
    made (for_pool). `events` lists ("ready", id, reused), ("failure", id,
    reason), ("1xx", id, status), ("headers", id, status, end_stream),
    ("end", id, body_len), ("trailers", id), ("reset", id, reason) ...;
    response(id) gathers one stream's answer."""
    cdef Dispatcher dispatcher
    cdef Http1ConnPoolImpl pool
    cdef ClusterInfo info
    cdef HostImpl host
    cdef dict streams
    cdef public list events
    cdef public object on_end           # callable(id): a response completed

    def __init__(self, Dispatcher dispatcher, str ip=None, int port=0, double connect_timeout=5.0,
                 int max_connections=1024, int max_pending_requests=1024, int max_requests=1024,
                 int64_t max_requests_per_connection=0, double idle_timeout=3600.0,
                 int max_headers_count=100, size_t buffer_limit=1 << 20,
                 bint enable_trailers=False):
        self.dispatcher = dispatcher
        self.streams = {}
        self.events = []
        if ip is None:
            return                      # for_pool fills it
        self.host = host_for_test(ip, port, connect_timeout, max_connections,
                                  max_pending_requests, max_requests)
        self.info = self.host.cluster
        self.info.buffer_limit = buffer_limit
        self.info.max_requests_per_connection = max_requests_per_connection
        self.info.idle_timeout = idle_timeout
        self.info.max_response_headers_count = max_headers_count
        self.info.enable_trailers = enable_trailers
        self.pool = Http1ConnPoolImpl.new(dispatcher, self.host)

    @staticmethod
    def for_cluster(Dispatcher dispatcher, ClusterManagerImpl cm, str cluster):
        """The pool ThreadLocalCluster.http1_conn_pool gives for the host the
        cluster's load balancer picks (None: no such cluster or host)."""
        cdef ThreadLocalCluster tlc = cm.get_thread_local_cluster(cluster)
        cdef HostImpl host
        cdef Http1ConnPoolImpl pool
        cdef Http1ConnPoolForTest t
        if tlc is None:
            return None
        host = tlc.choose_host(None)
        pool = tlc.http1_conn_pool(host)
        if pool is None:
            return None
        t = Http1ConnPoolForTest(dispatcher)
        t.pool = pool
        t.host = host
        t.info = host.cluster
        return t

    def same_pool(self, Http1ConnPoolForTest other):
        return self.pool is other.pool

    @property
    def host_address(self):
        return self.host.address_str

    def request(self, str method="GET", bytes path=b"/", headers=(("host", "upstream"),),
                bytes body=None, bint end_stream=True):
        """Start a request; returns its id. `body` goes out after the head;
        end_stream=False leaves the request open (send / trailers)."""
        cdef _Http1StreamForTest s = _Http1StreamForTest.__new__(_Http1StreamForTest)
        cdef _Http1DecoderForTest d = _Http1DecoderForTest.__new__(_Http1DecoderForTest)
        s.owner = self
        s.id = len(self.streams)
        s.request = _http1_pool_map_for_test(headers)
        s.request.method = _http1_pool_method_for_test(method)
        s.request.set_path(path, len(path))
        s.body = body
        s.end_stream = end_stream
        s.response = {"status": None, "headers": None, "body": b"", "end": False,
                      "trailers": None, "reset": None, "failure": None, "ready": False,
                      "reused": None, "data_calls": 0}
        s.on_end_cb = self.on_end
        d.stream = s
        s.decoder = d
        self.streams[s.id] = s
        s.handle = self.pool.new_http_stream(s, d)
        return s.id

    def send(self, int id, bytes data, bint end_stream=False):
        cdef _Http1StreamForTest s = self.streams[id]
        cdef OwnedBuffer b = OwnedBuffer.new()
        if s.encoder is None:
            raise ValueError("stream %d has no encoder" % id)
        b.add(data, len(data))
        s.encoder.encode_data(b, end_stream)

    def trailers(self, int id, items):
        cdef _Http1StreamForTest s = self.streams[id]
        if s.encoder is None:
            raise ValueError("stream %d has no encoder" % id)
        s.encoder.encode_trailers(_http1_pool_map_for_test(items))

    def reset(self, int id):
        cdef _Http1StreamForTest s = self.streams[id]
        if s.encoder is not None:
            s.encoder.reset_stream()
            s.encoder = None

    def read_disable(self, int id, bint disable):
        cdef _Http1StreamForTest s = self.streams[id]
        if s.encoder is not None:
            s.encoder.read_disable(disable)

    def cancel(self, int id):
        cdef _Http1StreamForTest s = self.streams[id]
        if s.handle is not None:
            s.handle.cancel()
            s.handle = None

    def pending(self, int id):
        """Whether stream `id` still waits for a connection."""
        return (<_Http1StreamForTest>self.streams[id]).handle is not None

    def response(self, int id):
        return dict((<_Http1StreamForTest>self.streams[id]).response)

    def drain_connections(self):
        self.pool.drain_connections()

    def counts(self):
        return self.pool.counts_for_test()

    def stat(self, str name):
        """A cluster or host counter by name ("upstream_rq_total", "host.rq_active")."""
        if name.startswith("host."):
            return self.host.stats[[n for n, _ in HOST_STATS].index(name[5:])]
        return self.info.stats[[n for n, _ in CLUSTER_STATS].index(name)]

    def breaker_counts(self):
        """The cluster-wide circuit-breaker counts: connections, pending, requests."""
        return (self.info.connections.count[0], self.info.pending_requests.count[0],
                self.info.requests.count[0])


# A request loop with no Python on its path (allocation and CPU tests): one
# GET at a time on the pool; each completed response starts the next one from
# a zero-delay timer (the next loop turn, as a new downstream request would).

@cython.final
cdef class _Http1LoopDecoderForTest(HttpResponseDecoder):
    cdef Http1LoopForTest loop

    cdef int decode_headers(self, HttpHeaderMap headers, bint end_stream) except -1:
        if headers.status != 200:
            self.loop.failed += 1
        if end_stream:
            return self.loop.on_done()
        return 0

    cdef int decode_data(self, OwnedBuffer data, bint end_stream) except -1:
        self.loop.body_bytes += data.len
        data.drain_all()
        if end_stream:
            return self.loop.on_done()
        return 0

    cdef int on_reset_stream(self, int reason) except -1:
        self.loop.failed += 1
        return self.loop.on_done()


cdef int _http1_loop_next(object ctx) except -1:
    return (<Http1LoopForTest>ctx).start()


cdef class Http1LoopForTest(HttpPoolCallbacks):
    """Sends `n` GETs one after the other through `pool` (an
    Http1ConnPoolForTest's pool) while the dispatcher runs."""
    cdef Http1ConnPoolImpl pool
    cdef HttpHeaderMap request
    cdef _Http1LoopDecoderForTest decoder
    cdef Timer timer
    cdef public int64_t left
    cdef public int64_t done
    cdef public int64_t failed
    cdef public int64_t reused
    cdef public int64_t body_bytes

    def __init__(self, Http1ConnPoolForTest pool, int64_t n, bytes path=b"/"):
        self.pool = pool.pool
        self.request = _http1_pool_map_for_test((("host", "upstream"), ("user-agent", "loop")))
        self.request.method = HTTP1_METHOD_GET
        self.request.set_path(path, len(path))
        self.decoder = _Http1LoopDecoderForTest.__new__(_Http1LoopDecoderForTest)
        self.decoder.loop = self
        self.timer = Timer.new(pool.dispatcher, _http1_loop_next, self)
        self.left = n
        self.timer.enable(0)

    cdef int start(self) except -1:
        if self.left <= 0:
            self.timer = None               # cut the cycle: done
            return 0
        self.left -= 1
        self.pool.new_http_stream(self, self.decoder)
        return 0

    cdef int on_done(self) except -1:
        self.done += 1
        if self.timer is not None:
            self.timer.enable(0)
        return 0

    cdef int on_pool_ready(self, Http1RequestEncoder encoder, HostImpl host) except -1:
        if encoder.reused:
            self.reused += 1
        return encoder.encode_headers(self.request, True)

    cdef int on_pool_failure(self, int reason, HostImpl host) except -1:
        self.failed += 1
        return self.on_done()
