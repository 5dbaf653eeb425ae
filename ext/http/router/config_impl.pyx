# The compiled route table (shape and contract in config_impl.pxd; Envoy
# source/common/router/config_impl.cc). Matching works on HttpHeaderMap
# offsets and allocates nothing, except that a safe_regex matcher hands RE2
# (the google-re2 module) one bytes object per regex tried, and cluster_header
# looks its value up among the worker's clusters as a str.

from cpython.bytes cimport PyBytes_FromStringAndSize

cdef extern from "<time.h>" nogil:
    ctypedef struct router_tm "struct tm":
        pass
    router_tm *router_gmtime_r "gmtime_r"(const time_t *t, router_tm *out)
    size_t router_strftime "strftime"(char *s, size_t max, const char *fmt, const router_tm *tm)

cdef extern from "<stdio.h>" nogil:
    int router_snprintf "snprintf"(char *s, size_t n, const char *fmt, ...)


# -- a scratch buffer for formatted header values.
# The worker is single-threaded and nothing here yields, so one will do; it
# grows once and is reused.

cdef char *_router_scratch = NULL
cdef size_t _router_scratch_len = 0
cdef size_t _router_scratch_cap = 0


cdef int _router_scratch_reserve(size_t n) except -1:
    global _router_scratch, _router_scratch_cap
    cdef size_t cap = _router_scratch_cap or 1024
    cdef char *p
    if _router_scratch_len + n <= _router_scratch_cap:
        return 0
    while cap < _router_scratch_len + n:
        cap *= 2
    p = <char*>realloc(_router_scratch, cap)
    if p == NULL:
        raise MemoryError()
    _router_scratch = p
    _router_scratch_cap = cap
    return 0


cdef int _router_scratch_add(const char *data, size_t n) except -1:
    global _router_scratch_len
    _router_scratch_reserve(n)
    if n:
        memcpy(_router_scratch + _router_scratch_len, data, n)
    _router_scratch_len += n
    return 0


cdef inline bint _router_ieq(const char *a, const char *b, size_t n) noexcept:
    """a[0:n] and b[0:n] equal ignoring ASCII case."""
    cdef size_t i
    for i in range(n):
        if _http1_lower(<unsigned char>a[i]) != _http1_lower(<unsigned char>b[i]):
            return False
    return True


cdef inline bint _router_eq(const char *a, const char *b, size_t n, bint ignore_case) noexcept:
    if ignore_case:
        return _router_ieq(a, b, n)
    return memcmp(a, b, n) == 0


cdef inline size_t _router_path_end(const char *path, size_t n) noexcept:
    """Where the path stops: at the query or fragment (Envoy's removeQueryAndFragment)."""
    cdef size_t i
    for i in range(n):
        if path[i] == b'?' or path[i] == b'#':
            return i
    return n


cdef inline uint64_t _router_domain_hash(const char *s, size_t n) noexcept:
    # FNV-1a over the lower-cased bytes.
    cdef uint64_t h = 14695981039346656037ULL
    cdef size_t i
    for i in range(n):
        h ^= _http1_lower(<unsigned char>s[i])
        h *= 1099511628211ULL
    return h


cdef bytes _router_re2_template(str substitution):
    """RE2's rewrite string (\\1 groups, \\\\ a backslash) as a Python re template."""
    cdef list out = []
    cdef Py_ssize_t i = 0, n = len(substitution)
    while i < n:
        c = substitution[i]
        if c == "\\" and i + 1 < n:
            d = substitution[i + 1]
            if d.isdigit():
                out.append("\\g<%s>" % d)
            else:
                out.append("\\\\" if d == "\\" else "\\\\" + d)
            i += 2
            continue
        out.append("\\\\" if c == "\\" else c)
        i += 1
    return "".join(out).encode()


cdef object _router_compile(str pattern):
    from envoy_fast.regex import compile as re2_compile
    return re2_compile(pattern.encode())


