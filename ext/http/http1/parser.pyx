# Http1HeadParser and Http1RequestParser (see parser.pxd). The head is found
# by scanning each new LF once, then parsed in one pass over the linearized
# block. Errors carry Envoy's status and response code details.

from libc.stdlib cimport malloc, free

cdef const char *_HTTP1_METHOD_NAMES[HTTP1_METHOD_COUNT]
_HTTP1_METHOD_NAMES[:] = [
    b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS",
    b"TRACE", b"PATCH", b"ACL", b"BIND", b"CHECKOUT", b"COPY", b"LINK",
    b"LOCK", b"MSEARCH", b"MERGE", b"MKACTIVITY", b"MKCALENDAR", b"MKCOL",
    b"MOVE", b"NOTIFY", b"PROPFIND", b"PROPPATCH", b"PURGE", b"REBIND",
    b"REPORT", b"SEARCH", b"SOURCE", b"SUBSCRIBE", b"UNBIND", b"UNLINK",
    b"UNLOCK", b"UNSUBSCRIBE", b"QUERY"]
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


cdef inline unsigned char _http1_lower(unsigned char c) noexcept:
    return c + 32 if 65 <= c <= 90 else c


cdef inline uint32_t _http1_name_hash(const char *name, size_t n) noexcept:
    """A (non-empty) name's hash, any case, from its length and three of its
    bytes: O(1) per header (what it is for, an id lookup and a repeat
    filter, compare the names themselves after it)."""
    return <uint32_t>(n * 0x9E3779B1U + _http1_lower(<unsigned char>name[0]) * 0x85EBCA77U
                      + _http1_lower(<unsigned char>name[n - 1]) * 0xC2B2AE3DU
                      + _http1_lower(<unsigned char>name[n >> 1]) * 0x27D4EB2FU)


cdef inline int _http1_name_slot(uint32_t h) noexcept:
    return <int>((h >> 25) & 63)


# Known header ids by name hash (0: none): the parser finds a header's id
# with one lookup and one compare. Checked here: no two names share a slot.
cdef unsigned char _http1_header_slots[64]
for _i in range(64):
    _http1_header_slots[_i] = 0
for _i in range(1, HTTP1_HEADER_COUNT):
    _h = _http1_name_hash(_HTTP1_HEADER_NAMES[_i], _HTTP1_HEADER_LENS[_i])
    if _http1_header_slots[_http1_name_slot(_h)]:
        raise ImportError("known header names share a hash slot")
    _http1_header_slots[_http1_name_slot(_h)] = _i
del _h

# RFC 9110 tchar: the bytes allowed in a method and a header name.
cdef unsigned char _http1_tchar[256]
for _i in range(256):
    _http1_tchar[_i] = 48 <= _i <= 57 or 65 <= _i <= 90 or 97 <= _i <= 122 or chr(_i) in "!#$%&'*+-.^_`|~"

# A header name byte, lower-cased (0: not a tchar, ':' included); bit 8
# marks '_' (headers_with_underscores_action).
cdef uint16_t _http1_name_char[256]
for _i in range(256):
    _http1_name_char[_i] = 0 if not _http1_tchar[_i] else (
        (_i + 32 if 65 <= _i <= 90 else _i) | (0x100 if _i == 95 else 0))

# Bytes a header value keeps as they are: HT, visible ASCII, SP, obs-text.
cdef unsigned char _http1_value_char[256]
for _i in range(256):
    _http1_value_char[_i] = _i == 9 or 0x20 <= _i <= 0x7e or _i >= 0x80

# RFC 3986 authority bytes (nghttp2_check_authority, which Envoy applies
# to Host): unreserved, sub-delims, ':', '@', '[', ']', '%'.
cdef unsigned char _http1_authority_char[256]
for _i in range(256):
    _http1_authority_char[_i] = (48 <= _i <= 57 or 65 <= _i <= 90 or 97 <= _i <= 122
                                 or chr(_i) in "-._~%!$&'()*+,;=:@[]")

