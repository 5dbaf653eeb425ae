# HttpConnectionManagerConfig (shape in conn_manager_impl.pxd) and what every
# connection manager of a worker shares: the stat names, Envoy's reason
# phrases, the cached `date` value, request ids, the proxy's own address.

from libc.string cimport strlen

cdef extern from "<time.h>" nogil:
    ctypedef struct _hcm_tm "struct tm":
        int tm_sec
    _hcm_tm *gmtime_r(const time_t *timep, _hcm_tm *result)
    size_t strftime(char *s, size_t maxsize, const char *fmt, const _hcm_tm *t)
    time_t time(time_t *t)

cdef extern from "<ifaddrs.h>" nogil:
    struct ifaddrs:
        ifaddrs *ifa_next
        char *ifa_name
        unsigned int ifa_flags
        sockaddr *ifa_addr
    int getifaddrs(ifaddrs **ifap)
    void freeifaddrs(ifaddrs *ifa)


# The names of an HCM's stats block ("http.<stat_prefix>."), in
# HttpConnManagerStat order: Envoy 1.40's list for an HTTP/1 listener, router
# stats included (Envoy's router keeps them under the same prefix).
HTTP_CONN_MANAGER_STATS = (
    ("downstream_cx_active", "gauge"),
    ("downstream_cx_delayed_close_timeout", "counter"),
    ("downstream_cx_destroy", "counter"),
    ("downstream_cx_destroy_active_rq", "counter"),
    ("downstream_cx_destroy_local", "counter"),
    ("downstream_cx_destroy_local_active_rq", "counter"),
    ("downstream_cx_destroy_remote", "counter"),
    ("downstream_cx_destroy_remote_active_rq", "counter"),
    ("downstream_cx_drain_close", "counter"),
    ("downstream_cx_http1_active", "gauge"),
    ("downstream_cx_http1_soft_drain", "counter"),
    ("downstream_cx_http1_total", "counter"),
    ("downstream_cx_http2_active", "gauge"),
    ("downstream_cx_http2_total", "counter"),
    ("downstream_cx_http3_active", "gauge"),
    ("downstream_cx_http3_total", "counter"),
    ("downstream_cx_idle_timeout", "counter"),
    ("downstream_cx_max_duration_reached", "counter"),
    ("downstream_cx_max_requests_reached", "counter"),
    ("downstream_cx_overload_disable_keepalive", "counter"),
    ("downstream_cx_protocol_error", "counter"),
    ("downstream_cx_rx_bytes_buffered", "gauge"),
    ("downstream_cx_rx_bytes_total", "counter"),
    ("downstream_cx_ssl_active", "gauge"),
    ("downstream_cx_ssl_total", "counter"),
    ("downstream_cx_total", "counter"),
    ("downstream_cx_tx_bytes_buffered", "gauge"),
    ("downstream_cx_tx_bytes_total", "counter"),
    ("downstream_cx_upgrades_active", "gauge"),
    ("downstream_cx_upgrades_total", "counter"),
    ("downstream_flow_control_paused_reading_total", "counter"),
    ("downstream_flow_control_resumed_reading_total", "counter"),
    ("downstream_rq_1xx", "counter"),
    ("downstream_rq_2xx", "counter"),
    ("downstream_rq_3xx", "counter"),
    ("downstream_rq_4xx", "counter"),
    ("downstream_rq_5xx", "counter"),
    ("downstream_rq_active", "gauge"),
    ("downstream_rq_completed", "counter"),
    ("downstream_rq_failed_path_normalization", "counter"),
    ("downstream_rq_header_timeout", "counter"),
    ("downstream_rq_http1_total", "counter"),
    ("downstream_rq_http2_total", "counter"),
    ("downstream_rq_http3_total", "counter"),
    ("downstream_rq_idle_timeout", "counter"),
    ("downstream_rq_max_duration_reached", "counter"),
    ("downstream_rq_non_relative_path", "counter"),
    ("downstream_rq_overload_close", "counter"),
    ("downstream_rq_redirected_with_normalized_path", "counter"),
    ("downstream_rq_rejected_via_ip_detection", "counter"),
    ("downstream_rq_response_before_rq_complete", "counter"),
    ("downstream_rq_rx_reset", "counter"),
    ("downstream_rq_timeout", "counter"),
    ("downstream_rq_too_large", "counter"),
    ("downstream_rq_too_many_premature_resets", "counter"),
    ("downstream_rq_total", "counter"),
    ("downstream_rq_tx_reset", "counter"),
    ("downstream_rq_ws_on_non_ws_route", "counter"),
    ("no_cluster", "counter"),
    ("no_route", "counter"),
    ("passthrough_internal_redirect_bad_location", "counter"),
    ("passthrough_internal_redirect_no_route", "counter"),
    ("passthrough_internal_redirect_predicate", "counter"),
    ("passthrough_internal_redirect_too_many_redirects", "counter"),
    ("passthrough_internal_redirect_unsafe_scheme", "counter"),
    ("rq_direct_response", "counter"),
    ("rq_overload_local_reply", "counter"),
    ("rq_redirect", "counter"),
    ("rq_reset_after_downstream_response_started", "counter"),
    ("rq_total", "counter"),
    ("rs_too_large", "counter"),
    ("tracing.client_enabled", "counter"),
    ("tracing.health_check", "counter"),
    ("tracing.not_traceable", "counter"),
    ("tracing.random_sampling", "counter"),
    ("tracing.service_forced", "counter"),
)
# The HCM's per-listener block ("listener.<address>.http.<stat_prefix>."),
# in HttpListenerStat order.
HTTP_LISTENER_STATS = (
    ("downstream_rq_1xx", "counter"),
    ("downstream_rq_2xx", "counter"),
    ("downstream_rq_3xx", "counter"),
    ("downstream_rq_4xx", "counter"),
    ("downstream_rq_5xx", "counter"),
    ("downstream_rq_completed", "counter"),
)
if len(HTTP_CONN_MANAGER_STATS) != HTTP_STATS_COUNT or len(HTTP_LISTENER_STATS) != HTTP_LISTENER_STATS_COUNT:
    raise ImportError("http connection manager stat names and HttpConnManagerStat disagree")