@cython.final
cdef class RouterStringMatcher:
    """Envoy's StringMatcherImpl."""

    @staticmethod
    cdef RouterStringMatcher from_plan(object plan):
        cdef RouterStringMatcher m = RouterStringMatcher.__new__(RouterStringMatcher)
        m.kind = plan.kind
        m.ignore_case = plan.ignore_case and plan.kind != ROUTER_STRING_REGEX
        m.value = plan.value.lower().encode() if m.ignore_case else plan.value.encode()
        if m.kind == ROUTER_STRING_REGEX:
            m.regex = _router_compile(plan.value)
        return m

    cdef bint match(self, const char *s, size_t n) except -1:
        cdef const char *v = self.value
        cdef size_t vn = len(self.value), i
        if self.kind == ROUTER_STRING_EXACT:
            return n == vn and _router_eq(s, v, n, self.ignore_case)
        if self.kind == ROUTER_STRING_PREFIX:
            return n >= vn and _router_eq(s, v, vn, self.ignore_case)
        if self.kind == ROUTER_STRING_SUFFIX:
            return n >= vn and _router_eq(s + n - vn, v, vn, self.ignore_case)
        if self.kind == ROUTER_STRING_CONTAINS:
            if vn > n:
                return False
            if not self.ignore_case:
                return memmem(s, n, v, vn) != NULL
            for i in range(n - vn + 1):
                if _router_ieq(s + i, v, vn):
                    return True
            return False
        # safe_regex: the whole value must match (one Python call)
        return self.regex.fullmatch(PyBytes_FromStringAndSize(s, n)) is not None


cdef enum:  # RouterHeaderMatcher.id beyond Http1HeaderId: pseudo-headers
    _ROUTER_PSEUDO_PATH = -2
    _ROUTER_PSEUDO_METHOD = -3
    _ROUTER_PSEUDO_NONE = -4        # another pseudo-header: never present in HTTP/1


cdef int _router_header_id(str name):
    if name == ":path":
        return _ROUTER_PSEUDO_PATH
    if name == ":method":
        return _ROUTER_PSEUDO_METHOD
    if name.startswith(":"):
        return _ROUTER_PSEUDO_NONE
    cdef bytes b = name.encode()
    return _http1_header_id(b, len(b))


cdef const char *_router_header_value(HttpHeaderMap headers, int id, bytes name,
                                      size_t *value_len) noexcept:
    """The first value of a request header (pseudo-headers included), or
    NULL when absent (Envoy's %REQ()% takes the first value too)."""
    cdef int i
    if id == _ROUTER_PSEUDO_PATH:
        value_len[0] = headers.path_len
        return headers.path()
    if id == _ROUTER_PSEUDO_METHOD:
        if headers.method < 0:
            return NULL
        value_len[0] = _HTTP1_METHOD_LENS[headers.method]
        return _HTTP1_METHOD_NAMES[headers.method]
    if id == _ROUTER_PSEUDO_NONE:
        return NULL
    i = headers.get(id) if id != HTTP1_HEADER_OTHER else headers.find(name, len(name))
    if i < 0:
        return NULL
    value_len[0] = headers.entries[i].value_len
    return headers.value_at(i)


cdef bint _router_parse_int64(const char *s, size_t n, int64_t *out) noexcept:
    # A whole base-10 integer with an optional sign, as Envoy's range_match.
    cdef size_t i = 0
    cdef bint neg = False
    cdef uint64_t v = 0
    if n == 0:
        return False
    if s[0] == b'+' or s[0] == b'-':
        neg = s[0] == b'-'
        i = 1
        if n == 1:
            return False
    if n - i > 18:
        return False
    while i < n:
        if not (b'0' <= s[i] <= b'9'):
            return False
        v = v * 10 + <uint64_t>(s[i] - 48)     # '0'
        i += 1
    out[0] = -<int64_t>v if neg else <int64_t>v
    return True


