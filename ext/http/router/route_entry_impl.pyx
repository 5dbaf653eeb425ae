# RouteEntryImpl: one route of the compiled table, its matchers and action
# (Envoy's RouteEntryImplBase and its Prefix/Path/Regex/PathSeparatedPrefix
# subclasses, WeightedClusterEntry). Shape in config_impl.pxd.


@cython.final
cdef class RouterWeightedClusterEntry:
    pass


cdef int _router_set_named(HttpHeaderMap headers, const char *name, size_t name_len,
                           const char *value, size_t value_len) except -1:
    """Envoy's setReferenceKey on a header: the first entry takes the value
    in place, later ones go; added at the end when absent. `value` must not
    point into `headers` (add may move its block)."""
    cdef int i = headers.find(name, name_len), j
    if i < 0:
        return headers.add(name, name_len, value, value_len, HTTP1_HEADER_OTHER)
    headers.set_value(i, value, value_len)
    j = headers.next_same(i)
    while j >= 0:
        headers.remove_at(j)
        j = headers.next_same(i)
    return 0


cdef int _router_update_authority(HttpHeaderMap headers, const char *host, size_t host_len,
                                  bint append_xfh, bint keep_original) except -1:
    """Envoy's Utility::updateAuthority: Host := `host`; the old one is kept
    in x-envoy-original-host and, with `append_xfh`, appended to
    x-forwarded-host."""
    global _router_scratch_len
    cdef size_t mark = _router_scratch_len, off
    cdef int i = headers.get(HTTP1_HEADER_HOST), j
    if i >= 0 and headers.entries[i].value_len:
        off = _router_scratch_len
        _router_scratch_add(headers.value_at(i), headers.entries[i].value_len)
        if keep_original:
            _router_set_named(headers, b"x-envoy-original-host", 21,
                              _router_scratch + off, _router_scratch_len - off)
        if append_xfh:
            j = headers.find(b"x-forwarded-host", 16)
            if j < 0:
                headers.add_lower(b"x-forwarded-host", 16, _router_scratch + off, _router_scratch_len - off,
                            HTTP1_HEADER_OTHER)
            else:
                headers.append_value(j, _router_scratch + off, _router_scratch_len - off, b",", 1)
    headers.set_id(HTTP1_HEADER_HOST, host, host_len)
    _router_scratch_len = mark
    return 0


cdef inline const char *_router_xfp(HttpHeaderMap headers, size_t *n) noexcept:
    cdef int i = headers.get(HTTP1_HEADER_X_FORWARDED_PROTO)
    if i < 0:
        n[0] = 0
        return b""
    n[0] = headers.entries[i].value_len
    return headers.value_at(i)


