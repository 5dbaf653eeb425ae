# Envoy's ConnectionManagerUtility for HTTP/1 requests: the checks the
# connection manager answers itself, the request header mutations and the
# stream's remote address, as functions of the stream (HttpActiveStream's
# methods of the same names call them).


cdef inline bint _hcm_value_ieq(HttpHeaderMap h, int i, const char *lower, size_t n) noexcept:
    return i >= 0 and h.entries[i].value_len == n and _http1_ieq(h.value_at(i), lower, n)


cdef dict _hcm_header_dict(HttpHeaderMap h):
    """{lower-case name: value} of a header map, first value of each name
    (for access logs only)."""
    cdef dict out = {}
    cdef int i
    cdef HttpHeaderEntry *e
    if h is None:
        return out
    for i in range(h.count):
        e = &h.entries[i]
        if e.id == HTTP_HEADER_DEAD:
            continue
        name = h.buf[e.name_off:e.name_off + e.name_len].decode("latin-1")
        if name not in out:
            out[name] = h.buf[e.value_off:e.value_off + e.value_len].decode("latin-1")
    return out


cdef size_t _hcm_xff_entry(const char *v, size_t n, int hops, char *out) noexcept:
    """The `hops`-th comma-separated entry of an x-forwarded-for value from
    the right, trimmed, copied to out (64 bytes); 0 when there are fewer
    entries (or it does not fit)."""
    cdef size_t e = n, s, t
    cdef int k = 0
    while True:
        s = e
        while s > 0 and v[s - 1] != b',':
            s -= 1
        k += 1
        if k == hops:
            t = e
            while s < t and (v[s] == b' ' or v[s] == b'\t'):
                s += 1
            while t > s and (v[t - 1] == b' ' or v[t - 1] == b'\t'):
                t -= 1
            if t == s or t - s >= 64:
                return 0
            memcpy(out, v + s, t - s)
            return t - s
        if s == 0:
            return 0
        e = s - 1


cdef bint _hcm_connection_has_upgrade(HttpHeaderMap h) noexcept:
    cdef int i = h.get(HTTP1_HEADER_CONNECTION)
    while i >= 0:
        if _http1_has_token(h.value_at(i), h.entries[i].value_len, b"upgrade", 7):
            return True
        i = h.next_same(i)
    return False


cdef bytes _hcm_upgrade_lower(const char *v, size_t n):
    """An Upgrade value, lower-cased (only for upgrade requests)."""
    return v[:n].lower()


