# Http1RequestParser (see parser.pxd). The head is found by scanning each new
# LF once (so a bare LF is caught as it arrives), then parsed in one pass over
# the linearized block. Errors carry Envoy's status and a response code
# details string.

from libc.stdlib cimport malloc, free

cdef const char *_HTTP1_METHOD_NAMES[HTTP1_METHOD_COUNT]
_HTTP1_METHOD_NAMES[:] = [
    b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS",
    b"TRACE", b"PATCH", b"ACL", b"BIND", b"CHECKOUT", b"COPY", b"LINK",
    b"LOCK", b"MSEARCH", b"MERGE", b"MKACTIVITY", b"MKCALENDAR", b"MKCOL",
    b"MOVE", b"NOTIFY", b"PROPFIND", b"PROPPATCH", b"PURGE", b"REBIND",
    b"REPORT", b"SEARCH", b"SOURCE", b"SUBSCRIBE", b"UNBIND", b"UNLINK",
    b"UNLOCK", b"UNSUBSCRIBE"]
cdef size_t _HTTP1_METHOD_LENS[HTTP1_METHOD_COUNT]
for _i in range(HTTP1_METHOD_COUNT):
    _HTTP1_METHOD_LENS[_i] = len(<bytes>_HTTP1_METHOD_NAMES[_i])

# Lowercase names, compared case-insensitively (index = Http1HeaderId).
cdef const char *_HTTP1_HEADER_NAMES[HTTP1_HEADER_COUNT]
_HTTP1_HEADER_NAMES[:] = [
    b"", b"host", b"content-length", b"transfer-encoding", b"connection",
    b"upgrade", b"expect", b"te", b"x-forwarded-for", b"x-forwarded-proto",
    b"x-request-id", b"keep-alive", b"proxy-connection", b"date", b"server",
    b"user-agent", b"content-type", b"x-envoy-original-path",
    b"x-envoy-upstream-service-time", b"x-envoy-expected-rq-timeout-ms"]
cdef size_t _HTTP1_HEADER_LENS[HTTP1_HEADER_COUNT]
for _i in range(HTTP1_HEADER_COUNT):
    _HTTP1_HEADER_LENS[_i] = len(<bytes>_HTTP1_HEADER_NAMES[_i])

# RFC 9110 tchar: the bytes allowed in a method and a header name.
cdef unsigned char _http1_tchar[256]
for _i in range(256):
    _http1_tchar[_i] = (48 <= _i <= 57 or 65 <= _i <= 90 or 97 <= _i <= 122
                        or chr(_i) in "!#$%&'*+-.^_`|~")

# Response code details (Envoy's http1.* strings where Envoy has one).
cdef const char *HTTP1_DETAIL_CODEC_ERROR = b"http1.codec_error"
cdef const char *HTTP1_DETAIL_INVALID_METHOD = b"http1.invalid_method"
cdef const char *HTTP1_DETAIL_INVALID_URL = b"http1.invalid_url"
cdef const char *HTTP1_DETAIL_INVALID_VERSION = b"http1.invalid_version"
cdef const char *HTTP1_DETAIL_INVALID_HEADER_NAME = b"http1.invalid_header_name"
cdef const char *HTTP1_DETAIL_INVALID_CHARACTERS = b"http1.invalid_characters"
cdef const char *HTTP1_DETAIL_OBS_FOLD = b"http1.obs_fold"
cdef const char *HTTP1_DETAIL_HEADERS_TOO_LARGE = b"http1.headers_too_large"
cdef const char *HTTP1_DETAIL_TOO_MANY_HEADERS = b"http1.too_many_headers"
cdef const char *HTTP1_DETAIL_INVALID_CONTENT_LENGTH = b"http1.content_length_not_allowed"
cdef const char *HTTP1_DETAIL_CL_AND_TE = b"http1.content_length_and_chunked_not_allowed"
cdef const char *HTTP1_DETAIL_INVALID_TE = b"http1.invalid_transfer_encoding"


cdef inline unsigned char _http1_lower(unsigned char c) noexcept:
    return c + 32 if 65 <= c <= 90 else c


cdef inline bint _http1_ieq(const char *a, const char *lower, size_t n) noexcept:
    """a[0:n] equals the lowercase `lower`, ignoring ASCII case."""
    cdef size_t i
    for i in range(n):
        if _http1_lower(<unsigned char>a[i]) != <unsigned char>lower[i]:
            return False
    return True


cdef inline int _http1_header_id(const char *name, size_t n) noexcept:
    cdef int i
    for i in range(1, HTTP1_HEADER_COUNT):
        if _HTTP1_HEADER_LENS[i] == n and _http1_ieq(name, _HTTP1_HEADER_NAMES[i], n):
            return i
    return HTTP1_HEADER_OTHER