@cython.final
cdef class RouterHeaderMatcher:
    """Envoy's HeaderUtility::HeaderData."""

    @staticmethod
    cdef RouterHeaderMatcher from_plan(object plan):
        cdef RouterHeaderMatcher m = RouterHeaderMatcher.__new__(RouterHeaderMatcher)
        m.name = plan.name.encode()
        m.id = _router_header_id(plan.name)
        m.kind = plan.kind
        if plan.string is not None:
            m.string_match = RouterStringMatcher.from_plan(plan.string)
        m.present_match = plan.present
        m.range_start = plan.range_start
        m.range_end = plan.range_end
        m.invert_match = plan.invert
        m.treat_missing_header_as_empty = plan.treat_missing_as_empty
        return m

    cdef bint match(self, HttpHeaderMap headers) except -1:
        # A header with several entries matches when one of them does
        # (observed on Envoy 1.40: "a" and "b" both match x-h: a / x-h: b,
        # "a,b" does not).
        cdef size_t n = 0
        cdef const char *v
        cdef int i
        v = _router_header_value(headers, self.id, self.name, &n)
        if self.kind == ROUTER_HEADER_MATCH_PRESENT:
            return ((v != NULL) == self.present_match) != self.invert_match
        if v == NULL:
            if not self.treat_missing_header_as_empty:
                return False
            return self._match_value(b"", 0) != self.invert_match
        if self.id < 0:
            return self._match_value(v, n) != self.invert_match
        i = headers.get(self.id) if self.id != HTTP1_HEADER_OTHER else headers.find(self.name, len(self.name))
        while i >= 0:
            if self._match_value(headers.value_at(i), headers.entries[i].value_len):
                return not self.invert_match
            i = headers.next_same(i)
        return self.invert_match

    cdef bint _match_value(self, const char *v, size_t n) except -1:
        cdef int64_t number
        if self.kind == ROUTER_HEADER_MATCH_RANGE:
            return (_router_parse_int64(v, n, &number)
                    and self.range_start <= number < self.range_end)
        return self.string_match.match(v, n)


@cython.final
cdef class RouterQueryParameterMatcher:
    """Envoy's QueryParameterMatcher: the first value of the parameter, not
    URL-decoded."""

    @staticmethod
    cdef RouterQueryParameterMatcher from_plan(object plan):
        cdef RouterQueryParameterMatcher m = RouterQueryParameterMatcher.__new__(RouterQueryParameterMatcher)
        m.name = plan.name.encode()
        m.present_match = plan.present
        if plan.string is not None:
            m.string_match = RouterStringMatcher.from_plan(plan.string)
        return m

    cdef bint match(self, const char *query, size_t query_len) except -1:
        # `query`: what follows '?' (fragment excluded).
        cdef const char *name = self.name
        cdef size_t nn = len(self.name), i = 0, start, eq, end
        while i <= query_len:
            start = i
            while i < query_len and query[i] != b'&':
                i += 1
            end = i
            i += 1
            if end == start:
                continue
            eq = start
            while eq < end and query[eq] != b'=':
                eq += 1
            if eq - start != nn or memcmp(query + start, name, nn) != 0:
                continue
            if self.string_match is None:
                return self.present_match      # present_match: false asks for absence
            if eq < end:
                return self.string_match.match(query + eq + 1, end - eq - 1)
            return self.string_match.match(b"", 0)
        return self.string_match is None and not self.present_match


cdef bytes _router_without_port(str address):
    """"1.2.3.4:80" -> 1.2.3.4, "[::1]:80" -> ::1 (Envoy's *_WITHOUT_PORT)."""
    if address is None:
        return b""
    if address.startswith("["):
        return address[1:address.rfind("]")].encode()
    return address.rpartition(":")[0].encode()