cdef int http_check_request_head(HttpActiveStream self) except -1:
    """Envoy's checks of a parsed head that the HCM answers itself:
    HTTP/1.0 (426 unless accept_http_10), Connection, Host, underscores,
    Upgrade, Expect. False when the stream was answered."""
    cdef HttpConnectionManagerConfig cfg = self.config
    cdef HttpConnectionManagerImpl hcm = self.hcm
    cdef HttpHeaderMap h = self.request_headers
    cdef int i, j, conn_i
    cdef bint keep_alive = False, upgrade_token = False
    cdef const char *v
    cdef size_t n, s, e, t
    cdef HttpHeaderEntry *en
    if self.version != HTTP1_VERSION_11:
        if not cfg.accept_http_10:
            self.version = HTTP1_VERSION_11     # the refusal is an HTTP/1.1 reply
            hcm.send_protocol_error(426, b"http1.invalid_version")
            return False
        if h.get(HTTP1_HEADER_HOST) < 0 and len(cfg.default_host_for_http_10):
            h.add_lower(b"host", 4, cfg.default_host_for_http_10,
                  len(cfg.default_host_for_http_10), HTTP1_HEADER_HOST)
    # Connection: close / keep-alive / upgrade; other tokens name
    # hop-by-hop headers, removed here.
    conn_i = h.get(HTTP1_HEADER_CONNECTION)
    while conn_i >= 0:
        v = h.value_at(conn_i)
        n = h.entries[conn_i].value_len
        s = 0
        while s < n:
            e = s
            while e < n and v[e] != b',':
                e += 1
            t = e
            while s < t and (v[s] == b' ' or v[s] == b'\t'):
                s += 1
            while t > s and (v[t - 1] == b' ' or v[t - 1] == b'\t'):
                t -= 1
            if t - s == 5 and _http1_ieq(v + s, b"close", 5):
                self.saw_connection_close = True
            elif t - s == 10 and _http1_ieq(v + s, b"keep-alive", 10):
                keep_alive = True
            elif t - s == 7 and _http1_ieq(v + s, b"upgrade", 7):
                upgrade_token = True
            elif t > s and _http1_header_id(v + s, t - s) == HTTP1_HEADER_OTHER:
                h.remove_name(v + s, t - s)
            s = e + 1
        conn_i = h.next_same(conn_i)
    if self.version != HTTP1_VERSION_11 and not keep_alive:
        self.saw_connection_close = True
    if h.get(HTTP1_HEADER_HOST) < 0:
        hcm.drain_state = HTTP_DRAIN_CLOSING
        self.send_local_reply(400, NULL, 0, 0, b"missing_host_header")
        return False
    if cfg.headers_with_underscores_action != HTTP_UNDERSCORES_ALLOW:
        for i in range(h.count):
            en = &h.entries[i]
            if en.id == HTTP_HEADER_DEAD or memchr(h.buf + en.name_off, b'_', en.name_len) == NULL:
                continue
            if cfg.headers_with_underscores_action == HTTP_UNDERSCORES_REJECT_REQUEST:
                hcm.send_protocol_error(400, b"http1.unexpected_underscore")
                return False
            h.remove_at(i)
    i = h.get(HTTP1_HEADER_UPGRADE)
    if i >= 0 and upgrade_token:
        if h.entries[i].value_len == 3 and _http1_ieq(h.value_at(i), b"h2c", 3):
            # Envoy's HTTP/1 codec drops an h2c upgrade (Upgrade,
            # Connection, HTTP2-Settings) and serves the request as HTTP/1.1
            # (observed: curl --http2 gets its response, no 403).
            h.remove_id(HTTP1_HEADER_UPGRADE)
            h.remove_id(HTTP1_HEADER_CONNECTION)
            h.remove_name(b"http2-settings", 14)
        else:
            # Allowed or refused once the route is known (upgrade_allowed).
            self.upgrade_type = _hcm_upgrade_lower(h.value_at(i), h.entries[i].value_len)
    i = h.get(HTTP1_HEADER_EXPECT)
    if i >= 0 and self.version == HTTP1_VERSION_11 and not cfg.proxy_100_continue \
            and _hcm_value_ieq(h, i, b"100-continue", 12):
        # The proxy answers 100-continue itself (Envoy without
        # proxy_100_continue) and the upstream never sees Expect.
        hcm.out.add(_HCM_CONTINUE_100, len(_HCM_CONTINUE_100))
        hcm.connection.write(hcm.out, False)
        cfg.stats[HTTP_DOWNSTREAM_RQ_1XX] += 1
        cfg.listener_stats[HTTP_LISTENER_DOWNSTREAM_RQ_1XX] += 1
        h.remove_id(HTTP1_HEADER_EXPECT)
    return True


# What a request that is not internal may not carry (Envoy 1.40's
# cleanInternalHeaders, as observed), after "x-envoy-": the first
# _HCM_EDGE_ONLY only on an edge request (use_remote_address).
cdef tuple _HCM_INTERNAL_ONLY = (
    b"decorator-operation", b"downstream-service-cluster", b"downstream-service-node",
    b"original-path", b"original-host",
    b"retry-on", b"retry-grpc-on", b"max-retries", b"upstream-alt-stat-name",
    b"upstream-rq-timeout-ms", b"upstream-rq-per-try-timeout-ms",
    b"upstream-rq-timeout-alt-response", b"expected-rq-timeout-ms", b"force-trace", b"ip-tags",
    b"retriable-status-codes", b"retriable-header-names", b"original-url",
    b"hedge-on-per-try-timeout", b"internal")
cdef enum:
    _HCM_EDGE_ONLY = 5


cdef void _hcm_clean_internal_headers(HttpHeaderMap h, bint edge) noexcept:
    """Remove the x-envoy-* controls of _HCM_INTERNAL_ONLY: one pass over
    the entries, most of which fail the prefix test."""
    cdef int i, k
    cdef HttpHeaderEntry *e
    cdef const char *name
    cdef bytes want
    for i in range(h.count):
        e = &h.entries[i]
        if e.id == HTTP_HEADER_DEAD or e.name_len <= 8:
            continue
        name = h.buf + e.name_off
        if memcmp(name, b"x-envoy-", 8) != 0:
            continue
        for k in range(0 if edge else _HCM_EDGE_ONLY, len(_HCM_INTERNAL_ONLY)):
            want = <bytes>_HCM_INTERNAL_ONLY[k]
            if e.name_len - 8 == <uint32_t>len(want) and memcmp(name + 8, <const char *>want, len(want)) == 0:
                h.remove_at(i)
                break