@cython.final
cdef class RouteEntryImpl:
    """One route: how it matches and what it does."""

    @staticmethod
    cdef RouteEntryImpl from_plan(FactoryContext ctx, object rp,
                                  RouterHeaderMutations vh_request, RouterHeaderMutations vh_response,
                                  RouterHeaderMutations rc_request, RouterHeaderMutations rc_response,
                                  bint most_specific_wins, bint validate_clusters, bytes hostname):
        cdef RouteEntryImpl r = RouteEntryImpl.__new__(RouteEntryImpl)
        cdef RouterWeightedClusterEntry w
        cdef ClusterManagerImpl cm = ctx.cluster_manager if ctx is not None else None
        cdef uint64_t upto = 0
        r.kind = rp.kind
        r.name = rp.name
        r.timeout = rp.timeout
        r.idle_timeout = rp.idle_timeout
        r.retry_policy = RetryPolicyImpl.from_plan(rp.retry_policy)
        r.direct_status = rp.direct_status
        r.direct_body = rp.direct_body
        r.redirect_status = rp.redirect_status
        # match
        r.path_kind = rp.path_kind
        r.case_sensitive = rp.case_sensitive
        r.path_value = rp.path.encode() if rp.case_sensitive else rp.path.lower().encode()
        if rp.path_kind == ROUTER_PATH_REGEX:
            r.path_value = rp.path.encode()
            r.path_regex = _router_compile(rp.path)
        r.header_matchers = [RouterHeaderMatcher.from_plan(h) for h in rp.headers]
        r.query_matchers = [RouterQueryParameterMatcher.from_plan(q) for q in rp.query_parameters]
        # cluster
        r.cluster_manager = cm
        r.cluster_name = rp.cluster
        if rp.cluster is not None and cm is not None:
            r.cluster = cm.get_thread_local_cluster(rp.cluster)
        if rp.cluster_header is not None:
            r.cluster_header = rp.cluster_header.encode()
            r.cluster_header_id = _router_header_id(rp.cluster_header)
        r.cluster_not_found_response_code = rp.cluster_not_found_response_code
        if rp.weighted_clusters:
            r.weighted = []
            for wp in rp.weighted_clusters:
                w = RouterWeightedClusterEntry.__new__(RouterWeightedClusterEntry)
                w.name = wp.name
                w.cluster = cm.get_thread_local_cluster(wp.name) if cm is not None else None
                w.weight = wp.weight
                upto += wp.weight
                w.upto = upto
                w.host_rewrite_literal = (wp.host_rewrite_literal.encode()
                                          if wp.host_rewrite_literal else None)
                w.request_mutations = RouterHeaderMutations.from_plan(wp.request_mutations, hostname)
                w.response_mutations = RouterHeaderMutations.from_plan(wp.response_mutations, hostname)
                r.weighted.append(w)
            r.total_weight = upto
        r.upgrade_types = list(rp.upgrade_configs) if rp.upgrade_configs is not None else None
        # rewrites
        r.prefix_rewrite = rp.prefix_rewrite.encode() if rp.prefix_rewrite else None
        if rp.regex_rewrite is not None:
            r.regex_rewrite = _router_compile(rp.regex_rewrite)
            r.regex_substitution = _router_re2_template(rp.regex_substitution)
        r.host_rewrite_literal = rp.host_rewrite_literal.encode() if rp.host_rewrite_literal else None
        r.auto_host_rewrite = rp.auto_host_rewrite
        r.append_xfh = rp.append_x_forwarded_host
        r.attempt_count_in_request = rp.include_request_attempt_count
        r.attempt_count_in_response = rp.include_attempt_count_in_response
        # redirect
        r.redirect_scheme = rp.redirect_scheme.encode() if rp.redirect_scheme else None
        r.redirect_host = rp.redirect_host.encode() if rp.redirect_host else None
        r.redirect_port = (":%d" % rp.redirect_port).encode() if rp.redirect_port else None
        r.redirect_path = rp.redirect_path.encode() if rp.redirect_path else None
        r.redirect_path_has_query = r.redirect_path is not None and b"?" in r.redirect_path
        r.redirect_prefix_rewrite = rp.redirect_prefix_rewrite.encode() if rp.redirect_prefix_rewrite else None
        if rp.redirect_regex is not None:
            r.redirect_regex = _router_compile(rp.redirect_regex)
            r.redirect_regex_substitution = _router_re2_template(rp.redirect_regex_substitution)
        r.strip_query = rp.strip_query
        # header mutations, in the order they apply: most specific first, so
        # the route config's win (reversed by most_specific_header_mutations_wins)
        route_request = RouterHeaderMutations.from_plan(rp.request_mutations, hostname)
        route_response = RouterHeaderMutations.from_plan(rp.response_mutations, hostname)
        request = [route_request, vh_request, rc_request]
        response = [route_response, vh_response, rc_response]
        if most_specific_wins:
            request.reverse()
            response.reverse()
        r.request_mutations = [m for m in request if not (<RouterHeaderMutations>m).empty]
        r.response_mutations = [m for m in response if not (<RouterHeaderMutations>m).empty]
        return r

    # -- matching

    cdef bint matches(self, HttpHeaderMap headers, uint64_t random_value) except -1:
        cdef const char *p = headers.path()
        cdef size_t n = headers.path_len, e, vn = len(self.path_value), q
        cdef const char *v = self.path_value
        cdef bint icase = not self.case_sensitive
        cdef RouterHeaderMatcher hm
        cdef RouterQueryParameterMatcher qm
        if self.path_kind == ROUTER_PATH_PREFIX:
            if n < vn or not _router_eq(p, v, vn, icase):
                return False
        else:
            e = _router_path_end(p, n)
            if self.path_kind == ROUTER_PATH_EXACT:
                if e != vn or not _router_eq(p, v, vn, icase):
                    return False
            elif self.path_kind == ROUTER_PATH_SEPARATED_PREFIX:
                if e < vn or not _router_eq(p, v, vn, icase) or (e > vn and p[vn] != b'/'):
                    return False
            elif self.path_regex.fullmatch(PyBytes_FromStringAndSize(p, e)) is None:
                return False
        for hm in self.header_matchers:
            if not hm.match(headers):
                return False
        if self.query_matchers:
            q = 0
            while q < n and p[q] != b'?' and p[q] != b'#':
                q += 1
            if q < n and p[q] == b'?':
                q += 1
                e = q
                while e < n and p[e] != b'#':
                    e += 1
            else:
                e = q = n
            for qm in self.query_matchers:
                if not qm.match(p + q, e - q):
                    return False
        return True

    # -- cluster selection

    cdef RouterWeightedClusterEntry weighted_entry(self, uint64_t random_value):
        cdef RouterWeightedClusterEntry w
        cdef uint64_t pick
        if self.weighted is None or self.total_weight == 0:
            return None
        pick = random_value % self.total_weight
        for w in self.weighted:
            if pick < w.upto:
                return w
        return <RouterWeightedClusterEntry>self.weighted[len(self.weighted) - 1]

    cdef ThreadLocalCluster cluster_for(self, HttpHeaderMap headers, uint64_t random_value):
        cdef RouterWeightedClusterEntry w
        cdef const char *v
        cdef size_t n = 0
        if self.weighted is not None:
            w = self.weighted_entry(random_value)
            if w.cluster is None and self.cluster_manager is not None:
                return self.cluster_manager.get_thread_local_cluster(w.name)
            return w.cluster
        if self.cluster_header is not None:
            v = _router_header_value(headers, self.cluster_header_id, self.cluster_header, &n)
            if v == NULL or self.cluster_manager is None:
                return None
            return self.cluster_manager.get_thread_local_cluster(
                PyBytes_FromStringAndSize(v, n).decode("latin-1"))
        if self.cluster is None and self.cluster_name is not None and self.cluster_manager is not None:
            return self.cluster_manager.get_thread_local_cluster(self.cluster_name)
        return self.cluster

    # -- rewrites and header mutations

    cdef size_t _matched_len(self, HttpHeaderMap headers) noexcept:
        """What prefix_rewrite replaces: the configured prefix or path, or the
        whole path (without query) of a regex route."""
        if self.path_kind == ROUTER_PATH_REGEX:
            return _router_path_end(headers.path(), headers.path_len)
        return len(self.path_value)

    cdef object _rewritten_path(self, HttpHeaderMap headers, bytes prefix_rewrite, object regex,
                                bytes substitution):
        """The path after prefix_rewrite / regex_rewrite (query kept), or None."""
        cdef const char *p = headers.path()
        cdef size_t n = headers.path_len, e
        if prefix_rewrite is not None:
            e = self._matched_len(headers)
            if e > n:
                e = n
            return prefix_rewrite + p[e:n]
        if regex is not None:
            e = _router_path_end(p, n)
            return regex.sub(substitution, p[:e]) + p[e:n]
        return None

    cdef int finalize_request_headers(self, HttpHeaderMap headers, StreamInfoImpl info,
                                      uint64_t random_value=0, bint keep_original=True) except -1:
        global _router_scratch_len
        cdef RouterWeightedClusterEntry w
        cdef RouterHeaderMutations m
        cdef size_t mark = _router_scratch_len, off
        cdef int i
        cdef bytes path
        if self.weighted is not None:
            w = self.weighted_entry(random_value)
            if not w.request_mutations.empty:
                w.request_mutations.apply(headers, headers, info)
            if w.host_rewrite_literal is not None:     # Envoy: setHost, no original, no xfh
                headers.set_id(HTTP1_HEADER_HOST, w.host_rewrite_literal, len(w.host_rewrite_literal))
        for m in self.request_mutations:
            m.apply(headers, headers, info)
        if self.host_rewrite_literal is not None:
            _router_update_authority(headers, self.host_rewrite_literal, len(self.host_rewrite_literal),
                                     self.append_xfh, keep_original)
        if self.prefix_rewrite is not None or self.regex_rewrite is not None:
            path = self._rewritten_path(headers, self.prefix_rewrite, self.regex_rewrite,
                                        self.regex_substitution)
            if keep_original:
                off = _router_scratch_len
                _router_scratch_add(headers.path(), headers.path_len)
                headers.set_id(HTTP1_HEADER_X_ENVOY_ORIGINAL_PATH, _router_scratch + off,
                               _router_scratch_len - off)
            headers.set_path(path, len(path))
        _router_scratch_len = mark
        return 0

    cdef int finalize_response_headers(self, HttpHeaderMap headers, StreamInfoImpl info,
                                       HttpHeaderMap request=None, uint64_t random_value=0) except -1:
        cdef RouterWeightedClusterEntry w
        cdef RouterHeaderMutations m
        if self.weighted is not None:
            w = self.weighted_entry(random_value)
            if not w.response_mutations.empty:
                w.response_mutations.apply(headers, request, info)
        for m in self.response_mutations:
            m.apply(headers, request, info)
        return 0

    # -- redirect

    cdef bytes redirect_location(self, HttpHeaderMap request_headers):
        """Envoy's Http::Utility::newUri for this route's redirect (for
        require_tls: createSslRedirectPath, the host and path as sent)."""
        cdef HttpHeaderMap h = request_headers
        cdef const char *p = h.path()
        cdef size_t n = h.path_len, xfp_len = 0, q
        cdef const char *xfp = _router_xfp(h, &xfp_len)
        cdef bytes scheme, host, port, path, request_port, protocol
        cdef int i
        cdef Py_ssize_t host_end
        if self.ssl_redirect:
            i = h.get(HTTP1_HEADER_HOST)
            host = h.value_at(i)[:h.entries[i].value_len] if i >= 0 else b""
            return b"https://" + host + p[:n]
        protocol = xfp[:xfp_len]
        if self.redirect_scheme is not None:
            scheme = self.redirect_scheme
        else:
            scheme = protocol if xfp_len else b"http"
        port = self.redirect_port if self.redirect_port is not None else b""
        if self.redirect_host is not None:
            host = self.redirect_host
        else:
            i = h.get(HTTP1_HEADER_HOST)
            host = h.value_at(i)[:h.entries[i].value_len] if i >= 0 else b""
            # processRequestHost: the request's port goes when a port is
            # given, or with a scheme change from its default port
            if host.startswith(b"["):
                host_end = host.rfind(b"]:")
                if host_end >= 0:
                    host_end += 1
            else:
                host_end = host.rfind(b":")
            if host_end >= 0:
                request_port = host[host_end:]
                remove = bool(port)
                if scheme != protocol:
                    remove = remove or (protocol == b"https" and request_port == b":443")
                    remove = remove or (protocol == b"http" and request_port == b":80")
                if remove:
                    host = host[:host_end]
        if self.redirect_path is not None:
            if self.redirect_path_has_query:
                path = self.redirect_path
            else:
                q = 0
                while q < n and p[q] != b'?':
                    q += 1
                path = self.redirect_path + p[q:n]
        else:
            path = self._rewritten_path(h, self.redirect_prefix_rewrite, self.redirect_regex,
                                        self.redirect_regex_substitution)
            if path is None:
                path = p[:n]
        if not path.startswith(b"/"):
            path = b"/" + path
        if self.strip_query and not self.redirect_path_has_query:
            host_end = path.find(b"?")
            if host_end >= 0:
                path = path[:host_end]
        return scheme + b"://" + host + port + path
