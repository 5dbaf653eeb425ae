# TEMPORARY: the interfaces the router calls, as agreed (route table:
# config_impl.pxd; HTTP/1 pool: http1/conn_pool.pxd; HCM stats), so the
# router compiles before those land. Dropped (with its include lines) when
# they are merged.

cdef enum:
    HTTP_NO_CLUSTER = 0
    HTTP_NO_ROUTE
    HTTP_RQ_DIRECT_RESPONSE
    HTTP_RQ_RESET_AFTER_DOWNSTREAM_RESPONSE_STARTED
    HTTP_RQ_TOTAL
    HTTP_STATS_COUNT

cdef int64_t *http_conn_manager_stats(HttpStreamFilterCallbacks callbacks) noexcept