# Response code details, as Envoy 1.40's access log prints them
# (%RESPONSE_CODE_DETAILS%): most parse errors are the generic
# http1.codec_error; controls in a value or target are invalid_characters.
cdef const char *HTTP1_DETAIL_CODEC_ERROR = b"http1.codec_error"
cdef const char *HTTP1_DETAIL_INVALID_CHARACTERS = b"http1.invalid_characters"
cdef const char *HTTP1_DETAIL_INVALID_URL = b"http1.invalid_url"
cdef const char *HTTP1_DETAIL_INVALID_SCHEME = b"http1.invalid_scheme"
cdef const char *HTTP1_DETAIL_HEADERS_TOO_LARGE = b"http1.headers_too_large"
cdef const char *HTTP1_DETAIL_TOO_MANY_HEADERS = b"http1.too_many_headers"
cdef const char *HTTP1_DETAIL_CL_AND_TE = b"http1.content_length_and_chunked_not_allowed"
cdef const char *HTTP1_DETAIL_INVALID_TE = b"http1.invalid_transfer_encoding"
cdef const char *HTTP1_DETAIL_TE_NOT_ALLOWED = b"http1.transfer_encoding_not_allowed"
cdef const char *HTTP1_DETAIL_CL_NOT_ALLOWED = b"http1.content_length_not_allowed"
cdef const char *HTTP1_DETAIL_INVALID_AUTHORITY = b"http.invalid_authority"


# What a header value may hold unchecked, eight bytes at a time: no byte
# below 0x20 (HT included: the byte loop takes it) and no DEL.
cdef inline bint _http1_plain_word(uint64_t x) noexcept:
    cdef uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL
    cdef uint64_t d = x ^ (ones * 0x7f)
    return (((x - ones * 0x20) & ~x) | ((d - ones) & ~d)) & highs == 0


cdef inline bint _http1_ieq(const char *a, const char *lower, size_t n) noexcept:
    """a[0:n] equals the lowercase `lower`, ignoring ASCII case."""
    cdef size_t i
    for i in range(n):
        if _http1_lower(<unsigned char>a[i]) != <unsigned char>lower[i]:
            return False
    return True


cdef bint _http1_has_token(const char *v, size_t n, const char *tok, size_t tn) noexcept:
    """A comma-separated value holds `tok` (lower-case), any case."""
    cdef size_t s = 0, e, k
    while s < n:
        e = s
        while e < n and v[e] != b',':
            e += 1
        k = e
        while s < k and (v[s] == b' ' or v[s] == b'\t'):
            s += 1
        while k > s and (v[k - 1] == b' ' or v[k - 1] == b'\t'):
            k -= 1
        if k - s == tn and _http1_ieq(v + s, tok, tn):
            return True
        s = e + 1
    return False


cdef inline int _http1_header_id_hashed(const char *lower, size_t n, uint32_t h) noexcept:
    """The id of a lower-case name whose _http1_name_hash is h."""
    cdef int i = _http1_header_slots[_http1_name_slot(h)]
    if i and _HTTP1_HEADER_LENS[i] == n and memcmp(lower, _HTTP1_HEADER_NAMES[i], n) == 0:
        return i
    return HTTP1_HEADER_OTHER


cdef inline int _http1_header_id(const char *name, size_t n) noexcept:
    """The id of a name in any case."""
    cdef int id
    if n == 0:
        return HTTP1_HEADER_OTHER
    id = _http1_header_slots[_http1_name_slot(_http1_name_hash(name, n))]
    if id and _HTTP1_HEADER_LENS[id] == n and _http1_ieq(name, _HTTP1_HEADER_NAMES[id], n):
        return id
    return HTTP1_HEADER_OTHER


cdef inline bint _http1_ows(char c) noexcept:
    return c == b' ' or c == b'\t'


cdef inline size_t _http1_line_end(const char *p, size_t i, size_t end) noexcept:
    """Offset just past the LF that ends the line starting at i (there is one
    before `end`: the scan found the blank line)."""
    return <size_t>(<const char*>memchr(p + i, b'\n', end - i) - p) + 1


