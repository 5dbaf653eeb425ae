# The router filter (shape in router.pxd); its upstream attempt is in
# upstream_request.pyx, its helpers in router_utility.pyx.

# Response code details (Envoy's StreamInfo::ResponseCodeDetails).
cdef str _RCD_RESPONSE_TIMEOUT = "response_timeout"
cdef str _RCD_PER_TRY_TIMEOUT = "upstream_per_try_timeout"

cdef enum:
    _ROUTER_MAX_SPARE = 64          # finished filters kept per factory for reuse
    _ROUTER_NO_LIMIT = 0x7fffffffffffffff


cdef int _router_on_response_timeout(object ctx) except -1:
    return (<RouterFilter>ctx).on_response_timeout()


cdef int _router_on_retry_timer(object ctx) except -1:
    return (<RouterFilter>ctx).do_retry()


register_http_filter_factory("envoy.filters.http.router",
                             lambda ctx, plan: RouterFilterFactory.from_plan(ctx, plan))


@cython.final
cdef class RouterFilterFactory(HttpFilterFactory):

    @staticmethod
    def from_plan(FactoryContext ctx, plan):
        """The router's factory from its RouterPlan
        (envoy_fast.extensions.network.http_connection_manager_plan)."""
        cdef RouterFilterFactory f = RouterFilterFactory.__new__(RouterFilterFactory)
        f.dispatcher = ctx.dispatcher
        f.suppress_envoy_headers = plan.suppress_envoy_headers
        f.spare = None
        f.spare_count = 0
        memset(f.own_stats, 0, sizeof(f.own_stats))
        return f

    cdef object create_filter(self):
        cdef RouterFilter r = self.spare
        if r is not None:
            self.spare = r.next_spare
            r.next_spare = None
            self.spare_count -= 1
        else:
            r = RouterFilter.__new__(RouterFilter)
            r.config = self
            r.dispatcher = self.dispatcher
            r.retry_buffer = OwnedBuffer.new()
            r.downstream_watermarks = _RouterDownstreamWatermarks.__new__(_RouterDownstreamWatermarks)
            r.downstream_watermarks.parent = r
        r.reinit()
        return r


@cython.final
cdef class _RouterDownstreamWatermarks(HttpDownstreamWatermarkCallbacks):

    cdef int on_above_write_buffer_high_watermark(self) except -1:
        if self.parent is not None:
            return self.parent.on_downstream_watermark(True)
        return 0

    cdef int on_below_write_buffer_low_watermark(self) except -1:
        if self.parent is not None:
            return self.parent.on_downstream_watermark(False)
        return 0