# Histograms of the block (milliseconds), recorded where the plan gives slots.
HTTP_CONN_MANAGER_HISTOGRAMS = ("downstream_cx_length_ms", "downstream_rq_time")

# ServerHeaderTransformation / HeadersWithUnderscoresAction (the plan's ints).
cdef enum:
    HTTP_SERVER_HEADER_OVERWRITE = 0
    HTTP_SERVER_HEADER_APPEND_IF_ABSENT = 1
    HTTP_SERVER_HEADER_PASS_THROUGH = 2
    HTTP_UNDERSCORES_ALLOW = 0
    HTTP_UNDERSCORES_REJECT_REQUEST = 1
    HTTP_UNDERSCORES_DROP_HEADER = 2


# The `date` value, formatted once per second (Envoy's TlsCachingDateProvider).
cdef char _hcm_date[40]
cdef time_t _hcm_date_sec = -1


cdef const char *http_date_value() noexcept:
    """IMF-fixdate of now, 29 bytes; formatted only when the second changes."""
    global _hcm_date_sec
    cdef time_t now = time(NULL)
    cdef _hcm_tm t
    if now != _hcm_date_sec:
        _hcm_date_sec = now
        gmtime_r(&now, &t)
        strftime(_hcm_date, sizeof(_hcm_date), b"%a, %d %b %Y %H:%M:%S GMT", &t)
    return _hcm_date


# Each byte's two hex digits, and where each of a UUID's 16 bytes goes in
# its 36 characters.
cdef char _hcm_hex_pairs[512]
for _i in range(256):
    _hcm_hex_pairs[2 * _i] = b"0123456789abcdef"[_i >> 4]
    _hcm_hex_pairs[2 * _i + 1] = b"0123456789abcdef"[_i & 15]
cdef unsigned char _hcm_uuid_pos[16]
_hcm_uuid_pos[:] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34]


cdef void http_uuid4(Dispatcher d, char *out) noexcept:
    """A random (version 4) UUID as 36 characters, from the worker's random
    state: a request id costs two xorshift steps, no object."""
    cdef uint64_t r[2]
    cdef unsigned char *b = <unsigned char*>r
    cdef int i
    r[0] = d.random()
    r[1] = d.random()
    b[6] = (b[6] & 0x0f) | 0x40
    b[8] = (b[8] & 0x3f) | 0x80
    for i in range(16):
        memcpy(out + _hcm_uuid_pos[i], &_hcm_hex_pairs[2 * b[i]], 2)
    out[8] = out[13] = out[18] = out[23] = b'-'


