# HTTP/1.1 encoders (see encoder.pxd).

from libc.stdlib cimport malloc, free

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


cdef inline int http1_write_head(OwnedBuffer out, const char *line, size_t line_len,
                          const char *path, size_t path_len, const char *line_end, size_t end_len,
                          HttpHeaderMap h, int first_id, const char *extra, size_t extra_len) except -1:
    """A message head in one run: the start line (line + path + line_end),
    h's headers (those of `first_id` first; h may be None), `extra` header
    lines, the blank line. Written in place in `out`'s tail; a head longer
    than a slice is built in a scratch block and appended."""
    cdef size_t need = line_len + path_len + end_len + extra_len + 2
    cdef char *start
    cdef char *scratch = NULL
    cdef char *p
    if h is not None:
        need += h.headers_size()
    start = out.tail_space(need)
    if start == NULL:
        start = scratch = <char*>malloc(need)
        if scratch == NULL:
            raise MemoryError()
    p = start
    if line_len:
        memcpy(p, line, line_len)
        p += line_len
    if path_len:
        memcpy(p, path, path_len)
        p += path_len
    if end_len:
        memcpy(p, line_end, end_len)
        p += end_len
    if h is not None:
        p = h.write_headers(p, first_id)
    if extra_len:
        memcpy(p, extra, extra_len)
        p += extra_len
    p[0] = b'\r'
    p[1] = b'\n'
    p += 2
    if scratch == NULL:
        out.commit_tail(p - start)
    else:
        out.add(scratch, p - start)
        free(scratch)
    return 0


cdef int http1_encode_request_head(OwnedBuffer out, HttpHeaderMap h,
                                   const char *extra, size_t extra_len) except -1:
    """"METHOD path HTTP/1.1" ("/" when the map has no path), host first,
    the other headers in order, `extra` header lines (the encoder's
    framing), the blank line (Envoy's RequestEncoderImpl)."""
    cdef int m = h.method if 0 <= h.method < HTTP1_METHOD_COUNT else HTTP1_METHOD_GET
    cdef size_t ml = _HTTP1_METHOD_LENS[m]
    cdef char line[16]                  # the longest method is 11 bytes
    memcpy(line, _HTTP1_METHOD_NAMES[m], ml)
    line[ml] = b' '
    if h.path_len:
        return http1_write_head(out, line, ml + 1, h.path(), h.path_len, b" HTTP/1.1\r\n", 11,
                                h, HTTP1_HEADER_HOST, extra, extra_len)
    return http1_write_head(out, line, ml + 1, b"/", 1, b" HTTP/1.1\r\n", 11,
                            h, HTTP1_HEADER_HOST, extra, extra_len)


cdef int http1_encode_response_head(OwnedBuffer out, HttpHeaderMap h, bint http10) except -1:
    """"HTTP/1.1 NNN Reason", the headers in order, the blank line."""
    cdef char line[64]
    cdef size_t rn, n = 9
    cdef const char *reason = http1_reason_phrase(h.status, &rn)
    cdef unsigned int status = <unsigned int>h.status if h.status >= 100 else 500
    memcpy(line, b"HTTP/1.0 " if http10 else b"HTTP/1.1 ", 9)
    n += format_uint(status, line + n)    # an upstream's 2000 is relayed as such
    line[n] = b' '
    memcpy(line + n + 1, reason, rn)    # the longest phrase is 33 bytes
    n += 1 + rn
    line[n] = b'\r'
    line[n + 1] = b'\n'
    return http1_write_head(out, line, n + 2, NULL, 0, NULL, 0, h, HTTP1_HEADER_OTHER, NULL, 0)


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
    return http1_write_head(out, b"0\r\n", 3, NULL, 0, NULL, 0, trailers, HTTP1_HEADER_OTHER, NULL, 0)
