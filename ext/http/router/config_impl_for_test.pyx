# Test hook of the route table: RouteConfigForTest builds a RouteConfigImpl
# from a RouteTablePlan on a bare cluster manager (clusters known by name
# only: nothing is connected) and routes request heads given as bytes.


@cython.final
cdef class RouteConfigForTest:
    """route(head, ...) -> dict: the route picked for a request head and
    everything the route decides for it (cluster, rewritten request headers,
    redirect location, response headers), or None when no route matches."""
    cdef FactoryContext context
    cdef ClusterManagerImpl cluster_manager
    cdef RouteConfigImpl config

    def __init__(self, plan, cluster_names=()):
        cdef ThreadLocalCluster tlc
        self.context = FactoryContext.__new__(FactoryContext)
        self.cluster_manager = ClusterManagerImpl(self.context)
        self.context.cluster_manager = self.cluster_manager
        for name in cluster_names:
            tlc = ThreadLocalCluster.__new__(ThreadLocalCluster)
            tlc.info = ClusterInfo.__new__(ClusterInfo)
            tlc.info.name = name
            tlc.hosts = []
            tlc.host_pools = []
            self.cluster_manager.clusters[name] = tlc
        self.config = RouteConfigImpl.from_plan(self.context, plan)

    def virtual_host(self, bytes head):
        cdef HttpHeaderMap headers = _router_headers_for_test(head)
        cdef RouterVirtualHostImpl vh = self.config.find_virtual_host(headers)
        return None if vh is None else vh.name

    def route(self, bytes head, uint64_t random_value=0, str remote="10.0.0.1:5555",
              str local="10.0.0.2:80", str upstream=None, double start_time=0.0,
              response=None, bint keep_original=True, added=()):
        """The route for `head`. `response`: [(name, value)] response headers
        given to finalize_response_headers (default: none). `upstream`: the
        host the router picks after the request headers are final (so only
        response headers see it). `added`: [(name, value)] put in the request
        map as they are, past the codec (as a filter could)."""
        cdef HttpHeaderMap headers = _router_headers_for_test(head)
        cdef HttpHeaderMap resp
        cdef RouteEntryImpl r
        for name, value in added:
            headers.add(name, len(name), value, len(value), HTTP1_HEADER_OTHER)
        r = self.config.route(headers, random_value)
        cdef ThreadLocalCluster tlc
        cdef StreamInfoImpl info = StreamInfoImpl.__new__(StreamInfoImpl)
        cdef HostImpl host
        if r is None:
            return None
        info.downstream_remote_address = remote
        info.downstream_local_address = local
        info.start_time = start_time
        out = {"name": r.name, "kind": ("cluster", "redirect", "direct_response")[r.kind],
               "timeout": r.timeout, "idle_timeout": r.idle_timeout,
               "retry": {"retry_on": r.retry_policy.retry_on, "num_retries": r.retry_policy.num_retries,
                         "per_try_timeout": r.retry_policy.per_try_timeout,
                         "base_interval": r.retry_policy.base_interval,
                         "max_interval": r.retry_policy.max_interval,
                         "retriable_status_codes": [r.retry_policy.retriable_status_codes[i]
                                                    for i in range(r.retry_policy.retriable_status_codes_count)]},
               "upgrade_types": r.upgrade_types}
        if r.kind == ROUTE_KIND_CLUSTER:
            tlc = r.cluster_for(headers, random_value)
            out["cluster"] = None if tlc is None else tlc.info.name
            out["cluster_not_found_response_code"] = r.cluster_not_found_response_code
            out["auto_host_rewrite"] = r.auto_host_rewrite
            r.finalize_request_headers(headers, info, random_value, keep_original)
            out["path"] = headers.path()[:headers.path_len]
            out["request_headers"] = headers.items_for_test()
        elif r.kind == ROUTE_KIND_REDIRECT:
            out["status"] = r.redirect_status
            out["location"] = r.redirect_location(headers)
        else:
            out["status"] = r.direct_status
            out["body"] = r.direct_body
        if upstream is not None:
            host = HostImpl.__new__(HostImpl)
            host.address_str = upstream
            info.upstream_host = host
        resp = HttpHeaderMap()
        for name, value in response or ():
            resp.add(name, len(name), value, len(value), HTTP1_HEADER_OTHER)
        r.finalize_response_headers(resp, info, headers, random_value)
        out["response_headers"] = resp.items_for_test()
        return out

    def route_repeat(self, bytes head, int n):
        """route() n times on one parsed head: the cdef path alone, for the
        allocation test. Returns how many matched."""
        cdef HttpHeaderMap headers = _router_headers_for_test(head)
        cdef int i, hits = 0
        for i in range(n):
            if self.config.route(headers, i) is not None:
                hits += 1
        return hits


cdef HttpHeaderMap _router_headers_for_test(bytes head):
    cdef Http1RequestParser p = Http1RequestParser()
    cdef OwnedBuffer b = OwnedBuffer.new()
    cdef HttpHeaderMap headers = HttpHeaderMap()
    b.append(head)
    if p.parse(b) != HTTP1_PARSE_DONE:
        raise ValueError("not a complete request head: %r" % (head,))
    headers.load_request(p)
    return headers