cdef bint _hcm_xff_single_internal(HttpConnectionManagerConfig cfg, HttpHeaderMap h) noexcept:
    """Without use_remote_address: x-forwarded-for holds one address, and
    it is internal."""
    cdef int i = h.get(HTTP1_HEADER_X_FORWARDED_FOR)
    cdef const char *v
    cdef size_t a = 0, b
    cdef char text[48]
    cdef unsigned char addr[16]
    if i < 0 or h.next_same(i) >= 0:
        return False
    v = h.value_at(i)
    b = h.entries[i].value_len
    if memchr(v, b',', b) != NULL:
        return False
    while a < b and (v[a] == b' ' or v[a] == b'\t'):
        a += 1
    while b > a and (v[b - 1] == b' ' or v[b - 1] == b'\t'):
        b -= 1
    if b - a == 0 or b - a >= sizeof(text):
        return False
    memcpy(text, v + a, b - a)
    text[b - a] = 0
    if inet_pton(AF_INET, text, addr) == 1:
        return _hcm_is_internal(cfg, 4, addr)
    if inet_pton(AF_INET6, text, addr) == 1:
        return _hcm_is_internal(cfg, 6, addr)
    return False


cdef enum:
    _HCM_STRIP_PORT_MATCHING = 1    # http_connection_manager_plan.STRIP_PORT_*
    _HCM_STRIP_PORT_ANY = 2


cdef int _hcm_local_port(int fd) noexcept:
    cdef sockaddr_storage addr
    cdef socklen_t n = sizeof(sockaddr_storage)
    if getsockname(fd, <sockaddr*>&addr, &n) < 0:
        return -1
    if addr.ss_family == AF_INET:
        return ntohs((<sockaddr_in*>&addr).sin_port)
    if addr.ss_family == AF_INET6:
        return ntohs((<sockaddr_in6*>&addr).sin6_port)
    return -1


cdef Py_ssize_t _hcm_port_start(const char *v, size_t n) noexcept:
    """Envoy's HeaderUtility::getPortStart: the last ':' when it is not
    inside an IPv6 literal's brackets; -1 if none."""
    cdef Py_ssize_t colon = -1, bracket = -1, i
    for i in range(<Py_ssize_t>n):
        if v[i] == b':':
            colon = i
        elif v[i] == b']':
            bracket = i
    if colon < 0 or (bracket >= 0 and bracket > colon):
        return -1
    return colon


cdef int _hcm_normalize_host(HttpActiveStream self) except -1:
    """Envoy's maybeNormalizeHost: strip_any_host_port /
    strip_matching_host_port (a numeric port, the listener's own for the
    latter), then strip_trailing_host_dot, before routing."""
    cdef HttpConnectionManagerConfig cfg = self.config
    cdef HttpHeaderMap h = self.request_headers
    cdef int i = h.get(HTTP1_HEADER_HOST)
    cdef const char *v
    cdef size_t n, k
    cdef Py_ssize_t p
    cdef uint64_t port = 0
    if i < 0:
        return 0
    v = h.value_at(i)
    n = h.entries[i].value_len
    if cfg.strip_port:
        p = _hcm_port_start(v, n)
        if p >= 0 and <size_t>p + 1 < n and n - <size_t>p - 1 <= 10:
            for k in range(<size_t>p + 1, n):
                if not (b'0' <= v[k] <= b'9'):
                    break
                port = port * 10 + <uint64_t>(v[k] - 48)
            else:
                if port <= 0xffffffff and (cfg.strip_port == _HCM_STRIP_PORT_ANY or
                                           <int64_t>port == self.hcm.local_port):
                    h.entries[i].value_len = <uint32_t>p      # a prefix of the value: in place
                    h.byte_size -= n - <size_t>p
                    n = <size_t>p
    if cfg.strip_trailing_host_dot and n:
        p = _hcm_port_start(v, n)
        if p > 0 and v[p - 1] == b'.':
            # The map owns its block: the port moves one byte left, in place.
            memmove(<char *>v + p - 1, v + p, n - <size_t>p)
            h.entries[i].value_len = <uint32_t>(n - 1)
            h.byte_size -= 1
        elif p < 0 and v[n - 1] == b'.':
            h.entries[i].value_len = <uint32_t>(n - 1)
            h.byte_size -= 1
    return 0