cdef class Http1HeadParser:

    def __cinit__(self, size_t max_request_headers_kb=HTTP1_MAX_HEADERS_KB,
                  int max_headers_count=HTTP1_MAX_HEADERS_COUNT):
        self.max_head_bytes = max_request_headers_kb * 1024
        self.max_headers = max_headers_count if max_headers_count > 0 else 1
        self.headers = <Http1Header*>malloc(self.max_headers * sizeof(Http1Header))
        if self.headers == NULL:
            raise MemoryError()
        Http1HeadParser.reset(self)

    def __dealloc__(self):
        free(self.headers)

    cdef void reset(self) noexcept:
        """Ready for the next head (after the caller drains this one)."""
        self.header_count = 0
        self.scanned = 0
        self.line_start = 0
        self.request_start = 0
        self.seen_line = False
        self.head = NULL
        self.head_len = 0
        self.version = HTTP1_VERSION_09
        self.content_length = -1
        self.chunked = False
        self.te_invalid = False
        self.conn_close = self.conn_keep_alive = self.conn_upgrade = False
        self.expect_continue = False
        self.underscore_headers = 0
        memset(self.header_index, 0xff, sizeof(int) * HTTP1_HEADER_COUNT)  # all -1
        self.error_status = 0
        self.error_detail = NULL

    cdef int _error(self, int status, const char *detail) noexcept:
        self.error_status = status
        self.error_detail = detail
        return HTTP1_PARSE_ERROR

    @cython.final
    cdef int parse(self, OwnedBuffer data) noexcept:
        """HTTP1_PARSE_NEED_MORE until the head is complete, then DONE with
        head/head_len and the fields set (nothing drained), or ERROR with
        error_status/error_detail. Each byte is scanned once over calls."""
        cdef int rc
        if self.error_status:
            return HTTP1_PARSE_ERROR
        if self.head != NULL:
            return HTTP1_PARSE_DONE
        rc = self._scan(data)
        if rc != HTTP1_PARSE_DONE:
            return rc
        return self._parse_head()

    cdef int _parse_head(self) noexcept:
        """The start line and headers of the head _scan found (subclasses)."""
        return self._error(400, HTTP1_DETAIL_CODEC_ERROR)

    @cython.final
    cdef int _scan(self, OwnedBuffer data) noexcept:
        """NEED_MORE until the blank line that ends the head is in `data`,
        then DONE with head/head_len set (linearized, nothing drained), or
        ERROR (431) once max_head_bytes hold no blank line. Each byte is
        searched once over calls. Empty lines before the start line are
        skipped (request_start); with seen_line preset, the first empty line
        ends the block (a trailer section)."""
        cdef size_t n = data.length()
        cdef size_t limit
        cdef ssize_t lf
        cdef char c
        cdef bint empty
        cdef const char *p
        cdef const char *q
        # The head may not exceed max_head_bytes: look no further, and fail
        # as soon as that many bytes hold no blank line.
        limit = n if n < self.max_head_bytes else self.max_head_bytes
        # In one slice (the usual case): memchr over it, no call per line
        # through the buffer.
        p = data.peek(limit)
        while self.scanned < limit:
            if p != NULL:
                q = <const char *>memchr(p + self.scanned, b'\n', limit - self.scanned)
                lf = q - p if q != NULL else -1
            else:
                lf = data.find_byte(b'\n', self.scanned, limit)
            if lf < 0:
                self.scanned = limit
                break
            self.scanned = lf + 1
            # Lines end in LF with an optional CR, as Envoy's codec (balsa)
            # accepts a bare LF.
            empty = <size_t>lf == self.line_start
            if <size_t>lf == self.line_start + 1:
                if p != NULL:
                    c = p[self.line_start]
                else:
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
                return HTTP1_PARSE_DONE
        if self.scanned >= self.max_head_bytes:
            return self._error(431, HTTP1_DETAIL_HEADERS_TOO_LARGE)
        return HTTP1_PARSE_NEED_MORE

    @cython.final
    cdef int _parse_header_lines(self, size_t i) noexcept:
        """Parse the header lines from offset i up to the empty line. An
        obs-fold line continues the previous value and a bare CR in a value
        is dropped, as Envoy forwards them: the value is rewritten in place
        in the head (it only shrinks)."""
        cdef char *p = <char*>self.head
        cdef size_t end = self.head_len, next_line, eol, start, colon, vs, w
        cdef unsigned char c
        cdef uint16_t v
        cdef int flags
        cdef uint32_t hsh
        cdef uint64_t word
        cdef Http1Header *h = NULL
        cdef bint rewriting
        while True:
            next_line = _http1_line_end(p, i, end)
            eol = next_line - 1
            if eol > i and p[eol - 1] == b'\r':
                eol -= 1
            if eol == i:
                break           # the empty line that _scan found
            # Further CRs before the line end are dropped, as Envoy does.
            while eol > i and p[eol - 1] == b'\r':
                eol -= 1
            if _http1_ows(p[i]):
                # obs-fold: Envoy appends the line, leading whitespace
                # included, to the previous value (untrimmed), then trims.
                if h == NULL:
                    return self._error(400, HTTP1_DETAIL_CODEC_ERROR)
                rewriting = True
                h.flags |= HTTP1_HEADER_FLAG_REWRITTEN
            else:
                if h != NULL and self._on_header(h) != HTTP1_PARSE_DONE:
                    return HTTP1_PARSE_ERROR
                start = i
                flags = 0
                # The name is checked and lower-cased in place (Envoy
                # forwards names in lower case): one table load a byte.
                while i < eol:
                    v = _http1_name_char[<unsigned char>p[i]]
                    if not v:
                        if p[i] == b':':
                            break
                        return self._error(400, HTTP1_DETAIL_CODEC_ERROR)
                    flags |= v
                    p[i] = <char>v
                    i += 1
                flags = HTTP1_HEADER_FLAG_UNDERSCORE if flags & 0x100 else 0
                if i == eol or i == start:
                    return self._error(400, HTTP1_DETAIL_CODEC_ERROR)
                hsh = _http1_name_hash(p + start, i - start)
                if self.header_count == self.max_headers:
                    return self._error(431, HTTP1_DETAIL_TOO_MANY_HEADERS)
                colon = i
                i += 1
                while i < eol and _http1_ows(p[i]):
                    i += 1
                h = &self.headers[self.header_count]
                self.header_count += 1
                h.name_off = start
                h.name_len = colon - start
                h.value_off = i
                h.value_len = 0
                h.id = _http1_header_id_hashed(p + start, colon - start, hsh)
                h.hash = hsh
                h.flags = flags
                if flags:
                    self.underscore_headers += 1
                if h.id != HTTP1_HEADER_OTHER and self.header_index[<int>h.id] < 0:
                    self.header_index[<int>h.id] = self.header_count - 1
                rewriting = False
            # The value bytes [i, eol): copied down to w when rewriting.
            w = h.value_off + h.value_len
            vs = i
            if not rewriting:
                while i + 8 <= eol:
                    memcpy(&word, p + i, 8)
                    if not _http1_plain_word(word):
                        break
                    i += 8
                while i < eol and _http1_value_char[<unsigned char>p[i]]:
                    i += 1
            while i < eol:
                c = <unsigned char>p[i]
                # Controls other than HT are refused (NUL, DEL, ...); a bare
                # CR is dropped; obs-text (0x80-0xff) passes, as in Envoy.
                if not _http1_value_char[c]:
                    if c != b'\r':
                        return self._error(400, HTTP1_DETAIL_INVALID_CHARACTERS)
                    if not rewriting:
                        rewriting = True
                        h.flags |= HTTP1_HEADER_FLAG_REWRITTEN
                        w += i - vs
                    i += 1
                    continue
                if rewriting:
                    p[w] = <char>c
                    w += 1
                i += 1
            if not rewriting:
                w += eol - vs
            # value_len holds the untrimmed length until _on_header trims it
            h.value_len = <uint32_t>(w - h.value_off)
            i = next_line
        if h != NULL and self._on_header(h) != HTTP1_PARSE_DONE:
            return HTTP1_PARSE_ERROR
        return HTTP1_PARSE_DONE

    @cython.final
    cdef int _on_header(self, Http1Header *h) noexcept:
        """A complete header: trim its value, then Content-Length,
        Transfer-Encoding and Connection semantics."""
        cdef const char *v
        cdef size_t n, i, s, e
        cdef uint64_t cl = 0
        # Trim: leading OWS is already skipped unless an obs-fold line
        # brought some.
        v = self.head + h.value_off
        n = h.value_len
        while n and _http1_ows(v[n - 1]):
            n -= 1
        while n and _http1_ows(v[0]):
            v += 1
            n -= 1
        h.value_off = <uint32_t>(v - self.head)
        h.value_len = <uint32_t>n
        if h.id == HTTP1_HEADER_OTHER or self.trailers:
            return HTTP1_PARSE_DONE
        if h.id == HTTP1_HEADER_HOST:
            if not self.check_authority:
                return HTTP1_PARSE_DONE
            for i in range(n):
                if not _http1_authority_char[<unsigned char>v[i]]:
                    return self._error(400, HTTP1_DETAIL_INVALID_AUTHORITY)
        elif h.id == HTTP1_HEADER_CONTENT_LENGTH:
            # Digits only, any count, up to 2^64-1 (Envoy 1.40; past 2^63-1
            # it is held as 2^63-1: a body that never ends either way); a
            # second Content-Length is refused even when equal.
            if n == 0 or self.content_length >= 0:
                return self._error(400, HTTP1_DETAIL_CODEC_ERROR)
            for i in range(n):
                if v[i] < b'0' or v[i] > b'9' or cl > (<uint64_t>0xffffffffffffffff - <uint64_t>(v[i] - 48)) // 10:
                    return self._error(400, HTTP1_DETAIL_CODEC_ERROR)
                cl = cl * 10 + <uint64_t>(v[i] - 48)
            self.content_length = <int64_t>cl if cl <= <uint64_t>0x7fffffffffffffff else 0x7fffffffffffffff
        elif h.id == HTTP1_HEADER_TRANSFER_ENCODING:
            # Envoy implements chunked only and compares the whole (merged)
            # value: one Transfer-Encoding, exactly "chunked" in any case
            # ("chunked," and two lines are 501, after the CL+TE check).
            if self.chunked or n != 7 or not _http1_ieq(v, b"chunked", 7):
                self.te_invalid = True
            self.chunked = True
        elif h.id == HTTP1_HEADER_EXPECT:
            if n == 12 and _http1_ieq(v, b"100-continue", 12):
                self.expect_continue = True
        elif h.id == HTTP1_HEADER_CONNECTION:
            # Comma-separated tokens, any case.
            s = 0
            while s < n:
                e = s
                while e < n and v[e] != b',':
                    e += 1
                i = e
                while s < i and _http1_ows(v[s]):
                    s += 1
                while i > s and _http1_ows(v[i - 1]):
                    i -= 1
                if i - s == 5 and _http1_ieq(v + s, b"close", 5):
                    self.conn_close = True
                elif i - s == 10 and _http1_ieq(v + s, b"keep-alive", 10):
                    self.conn_keep_alive = True
                elif i - s == 7 and _http1_ieq(v + s, b"upgrade", 7):
                    self.conn_upgrade = True
                s = e + 1
        return HTTP1_PARSE_DONE

    @cython.final
    cdef int _check_framing(self) noexcept:
        """After the headers: Content-Length with Transfer-Encoding, then
        the coding (Envoy's onHeadersCompleteBase order)."""
        if self.header_index[<int>HTTP1_HEADER_TRANSFER_ENCODING] >= 0:
            if self.content_length >= 0:
                return self._error(400, HTTP1_DETAIL_CL_AND_TE)
            if self.te_invalid or not self.chunked:
                self.chunked = False
                return self._error(501, HTTP1_DETAIL_INVALID_TE)
        return HTTP1_PARSE_DONE