cdef int _router_format_start_time(double t) except -1:
    # Envoy's default %START_TIME%: 2026-11-30T16:53:55.048Z (rounded to the
    # microsecond first, as the access log's formatter does)
    cdef int64_t us = <int64_t>(t * 1000000.0 + 0.5)
    cdef time_t sec = <time_t>(us // 1000000)
    cdef int ms = <int>((us % 1000000) // 1000)
    cdef router_tm tm
    cdef char buf[64]
    cdef size_t n
    router_gmtime_r(&sec, &tm)
    n = router_strftime(buf, 40, "%Y-%m-%dT%H:%M:%S", &tm)
    n += router_snprintf(buf + n, 24, ".%03dZ", ms)
    _router_scratch_add(buf, n)
    return 0


@cython.final
# Address operators met while RouteConfigImpl.from_plan builds its formatters
# (load time only).
cdef int _router_address_segments = 0


cdef class RouterHeaderFormatter:
    """A header value's format string (Envoy's substitution formatter, the
    operators of SUPPORTED_FORMAT_COMMANDS), split into segments at load."""

    def __dealloc__(self):
        free(self.kinds)
        free(self.max_lengths)

    @staticmethod
    cdef RouterHeaderFormatter from_plan(list segments, bytes hostname):
        global _router_address_segments
        cdef RouterHeaderFormatter f = RouterHeaderFormatter.__new__(RouterHeaderFormatter)
        cdef int i
        f.count = len(segments)
        f.args = []
        f.ids = []
        f.callables = []
        if all(s.kind == ROUTER_FORMAT_LITERAL for s in segments):
            f.literal = "".join(s.text for s in segments).encode()
            return f
        f.kinds = <int*>malloc(sizeof(int) * f.count)
        f.max_lengths = <int*>malloc(sizeof(int) * f.count)
        if f.kinds == NULL or f.max_lengths == NULL:
            raise MemoryError()
        for i, s in enumerate(segments):
            if ROUTER_FORMAT_DOWNSTREAM_REMOTE_ADDRESS <= s.kind <= ROUTER_FORMAT_DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT:
                _router_address_segments += 1
            f.kinds[i] = s.kind
            f.max_lengths[i] = s.max_length
            f.callables.append(None)
            if s.kind == ROUTER_FORMAT_HOSTNAME:
                f.args.append(hostname)
                f.ids.append(None)
            elif s.kind == ROUTER_FORMAT_REQ:
                # "a?b": the first present of a, b
                names = [n.lower() for n in s.text.split("?")]
                names = ["host" if n == ":authority" else n for n in names]
                f.args.append(tuple(n.encode() for n in names))
                f.ids.append(tuple(_router_header_id(n) for n in names))
            elif s.kind == ROUTER_FORMAT_START_TIME and s.text:
                from envoy_fast.accesslog.format import _start_time
                f.callables[i] = _start_time(s.text)
                f.args.append(None)
                f.ids.append(None)
            else:
                f.args.append(s.text.encode())
                f.ids.append(None)
        return f

    cdef int format(self, HttpHeaderMap request, StreamInfoImpl info) except -1:
        """Append the value to the scratch buffer."""
        global _router_scratch_len
        cdef int i, k
        cdef size_t start, n = 0
        cdef const char *v
        cdef bytes b
        cdef str addr
        cdef HostImpl host
        if self.literal is not None:
            return _router_scratch_add(self.literal, len(self.literal))
        for i in range(self.count):
            start = _router_scratch_len
            k = self.kinds[i]
            if k == ROUTER_FORMAT_LITERAL or k == ROUTER_FORMAT_HOSTNAME:
                b = <bytes>self.args[i]
                _router_scratch_add(b, len(b))
            elif k == ROUTER_FORMAT_REQ:
                if request is not None:
                    names = <tuple>self.args[i]
                    ids = <tuple>self.ids[i]
                    for j in range(len(names)):
                        v = _router_header_value(request, <int>ids[j], <bytes>names[j], &n)
                        if v != NULL:
                            # copied now: v points into the map, whose
                            # block add() may move
                            _router_scratch_add(v, n)
                            break
            elif k == ROUTER_FORMAT_PROTOCOL:
                if request is not None:
                    if request.version == HTTP1_VERSION_11:
                        _router_scratch_add(b"HTTP/1.1", 8)
                    elif request.version == HTTP1_VERSION_10:
                        _router_scratch_add(b"HTTP/1.0", 8)
            elif info is not None:
                if k == ROUTER_FORMAT_DOWNSTREAM_REMOTE_ADDRESS:
                    addr = info.remote_address()
                    if addr is not None:
                        b = addr.encode()
                        _router_scratch_add(b, len(b))
                elif k == ROUTER_FORMAT_DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT:
                    b = _router_without_port(info.remote_address())
                    _router_scratch_add(b, len(b))
                elif k == ROUTER_FORMAT_DOWNSTREAM_LOCAL_ADDRESS:
                    if info.downstream_local_address is not None:
                        b = info.downstream_local_address.encode()
                        _router_scratch_add(b, len(b))
                elif k == ROUTER_FORMAT_DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT:
                    b = _router_without_port(info.downstream_local_address)
                    _router_scratch_add(b, len(b))
                elif k == ROUTER_FORMAT_UPSTREAM_REMOTE_ADDRESS:
                    host = info.upstream_host
                    if host is not None:
                        b = host.address_str.encode()
                        _router_scratch_add(b, len(b))
                elif k == ROUTER_FORMAT_START_TIME:
                    if info.start_time > 0:
                        if self.callables[i] is None:
                            _router_format_start_time(info.start_time)
                        else:
                            text = self.callables[i]({"start_time": info.start_time})
                            if text:
                                b = text.encode()
                                _router_scratch_add(b, len(b))
            if self.max_lengths[i] >= 0 and _router_scratch_len - start > <size_t>self.max_lengths[i]:
                _router_scratch_len = start + self.max_lengths[i]
        return 0


cdef bint _router_value_is_safe(const char *v, size_t n) noexcept:
    # A formatted value must never split the message: CR, LF or NUL in it
    # and the header is not added.
    return (memchr(v, b'\r', n) == NULL and memchr(v, b'\n', n) == NULL
            and memchr(v, 0, n) == NULL)


cdef int _router_remove(HttpHeaderMap headers, bytes name, int id) except -1:
    if id != HTTP1_HEADER_OTHER:
        headers.remove_id(id)
    else:
        headers.remove_name(name, len(name))
    return 0


cdef bint _router_has(HttpHeaderMap headers, bytes name, int id) noexcept:
    if id != HTTP1_HEADER_OTHER:
        return headers.get(id) >= 0
    return headers.find(name, len(name)) >= 0


@cython.final
cdef class RouterHeaderMutations:
    """One level's header lists (Envoy's HeaderParser::evaluateHeaders):
    removals; then every value is formatted; then the overwrites (remove,
    add at the end), then the additions, each in config order."""

    def __dealloc__(self):
        free(self.add_actions)
        free(self.add_keep_empty)
        free(self.offsets)
        free(self.lengths)
        free(self.decisions)

    @staticmethod
    cdef RouterHeaderMutations from_plan(object plan, bytes hostname):
        cdef RouterHeaderMutations m = RouterHeaderMutations.__new__(RouterHeaderMutations)
        cdef bytes b
        m.remove = []
        m.remove_ids = []
        for name in plan.remove:
            b = name.encode()
            m.remove.append(b)
            m.remove_ids.append(_http1_header_id(b, len(b)))
        m.add_names = []
        m.add_ids = []
        m.add_values = []
        m.count = len(plan.add)
        m.add_actions = <int*>malloc(sizeof(int) * (m.count + 1))
        m.add_keep_empty = <int*>malloc(sizeof(int) * (m.count + 1))
        m.offsets = <size_t*>malloc(sizeof(size_t) * (m.count + 1))
        m.lengths = <size_t*>malloc(sizeof(size_t) * (m.count + 1))
        m.decisions = <int*>malloc(sizeof(int) * (m.count + 1))
        if (m.add_actions == NULL or m.add_keep_empty == NULL or m.offsets == NULL
                or m.lengths == NULL or m.decisions == NULL):
            raise MemoryError()
        for i, add in enumerate(plan.add):
            b = add.name.encode()
            m.add_names.append(b)
            m.add_ids.append(_http1_header_id(b, len(b)))
            m.add_values.append(RouterHeaderFormatter.from_plan(add.segments, hostname))
            m.add_actions[i] = add.append_action
            m.add_keep_empty[i] = add.keep_empty
        m.empty = not m.remove and not m.count
        return m

    cdef int apply(self, HttpHeaderMap headers, HttpHeaderMap request,
                   StreamInfoImpl info) except -1:
        global _router_scratch_len
        cdef int i, id, action
        cdef size_t mark = _router_scratch_len
        cdef bytes name
        for i in range(len(self.remove)):
            _router_remove(headers, <bytes>self.remove[i], <int>self.remove_ids[i])
        if self.count == 0:
            return 0
        # Envoy formats every value before it changes the map.
        for i in range(self.count):
            self.offsets[i] = _router_scratch_len
            (<RouterHeaderFormatter>self.add_values[i]).format(request, info)
            self.lengths[i] = _router_scratch_len - self.offsets[i]
            self.decisions[i] = 0          # 0: skip, 1: overwrite, 2: add
            if self.lengths[i] == 0 and not self.add_keep_empty[i]:
                continue
            if not _router_value_is_safe(_router_scratch + self.offsets[i], self.lengths[i]):
                continue
            name = <bytes>self.add_names[i]
            id = <int>self.add_ids[i]
            action = self.add_actions[i]
            if action == ROUTER_APPEND_IF_EXISTS_OR_ADD:
                self.decisions[i] = 2
            elif action == ROUTER_ADD_IF_ABSENT:
                if not _router_has(headers, name, id):
                    self.decisions[i] = 2
            elif action == ROUTER_OVERWRITE_IF_EXISTS_OR_ADD:
                self.decisions[i] = 1
            elif _router_has(headers, name, id):   # OVERWRITE_IF_EXISTS
                self.decisions[i] = 1
        for i in range(self.count):
            if self.decisions[i] == 1:
                name = <bytes>self.add_names[i]
                id = <int>self.add_ids[i]
                _router_remove(headers, name, id)
                headers.add(name, len(name), _router_scratch + self.offsets[i], self.lengths[i], id)
        for i in range(self.count):
            if self.decisions[i] == 2:
                name = <bytes>self.add_names[i]
                headers.add(name, len(name), _router_scratch + self.offsets[i], self.lengths[i],
                            <int>self.add_ids[i])
        _router_scratch_len = mark
        return 0


@cython.final
cdef class RetryPolicyImpl:

    def __dealloc__(self):
        free(self.retriable_status_codes)

    @staticmethod
    cdef RetryPolicyImpl from_plan(object plan):
        cdef RetryPolicyImpl p = RetryPolicyImpl.__new__(RetryPolicyImpl)
        cdef int i
        p.retry_on = plan.retry_on
        p.num_retries = plan.num_retries
        p.per_try_timeout = plan.per_try_timeout
        p.base_interval = plan.base_interval
        p.max_interval = plan.max_interval
        p.previous_hosts = plan.previous_hosts
        p.host_selection_attempts = plan.host_selection_attempts
        p.retriable_status_codes_count = len(plan.retriable_status_codes)
        if p.retriable_status_codes_count:
            p.retriable_status_codes = <int*>malloc(sizeof(int) * p.retriable_status_codes_count)
            if p.retriable_status_codes == NULL:
                raise MemoryError()
            for i, code in enumerate(plan.retriable_status_codes):
                p.retriable_status_codes[i] = code
        return p

    cdef bint retriable_status(self, int status) noexcept:
        cdef int i
        for i in range(self.retriable_status_codes_count):
            if self.retriable_status_codes[i] == status:
                return True
        return False


@cython.final
cdef class RouterVirtualHostImpl:
    pass


@cython.final
cdef class RouteConfigImpl:
    """The compiled route table (Envoy's ConfigImpl + RouteMatcher)."""

    def __dealloc__(self):
        free(self.exact)
        free(self.suffixes)
        free(self.prefixes)

    @staticmethod
    cdef RouteConfigImpl from_plan(FactoryContext ctx, object plan):
        global _router_address_segments
        _router_address_segments = 0
        cdef RouteConfigImpl c = RouteConfigImpl.__new__(RouteConfigImpl)
        cdef RouterVirtualHostImpl vh
        cdef bytes hostname = plan.hostname.encode()
        cdef RouterHeaderMutations rc_request = RouterHeaderMutations.from_plan(plan.request_mutations, hostname)
        cdef RouterHeaderMutations rc_response = RouterHeaderMutations.from_plan(plan.response_mutations, hostname)
        cdef list exact = [], suffixes = [], prefixes = []
        cdef int v
        c.name = plan.name
        c.vhosts = []
        c.domain_bytes = []
        c.any_vhost = -1
        c.ignore_port_in_host_matching = plan.ignore_port_in_host_matching
        for v, vp in enumerate(plan.virtual_hosts):
            vh = RouterVirtualHostImpl.__new__(RouterVirtualHostImpl)
            vh.name = vp.name
            vh.require_tls = vp.require_tls
            if vp.require_tls:
                vh.ssl_redirect = _router_ssl_redirect_entry(ctx, hostname)
            vh_request = RouterHeaderMutations.from_plan(vp.request_mutations, hostname)
            vh_response = RouterHeaderMutations.from_plan(vp.response_mutations, hostname)
            vh.routes = [RouteEntryImpl.from_plan(ctx, rp, vh_request, vh_response, rc_request, rc_response,
                                                  plan.most_specific_header_mutations_wins,
                                                  plan.validate_clusters, hostname)
                         for rp in vp.routes]
            c.vhosts.append(vh)
            for domain in vp.domains:
                if domain == "*":
                    c.any_vhost = v
                elif domain.startswith("*"):
                    suffixes.append((domain[1:].encode(), v))
                elif domain.endswith("*"):
                    prefixes.append((domain[:len(domain) - 1].encode(), v))
                else:
                    exact.append((domain.encode(), v))
        # Longest wildcards first (Envoy: by length, descending).
        suffixes.sort(key=lambda e: -len(e[0]))
        prefixes.sort(key=lambda e: -len(e[0]))
        c.suffixes = c._domain_array(suffixes)
        c.suffix_count = len(suffixes)
        c.prefixes = c._domain_array(prefixes)
        c.prefix_count = len(prefixes)
        c._build_exact(exact)
        c.uses_downstream_addresses = _router_address_segments > 0
        return c

    cdef RouterDomainEntry *_domain_array(self, list entries) except? NULL:
        cdef RouterDomainEntry *a = <RouterDomainEntry*>malloc(sizeof(RouterDomainEntry) * (len(entries) + 1))
        cdef bytes b
        cdef int i
        if a == NULL:
            raise MemoryError()
        for i, (b, v) in enumerate(entries):
            self.domain_bytes.append(b)
            a[i].domain = b
            a[i].len = len(b)
            a[i].hash = 0
            a[i].vhost = v
        return a

    cdef int _build_exact(self, list entries) except -1:
        cdef uint64_t size = 8, slot
        cdef bytes b
        while size < 2 * <uint64_t>len(entries):
            size *= 2
        self.exact = <RouterDomainEntry*>malloc(sizeof(RouterDomainEntry) * size)
        if self.exact == NULL:
            raise MemoryError()
        memset(self.exact, 0, sizeof(RouterDomainEntry) * size)
        self.exact_mask = size - 1
        self.exact_count = len(entries)
        for b, v in entries:
            self.domain_bytes.append(b)
            slot = _router_domain_hash(b, len(b)) & self.exact_mask
            while self.exact[slot].domain != NULL:
                slot = (slot + 1) & self.exact_mask
            self.exact[slot].domain = b
            self.exact[slot].len = len(b)
            self.exact[slot].hash = _router_domain_hash(b, len(b))
            self.exact[slot].vhost = v
        return 0

    cdef RouterVirtualHostImpl find_virtual_host(self, HttpHeaderMap headers):
        cdef int i = headers.get(HTTP1_HEADER_HOST)
        cdef const char *host = b""
        cdef size_t n = 0, k
        cdef uint64_t h, slot
        cdef RouterDomainEntry *e
        if i >= 0:
            host = headers.value_at(i)
            n = headers.entries[i].value_len
        if self.ignore_port_in_host_matching:
            n = _router_host_without_port(host, n)
        if self.exact_count:
            h = _router_domain_hash(host, n)
            slot = h & self.exact_mask
            while self.exact[slot].domain != NULL:
                e = &self.exact[slot]
                if e.hash == h and e.len == n and _router_ieq(host, e.domain, n):
                    return <RouterVirtualHostImpl>self.vhosts[e.vhost]
                slot = (slot + 1) & self.exact_mask
        for k in range(<size_t>self.suffix_count):
            e = &self.suffixes[k]
            if e.len < n and _router_ieq(host + n - e.len, e.domain, e.len):
                return <RouterVirtualHostImpl>self.vhosts[e.vhost]
        for k in range(<size_t>self.prefix_count):
            e = &self.prefixes[k]
            if e.len < n and _router_ieq(host, e.domain, e.len):
                return <RouterVirtualHostImpl>self.vhosts[e.vhost]
        if self.any_vhost >= 0:
            return <RouterVirtualHostImpl>self.vhosts[self.any_vhost]
        return None

    cdef RouteEntryImpl route(self, HttpHeaderMap headers, uint64_t random_value):
        cdef RouterVirtualHostImpl vh = self.find_virtual_host(headers)
        cdef RouteEntryImpl r
        cdef size_t n
        cdef const char *xfp
        if vh is None:
            return None
        if vh.require_tls:
            # Envoy's VirtualHostImpl: the request's scheme (x-forwarded-proto
            # here) must be https, for every request (ALL) or for those not
            # marked x-envoy-internal (EXTERNAL_ONLY).
            xfp = _router_xfp(headers, &n)
            if not (n == 5 and memcmp(xfp, b"https", 5) == 0):
                if vh.require_tls == 2:
                    return vh.ssl_redirect
                if not headers.value_is(headers.find(b"x-envoy-internal", 16), b"true", 4):
                    return vh.ssl_redirect
        for r in vh.routes:
            if r.matches(headers, random_value):
                return r
        return None


cdef RouteEntryImpl _router_ssl_redirect_entry(FactoryContext ctx, bytes hostname):
    """The route require_tls answers with (Envoy's SslRedirectRoute): a 301
    without header mutations."""
    from envoy_fast.router.plan import ROUTE_KIND_REDIRECT, HeaderMutationsPlan, RoutePlan
    cdef RouterHeaderMutations none = RouterHeaderMutations.from_plan(HeaderMutationsPlan(), hostname)
    cdef RouteEntryImpl r = RouteEntryImpl.from_plan(
        ctx, RoutePlan(kind=ROUTE_KIND_REDIRECT, redirect_status=301), none, none, none, none,
        False, False, hostname)
    r.ssl_redirect = True
    return r


cdef size_t _router_host_without_port(const char *host, size_t n) noexcept:
    """The length of `host` without its ":port" ("[v6]:port" aware), as
    ignore_port_in_host_matching strips it."""
    cdef size_t i = n
    while i > 0 and b'0' <= host[i - 1] <= b'9':
        i -= 1
    if i == n or i == 0 or host[i - 1] != b':':
        return n
    i -= 1
    if host[0] == b'[':
        return i if i > 0 and host[i - 1] == b']' else n
    if memchr(host, b':', i) != NULL:      # a bare IPv6 address: no port to strip
        return n
    return i