cdef int http_mutate_request_headers(HttpActiveStream self) except -1:
    """Envoy's ConnectionManagerUtility::mutateRequestHeaders, in its
    order: hop-by-hop headers out, x-forwarded-for, x-forwarded-proto,
    internal or not (x-envoy-internal, or the x-envoy-* controls out),
    x-envoy-external-address, x-request-id."""
    cdef HttpConnectionManagerConfig cfg = self.config
    cdef HttpConnectionManagerImpl hcm = self.hcm
    cdef HttpHeaderMap h = self.request_headers
    cdef char uuid[36]
    cdef const char *xff
    cdef size_t xff_len
    cdef char ext_buf[64]
    cdef const char *ext
    cdef size_t ext_len
    cdef int i
    cdef bint internal = False, edge = False
    cdef bytes name
    cdef char port_buf[24]
    cdef size_t n
    cdef bint upgrade
    if cfg.strip_port or cfg.strip_trailing_host_dot:
        _hcm_normalize_host(self)
    upgrade = h.get(HTTP1_HEADER_UPGRADE) >= 0 and h.get(HTTP1_HEADER_CONNECTION) >= 0 \
        and _hcm_connection_has_upgrade(h)
    self.set_remote_address()
    if not upgrade:
        h.remove_id(HTTP1_HEADER_CONNECTION)
        h.remove_id(HTTP1_HEADER_UPGRADE)
    h.remove_id(HTTP1_HEADER_KEEP_ALIVE)
    h.remove_id(HTTP1_HEADER_PROXY_CONNECTION)
    h.remove_id(HTTP1_HEADER_TRANSFER_ENCODING)
    # TE: only "trailers" goes on.
    i = h.get(HTTP1_HEADER_TE)
    if i >= 0:
        if _http1_has_token(h.value_at(i), h.entries[i].value_len, b"trailers", 8):
            h.set_id(HTTP1_HEADER_TE, b"trailers", 8)
        else:
            h.remove_id(HTTP1_HEADER_TE)
    if cfg.use_remote_address:
        # The trusted client address: the peer, or with
        # xff_num_trusted_hops N the N-th x-forwarded-for entry from the
        # right (observed; the peer when there are fewer).
        ext = hcm.peer_ip
        ext_len = hcm.peer_ip_len
        i = h.get(HTTP1_HEADER_X_FORWARDED_FOR)
        # Internal: the peer is, and x-forwarded-for will name it alone.
        internal = hcm.peer_internal and i < 0
        edge = not internal
        if cfg.xff_num_trusted_hops > 0 and i >= 0:
            ext_len = _hcm_xff_entry(h.value_at(i), h.entries[i].value_len,
                                     cfg.xff_num_trusted_hops, ext_buf)
            if ext_len:
                ext = ext_buf
            else:
                ext = hcm.peer_ip
                ext_len = hcm.peer_ip_len
        if not cfg.skip_xff_append:
            # A loopback peer is written as the proxy's own address, as
            # Envoy does.
            if hcm.peer_loopback and len(cfg.local_address_v4):
                xff = cfg.local_address_v4
                xff_len = len(cfg.local_address_v4)
            else:
                xff = hcm.peer_ip
                xff_len = hcm.peer_ip_len
            i = h.get(HTTP1_HEADER_X_FORWARDED_FOR)
            if i >= 0:
                h.append_value(i, xff, xff_len, b",", 1)
            else:
                h.add_lower(b"x-forwarded-for", 15, xff, xff_len, HTTP1_HEADER_X_FORWARDED_FOR)
        # A trusted prior hop's x-forwarded-proto stays (Envoy).
        if cfg.xff_num_trusted_hops == 0 or h.get(HTTP1_HEADER_X_FORWARDED_PROTO) < 0:
            h.set_id(HTTP1_HEADER_X_FORWARDED_PROTO, b"http", 4)
    else:
        if h.get(HTTP1_HEADER_X_FORWARDED_PROTO) < 0:
            h.add_lower(b"x-forwarded-proto", 17, b"http", 4, HTTP1_HEADER_X_FORWARDED_PROTO)
        internal = cfg.n_internal_ranges > 0 and _hcm_xff_single_internal(cfg, h)
    if cfg.append_x_forwarded_port and hcm.local_port >= 0:
        # The port the client connected to, unless a trusted hop set it.
        i = h.find(b"x-forwarded-port", 16)
        if i < 0 or (cfg.use_remote_address and cfg.xff_num_trusted_hops == 0):
            n = format_uint(<uint64_t>hcm.local_port, port_buf)
            if i < 0:
                h.add_lower(b"x-forwarded-port", 16, port_buf, n, HTTP1_HEADER_OTHER)
            else:
                h.set_value(i, port_buf, n)
    # Only an internal request keeps Envoy's controls (and gets them
    # honoured by the router); only Envoy asserts x-envoy-internal.
    if internal:
        h.remove_name(b"x-envoy-internal", 16)
        h.add_lower(b"x-envoy-internal", 16, b"true", 4, HTTP1_HEADER_OTHER)
        self.force_trace = h.find(b"x-envoy-force-trace", 19) >= 0
    else:
        _hcm_clean_internal_headers(h, edge)
        for name in cfg.internal_only_headers:
            h.remove_name(name, len(name))
    if edge:
        i = h.find(b"x-envoy-external-address", 24)
        if i >= 0:
            h.set_value(i, ext, ext_len)
        else:
            h.add_lower(b"x-envoy-external-address", 24, ext, ext_len, HTTP1_HEADER_OTHER)
    if cfg.generate_request_id:
        i = h.get(HTTP1_HEADER_X_REQUEST_ID)
        if i < 0:
            http_uuid4(hcm.dispatcher, uuid)
            h.add_lower(b"x-request-id", 12, uuid, 36, HTTP1_HEADER_X_REQUEST_ID)
        elif edge and not cfg.preserve_external_request_id:
            http_uuid4(hcm.dispatcher, uuid)
            h.set_value(i, uuid, 36)
    if len(cfg.via):
        i = h.find(b"via", 3)
        if i >= 0:
            h.append_value(i, cfg.via, len(cfg.via), b", ", 2)
        else:
            h.add_lower(b"via", 3, cfg.via, len(cfg.via), HTTP1_HEADER_OTHER)
    return 0