@cython.final
cdef class Http1RequestParser:

    def __cinit__(self, size_t max_request_headers_kb=HTTP1_MAX_HEADERS_KB,
                  int max_headers_count=HTTP1_MAX_HEADERS_COUNT):
        self.max_head_bytes = max_request_headers_kb * 1024
        self.max_headers = max_headers_count if max_headers_count > 0 else 1
        self.headers = <Http1Header*>malloc(self.max_headers * sizeof(Http1Header))
        if self.headers == NULL:
            raise MemoryError()
        self.reset()

    def __dealloc__(self):
        free(self.headers)

    cdef void reset(self) noexcept:
        """Ready for the next request's head (after the caller drains this one)."""
        cdef int i
        self.header_count = 0
        self.scanned = 0
        self.line_start = 0
        self.request_start = 0
        self.seen_line = False
        self.head = NULL
        self.head_len = 0
        self.method = -1
        self.target_off = self.target_len = 0
        self.version = HTTP1_VERSION_09
        self.content_length = -1
        self.chunked = False
        self.te_invalid = False
        for i in range(HTTP1_HEADER_COUNT):
            self.header_index[i] = -1
        self.error_status = 0
        self.error_detail = NULL

    cdef int _error(self, int status, const char *detail) noexcept:
        self.error_status = status
        self.error_detail = detail
        return HTTP1_PARSE_ERROR

    cdef int parse(self, OwnedBuffer data) noexcept:
        """HTTP1_PARSE_NEED_MORE until the head is complete, then DONE with
        head/head_len and the fields set (nothing drained), or ERROR with
        error_status/error_detail. Each byte is scanned once over calls."""
        cdef size_t n = data.length()
        cdef size_t limit
        cdef ssize_t lf
        cdef char c
        cdef bint empty
        if self.error_status:
            return HTTP1_PARSE_ERROR
        if self.head != NULL:
            return HTTP1_PARSE_DONE
        # The head may not exceed max_head_bytes: look no further, and fail
        # as soon as that many bytes hold no blank line.
        limit = n if n < self.max_head_bytes else self.max_head_bytes
        while self.scanned < limit:
            lf = data.find_byte(b'\n', self.scanned, limit)
            if lf < 0:
                self.scanned = limit
                break
            self.scanned = lf + 1
            # Lines end in LF with an optional CR, as Envoy's codec (balsa)
            # accepts a bare LF.
            empty = <size_t>lf == self.line_start
            if <size_t>lf == self.line_start + 1:
                data.copy_out(self.line_start, &c, 1)
                empty = c == b'\r'
            self.line_start = lf + 1
            if not empty:
                self.seen_line = True
            elif not self.seen_line:
                self.request_start = lf + 1     # empty lines before a request are skipped
            else:
                self.head_len = lf + 1
                self.head = data.linearize(self.head_len)
                return self._parse_head()
        if self.scanned >= self.max_head_bytes:
            return self._error(431, HTTP1_DETAIL_HEADERS_TOO_LARGE)
        return HTTP1_PARSE_NEED_MORE

    cdef int _parse_head(self) noexcept:
        cdef const char *p = self.head
        cdef size_t i = self.request_start, start, eol, next_line, colon, vs, ve
        cdef int m
        cdef unsigned char c
        cdef Http1Header *h
        # Request line: method, target and version separated by runs of
        # spaces (Envoy accepts "GET  / HTTP/1.1 ").
        next_line = <size_t>(<const char*>memchr(p + i, b'\n', self.head_len - i) - p) + 1
        eol = next_line - 1
        while eol > i and p[eol - 1] == b'\r':
            eol -= 1
        # Method: a known token, case-sensitive.
        while i < eol and p[i] != b' ':
            if not _http1_tchar[<unsigned char>p[i]]:
                return self._error(400, HTTP1_DETAIL_INVALID_METHOD)
            i += 1
        for m in range(HTTP1_METHOD_COUNT):
            if _HTTP1_METHOD_LENS[m] == i - self.request_start \
                    and memcmp(p + self.request_start, _HTTP1_METHOD_NAMES[m], i - self.request_start) == 0:
                self.method = m
                break
        if self.method < 0:
            return self._error(400, HTTP1_DETAIL_INVALID_METHOD)
        while i < eol and p[i] == b' ':
            i += 1
        # Target: visible ASCII only.
        start = i
        while i < eol and p[i] != b' ':
            c = <unsigned char>p[i]
            if c <= 0x20 or c >= 0x7f:
                return self._error(400, HTTP1_DETAIL_INVALID_URL)
            i += 1
        if i == start:
            return self._error(400, HTTP1_DETAIL_INVALID_URL)
        self.target_off = start
        self.target_len = i - start
        while i < eol and p[i] == b' ':
            i += 1
        # Version: none is HTTP/0.9; HTTP/1.1; any other HTTP/d.d counts as
        # HTTP/1.0 (Envoy answers both with 426 unless accept_http_10).
        if i == eol:
            self.version = HTTP1_VERSION_09
        else:
            if i + 8 > eol or memcmp(p + i, b"HTTP/", 5) != 0 \
                    or not (48 <= p[i + 5] <= 57) or p[i + 6] != b'.' or not (48 <= p[i + 7] <= 57):
                return self._error(400, HTTP1_DETAIL_INVALID_VERSION)
            self.version = HTTP1_VERSION_11 if p[i + 5] == b'1' and p[i + 7] == b'1' else HTTP1_VERSION_10
            i += 8
            while i < eol and p[i] == b' ':
                i += 1
            if i != eol:
                return self._error(400, HTTP1_DETAIL_INVALID_VERSION)
        # Header lines, up to the empty line.
        i = next_line
        while True:
            next_line = <size_t>(<const char*>memchr(p + i, b'\n', self.head_len - i) - p) + 1
            eol = next_line - 1
            if eol > i and p[eol - 1] == b'\r':
                eol -= 1
            if eol == i:
                break           # the empty line that parse() found
            # Further CRs before the line end are dropped, as Envoy does.
            while eol > i and p[eol - 1] == b'\r':
                eol -= 1
            if p[i] == b' ' or p[i] == b'\t':
                return self._error(400, HTTP1_DETAIL_OBS_FOLD)
            start = i
            while i < eol and p[i] != b':':
                if not _http1_tchar[<unsigned char>p[i]]:
                    return self._error(400, HTTP1_DETAIL_INVALID_HEADER_NAME)
                i += 1
            if i == eol or i == start:
                return self._error(400, HTTP1_DETAIL_INVALID_HEADER_NAME)
            colon = i
            i += 1
            while i < eol and (p[i] == b' ' or p[i] == b'\t'):
                i += 1
            vs = i
            ve = vs
            while i < eol:
                c = <unsigned char>p[i]
                # Controls other than HT are refused (NUL, CR, DEL, ...);
                # obs-text (0x80-0xff) passes, as in Envoy.
                if (c < 0x20 and c != b'\t') or c == 0x7f:
                    return self._error(400, HTTP1_DETAIL_INVALID_CHARACTERS)
                i += 1
                if c != b' ' and c != b'\t':
                    ve = i
            if self.header_count == self.max_headers:
                return self._error(431, HTTP1_DETAIL_TOO_MANY_HEADERS)
            h = &self.headers[self.header_count]
            h.name_off = start
            h.name_len = colon - start
            h.value_off = vs
            h.value_len = ve - vs
            h.id = _http1_header_id(p + start, colon - start)
            if h.id != HTTP1_HEADER_OTHER and self.header_index[<int>h.id] < 0:
                self.header_index[<int>h.id] = self.header_count
            self.header_count += 1
            if self._on_header(h) != HTTP1_PARSE_DONE:
                return HTTP1_PARSE_ERROR
            i = next_line
        if self.header_index[<int>HTTP1_HEADER_TRANSFER_ENCODING] >= 0:
            # Envoy checks Content-Length with Transfer-Encoding first.
            if self.content_length >= 0:
                return self._error(400, HTTP1_DETAIL_CL_AND_TE)
            if self.te_invalid or not self.chunked:
                self.chunked = False
                return self._error(501, HTTP1_DETAIL_INVALID_TE)
        return HTTP1_PARSE_DONE

    cdef int _on_header(self, Http1Header *h) noexcept:
        """Content-Length and Transfer-Encoding semantics, per header."""
        cdef const char *v = self.head + h.value_off
        cdef size_t n = h.value_len, i, s, e
        cdef int64_t cl = 0
        if h.id == HTTP1_HEADER_CONTENT_LENGTH:
            # Digits only; a second Content-Length is refused even when
            # equal (Envoy does).
            if n == 0 or n > 18 or self.content_length >= 0:
                return self._error(400, HTTP1_DETAIL_INVALID_CONTENT_LENGTH)
            for i in range(n):
                if v[i] < b'0' or v[i] > b'9':
                    return self._error(400, HTTP1_DETAIL_INVALID_CONTENT_LENGTH)
                cl = cl * 10 + (v[i] - 48)
            self.content_length = cl
        elif h.id == HTTP1_HEADER_TRANSFER_ENCODING:
            # Envoy implements chunked only: every coding, over all
            # Transfer-Encoding lines, must be one single "chunked" (else 501).
            s = 0
            while s < n:
                e = s
                while e < n and v[e] != b',':
                    e += 1
                i = e
                while s < i and (v[s] == b' ' or v[s] == b'\t'):
                    s += 1
                while i > s and (v[i - 1] == b' ' or v[i - 1] == b'\t'):
                    i -= 1
                if i > s:
                    if self.chunked or i - s != 7 or not _http1_ieq(v + s, b"chunked", 7):
                        self.te_invalid = True      # 501 after the CL+TE check
                    self.chunked = True
                s = e + 1
        return HTTP1_PARSE_DONE
