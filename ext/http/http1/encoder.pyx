# HTTP/1.1 encoders (see encoder.pxd).

# The reason phrase Envoy 1.40 writes for each status (read off the real
# binary for 100..999: any other code gets "Unknown", 599 has its own).
cdef dict _HTTP1_REASONS = {
    100: b"Continue", 101: b"Switching Protocols", 200: b"OK", 201: b"Created",
    202: b"Accepted", 203: b"Non-Authoritative Information", 204: b"No Content",
    205: b"Reset Content", 206: b"Partial Content", 207: b"Multi-Status",
    208: b"Already Reported", 226: b"IM Used", 300: b"Multiple Choices",
    301: b"Moved Permanently", 302: b"Found", 303: b"See Other", 304: b"Not Modified",
    305: b"Use Proxy", 307: b"Temporary Redirect", 308: b"Permanent Redirect",
    400: b"Bad Request", 401: b"Unauthorized", 402: b"Payment Required", 403: b"Forbidden",
    404: b"Not Found", 405: b"Method Not Allowed", 406: b"Not Acceptable",
    407: b"Proxy Authentication Required", 408: b"Request Timeout", 409: b"Conflict",
    410: b"Gone", 411: b"Length Required", 412: b"Precondition Failed",
    413: b"Payload Too Large", 414: b"URI Too Long", 415: b"Unsupported Media Type",
    416: b"Range Not Satisfiable", 417: b"Expectation Failed", 421: b"Misdirected Request",
    422: b"Unprocessable Entity", 423: b"Locked", 424: b"Failed Dependency",
    425: b"Too Early", 426: b"Upgrade Required", 428: b"Precondition Required",
    429: b"Too Many Requests", 431: b"Request Header Fields Too Large",
    500: b"Internal Server Error", 501: b"Not Implemented", 502: b"Bad Gateway",
    503: b"Service Unavailable", 504: b"Gateway Timeout",
    505: b"HTTP Version Not Supported", 506: b"Variant Also Negotiates",
    507: b"Insufficient Storage", 508: b"Loop Detected", 510: b"Not Extended",
    511: b"Network Authentication Required", 599: b"Last Unassigned Server Error Code",}
cdef const char *_http1_reason_table[1000]
cdef size_t _http1_reason_lens[1000]
for _i in range(1000):
    _http1_reason_table[_i] = b"Unknown"
    _http1_reason_lens[_i] = 7
for _i, _r in _HTTP1_REASONS.items():
    _http1_reason_table[_i] = <bytes>_r
    _http1_reason_lens[_i] = len(_r)

cdef const char *_HTTP1_HEX = b"0123456789abcdef"


cdef const char *http1_reason_phrase(int status, size_t *n) noexcept:
    cdef unsigned int i = <unsigned int>status
    if i > 999:
        i = 0
    n[0] = _http1_reason_lens[i]
    return _http1_reason_table[i]


cdef int http1_encode_request_head(OwnedBuffer out, HttpHeaderMap h) except -1:
    """"METHOD path HTTP/1.1", host first, the other headers in order, the
    blank line (Envoy's RequestEncoderImpl): written in place in `out`'s
    tail when a slice holds it."""
    cdef int m = h.method if 0 <= h.method < HTTP1_METHOD_COUNT else HTTP1_METHOD_GET
    cdef size_t ml = _HTTP1_METHOD_LENS[m]
    cdef char *start
    cdef char *p
    start = p = out.tail_space(ml + 1 + h.path_len + 11 + h.headers_size() + 2)
    if p == NULL:
        out.add(_HTTP1_METHOD_NAMES[m], ml)
        out.add(b" ", 1)
        out.add(h.path(), h.path_len)
        out.add(b" HTTP/1.1\r\n", 11)
        h.encode_headers(out, HTTP1_HEADER_HOST)
        out.add(b"\r\n", 2)
        return 0
    memcpy(p, _HTTP1_METHOD_NAMES[m], ml)
    p[ml] = b' '
    p += ml + 1
    memcpy(p, h.path(), h.path_len)
    p += h.path_len
    memcpy(p, b" HTTP/1.1\r\n", 11)
    p = h.write_headers(p + 11, HTTP1_HEADER_HOST)
    p[0] = b'\r'
    p[1] = b'\n'
    out.commit_tail(p + 2 - start)
    return 0


cdef int http1_encode_response_head(OwnedBuffer out, HttpHeaderMap h, bint http10) except -1:
    """"HTTP/1.1 NNN Reason", the headers in order, the blank line: written
    in place in `out`'s tail when a slice holds it."""
    cdef char line[64]
    cdef size_t rn, n = 9
    cdef const char *reason = http1_reason_phrase(h.status, &rn)
    cdef unsigned int status = <unsigned int>h.status if h.status >= 100 else 500
    cdef char *start
    cdef char *p
    memcpy(line, b"HTTP/1.0 " if http10 else b"HTTP/1.1 ", 9)
    n += format_uint(status, line + n)    # an upstream's 2000 is relayed as such
    line[n] = b' '
    memcpy(line + n + 1, reason, rn)    # the longest phrase is 33 bytes
    n += 1 + rn
    line[n] = b'\r'
    line[n + 1] = b'\n'
    n += 2
    start = p = out.tail_space(n + h.headers_size() + 2)
    if p == NULL:
        out.add(line, n)
        h.encode_headers(out, HTTP1_HEADER_OTHER)
        out.add(b"\r\n", 2)
        return 0
    memcpy(p, line, n)
    p = h.write_headers(p + n, HTTP1_HEADER_OTHER)
    p[0] = b'\r'
    p[1] = b'\n'
    out.commit_tail(p + 2 - start)
    return 0


cdef void http1_encode_chunk(OwnedBuffer out, OwnedBuffer data) noexcept:
    cdef char line[20]
    cdef size_t n = data.length()
    cdef int k = 16
    if n == 0:
        return
    line[18] = b'\r'
    line[19] = b'\n'
    while True:
        k -= 1
        line[k + 2] = _HTTP1_HEX[n & 15]
        n >>= 4
        if n == 0:
            break
    out.add(line + k + 2, 18 - k)
    out.move(data)
    out.add(b"\r\n", 2)


cdef int http1_encode_last_chunk(OwnedBuffer out, HttpHeaderMap trailers) except -1:
    out.add(b"0\r\n", 3)
    if trailers is not None:
        trailers.encode_headers(out, HTTP1_HEADER_OTHER)
    out.add(b"\r\n", 2)
    return 0