cdef inline size_t _http1_skip_spaces(const char *p, size_t i, size_t eol) noexcept:
    """Past a run of SP / HT (Envoy separates start-line fields by either)."""
    while i < eol and _http1_ows(p[i]):
        i += 1
    return i


cdef inline int _http1_parse_version(const char *p, size_t i, size_t eol) noexcept:
    """`HTTP/d.d` at p[i:] followed by blanks to eol: HTTP1_VERSION_11 for
    1.1, HTTP1_VERSION_10 for any other d.d (Envoy answers both 1.0 and
    2.0 with 426), -1 when malformed, -2 when a control follows."""
    cdef int version
    if i + 8 > eol or memcmp(p + i, b"HTTP/", 5) != 0 \
            or not (48 <= p[i + 5] <= 57) or p[i + 6] != b'.' or not (48 <= p[i + 7] <= 57):
        return -1
    version = HTTP1_VERSION_11 if p[i + 5] == b'1' and p[i + 7] == b'1' else HTTP1_VERSION_10
    i = _http1_skip_spaces(p, i + 8, eol)
    if i != eol:
        return -2 if <unsigned char>p[i] < 0x20 or p[i] == 0x7f else -1
    return version


cdef inline size_t _http1_start_line_end(const char *p, size_t i, size_t end, size_t *next_line) noexcept:
    """End of the start line at i (CRs before its LF left out)."""
    cdef size_t eol
    next_line[0] = _http1_line_end(p, i, end)
    eol = next_line[0] - 1
    while eol > i and p[eol - 1] == b'\r':
        eol -= 1
    return eol


