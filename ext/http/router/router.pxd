# The router filter, envoy.filters.http.router (Envoy source/common/router/
# router.h and upstream_request.h): the last decoder filter of an HTTP filter
# chain. It takes the stream's route (HttpStreamFilterCallbacks.route, set by
# the connection manager from RouteConfigImpl.route()) and
#   * answers directly: no route (404 NR), direct_response / redirect,
#     unknown cluster (503 NC), no host (503 UH);
#   * else forwards the request through the picked host's HTTP/1 pool
#     (RouterUpstreamRequest: one per attempt) and relays the response as it
#     arrives (encode_headers / encode_data / encode_trailers);
#   * on failure answers with Envoy's local replies (503 UF/UC/UO, 502 UPE,
#     504 UT), after retrying as the route's retry policy allows (each retry
#     picks a host again; the cluster's max_retries breaker).
#
#   decode_headers ──> RouterUpstreamRequest.accept_headers ─> pool.new_http_stream
#        on_pool_ready: encode headers (+ body and trailers held so far)
#        on_pool_failure / on_reset_stream ─> on_upstream_reset ─┬─ retry (back-off timer) ─> do_retry
#                                                                └─ local reply (or reset if the response started)
#        response decode_headers ─> on_upstream_headers ─┬─ retriable status ─> retry
#                                                        └─ relay (x-envoy-upstream-service-time)
#   on_request_complete: route timeout (response_timer), per-try timeout
#
# Hop-by-hop response headers (connection, keep-alive), date and server are
# the connection manager's: it writes the response head.

cdef class RouterFilter
cdef class RouterUpstreamRequest

cdef enum RouterRetryStatus:        # Envoy's RetryStatus
    ROUTER_RETRY_NO = 0
    ROUTER_RETRY_YES = 1
    ROUTER_RETRY_NO_OVERFLOW = 2
    ROUTER_RETRY_NO_LIMIT_EXCEEDED = 3

cdef enum RouterLocalReplyKind:     # what modify_local_reply_headers adds
    ROUTER_LOCAL_REPLY_PLAIN = 0
    ROUTER_LOCAL_REPLY_DIRECT = 1   # direct_response / redirect: the route's response headers


@cython.final
cdef class RouterFilterFactory(HttpFilterFactory):
    """One router config of an HCM (Envoy's Router::FilterConfig); makes a
    RouterFilter per stream, reusing finished ones."""
    cdef Dispatcher dispatcher
    cdef bint suppress_envoy_headers
    cdef RouterFilter spare         # finished filters free for reuse (linked by next_spare)
    cdef int spare_count
    cdef int64_t own_stats[HTTP_STATS_COUNT]    # the HCM block's stand-in outside an HCM


@cython.final
cdef class _RouterDownstreamWatermarks(HttpDownstreamWatermarkCallbacks):
    cdef RouterFilter parent


@cython.final
cdef class RouterResponseDecoder(HttpResponseDecoder):
    """An attempt's response, from its pooled connection."""
    cdef RouterUpstreamRequest parent


@cython.final
cdef class RouterUpstreamRequest(HttpPoolCallbacks):
    """One attempt of a request upstream (Envoy's UpstreamRequest): waits for
    a pooled connection, holding the request's head, body and trailers until
    then; relays what the router accepts afterwards."""
    cdef RouterFilter parent        # None once the router let it go
    cdef RouterResponseDecoder decoder
    cdef Http1ConnPoolImpl pool
    cdef PendingStream handle       # while waiting for a connection
    cdef Http1RequestEncoder encoder    # once ready, until the stream is over
    cdef HostImpl host
    cdef OwnedBuffer buffered_body  # body accepted before the connection was ready
    cdef HttpHeaderMap pending_trailers
    cdef bint headers_accepted
    cdef bint end_stream_accepted   # the router has passed the request's end
    cdef bint encode_complete       # the request's end went upstream
    cdef bint awaiting_headers      # no response head yet
    cdef bint retried
    cdef bint request_started       # its headers went to an upstream connection
    cdef bint create_per_try_timeout_on_request_complete
    cdef bint calling_encode        # a reset while encoding is handled after it
    cdef int deferred_reset_reason  # -1: none
    cdef bint body_above_high       # buffered_body told the downstream to stop
    cdef bint upstream_above_high   # the connection's write buffer did
    cdef int read_disabled          # downstream back-pressure applied to the connection
    cdef bint stream_reset          # reset_stream() ran: the stream's own reset is not news
    cdef str transport_failure_reason   # of a failed connect (access logs, details)
    cdef Timer per_try_timer

    cdef int reinit(self) except -1
    cdef int accept_headers(self, bint end_stream) except -1
    cdef int accept_data(self, OwnedBuffer data, bint end_stream) except -1
    cdef int accept_trailers(self, HttpHeaderMap trailers) except -1
    cdef int reset_stream(self) except -1
    cdef int setup_per_try_timeout(self) except -1
    cdef int on_per_try_timeout(self) except -1
    cdef int on_reset(self, int reason) except -1
    cdef int release_downstream(self) except -1
    cdef int read_disable(self, bint disable) except -1


