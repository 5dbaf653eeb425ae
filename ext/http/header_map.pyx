# HttpHeaderMap (see header_map.pxd). The block and the entry array grow by
# doubling and are kept across clear(), so a map reused for each request on
# a connection allocates nothing once warm.

from libc.stdlib cimport malloc, realloc, free

cdef enum:
    _HTTP_HEADER_MAP_INITIAL_BYTES = 1024
    _HTTP_HEADER_MAP_INITIAL_ENTRIES = 16
    _HTTP_HEADER_MAP_HASHED = 128       # name hashes load_head keeps to find repeats


# The headers Envoy 1.40 keeps inline (HeaderMapImpl's O(1) slots, its own
# and those its compiled-in extensions register), read off the real binary:
# a repeated one reaches the other side as one "a,b" line, any other name
# stays repeated lines (set-cookie, cookie, x-custom, ...).
cdef tuple _HTTP_INLINE_REQUEST_HEADERS = (
    b"host", b"accept", b"accept-encoding", b"access-control-request-method",
    b"authorization", b"cache-control", b"content-type", b"grpc-accept-encoding",
    b"grpc-timeout", b"if-match", b"if-modified-since", b"if-none-match", b"if-range",
    b"if-unmodified-since", b"origin", b"pragma", b"proxy-status", b"referer",
    b"user-agent", b"via", b"x-client-trace-id", b"x-envoy-attempt-count",
    b"x-envoy-decorator-operation", b"x-envoy-downstream-service-cluster",
    b"x-envoy-downstream-service-node", b"x-envoy-external-address",
    b"x-envoy-is-timeout-retry", b"x-envoy-original-host", b"x-envoy-original-path",
    b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-port", b"x-forwarded-proto",
    b"x-request-id")
cdef tuple _HTTP_INLINE_RESPONSE_HEADERS = (
    b"access-control-allow-credentials", b"access-control-allow-headers",
    b"access-control-allow-methods", b"access-control-allow-origin",
    b"access-control-expose-headers", b"access-control-max-age", b"age", b"cache-control",
    b"content-type", b"etag", b"expires", b"grpc-message", b"grpc-status", b"last-modified",
    b"location", b"proxy-status", b"vary", b"via", b"x-envoy-degraded",
    b"x-envoy-immediate-health-check-fail", b"x-envoy-ratelimited",
    b"x-envoy-upstream-healthchecked-cluster", b"x-request-id")


cdef bint _http_is_inline(const char *name, size_t n, bint response):
    """`name` (lower-case) is one of Envoy's inline headers (cold path: only
    for a name that repeats)."""
    cdef bytes candidate
    for candidate in (_HTTP_INLINE_RESPONSE_HEADERS if response else _HTTP_INLINE_REQUEST_HEADERS):
        if <size_t>len(candidate) == n and memcmp(<const char*>candidate, name, n) == 0:
            return True
    return False


cdef inline bint _http_header_name_eq(const char *a, size_t an,
                                      const char *lower, size_t n) noexcept:
    # `a` is already lower-case (the map's names are); `lower` may not be.
    cdef size_t i
    if an != n:
        return False
    for i in range(n):
        if <unsigned char>a[i] != _http1_lower(<unsigned char>lower[i]):
            return False
    return True


cdef inline char *_http_header_write(char *p, const char *buf, const HttpHeaderEntry *e) noexcept:
    memcpy(p, buf + e.name_off, e.name_len)
    p += e.name_len
    p[0] = b':'
    p[1] = b' '
    p += 2
    memcpy(p, buf + e.value_off, e.value_len)
    p += e.value_len
    p[0] = b'\r'
    p[1] = b'\n'
    return p + 2


