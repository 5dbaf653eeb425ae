# TEMPORARY: the interfaces the router calls, as agreed (route table:
# config_impl.pxd; HTTP/1 pool: http1/conn_pool.pxd; HCM stats), so the
# router compiles before those land. Dropped (with its include lines) when
# they are merged.

cdef enum RouteKind:
    ROUTE_KIND_CLUSTER = 0
    ROUTE_KIND_REDIRECT = 1
    ROUTE_KIND_DIRECT_RESPONSE = 2

cdef enum:
    ROUTER_RETRY_ON_5XX = 0x1
    ROUTER_RETRY_ON_GATEWAY_ERROR = 0x2
    ROUTER_RETRY_ON_RESET = 0x4
    ROUTER_RETRY_ON_CONNECT_FAILURE = 0x8
    ROUTER_RETRY_ON_RETRIABLE_4XX = 0x10
    ROUTER_RETRY_ON_RETRIABLE_STATUS_CODES = 0x20
    ROUTER_RETRY_ON_REFUSED_STREAM = 0x40


@cython.final
cdef class RetryPolicyImpl:
    cdef int retry_on
    cdef int num_retries
    cdef double per_try_timeout
    cdef double base_interval
    cdef double max_interval
    cdef int *retriable_status_codes
    cdef int retriable_status_codes_count

    cdef bint retriable_status(self, int status) noexcept


@cython.final
cdef class RouteEntryImpl:
    cdef int kind
    cdef str name
    cdef double timeout
    cdef double idle_timeout
    cdef RetryPolicyImpl retry_policy
    cdef int direct_status
    cdef bytes direct_body
    cdef int redirect_status
    cdef int cluster_not_found_response_code

    cdef ThreadLocalCluster cluster_for(self, HttpHeaderMap headers, uint64_t random_value)
    cdef int finalize_request_headers(self, HttpHeaderMap headers, StreamInfoImpl info) except -1
    cdef int finalize_response_headers(self, HttpHeaderMap headers, StreamInfoImpl info) except -1
    cdef bytes redirect_location(self, HttpHeaderMap request_headers)


cdef enum:
    HTTP_NO_CLUSTER = 0
    HTTP_NO_ROUTE
    HTTP_RQ_DIRECT_RESPONSE
    HTTP_RQ_RESET_AFTER_DOWNSTREAM_RESPONSE_STARTED
    HTTP_RQ_TOTAL
    HTTP_STATS_COUNT

cdef int64_t *http_conn_manager_stats(HttpStreamFilterCallbacks callbacks) noexcept
