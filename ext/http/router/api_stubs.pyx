# TEMPORARY stand-ins (see api_stubs.pxd).

cdef int64_t _stub_hcm_stats[16]

cdef int64_t *http_conn_manager_stats(HttpStreamFilterCallbacks callbacks) noexcept:
    return _stub_hcm_stats