cdef bytes _http_internal_ranges(list cidrs):
    """internal_address_config's ranges packed for _hcm_is_internal: per
    range its family (4 or 6), prefix length and 16 address bytes."""
    import ipaddress
    out = bytearray()
    for text in cidrs:
        net = ipaddress.ip_network(text, strict=False)
        out += bytes((net.version, net.prefixlen)) + net.network_address.packed.ljust(16, b"\0")
    return bytes(out)


cdef bint _hcm_is_internal(HttpConnectionManagerConfig cfg, int version, const unsigned char *addr) noexcept:
    """`addr` (4 or 16 bytes) lies in one of internal_address_config's ranges."""
    cdef const unsigned char *r = <const unsigned char *>(<const char *>cfg.internal_ranges)
    cdef int k, bits, full
    for k in range(cfg.n_internal_ranges):
        if r[0] == version:
            bits = r[1]
            full = bits >> 3
            if memcmp(r + 2, addr, full) == 0 and (
                    bits & 7 == 0 or ((r[2 + full] ^ addr[full]) & (0xff00 >> (bits & 7)) & 0xff) == 0):
                return True
        r += 18
    return False


cdef bytes _hcm_local_address_v4 = None


cdef bytes _http_local_address_v4():
    """The first non-loopback IPv4 address of this host (Envoy puts it in
    x-forwarded-for in place of a loopback peer); b"" if none."""
    global _hcm_local_address_v4
    cdef ifaddrs *all_addrs
    cdef ifaddrs *a
    cdef char buf[64]
    cdef sockaddr_in *a4
    if _hcm_local_address_v4 is not None:
        return _hcm_local_address_v4
    _hcm_local_address_v4 = b""
    if getifaddrs(&all_addrs) != 0:
        return _hcm_local_address_v4
    a = all_addrs
    while a != NULL:
        if a.ifa_addr != NULL and a.ifa_addr.sa_family == AF_INET:
            a4 = <sockaddr_in*>a.ifa_addr
            if (ntohl(a4.sin_addr.s_addr) >> 24) != 127:
                inet_ntop(AF_INET, &a4.sin_addr, buf, sizeof(buf))
                _hcm_local_address_v4 = <bytes>buf
                break
        a = a.ifa_next
    freeifaddrs(all_addrs)
    return _hcm_local_address_v4


# HTTP filter factories by extension name: `fn(ctx, plan) -> HttpFilterFactory`.
# The router's registers itself here; tests may add their own.
cdef dict _http_filter_factories = {}


def register_http_filter_factory(str name, fn):
    """Make `fn(ctx, plan)` the factory builder of HTTP filter `name`."""
    _http_filter_factories[name] = fn


cdef HttpFilterFactory _http_filter_factory(FactoryContext ctx, object plan):
    """An HTTP filter plan's factory, keyed on the plan's tag (its name)."""
    cdef str name = type(plan).__struct_config__.tag
    fn = _http_filter_factories.get(name)
    if fn is None:
        raise ValueError("no HTTP filter factory for %r in this build" % (name,))
    return <HttpFilterFactory?>fn(ctx, plan)


cdef object _http_route_config(FactoryContext ctx, object plan):
    """The compiled route table of an HCM (RouteConfigImpl.from_plan once the
    route table is part of the build); None: every request gets no route."""
    if not plan.virtual_hosts:      # no virtual host: every request 404s anyway
        return None
    return RouteConfigImpl.from_plan(ctx, plan)


# Every HCM config built in this worker (a worker process builds its
# listeners once): drain reaches their connections through them.
cdef list _http_conn_manager_configs = []


# The server's health check failed (admin /healthcheck/fail): every HTTP/1
# response carries `connection: close` (Envoy's drainClose()), open
# connections are not cut.
cdef bint _http_drain_close = False


def http_conn_managers_set_drain_close(bint on):
    global _http_drain_close
    _http_drain_close = on


def http_conn_managers_start_drain():
    """The worker drains: every HTTP/1 response from now on carries
    `connection: close`, idle keep-alive connections close now."""
    cdef HttpConnectionManagerConfig c
    for c in _http_conn_manager_configs:
        c.start_drain()


