# Helpers of the router filter (router.pyx): numbers in header values, the
# request's x-envoy-* controls, reset reasons as Envoy names them, buffer copies.
# Nothing here allocates on the default path.

cdef bint _router_parse_uint(const char *s, size_t n, uint64_t *out) noexcept:
    """absl::SimpleAtoi for a uint64 header value (digits only)."""
    cdef uint64_t v = 0
    cdef size_t i
    if n == 0 or n > 19:
        return False
    for i in range(n):
        if s[i] < b'0' or s[i] > b'9':
            return False
        v = v * 10 + <uint64_t>(s[i] - 48)
    out[0] = v
    return True


cdef int _router_find_header(HttpHeaderMap headers, bytes name) noexcept:
    return headers.find(<const char *>name, len(name))


# The x-envoy-* request headers the router reads or consumes (Envoy's
# FilterUtility::finalTimeout, RetryStateImpl::create, ...), found in one
# pass over the request's headers.
cdef enum:  # _RouterEnvoyHeader
    _RH_INTERNAL
    _RH_UPSTREAM_RQ_TIMEOUT_MS
    _RH_UPSTREAM_RQ_PER_TRY_TIMEOUT_MS
    _RH_RETRY_ON
    _RH_MAX_RETRIES
    _RH_RETRIABLE_STATUS_CODES
    _RH_RETRY_GRPC_ON
    _RH_RETRIABLE_HEADER_NAMES
    _RH_HEDGE_ON_PER_TRY_TIMEOUT
    _RH_UPSTREAM_ALT_STAT_NAME
    _RH_UPSTREAM_STREAM_DURATION_MS
    _RH_UPSTREAM_RQ_TIMEOUT_ALT_RESPONSE
    _RH_COUNT

# Each name without its "x-envoy-" prefix, in _RouterEnvoyHeader order.
cdef tuple _ROUTER_ENVOY_HEADERS = (
    b"internal", b"upstream-rq-timeout-ms", b"upstream-rq-per-try-timeout-ms", b"retry-on",
    b"max-retries", b"retriable-status-codes", b"retry-grpc-on", b"retriable-header-names",
    b"hedge-on-per-try-timeout", b"upstream-alt-stat-name", b"upstream-stream-duration-ms",
    b"upstream-rq-timeout-alt-response")


cdef void _router_scan_envoy_headers(HttpHeaderMap headers, int *found) noexcept:
    """found[k]: the first entry named x-envoy-<_ROUTER_ENVOY_HEADERS[k]>, -1."""
    cdef int i, k
    cdef HttpHeaderEntry *e
    cdef const char *name
    cdef bytes want
    for k in range(_RH_COUNT):
        found[k] = -1
    for i in range(headers.count):
        e = &headers.entries[i]
        if e.id != HTTP1_HEADER_OTHER or e.name_len <= 8:
            continue
        name = headers.buf + e.name_off
        if memcmp(name, b"x-envoy-", 8) != 0:
            continue
        for k in range(_RH_COUNT):
            want = <bytes>_ROUTER_ENVOY_HEADERS[k]
            if e.name_len - 8 == <uint32_t>len(want) and found[k] < 0 and \
                    memcmp(name + 8, <const char *>want, len(want)) == 0:
                found[k] = i
                break


# retry_on / x-envoy-retry-on words and their ROUTER_RETRY_ON_* bits.
cdef tuple _ROUTER_RETRY_ON_WORDS = (
    (b"5xx", ROUTER_RETRY_ON_5XX), (b"gateway-error", ROUTER_RETRY_ON_GATEWAY_ERROR),
    (b"reset", ROUTER_RETRY_ON_RESET), (b"connect-failure", ROUTER_RETRY_ON_CONNECT_FAILURE),
    (b"retriable-4xx", ROUTER_RETRY_ON_RETRIABLE_4XX),
    (b"retriable-status-codes", ROUTER_RETRY_ON_RETRIABLE_STATUS_CODES),
    (b"refused-stream", ROUTER_RETRY_ON_REFUSED_STREAM),
    (b"reset-before-request", ROUTER_RETRY_ON_RESET_BEFORE_REQUEST),
    (b"envoy-ratelimited", ROUTER_RETRY_ON_ENVOY_RATE_LIMITED),
    (b"http3-post-connect-failure", ROUTER_RETRY_ON_HTTP3_POST_CONNECT_FAILURE))


cdef int _router_parse_retry_on(const char *s, size_t n) noexcept:
    """Envoy's RetryStateImpl::parseRetryOn: comma-separated policy names
    (unknown ones ignored) as ROUTER_RETRY_ON_* bits."""
    cdef int bits = 0
    cdef size_t i = 0, j, a, b
    cdef bytes word
    cdef tuple entry
    while i <= n:
        j = i
        while j < n and s[j] != b',':
            j += 1
        a, b = i, j
        while a < b and s[a] == b' ':
            a += 1
        while b > a and s[b - 1] == b' ':
            b -= 1
        for entry in _ROUTER_RETRY_ON_WORDS:
            word = <bytes>entry[0]
            if b - a == <size_t>len(word) and memcmp(s + a, <const char *>word, b - a) == 0:
                bits |= <int>entry[1]
                break
        i = j + 1
    return bits


cdef str _router_reset_reason_string(int reason):
    """Envoy's Http::Utility::resetReasonToString."""
    if reason == HTTP_RESET_CONNECTION_FAILURE:
        return "remote connection failure"
    if reason == HTTP_RESET_CONNECTION_TERMINATION:
        return "connection termination"
    if reason == HTTP_RESET_OVERFLOW:
        return "overflow"
    if reason == HTTP_RESET_CONNECT_TIMEOUT:
        return "connection timeout"
    if reason == HTTP_RESET_PROTOCOL_ERROR:
        return "protocol error"
    if reason == HTTP_RESET_REMOTE_RESET:
        return "remote reset"
    return "local reset"


cdef int _router_reset_reason_flag(int reason) noexcept:
    """Envoy's Filter::streamResetReasonToResponseFlag."""
    if reason == HTTP_RESET_CONNECTION_FAILURE or reason == HTTP_RESET_CONNECT_TIMEOUT:
        return RF_UPSTREAM_CONNECTION_FAILURE
    if reason == HTTP_RESET_CONNECTION_TERMINATION:
        return RF_UPSTREAM_CONNECTION_TERMINATION
    if reason == HTTP_RESET_OVERFLOW:
        return RF_UPSTREAM_OVERFLOW
    if reason == HTTP_RESET_PROTOCOL_ERROR:
        return RF_UPSTREAM_PROTOCOL_ERROR
    if reason == HTTP_RESET_REMOTE_RESET:
        return RF_UPSTREAM_REMOTE_RESET
    return RF_LOCAL_RESET


cdef int _router_copy_buffer(OwnedBuffer src, OwnedBuffer dst) except -1:
    """Append a copy of src's bytes to dst (src is left as it is)."""
    cdef BufferCursor c
    cdef const char *p
    cdef size_t n
    if not src.seek(&c, 0):
        return 0
    while True:
        p = src.chunk(&c, &n)
        if p == NULL:
            break
        dst.add(p, n)
        src.advance(&c, n)
    return 0
