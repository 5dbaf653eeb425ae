# The compiled route table (shape and contract in config_impl.pxd).
# First commit: interface only; the implementation follows.


@cython.final
cdef class RouterStringMatcher:
    cdef bint match(self, const char *s, size_t n) except -1:
        raise NotImplementedError


@cython.final
cdef class RouterHeaderMatcher:
    cdef bint match(self, HttpHeaderMap headers) except -1:
        raise NotImplementedError


@cython.final
cdef class RouterQueryParameterMatcher:
    cdef bint match(self, const char *query, size_t query_len) except -1:
        raise NotImplementedError


@cython.final
cdef class RouterHeaderFormatter:
    cdef int format(self, HttpHeaderMap request, StreamInfoImpl info,
                    HttpHeaderMap target) except -1:
        raise NotImplementedError


@cython.final
cdef class RouterHeaderMutations:
    cdef int apply(self, HttpHeaderMap headers, HttpHeaderMap request,
                   StreamInfoImpl info) except -1:
        raise NotImplementedError


@cython.final
cdef class RetryPolicyImpl:
    cdef bint retriable_status(self, int status) noexcept:
        return False


@cython.final
cdef class RouterWeightedClusterEntry:
    pass


@cython.final
cdef class RouteEntryImpl:
    cdef bint matches(self, HttpHeaderMap headers, uint64_t random_value) except -1:
        raise NotImplementedError

    cdef ThreadLocalCluster cluster_for(self, HttpHeaderMap headers, uint64_t random_value):
        raise NotImplementedError

    cdef RouterWeightedClusterEntry weighted_entry(self, uint64_t random_value):
        raise NotImplementedError

    cdef int finalize_request_headers(self, HttpHeaderMap headers, StreamInfoImpl info) except -1:
        raise NotImplementedError

    cdef int finalize_request_headers_weighted(self, HttpHeaderMap headers, StreamInfoImpl info,
                                               uint64_t random_value) except -1:
        raise NotImplementedError

    cdef int finalize_response_headers(self, HttpHeaderMap headers, StreamInfoImpl info) except -1:
        raise NotImplementedError

    cdef int finalize_response_headers_for(self, HttpHeaderMap headers, HttpHeaderMap request,
                                           StreamInfoImpl info, uint64_t random_value) except -1:
        raise NotImplementedError

    cdef bytes redirect_location(self, HttpHeaderMap request_headers):
        raise NotImplementedError


@cython.final
cdef class RouterVirtualHostImpl:
    pass


@cython.final
cdef class RouteConfigImpl:
    @staticmethod
    cdef RouteConfigImpl from_plan(FactoryContext ctx, object plan):
        raise NotImplementedError

    cdef RouterVirtualHostImpl find_virtual_host(self, HttpHeaderMap headers):
        raise NotImplementedError

    cdef RouteEntryImpl route(self, HttpHeaderMap headers, uint64_t random_value):
        raise NotImplementedError