@cython.final
cdef class HttpHeaderMap:

    def __cinit__(self):
        self.buf = <char*>malloc(_HTTP_HEADER_MAP_INITIAL_BYTES)
        self.entries = <HttpHeaderEntry*>malloc(
            _HTTP_HEADER_MAP_INITIAL_ENTRIES * sizeof(HttpHeaderEntry))
        if self.buf == NULL or self.entries == NULL:
            raise MemoryError()
        self.buf_cap = _HTTP_HEADER_MAP_INITIAL_BYTES
        self.cap = _HTTP_HEADER_MAP_INITIAL_ENTRIES
        self.clear()

    def __dealloc__(self):
        free(self.buf)
        free(self.entries)

    cdef void clear(self) noexcept:
        self.buf_len = 0
        self.count = 0
        self.live = 0
        memset(self.index, 0xff, sizeof(int) * HTTP1_HEADER_COUNT)     # all -1
        self.method = -1
        self.path_off = self.path_len = 0
        self.status = 0
        self.version = HTTP1_VERSION_11
        self.byte_size = 0
        self.maybe_repeated = False

    cdef void shrink(self) noexcept:
        """clear(), and give back what a big message grew the map to (a map
        kept for a later connection holds no more than a new one)."""
        cdef char *b
        cdef HttpHeaderEntry *e
        self.clear()
        if self.buf_cap > _HTTP_HEADER_MAP_INITIAL_BYTES:
            b = <char*>realloc(self.buf, _HTTP_HEADER_MAP_INITIAL_BYTES)
            if b != NULL:
                self.buf = b
                self.buf_cap = _HTTP_HEADER_MAP_INITIAL_BYTES
        if self.cap > _HTTP_HEADER_MAP_INITIAL_ENTRIES:
            e = <HttpHeaderEntry*>realloc(self.entries,
                                          _HTTP_HEADER_MAP_INITIAL_ENTRIES * sizeof(HttpHeaderEntry))
            if e != NULL:
                self.entries = e
                self.cap = _HTTP_HEADER_MAP_INITIAL_ENTRIES

    cdef int reserve_bytes(self, size_t n) except -1:
        cdef size_t cap = self.buf_cap
        cdef char *p
        if self.buf_len + n <= cap:
            return 0
        while cap < self.buf_len + n:
            cap *= 2
        if cap > 0xffffffff:
            raise MemoryError("header block over 4 GiB")
        p = <char*>realloc(self.buf, cap)
        if p == NULL:
            raise MemoryError()
        self.buf = p
        self.buf_cap = cap
        return 0

    cdef int reserve_entries(self, int n) except -1:
        cdef int cap = self.cap
        cdef HttpHeaderEntry *p
        if self.count + n <= cap:
            return 0
        while cap < self.count + n:
            cap *= 2
        p = <HttpHeaderEntry*>realloc(self.entries, cap * sizeof(HttpHeaderEntry))
        if p == NULL:
            raise MemoryError()
        self.entries = p
        self.cap = cap
        return 0

    cdef uint32_t append_bytes(self, const char *data, size_t n) except? 0xffffffff:
        """Copy `data` to the end of the block; its offset there."""
        cdef uint32_t off
        self.reserve_bytes(n)
        off = <uint32_t>self.buf_len
        if n:
            memcpy(self.buf + off, data, n)
        self.buf_len += n
        return off

    cdef int load_head(self, const char *head, size_t head_len,
                       const Http1Header *headers, int count) except -1:
        """Take a parsed head: one copy of the block, an entry per header
        (offsets unchanged; the parser lower-cased the names). Clears the
        map first. maybe_repeated: two names hash alike (a 64-bit filter,
        then the earlier hashes compared), so distinct names never pay a
        merge scan."""
        cdef int i, k
        cdef HttpHeaderEntry *e
        cdef uint64_t seen = 0, bit
        cdef uint32_t hsh
        cdef uint32_t hashes[_HTTP_HEADER_MAP_HASHED]
        self.clear()
        self.reserve_bytes(head_len)
        self.reserve_entries(count)
        memcpy(self.buf, head, head_len)
        self.buf_len = head_len
        for i in range(count):
            e = &self.entries[i]
            e.name_off = headers[i].name_off
            e.name_len = headers[i].name_len
            e.value_off = headers[i].value_off
            e.value_len = headers[i].value_len
            e.id = headers[i].id
            hsh = headers[i].hash
            bit = (<uint64_t>1) << _http1_name_slot(hsh)
            if seen & bit and not self.maybe_repeated:
                if i >= _HTTP_HEADER_MAP_HASHED:
                    self.maybe_repeated = True
                else:
                    for k in range(i):
                        if hashes[k] == hsh:
                            self.maybe_repeated = True
                            break
            seen |= bit
            if i < _HTTP_HEADER_MAP_HASHED:
                hashes[i] = hsh
            if e.id != HTTP1_HEADER_OTHER and self.index[e.id] < 0:
                self.index[e.id] = i
            self.byte_size += e.name_len + e.value_len
        self.count = count
        self.live = count
        return 0

    cdef int load_request(self, Http1RequestParser parser) except -1:
        """Take the request head `parser` has just parsed (HTTP1_PARSE_DONE)."""
        self.load_head(parser.head, parser.head_len, parser.headers, parser.header_count)
        if self.maybe_repeated:
            self.merge_inline_repeats(False)
        self.method = parser.method
        self.path_off = parser.target_off
        self.path_len = parser.target_len
        self.version = parser.version
        if parser.target_form == HTTP1_TARGET_ABSOLUTE or parser.target_form == HTTP1_TARGET_AUTHORITY:
            # Envoy's handlePath: Host (and :path) come from the target, any
            # Host the client sent is replaced.
            if parser.target_form == HTTP1_TARGET_ABSOLUTE:
                self.path_off = parser.url_path_off
                self.path_len = parser.url_path_len
            self.set_id(HTTP1_HEADER_HOST, parser.head + parser.url_host_off, parser.url_host_len)
        return 0

    cdef int load_response(self, Http1ResponseParser parser) except -1:
        """Take the response head `parser` has just parsed (HTTP1_PARSE_DONE);
        a 1xx/204 `content-length: 0` goes, as in Envoy."""
        self.load_head(parser.head, parser.head_len, parser.headers, parser.header_count)
        if self.maybe_repeated:
            self.merge_inline_repeats(True)
        self.method = -1
        self.status = parser.status
        self.version = parser.version
        if parser.drop_content_length:
            self.remove_id(HTTP1_HEADER_CONTENT_LENGTH)
        return 0

    cdef int merge_inline_repeats(self, bint response) except -1:
        """Envoy's map keeps one slot per inline header: a repeat is appended
        to the first with "," (an empty value adds nothing) and goes."""
        cdef int i, j
        cdef HttpHeaderEntry *e
        cdef HttpHeaderEntry *o
        cdef size_t old, add
        cdef uint32_t off
        for i in range(self.count):
            e = &self.entries[i]
            if e.id == HTTP_HEADER_DEAD:
                continue
            j = self.next_same(i)
            if j < 0 or not _http_is_inline(self.buf + e.name_off, e.name_len, response):
                continue
            while j >= 0:
                o = &self.entries[j]
                if o.value_len:
                    # value_i + "," + value_j at the block's end (offsets:
                    # the block may move when it grows)
                    old = e.value_len
                    add = o.value_len + (1 if old else 0)
                    self.reserve_bytes(old + add)
                    e = &self.entries[i]
                    o = &self.entries[j]
                    off = <uint32_t>self.buf_len
                    memcpy(self.buf + off, self.buf + e.value_off, old)
                    if old:
                        self.buf[off + old] = b','
                    memcpy(self.buf + off + old + (1 if old else 0), self.buf + o.value_off, o.value_len)
                    self.buf_len += old + add
                    e.value_off = off
                    e.value_len = <uint32_t>(old + add)
                    self.byte_size += add
                self.remove_at(j)
                e = &self.entries[i]
                j = self.next_same(i)
        return 0

    cdef int add(self, const char *name, size_t name_len,
                 const char *value, size_t value_len, int id) except -1:
        """Append a header (name lower-cased here); `id` is its
        Http1HeaderId, or HTTP1_HEADER_OTHER (then looked up)."""
        return self.add_entry(name, name_len, value, value_len, id, True)

    cdef int add_lower(self, const char *name, size_t name_len,
                       const char *value, size_t value_len, int id) except -1:
        """add() for a name already in lower case (the proxy's own headers):
        copied as it is."""
        return self.add_entry(name, name_len, value, value_len, id, False)

    cdef int add_entry(self, const char *name, size_t name_len,
                       const char *value, size_t value_len, int id, bint lower) except -1:
        cdef HttpHeaderEntry *e
        cdef size_t j, off
        cdef char *p
        if id == HTTP1_HEADER_OTHER:
            id = _http1_header_id(name, name_len)
        if self.count == self.cap:
            self.reserve_entries(1)
        if self.buf_len + name_len + value_len > self.buf_cap:
            self.reserve_bytes(name_len + value_len)
        off = self.buf_len
        p = self.buf + off
        if lower:
            for j in range(name_len):
                p[j] = <char>_http1_lower(<unsigned char>name[j])
        else:
            memcpy(p, name, name_len)
        if value_len:
            memcpy(p + name_len, value, value_len)
        self.buf_len = off + name_len + value_len
        e = &self.entries[self.count]
        e.name_off = <uint32_t>off
        e.name_len = <uint32_t>name_len
        e.value_off = <uint32_t>(off + name_len)
        e.value_len = <uint32_t>value_len
        e.id = id
        if id != HTTP1_HEADER_OTHER and self.index[id] < 0:
            self.index[id] = self.count
        self.count += 1
        self.live += 1
        self.byte_size += name_len + value_len
        return 0

    cdef int set_value(self, int i, const char *value, size_t value_len) except -1:
        """Replace entry i's value."""
        cdef HttpHeaderEntry *e = &self.entries[i]
        self.byte_size -= e.value_len
        if value_len <= e.value_len:
            memcpy(self.buf + e.value_off, value, value_len)    # in place
        else:
            e.value_off = self.append_bytes(value, value_len)
        e.value_len = <uint32_t>value_len
        self.byte_size += value_len
        return 0

    cdef int append_value(self, int i, const char *value, size_t value_len,
                          const char *sep, size_t sep_len) except -1:
        """Entry i's value becomes value + sep + `value` (x-forwarded-for)."""
        cdef HttpHeaderEntry *e = &self.entries[i]
        cdef size_t old = e.value_len
        cdef uint32_t off
        self.reserve_bytes(old + sep_len + value_len)
        e = &self.entries[i]
        off = <uint32_t>self.buf_len
        memcpy(self.buf + off, self.buf + e.value_off, old)
        memcpy(self.buf + off + old, sep, sep_len)
        memcpy(self.buf + off + old + sep_len, value, value_len)
        self.buf_len += old + sep_len + value_len
        e.value_off = off
        e.value_len = <uint32_t>(old + sep_len + value_len)
        self.byte_size += sep_len + value_len
        return 0

    cdef int set_id(self, int id, const char *value, size_t value_len) except -1:
        """Envoy's setReferenceKey for a known header: the first entry takes
        `value`, later ones go; added at the end when absent."""
        cdef int i = self.index[id], j
        if i < 0:
            return self.add_lower(_HTTP1_HEADER_NAMES[id], _HTTP1_HEADER_LENS[id], value, value_len, id)
        self.set_value(i, value, value_len)
        j = self.next_same(i)
        while j >= 0:
            self.remove_at(j)
            j = self.next_same(i)
        return 0

    cdef int set_path(self, const char *path, size_t path_len) except -1:
        self.path_off = self.append_bytes(path, path_len)
        self.path_len = <uint32_t>path_len
        return 0

    cdef int next_same(self, int i) noexcept:
        """The next live entry after i with entry i's name, or -1."""
        cdef HttpHeaderEntry *e = &self.entries[i]
        cdef HttpHeaderEntry *o
        cdef int j
        for j in range(i + 1, self.count):
            o = &self.entries[j]
            if o.id == HTTP_HEADER_DEAD or o.name_len != e.name_len:
                continue
            if e.id != HTTP1_HEADER_OTHER:
                if o.id == e.id:
                    return j
            elif memcmp(self.buf + o.name_off, self.buf + e.name_off, e.name_len) == 0:
                return j
        return -1

    cdef void remove_at(self, int i) noexcept:
        cdef HttpHeaderEntry *e = &self.entries[i]
        cdef int id = e.id
        if id == HTTP_HEADER_DEAD:
            return
        e.id = HTTP_HEADER_DEAD
        self.live -= 1
        self.byte_size -= e.name_len + e.value_len
        if id != HTTP1_HEADER_OTHER and self.index[id] == i:
            self.index[id] = -1
            for i in range(i + 1, self.count):
                if self.entries[i].id == id:
                    self.index[id] = i
                    break

    cdef int remove_id(self, int id) noexcept:
        """Remove every entry of a known header; how many went."""
        cdef int n = 0
        while self.index[id] >= 0:
            self.remove_at(self.index[id])
            n += 1
        return n

    cdef int remove_name(self, const char *name, size_t name_len) noexcept:
        """Remove every entry named `name` (any case); how many went."""
        cdef int n = 0, i = self.find(name, name_len)
        while i >= 0:
            self.remove_at(i)
            n += 1
            i = self.find(name, name_len)
        return n

    cdef int find(self, const char *name, size_t name_len) noexcept:
        """The first live entry named `name` (any case), or -1."""
        cdef int i
        cdef HttpHeaderEntry *e
        for i in range(self.count):
            e = &self.entries[i]
            if e.id != HTTP_HEADER_DEAD and _http_header_name_eq(
                    self.buf + e.name_off, e.name_len, name, name_len):
                return i
        return -1

    cdef size_t headers_size(self) noexcept:
        """What write_headers() writes: "name: value\\r\\n" per live entry."""
        cdef int i
        cdef HttpHeaderEntry *e
        cdef size_t need = 0
        for i in range(self.count):
            e = &self.entries[i]
            if e.id != HTTP_HEADER_DEAD:
                need += e.name_len + e.value_len + 4
        return need

    cdef char *write_headers(self, char *p, int first_id) noexcept:
        """Write "name: value\\r\\n" for each live entry at p, those of
        `first_id` (e.g. host, as Envoy's encoder puts :authority first)
        before the rest; HTTP1_HEADER_OTHER for plain order. No blank line.
        Returns the end."""
        cdef int i
        cdef HttpHeaderEntry *e
        if first_id != HTTP1_HEADER_OTHER:
            for i in range(self.count):
                e = &self.entries[i]
                if e.id == first_id:
                    p = _http_header_write(p, self.buf, e)
        for i in range(self.count):
            e = &self.entries[i]
            if e.id != HTTP_HEADER_DEAD and (first_id == HTTP1_HEADER_OTHER or e.id != first_id):
                p = _http_header_write(p, self.buf, e)
        return p

    # -- for tests and the admin: Python views (never on the request path)

    def items_for_test(self):
        """[(name, value), ...] of the live entries, in order."""
        cdef int i
        cdef HttpHeaderEntry *e
        result = []
        for i in range(self.count):
            e = &self.entries[i]
            if e.id != HTTP_HEADER_DEAD:
                result.append((self.buf[e.name_off:e.name_off + e.name_len],
                               self.buf[e.value_off:e.value_off + e.value_len]))
        return result
