# TEMPORARY stand-ins (see api_stubs.pxd).

@cython.final
cdef class RetryPolicyImpl:
    cdef bint retriable_status(self, int status) noexcept:
        cdef int i
        for i in range(self.retriable_status_codes_count):
            if self.retriable_status_codes[i] == status:
                return True
        return False


@cython.final
cdef class RouteEntryImpl:
    cdef ThreadLocalCluster cluster_for(self, HttpHeaderMap headers, uint64_t random_value):
        return None

    cdef int finalize_request_headers(self, HttpHeaderMap headers, StreamInfoImpl info) except -1:
        return 0

    cdef int finalize_response_headers(self, HttpHeaderMap headers, StreamInfoImpl info) except -1:
        return 0

    cdef bytes redirect_location(self, HttpHeaderMap request_headers):
        return b""


cdef int64_t _stub_hcm_stats[16]

cdef int64_t *http_conn_manager_stats(HttpStreamFilterCallbacks callbacks) noexcept:
    return _stub_hcm_stats