cdef int http_set_remote_address(HttpActiveStream self) except -1:
    """The stream's downstream remote address (stream info, formatters):
    the peer, or as Envoy the x-forwarded-for entry the trusted hops
    point at, with port 0 (without use_remote_address: the last entry
    when no hop is trusted). A keep-alive client repeating its
    x-forwarded-for reuses the string made for the first request."""
    cdef HttpConnectionManagerConfig cfg = self.config
    cdef HttpConnectionManagerImpl hcm = self.hcm
    cdef HttpHeaderMap h = self.request_headers
    cdef int i = h.get(HTTP1_HEADER_X_FORWARDED_FOR)
    cdef int hops = cfg.xff_num_trusted_hops if cfg.use_remote_address else cfg.xff_num_trusted_hops + 1
    cdef char buf[64]
    cdef size_t n
    cdef const char *v
    if i < 0 or (cfg.use_remote_address and cfg.xff_num_trusted_hops == 0):
        self.stream_info.downstream_remote_address = None     # the peer's
        return 0
    v = h.value_at(i)
    n = h.entries[i].value_len
    if hcm.xff_key is not None and len(hcm.xff_key) == <Py_ssize_t>n \
            and memcmp(<const char*>hcm.xff_key, v, n) == 0:
        self.stream_info.downstream_remote_address = hcm.xff_address
        return 0
    hcm.xff_key = v[:n]
    n = _hcm_xff_entry(v, n, hops, buf)
    if n == 0:
        hcm.xff_address = self.stream_info.peer_address()
    elif memchr(buf, b':', n) != NULL:
        hcm.xff_address = "[%s]:0" % buf[:n].decode("latin-1")
    else:
        hcm.xff_address = buf[:n].decode("latin-1") + ":0"
    self.stream_info.downstream_remote_address = hcm.xff_address
    return 0