@cython.final
cdef class RouterFilter(HttpStreamDecoderFilter):
    """One stream's router (Envoy's Router::Filter)."""

    cdef int reinit(self) except -1:
        self.stream_info = None
        self.hcm_stats = NULL
        self.downstream_headers = None
        self.downstream_trailers = None
        self.route_entry = None
        self.cluster = None
        self.cluster_info = None
        self.upstream_request = None
        self.internal_request = False
        self.retry_on = 0
        self.retries_remaining = 0
        self.retry_armed = False
        self.pending_retries = 0
        self.is_retry = False
        if self.attempted_hosts is None:
            self.attempted_hosts = []
        elif len(self.attempted_hosts):
            ef_list_clear(self.attempted_hosts)
        self.attempt_count = 1
        self.has_retry_buffer = False
        self.retry_buffer_limit = _ROUTER_NO_LIMIT
        self.downstream_end_stream = False
        self.request_complete_time = -1.0
        self.global_timeout = 0.0
        self.per_try_timeout = 0.0
        self.timeout_response_code = 504
        self.downstream_response_started = False
        self.dropped = False
        self.local_reply_kind = ROUTER_LOCAL_REPLY_PLAIN
        self.redirect_location = None
        self.destroyed = False
        return 0

    cdef int set_decoder_filter_callbacks(self, HttpStreamDecoderFilterCallbacks callbacks) except -1:
        cdef size_t limit
        self.decoder_callbacks = callbacks
        self.stream_info = callbacks.stream_info
        self.hcm_stats = http_conn_manager_stats(callbacks)
        if self.hcm_stats == NULL:          # not under a connection manager (tests)
            self.hcm_stats = self.config.own_stats
        # %UPSTREAM_LOCAL_ADDRESS% costs a getsockname and a string: only
        # when the connection manager has access logs.
        self.logs_upstream = type(callbacks) is HttpActiveStreamDecoderFilter and \
            (<HttpActiveStreamDecoderFilter>callbacks).stream.config.access_loggers is not None
        limit = callbacks.decoder_buffer_limit()
        # Retries keep the body; past the stream's buffer limit they are given
        # up (Envoy's retry_shadow_buffer_limit_).
        self.retry_buffer_limit = limit if limit != 0 else _ROUTER_NO_LIMIT
        return 0

    # --- request

    cdef int decode_headers(self, HttpHeaderMap headers, bint end_stream) except -1:
        cdef HttpStreamDecoderFilterCallbacks cb = self.decoder_callbacks
        cdef RouteEntryImpl entry
        cdef ThreadLocalCluster cluster
        cdef HostImpl host
        cdef RetryPolicyImpl policy
        cdef int i, j, k
        cdef uint64_t ms
        cdef int envoy_headers[_RH_COUNT]
        cdef RouterFilter keep = self       # a local reply may end the stream (on_destroy) under us
        self.downstream_headers = headers
        self.hcm_stats[HTTP_RQ_TOTAL] += 1
        if cb.route is None:
            self.hcm_stats[HTTP_NO_ROUTE] += 1
            cb.send_local_reply(404, NULL, 0, RF_NO_ROUTE_FOUND, "route_not_found")
            return HTTP_FILTER_HEADERS_STOP_ITERATION
        entry = <RouteEntryImpl>cb.route
        self.route_entry = entry
        if entry.kind != ROUTE_KIND_CLUSTER:
            self.hcm_stats[HTTP_RQ_DIRECT_RESPONSE] += 1
            self.local_reply_kind = ROUTER_LOCAL_REPLY_DIRECT
            if entry.kind == ROUTE_KIND_REDIRECT:
                self.redirect_location = entry.redirect_location(headers)
                cb.send_local_reply(entry.redirect_status, NULL, 0, 0, "direct_response")
            else:
                cb.send_local_reply(entry.direct_status, <const char *>entry.direct_body,
                                    len(entry.direct_body), 0, "direct_response")
            return HTTP_FILTER_HEADERS_STOP_ITERATION
        self.route_random = self.dispatcher.random()
        cluster = entry.cluster_for(headers, self.route_random)
        if cluster is None:
            self.hcm_stats[HTTP_NO_CLUSTER] += 1
            cb.send_local_reply(entry.cluster_not_found_response_code, NULL, 0,
                                RF_NO_CLUSTER_FOUND, "cluster_not_found")
            return HTTP_FILTER_HEADERS_STOP_ITERATION
        self.cluster = cluster
        self.cluster_info = cluster.info
        self.stream_info.upstream_cluster_name = cluster.info.name
        _router_scan_envoy_headers(headers, envoy_headers)
        i = envoy_headers[_RH_INTERNAL]
        self.internal_request = headers.value_is(i, b"true", 4)
        host = self.choose_host()
        if host is None:
            self.send_no_healthy_upstream()
            return HTTP_FILTER_HEADERS_STOP_ITERATION

        # Timeouts (Envoy's FilterUtility::finalTimeout): the route's, or the
        # client's x-envoy-upstream-rq-timeout-ms / -per-try-timeout-ms.
        policy = entry.retry_policy
        self.global_timeout = entry.timeout
        self.per_try_timeout = policy.per_try_timeout
        i = envoy_headers[_RH_UPSTREAM_RQ_TIMEOUT_MS]
        if i >= 0:
            if _router_parse_uint(headers.value_at(i), headers.entries[i].value_len, &ms):
                self.global_timeout = <double>ms / 1000.0
        i = envoy_headers[_RH_UPSTREAM_RQ_PER_TRY_TIMEOUT_MS]
        if i >= 0:
            if _router_parse_uint(headers.value_at(i), headers.entries[i].value_len, &ms):
                self.per_try_timeout = <double>ms / 1000.0
        # x-envoy-upstream-rq-timeout-alt-response: a timeout answers 204.
        self.timeout_response_code = 204 if envoy_headers[_RH_UPSTREAM_RQ_TIMEOUT_ALT_RESPONSE] >= 0 \
            else 504
        if self.global_timeout != 0 and self.per_try_timeout >= self.global_timeout:
            self.per_try_timeout = 0.0
        self.set_timeout_headers(0)
        self.stream_info.attempt_count = self.attempt_count
        if entry.attempt_count_in_request:
            self.set_attempt_count(headers)
        entry.finalize_request_headers(headers, self.stream_info, self.route_random,
                                       not self.config.suppress_envoy_headers)
        if entry.auto_host_rewrite and len(host.hostname):
            _router_update_authority(headers, host.hostname, len(host.hostname), entry.append_xfh,
                                     not self.config.suppress_envoy_headers)

        # Retry state (Envoy's RetryStateImpl::create: none without retry_on),
        # the client's x-envoy-retry-on / x-envoy-max-retries included.
        self.retry_on = policy.retry_on
        self.retries_remaining = policy.num_retries
        i = envoy_headers[_RH_RETRY_ON]
        if i >= 0:
            self.retry_on |= _router_parse_retry_on(headers.value_at(i), headers.entries[i].value_len)
        i = envoy_headers[_RH_MAX_RETRIES]
        if i >= 0 and self.retry_on and \
                _router_parse_uint(headers.value_at(i), headers.entries[i].value_len, &ms):
            self.retries_remaining = <int>ms if ms < 0x7fffffff else 0x7fffffff
        # The headers the router consumes do not go upstream.
        for k in range(1, _RH_COUNT):
            i = envoy_headers[k]
            while i >= 0:
                j = headers.next_same(i)
                headers.remove_at(i)
                i = j
        if self.retry_on:
            self.backoff_next_ms = <uint64_t>(policy.base_interval * 1000.0 + 0.5)
            if self.backoff_next_ms == 0:
                self.backoff_next_ms = 1
            self.backoff_max_ms = <uint64_t>(policy.max_interval * 1000.0 + 0.5)
            if self.backoff_max_ms < self.backoff_next_ms:
                self.backoff_max_ms = self.backoff_next_ms

        self.downstream_watermarks.parent = self
        cb.add_downstream_watermark_callbacks(self.downstream_watermarks)
        self.start_upstream_request(host, end_stream)
        if end_stream and not self.destroyed:
            self.on_request_complete()
        return HTTP_FILTER_HEADERS_STOP_ITERATION

    cdef HostImpl choose_host(self):
        cdef HostImpl host = self.cluster.choose_host(None)
        cdef RetryPolicyImpl policy = self.route_entry.retry_policy
        cdef int i
        if policy.previous_hosts:
            # Envoy's previous_hosts predicate: pick again (up to
            # host_selection_retry_max_attempts times) while the pick was
            # tried before; the last pick stands.
            for i in range(policy.host_selection_attempts):
                if host is None or host not in self.attempted_hosts:
                    break
                host = self.cluster.choose_host(None)
            if host is not None:
                self.attempted_hosts.append(host)
        if host is None:
            self.cluster_info.stats[CLUSTER_UPSTREAM_CX_NONE_HEALTHY] += 1
        return host

    cdef int send_no_healthy_upstream(self) except -1:
        self.charge_upstream_code(503, None)
        return self.decoder_callbacks.send_local_reply(
            503, b"no healthy upstream", 19, RF_NO_HEALTHY_UPSTREAM, "no_healthy_upstream")

    cdef int set_timeout_headers(self, uint64_t elapsed_ms) except -1:
        """x-envoy-expected-rq-timeout-ms: the per-try timeout or else the
        route's, less the time already spent; absent when 0 (no timeout)."""
        cdef uint64_t g = <uint64_t>(self.global_timeout * 1000.0 + 0.5)
        cdef uint64_t expected = <uint64_t>(self.per_try_timeout * 1000.0 + 0.5)
        cdef char buf[24]
        cdef size_t n
        if expected == 0:
            expected = g
        if expected == 0 or self.config.suppress_envoy_headers:
            return 0
        if g > 0:
            if elapsed_ms >= g:
                expected = 1
            elif g - elapsed_ms < expected:
                expected = g - elapsed_ms
        n = format_uint(expected, buf)
        return self.downstream_headers.set_id(HTTP1_HEADER_X_ENVOY_EXPECTED_RQ_TIMEOUT_MS, buf, n)

    cdef int set_attempt_count(self, HttpHeaderMap headers) except -1:
        """x-envoy-attempt-count: this attempt's number (the virtual host's
        include_request_attempt_count / include_attempt_count_in_response)."""
        cdef char buf[24]
        cdef size_t n = format_uint(<uint64_t>self.attempt_count, buf)
        return _router_set_named(headers, b"x-envoy-attempt-count", 21, buf, n)

    cdef RouterUpstreamRequest start_upstream_request(self, HostImpl host, bint end_stream):
        # A finished attempt's object is taken again: its stream is over (the
        # pool calls a stream's decoder no more once it ended or was reset).
        cdef RouterUpstreamRequest ur = self.spare_upstream_request
        if ur is None:
            ur = RouterUpstreamRequest.__new__(RouterUpstreamRequest)
            ur.decoder = RouterResponseDecoder.__new__(RouterResponseDecoder)
        else:
            self.spare_upstream_request = None
        ur.reinit()
        ur.decoder.parent = ur
        ur.parent = self
        ur.host = host
        ur.pool = self.cluster.http1_conn_pool(host)
        self.stream_info.upstream_host = host
        self.upstream_request = ur
        ur.accept_headers(end_stream)
        return ur

    cdef int decode_data(self, OwnedBuffer data, bint end_stream) except -1:
        cdef RouterUpstreamRequest ur = self.upstream_request
        cdef OwnedBuffer copy
        cdef bint buffering = self.retry_on != 0
        cdef RouterFilter keep = self
        if self.destroyed:
            data.drain_all()
            return HTTP_FILTER_DATA_STOP_ITERATION_NO_BUFFER
        if buffering and self.retry_buffer.length() + data.length() > self.retry_buffer_limit:
            # Too much body to keep for a retry: give retries up.
            self.cluster_info.stats[CLUSTER_RETRY_OR_SHADOW_ABANDONED] += 1
            self.reset_retry()
            self.retry_on = 0
            if self.retry_timer is not None:
                self.retry_timer.disable()
            buffering = False
            self.retry_buffer.drain_all()
            if ur is None:
                # Between attempts (a back-off): nothing can take the body.
                data.drain_all()
                self.pending_retries = 0
                self.cleanup()
                self.decoder_callbacks.send_local_reply(
                    507, b"exceeded request buffer limit while retrying upstream", 53, 0,
                    "request_payload_exceeded_retry_buffer_limit")
                return HTTP_FILTER_DATA_STOP_ITERATION_NO_BUFFER
        if buffering:
            if ur is not None:
                copy = OwnedBuffer.new()
                _router_copy_buffer(data, copy)
                ur.accept_data(copy, end_stream)
            self.retry_buffer.move(data)
            self.has_retry_buffer = True
        elif ur is not None:
            ur.accept_data(data, end_stream)
        else:
            data.drain_all()
        if end_stream and not self.destroyed:
            self.on_request_complete()
        return HTTP_FILTER_DATA_STOP_ITERATION_NO_BUFFER

    cdef int decode_trailers(self, HttpHeaderMap trailers) except -1:
        cdef RouterFilter keep = self
        if self.destroyed:
            return HTTP_FILTER_TRAILERS_STOP_ITERATION
        self.downstream_trailers = trailers
        if self.upstream_request is not None:
            self.upstream_request.accept_trailers(trailers)
        if not self.destroyed:
            self.on_request_complete()
        return HTTP_FILTER_TRAILERS_STOP_ITERATION

    cdef int on_request_complete(self) except -1:
        """The whole request has arrived: the route timeout starts (Envoy's
        onRequestComplete), and the per-try one of an attempt already
        connected."""
        cdef RouterUpstreamRequest ur = self.upstream_request
        self.downstream_end_stream = True
        self.request_complete_time = self.dispatcher.now
        if ur is not None:
            if self.global_timeout > 0:
                if self.response_timer is None:
                    self.response_timer = Timer.new(self.dispatcher, _router_on_response_timeout, self)
                if self.global_timeout == self.route_entry.timeout:
                    self.response_timer.enable_common(self.global_timeout)
                else:
                    self.response_timer.enable(self.global_timeout)     # the client's
            if ur.create_per_try_timeout_on_request_complete:
                ur.setup_per_try_timeout()
        return 0

    cdef int modify_local_reply_headers(self, HttpHeaderMap headers) except -1:
        """Envoy's modify_headers of the router's replies: a redirect's
        location, the route's response headers (every reply once a route
        matched), an overflow's x-envoy-overloaded, in Envoy 1.40's order
        (observed)."""
        if self.local_reply_kind == ROUTER_LOCAL_REPLY_DIRECT and \
                self.redirect_location is not None and len(self.redirect_location):
            headers.add_lower(b"location", 8, <const char *>self.redirect_location,
                        len(self.redirect_location), HTTP1_HEADER_OTHER)
        if self.route_entry is not None:
            self.route_entry.finalize_response_headers(
                headers, self.stream_info, self.downstream_headers, self.route_random)
            if self.route_entry.attempt_count_in_response and self.local_reply_kind != ROUTER_LOCAL_REPLY_DIRECT:
                self.set_attempt_count(headers)
        if self.dropped and not self.config.suppress_envoy_headers:
            headers.add_lower(b"x-envoy-overloaded", 18, b"true", 4, HTTP1_HEADER_OTHER)
        return 0

    # --- stats

    cdef int charge_upstream_code(self, int code, HostImpl host) except -1:
        """Envoy's chargeUpstreamCode: upstream_rq_<code>, _<N>xx and
        _completed, in the cluster and its external. (or, for a request
        marked x-envoy-internal: true, internal.) scope."""
        cdef ClusterInfo info = self.cluster_info
        cdef int64_t *scope = info.internal_rq_status if self.internal_request \
            else info.external_rq_status
        charge_status_code(info.rq_status, code)
        info.stats[CLUSTER_UPSTREAM_RQ_COMPLETED] += 1
        charge_status_code(scope, code)
        scope[STATUS_EXTERNAL_COMPLETED] += 1
        if host is not None and 500 <= code < 600:
            host.stats[HOST_RQ_ERROR] += 1
        return 0

    cdef int charge_upstream_abort(self, int code, RouterUpstreamRequest ur) except -1:
        if self.downstream_response_started:
            return 0
        self.charge_upstream_code(code, ur.host)
        if ur.host is not None and not (500 <= code < 600):
            ur.host.stats[HOST_RQ_ERROR] += 1
        return 0

    # --- retries (Envoy's RetryStateImpl)

    cdef int would_retry_from_headers(self, int status, HttpHeaderMap headers) noexcept:
        cdef int on = self.retry_on
        # A response an upstream Envoy rate-limited is retried only under
        # envoy-ratelimited, whatever its status.
        if _router_find_header(headers, b"x-envoy-ratelimited") >= 0:
            return 1 if on & ROUTER_RETRY_ON_ENVOY_RATE_LIMITED else 0
        if on & ROUTER_RETRY_ON_5XX and 500 <= status < 600:
            return 1
        if on & ROUTER_RETRY_ON_GATEWAY_ERROR and 502 <= status <= 504:
            return 1
        if on & ROUTER_RETRY_ON_RETRIABLE_4XX and status == 409:
            return 1
        if on & ROUTER_RETRY_ON_RETRIABLE_STATUS_CODES and \
                self.route_entry.retry_policy.retriable_status(status):
            return 1
        return 0

    cdef int would_retry_from_reset(self, int reason, bint request_started) noexcept:
        cdef int on = self.retry_on
        if reason == HTTP_RESET_OVERFLOW:
            return 0
        if on & ROUTER_RETRY_ON_RESET_BEFORE_REQUEST and not request_started:
            return 1
        if on & (ROUTER_RETRY_ON_5XX | ROUTER_RETRY_ON_GATEWAY_ERROR | ROUTER_RETRY_ON_RESET):
            return 1
        if on & ROUTER_RETRY_ON_CONNECT_FAILURE and (
                reason == HTTP_RESET_CONNECTION_FAILURE or reason == HTTP_RESET_CONNECT_TIMEOUT):
            return 1
        return 0

    cdef int reset_retry(self) except -1:
        if self.retry_armed:
            self.retry_armed = False
            self.cluster_info.retries.dec()
        return 0

    cdef int should_retry(self, bint would_retry) except -1:
        """Envoy's RetryStateImpl::shouldRetry: counts the outcome of the
        previous retry, the limits, and schedules the next one (back-off)."""
        cdef ClusterInfo info = self.cluster_info
        cdef uint64_t backoff, delay
        if self.retry_armed and not would_retry:
            info.stats[CLUSTER_UPSTREAM_RQ_RETRY_SUCCESS] += 1
        self.reset_retry()
        if not would_retry:
            return ROUTER_RETRY_NO
        if self.retries_remaining == 0:
            info.stats[CLUSTER_UPSTREAM_RQ_RETRY_LIMIT_EXCEEDED] += 1
            return ROUTER_RETRY_NO_LIMIT_EXCEEDED
        self.retries_remaining -= 1
        if not info.retries.try_inc():
            info.stats[CLUSTER_UPSTREAM_RQ_RETRY_OVERFLOW] += 1
            return ROUTER_RETRY_NO_OVERFLOW
        self.retry_armed = True
        info.stats[CLUSTER_UPSTREAM_RQ_RETRY] += 1
        info.stats[CLUSTER_UPSTREAM_RQ_RETRY_BACKOFF_EXPONENTIAL] += 1
        # JitteredExponentialBackOffStrategy: random in [0, interval), the
        # interval doubling up to the max.
        backoff = self.backoff_next_ms
        self.backoff_next_ms = self.backoff_max_ms if backoff > self.backoff_max_ms // 2 else backoff * 2
        delay = self.dispatcher.random() % backoff
        if delay > self.backoff_max_ms:
            delay = self.backoff_max_ms
        if self.retry_timer is None:
            self.retry_timer = Timer.new(self.dispatcher, _router_on_retry_timer, self)
        self.retry_timer.enable(<double>delay / 1000.0)
        return ROUTER_RETRY_YES

    cdef int maybe_retry_reset(self, int reason, RouterUpstreamRequest ur) except -1:
        cdef int status
        if self.downstream_response_started or not self.retry_on or ur.retried:
            return 0
        status = self.should_retry(self.would_retry_from_reset(reason, ur.request_started))
        if status == ROUTER_RETRY_YES:
            self.pending_retries += 1
            if ur.host is not None:
                ur.host.stats[HOST_RQ_ERROR] += 1
            self.remove_upstream_request(ur)
            return 1
        if status == ROUTER_RETRY_NO_OVERFLOW:
            self.stream_info.set_response_flag(RF_UPSTREAM_OVERFLOW)
        elif status == ROUTER_RETRY_NO_LIMIT_EXCEEDED:
            self.stream_info.set_response_flag(RF_UPSTREAM_RETRY_LIMIT_EXCEEDED)
        return 0

    cdef int do_retry(self) except -1:
        """The back-off is over: a new attempt, on a host picked again."""
        cdef HostImpl host
        cdef RouterUpstreamRequest ur
        cdef OwnedBuffer copy
        cdef uint64_t elapsed = 0
        cdef RouterFilter keep = self
        if self.destroyed or self.pending_retries == 0:
            return 0
        self.is_retry = True
        self.attempt_count += 1
        self.stream_info.attempt_count = self.attempt_count
        self.pending_retries -= 1
        host = self.choose_host()
        if host is None:
            self.send_no_healthy_upstream()
            return self.cleanup()
        if self.request_complete_time >= 0:
            elapsed = <uint64_t>((self.dispatcher.now - self.request_complete_time) * 1000.0)
        self.set_timeout_headers(elapsed)
        if self.route_entry.attempt_count_in_request:
            self.set_attempt_count(self.downstream_headers)
        ur = self.start_upstream_request(
            host, not self.has_retry_buffer and self.downstream_trailers is None
            and self.downstream_end_stream)
        # The pool may have failed the attempt at once (and a retry be pending).
        if self.upstream_request is ur and not self.destroyed:
            if self.has_retry_buffer:
                copy = OwnedBuffer.new()
                _router_copy_buffer(self.retry_buffer, copy)
                ur.accept_data(copy, self.downstream_trailers is None and self.downstream_end_stream)
            if self.downstream_trailers is not None and self.upstream_request is ur:
                ur.accept_trailers(self.downstream_trailers)
        return 0

    # --- the attempt's outcome

    cdef int remove_upstream_request(self, RouterUpstreamRequest ur) except -1:
        if self.upstream_request is ur:
            self.upstream_request = None
        ur.release_downstream()
        ur.parent = None
        ur.pool = None
        ur.host = None
        ur.encoder = None           # its stream is over (or reset)
        ur.pending_trailers = None
        if ur.handle is None:
            self.spare_upstream_request = ur
        return 0

    cdef int on_upstream_1xx_headers(self, RouterUpstreamRequest ur, HttpHeaderMap headers) except -1:
        self.charge_upstream_code(headers.status, ur.host)
        self.downstream_response_started = True
        # No retry once a 1xx went downstream.
        self.reset_retry()
        self.retry_on = 0
        return self.decoder_callbacks.encode_1xx_headers(headers)

    cdef int on_upstream_headers(self, RouterUpstreamRequest ur, HttpHeaderMap headers,
                                 bint end_stream) except -1:
        cdef int status = headers.status
        cdef int rs
        cdef char buf[24]
        cdef size_t n
        cdef RouterFilter keep = self
        if self.retry_on and not ur.retried:
            rs = self.should_retry(self.would_retry_from_headers(status, headers))
            if rs == ROUTER_RETRY_YES:
                self.pending_retries += 1
                if ur.host is not None:
                    ur.host.stats[HOST_RQ_ERROR] += 1
                # The retried response counts under cluster.<c>.retry.
                charge_status_code(self.cluster_info.retry_rq_status, status)
                self.cluster_info.retry_rq_status[STATUS_EXTERNAL_COMPLETED] += 1
                if not end_stream or not ur.encode_complete:
                    ur.reset_stream()
                self.remove_upstream_request(ur)
                return 0
            if rs == ROUTER_RETRY_NO_OVERFLOW:
                self.stream_info.set_response_flag(RF_UPSTREAM_OVERFLOW)
            elif rs == ROUTER_RETRY_NO_LIMIT_EXCEEDED:
                self.stream_info.set_response_flag(RF_UPSTREAM_RETRY_LIMIT_EXCEEDED)
        # The response goes downstream: no more retries.
        self.reset_retry()
        self.retry_on = 0
        if status != 101 and self.downstream_headers is not None \
                and self.downstream_headers.get(HTTP1_HEADER_UPGRADE) >= 0:
            # An upgrade answered with anything but a 101 (observed on Envoy
            # 1.40): the upstream's response is dropped and its connection
            # closed; the client gets the status alone (empty body), and
            # nothing it sent after the request reaches an upstream as HTTP.
            self.charge_upstream_code(status, ur.host)
            ur.reset_stream()
            self.remove_upstream_request(ur)
            self.cleanup()
            return self.decoder_callbacks.send_local_reply(
                status, NULL, 0, 0, b"websocket_handshake_unsuccessful")
        if self.request_complete_time >= 0 and not self.config.suppress_envoy_headers:
            n = format_uint(
                <uint64_t>((self.dispatcher.now - self.request_complete_time) * 1000.0), buf)
            headers.set_id(HTTP1_HEADER_X_ENVOY_UPSTREAM_SERVICE_TIME, buf, n)
        self.charge_upstream_code(status, ur.host)
        if ur.host is not None and not (500 <= status < 600):
            ur.host.stats[HOST_RQ_SUCCESS] += 1
        self.stream_info.response_code_details = "via_upstream"
        self.route_entry.finalize_response_headers(headers, self.stream_info,
                                                   self.downstream_headers, self.route_random)
        if self.route_entry.attempt_count_in_response:
            self.set_attempt_count(headers)
        self.downstream_response_started = True
        if end_stream:
            self.on_upstream_complete(ur)
        return self.decoder_callbacks.encode_headers(headers, end_stream)

    cdef int on_upstream_data(self, RouterUpstreamRequest ur, OwnedBuffer data,
                              bint end_stream) except -1:
        cdef RouterFilter keep = self
        if end_stream:
            if not self.downstream_end_stream and self.stream_info.response_code == 101:
                # The upstream closed a tunnel: Envoy 1.40 logs it as a
                # reset after the response started (UC).
                self.stream_info.set_response_flag(RF_UPSTREAM_CONNECTION_TERMINATION)
                self.stream_info.response_code_details = \
                    "upstream_reset_after_response_started{connection_termination}"
            self.on_upstream_complete(ur)
        return self.decoder_callbacks.encode_data(data, end_stream)

    cdef int on_upstream_trailers(self, RouterUpstreamRequest ur, HttpHeaderMap trailers) except -1:
        cdef RouterFilter keep = self
        self.on_upstream_complete(ur)
        return self.decoder_callbacks.encode_trailers(trailers)

    cdef int on_upstream_complete(self, RouterUpstreamRequest ur) except -1:
        """The response has ended: upstream_rq_time (from the request's end),
        and the attempt is done. A request still arriving is cut: the
        connection cannot be reused mid-request."""
        cdef double ms
        cdef ClusterInfo info = self.cluster_info
        if not self.downstream_end_stream:
            ur.reset_stream()
        if self.request_complete_time >= 0:
            ms = (self.dispatcher.now - self.request_complete_time) * 1000.0
            hist_record(info.rq_time, ms)
            hist_record(info.internal_rq_time if self.internal_request else info.external_rq_time, ms)
        self.remove_upstream_request(ur)
        return self.cleanup()

    cdef int on_upstream_reset(self, RouterUpstreamRequest ur, int reason,
                               str transport_failure_reason) except -1:
        cdef bint dropped = reason == HTTP_RESET_OVERFLOW
        cdef int code
        cdef str reason_str, details, body
        if self.maybe_retry_reset(reason, ur):
            return 0
        code = 502 if reason == HTTP_RESET_PROTOCOL_ERROR else 503
        self.charge_upstream_abort(code, ur)
        self.remove_upstream_request(ur)
        if self.pending_retries > 0:
            return 0
        reason_str = _router_reset_reason_string(reason)
        # The body names the reset reason only; the details add the
        # transport failure (Envoy 1.40, observed).
        body = "upstream connect error or disconnect/reset before headers. %sreset reason: %s" % (
            "retried and the latest " if self.is_retry else "", reason_str)
        details = "%s{%s%s}" % (
            "upstream_reset_after_response_started" if self.downstream_response_started
            else "upstream_reset_before_response_started", reason_str,
            ("|" + transport_failure_reason) if transport_failure_reason else "")
        return self.on_upstream_abort(code, _router_reset_reason_flag(reason), body.encode(),
                                      dropped, details.replace(" ", "_"))

    cdef int on_per_try_timeout(self, RouterUpstreamRequest ur) except -1:
        cdef ClusterInfo info = self.cluster_info
        info.stats[CLUSTER_UPSTREAM_RQ_PER_TRY_TIMEOUT] += 1
        if ur.host is not None:
            ur.host.stats[HOST_RQ_TIMEOUT] += 1
        ur.reset_stream()
        if self.maybe_retry_reset(HTTP_RESET_LOCAL_RESET, ur):
            return 0
        self.charge_upstream_abort(self.timeout_response_code, ur)
        self.remove_upstream_request(ur)
        return self.on_upstream_timeout_abort(_RCD_PER_TRY_TIMEOUT)

    cdef int on_response_timeout(self) except -1:
        cdef RouterUpstreamRequest ur = self.upstream_request
        if self.destroyed:
            return 0
        if ur is not None:
            self.upstream_request = None
            self.cluster_info.stats[CLUSTER_UPSTREAM_RQ_TIMEOUT] += 1
            if ur.host is not None:
                ur.host.stats[HOST_RQ_TIMEOUT] += 1
            if ur.awaiting_headers:
                self.charge_upstream_abort(self.timeout_response_code, ur)
            ur.reset_stream()
            self.remove_upstream_request(ur)
        return self.on_upstream_timeout_abort(_RCD_RESPONSE_TIMEOUT)

    cdef int on_upstream_timeout_abort(self, str details) except -1:
        # 504 "upstream request timeout", or an empty 204 when the client
        # asked (x-envoy-upstream-rq-timeout-alt-response).
        return self.on_upstream_abort(
            self.timeout_response_code, RF_UPSTREAM_REQUEST_TIMEOUT,
            b"upstream request timeout" if self.timeout_response_code == 504 else b"",
            False, details)

    cdef int on_upstream_abort(self, int code, int flag, bytes body, bint dropped,
                               str details) except -1:
        """Envoy's onUpstreamAbort: a local reply, or a reset when the
        response has already started."""
        # The details may be made here (a reset's reason): the stream info
        # keeps them alive.
        cdef bytes d = details.encode()
        self.stream_info.response_code_details_storage = d
        self.stream_info.set_response_flag(flag)
        self.cleanup()
        if self.downstream_response_started:
            self.stream_info.response_code_details = d
            return self.decoder_callbacks.reset_stream()
        self.dropped = dropped
        return self.decoder_callbacks.send_local_reply(code, <const char *>body, len(body), flag, d)

    cdef int cleanup(self) except -1:
        """Envoy's cleanup(): no retry state, no route timeout."""
        self.reset_retry()
        if self.retry_timer is not None:
            self.retry_timer.disable()
        if self.response_timer is not None:
            self.response_timer.disable()
        return 0

    cdef int reset_all(self) except -1:
        cdef RouterUpstreamRequest ur = self.upstream_request
        if ur is not None:
            self.upstream_request = None
            ur.reset_stream()
            self.remove_upstream_request(ur)
        return 0

    cdef int on_downstream_watermark(self, bint above) except -1:
        # The downstream cannot take the response as fast: pause the
        # upstream connection's reads (and resume them).
        if self.upstream_request is not None:
            self.upstream_request.read_disable(above)
        return 0

    cdef int on_destroy(self) except -1:
        if self.destroyed:
            return 0
        self.destroyed = True
        self.reset_all()
        self.pending_retries = 0
        self.cleanup()
        self.retry_buffer.drain_all()
        self.downstream_watermarks.parent = None
        self.downstream_headers = None
        self.downstream_trailers = None
        self.route_entry = None
        self.cluster = None
        self.stream_info = None
        self.decoder_callbacks = None
        if self.config.spare_count < _ROUTER_MAX_SPARE:
            self.downstream_watermarks.parent = self
            self.next_spare = self.config.spare
            self.config.spare = self
            self.config.spare_count += 1
        else:
            # Timers hold this filter: drop them to cut the cycle.
            self.retry_timer = None
            self.response_timer = None
            self.spare_upstream_request = None
        return 0