@cython.final
cdef class Http1RequestParser(Http1HeadParser):

    def __cinit__(self, *args, **kwargs):
        self.reset()        # the base's __cinit__ ran the base reset only
        self.check_authority = True

    cdef void reset(self) noexcept:
        Http1HeadParser.reset(self)
        self.method = -1
        self.target_off = self.target_len = 0
        self.target_form = HTTP1_TARGET_ORIGIN
        self.url_host_off = self.url_host_len = 0
        self.url_path_off = self.url_path_len = 0
        self.url_https = False

    cdef int _parse_head(self) noexcept:
        cdef const char *p = self.head
        cdef size_t i = self.request_start, start, eol, next_line
        cdef int m
        cdef unsigned char c
        # Request line: method, target and version separated by runs of
        # spaces (Envoy accepts "GET  / HTTP/1.1 ").
        eol = _http1_start_line_end(p, i, self.head_len, &next_line)
        # Method: a known token, case-sensitive.
        while i < eol and not _http1_ows(p[i]):
            if not _http1_tchar[<unsigned char>p[i]]:
                return self._error(400, HTTP1_DETAIL_CODEC_ERROR)
            i += 1
        for m in range(HTTP1_METHOD_COUNT):
            if _HTTP1_METHOD_LENS[m] == i - self.request_start \
                    and memcmp(p + self.request_start, _HTTP1_METHOD_NAMES[m], i - self.request_start) == 0:
                self.method = m
                break
        if self.method < 0:
            return self._error(400, HTTP1_DETAIL_CODEC_ERROR)
        i = _http1_skip_spaces(p, i, eol)
        # Target: visible ASCII; controls are invalid_characters (Envoy).
        start = i
        while i < eol and not _http1_ows(p[i]):
            c = <unsigned char>p[i]
            if c <= 0x20 or c >= 0x7f:
                return self._error(400, HTTP1_DETAIL_INVALID_CHARACTERS if c < 0x20 or c == 0x7f
                                   else HTTP1_DETAIL_CODEC_ERROR)
            i += 1
        if i == start:
            return self._error(400, HTTP1_DETAIL_CODEC_ERROR)
        self.target_off = start
        self.target_len = i - start
        i = _http1_skip_spaces(p, i, eol)
        # Version: none is HTTP/0.9.
        if i == eol:
            self.version = HTTP1_VERSION_09
        else:
            self.version = _http1_parse_version(p, i, eol)
            if self.version < 0:
                return self._error(400, HTTP1_DETAIL_INVALID_CHARACTERS if self.version == -2
                                   else HTTP1_DETAIL_CODEC_ERROR)
        if self._parse_target() != HTTP1_PARSE_DONE:
            return HTTP1_PARSE_ERROR
        if self._parse_header_lines(next_line) != HTTP1_PARSE_DONE:
            return HTTP1_PARSE_ERROR
        return self._check_framing()

    cdef int _parse_target(self) noexcept:
        """The target's form, as Envoy's handlePath reads it (observed on
        1.40): "/..." origin; "*..." only for OPTIONS; CONNECT's
        authority; else an absolute URL, scheme "://" authority [path]."""
        cdef const char *t = self.head + self.target_off
        cdef size_t n = self.target_len, i, s, e, scheme_len
        cdef int port
        if self.method == HTTP1_METHOD_CONNECT:
            # host:port; Envoy takes Host from it
            self.target_form = HTTP1_TARGET_AUTHORITY
            self.url_host_off = self.target_off
            self.url_host_len = self.target_len
            return HTTP1_PARSE_DONE
        if t[0] == b'/':
            return HTTP1_PARSE_DONE
        if t[0] == b'*':
            if self.method != HTTP1_METHOD_OPTIONS:
                return self._error(400, HTTP1_DETAIL_INVALID_URL)
            self.target_form = HTTP1_TARGET_ASTERISK
            return HTTP1_PARSE_DONE
        # scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then "://"
        # (else balsa refuses the request line: codec_error).
        i = 0
        while i < n and (97 <= (t[i] | 0x20) <= 122 or (i > 0 and (
                48 <= t[i] <= 57 or t[i] == b'+' or t[i] == b'-' or t[i] == b'.'))):
            i += 1
        if i == 0 or i + 3 > n or memcmp(t + i, b"://", 3) != 0:
            return self._error(400, HTTP1_DETAIL_CODEC_ERROR)
        scheme_len = i
        s = i + 3
        e = s
        while e < n and t[e] != b'/' and t[e] != b'?' and t[e] != b'#':
            e += 1
        # userinfo@ is left out of Host
        for i in range(s, e):
            if t[i] == b'@':
                s = i + 1
        if s == e:
            return self._error(400, HTTP1_DETAIL_INVALID_URL)
        for i in range(s, e):
            if not _http1_authority_char[<unsigned char>t[i]]:
                return self._error(400, HTTP1_DETAIL_INVALID_AUTHORITY)
        # port: digits after the last ':' outside an IPv6 literal, <= 65535
        i = e
        while i > s and t[i - 1] != b':' and t[i - 1] != b']':
            i -= 1
        if i > s and t[i - 1] == b':':
            if i - 1 == s:
                return self._error(400, HTTP1_DETAIL_INVALID_URL)
            port = 0
            while i < e:
                if not (48 <= t[i] <= 57):
                    return self._error(400, HTTP1_DETAIL_INVALID_URL)
                port = port * 10 + (t[i] - 48)
                if port > 65535:
                    return self._error(400, HTTP1_DETAIL_INVALID_URL)
                i += 1
        # scheme: http or https only (any case)
        if scheme_len == 4 and _http1_ieq(t, b"http", 4):
            self.url_https = False
        elif scheme_len == 5 and _http1_ieq(t, b"https", 5):
            self.url_https = True
        else:
            return self._error(400, HTTP1_DETAIL_INVALID_SCHEME)
        self.target_form = HTTP1_TARGET_ABSOLUTE
        self.url_host_off = <uint32_t>(self.target_off + s)
        self.url_host_len = <uint32_t>(e - s)
        if e == n:
            # No path: "/" (Envoy's), the last '/' of "://" (offsets stay
            # in the head).
            self.url_path_off = <uint32_t>(self.target_off + scheme_len + 2)
            self.url_path_len = 1
        else:
            self.url_path_off = <uint32_t>(self.target_off + e)
            self.url_path_len = <uint32_t>(n - e)
        return HTTP1_PARSE_DONE