@cython.final
cdef class RouterFilter(HttpStreamDecoderFilter):
    """One stream's router (Envoy's Router::Filter)."""
    cdef RouterFilterFactory config
    cdef Dispatcher dispatcher
    cdef int64_t *hcm_stats         # the HCM's block: no_route, rq_total ...
    cdef StreamInfoImpl stream_info
    cdef HttpHeaderMap downstream_headers
    cdef HttpHeaderMap downstream_trailers
    cdef RouteEntryImpl route_entry
    cdef uint64_t route_random      # the weighted cluster pick (its header lists follow it)
    cdef ThreadLocalCluster cluster
    cdef ClusterInfo cluster_info
    cdef RouterUpstreamRequest upstream_request     # the attempt in flight; None between
    cdef RouterUpstreamRequest spare_upstream_request   # a finished attempt, for the next one
    cdef _RouterDownstreamWatermarks downstream_watermarks
    cdef bint internal_request      # x-envoy-internal: true (else stats count as external)
    cdef bint logs_upstream         # the HCM logs: note the upstream connection's address
    # retry state (Envoy's RetryStateImpl); retry_on 0: none (or abandoned)
    cdef int retry_on
    cdef int retries_remaining
    cdef uint64_t backoff_next_ms   # jittered exponential back-off
    cdef uint64_t backoff_max_ms
    cdef bint retry_armed           # a retry was scheduled: holds a retries resource
    cdef int pending_retries
    cdef Timer retry_timer
    cdef bint is_retry
    cdef list attempted_hosts       # previous_hosts: the hosts tried so far (reused)
    cdef int attempt_count
    cdef int set_attempt_count(self, HttpHeaderMap headers) except -1
    # request
    cdef OwnedBuffer retry_buffer   # the body so far, while retries may need it
    cdef bint has_retry_buffer
    cdef size_t retry_buffer_limit
    cdef bint downstream_end_stream
    cdef double request_complete_time   # dispatcher.now at the request's end; < 0: not yet
    cdef double global_timeout      # seconds; 0: none
    cdef double per_try_timeout
    cdef int timeout_response_code  # 504; 204 with x-envoy-upstream-rq-timeout-alt-response
    cdef Timer response_timer
    # response
    cdef bint downstream_response_started
    cdef bint dropped               # an overflow reply: x-envoy-overloaded
    cdef int local_reply_kind       # RouterLocalReplyKind
    cdef bytes redirect_location
    cdef bint destroyed
    cdef RouterFilter next_spare    # the factory's free list (no list object per request)

    cdef int reinit(self) except -1
    cdef HostImpl choose_host(self)
    cdef int send_no_healthy_upstream(self) except -1
    cdef int set_timeout_headers(self, uint64_t elapsed_ms) except -1
    cdef RouterUpstreamRequest start_upstream_request(self, HostImpl host, bint end_stream)
    cdef int on_request_complete(self) except -1
    cdef int charge_upstream_code(self, int code, HostImpl host) except -1
    cdef int charge_upstream_abort(self, int code, RouterUpstreamRequest ur) except -1
    cdef int would_retry_from_headers(self, int status, HttpHeaderMap headers) noexcept
    cdef int would_retry_from_reset(self, int reason, bint request_started) noexcept
    cdef int should_retry(self, bint would_retry) except -1
    cdef int reset_retry(self) except -1
    cdef int maybe_retry_reset(self, int reason, RouterUpstreamRequest ur) except -1
    cdef int do_retry(self) except -1
    cdef int remove_upstream_request(self, RouterUpstreamRequest ur) except -1
    cdef int on_upstream_1xx_headers(self, RouterUpstreamRequest ur, HttpHeaderMap headers) except -1
    cdef int on_upstream_headers(self, RouterUpstreamRequest ur, HttpHeaderMap headers,
                                 bint end_stream) except -1
    cdef int on_upstream_data(self, RouterUpstreamRequest ur, OwnedBuffer data,
                              bint end_stream) except -1
    cdef int on_upstream_trailers(self, RouterUpstreamRequest ur, HttpHeaderMap trailers) except -1
    cdef int on_upstream_complete(self, RouterUpstreamRequest ur) except -1
    cdef int on_upstream_reset(self, RouterUpstreamRequest ur, int reason,
                               str transport_failure_reason) except -1
    cdef int on_per_try_timeout(self, RouterUpstreamRequest ur) except -1
    cdef int on_response_timeout(self) except -1
    cdef int on_upstream_timeout_abort(self, str details) except -1
    cdef int on_upstream_abort(self, int code, int flag, bytes body, bint dropped,
                               str details) except -1
    cdef int cleanup(self) except -1
    cdef int reset_all(self) except -1
    cdef int on_downstream_watermark(self, bint above) except -1