@cython.final
cdef class HttpConnectionManagerConfig(NetworkFilterFactory):

    @staticmethod
    def from_plan(FactoryContext ctx, plan):
        """http_connection_manager's registry factory: the config of one HCM
        from its HttpConnectionManagerPlan."""
        cdef HttpConnectionManagerConfig c = HttpConnectionManagerConfig.__new__(
            HttpConnectionManagerConfig)
        cdef int hist
        c.stat_prefix = plan.stat_prefix
        c.stats = &ctx.stats_row[<int>plan.stats_base]
        hist = plan.downstream_rq_time_slot
        c.rq_time_hist = &ctx.stats_row[hist] if hist >= 0 else NULL
        hist = plan.downstream_cx_length_ms_slot
        c.cx_length_hist = &ctx.stats_row[hist] if hist >= 0 else NULL
        hist = plan.listener_stats_base
        c.listener_stats = &ctx.stats_row[hist] if hist >= 0 else &c.no_listener_stats[0]
        c.worker = ctx.worker
        c.filter_factories = [_http_filter_factory(ctx, f) for f in plan.http_filters]
        c.route_config = _http_route_config(ctx, plan.route_table)
        c.server_name = plan.server_name.encode()
        c.server_header_transformation = plan.server_header_transformation
        c.use_remote_address = plan.use_remote_address
        c.internal_ranges = _http_internal_ranges(plan.internal_cidrs)
        c.n_internal_ranges = len(c.internal_ranges) // 18
        c.internal_only_headers = [h.encode() for h in plan.route_table.internal_only_headers]
        c.strip_port = plan.strip_port
        c.strip_trailing_host_dot = plan.strip_trailing_host_dot
        c.append_x_forwarded_port = plan.append_x_forwarded_port
        c.skip_xff_append = plan.skip_xff_append
        c.xff_num_trusted_hops = plan.xff_num_trusted_hops
        c.generate_request_id = plan.generate_request_id
        c.preserve_external_request_id = plan.preserve_external_request_id
        c.always_set_request_id_in_response = plan.always_set_request_id_in_response
        c.max_request_headers_kb = plan.max_request_headers_kb
        c.max_headers_count = plan.max_headers_count
        c.headers_with_underscores_action = plan.headers_with_underscores_action
        c.idle_timeout = plan.idle_timeout
        c.max_connection_duration = plan.max_connection_duration
        c.max_requests_per_connection = plan.max_requests_per_connection
        c.stream_idle_timeout = plan.stream_idle_timeout
        c.request_timeout = plan.request_timeout
        c.max_stream_duration = plan.max_stream_duration
        c.request_headers_timeout = plan.request_headers_timeout
        c.delayed_close_timeout = plan.delayed_close_timeout
        c.drain_timeout = plan.drain_timeout
        c.accept_http_10 = plan.accept_http_10
        c.default_host_for_http_10 = plan.default_host_for_http_10.encode()
        c.enable_trailers = plan.enable_trailers
        c.upgrade_types = frozenset(t.lower().encode() for t in plan.upgrade_types)
        c.proxy_100_continue = plan.proxy_100_continue
        c.via = plan.via.encode()
        c.local_address_v4 = _http_local_address_v4()
        if plan.access_log:
            c.access_loggers = ctx.access_loggers(list(plan.access_log))
        c.needs_addresses = c.access_loggers is not None or (
            c.route_config is not None and (<RouteConfigImpl>c.route_config).uses_downstream_addresses)
        _http_conn_manager_configs.append(c)
        return c

    cdef int create_filter(self, FilterManager manager, ConnectionImpl conn) except -1:
        cdef HttpConnectionManagerImpl f
        if self.closed_managers is not None:
            # Their closing call stacks have unwound (this runs from an
            # accept): each is made ready again, or has its cycles cut.
            _hcm_recycle_closed(self)
        f = self.free_managers
        if f is not None:
            self.free_managers = f.next_free
            f.next_free = None
            self.free_managers_len -= 1
        else:
            f = HttpConnectionManagerImpl.__new__(HttpConnectionManagerImpl)
            f.config = self
            f.dispatcher = conn.dispatcher
        manager.add_read_filter(f)
        return 0

    cdef int start_drain(self) except -1:
        cdef HttpConnectionManagerImpl m
        if self.draining:
            return 0
        self.draining = True
        for m in live_list_items(self.live_managers):
            m.start_drain()
        return 0
