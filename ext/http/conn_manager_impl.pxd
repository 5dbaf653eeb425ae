# The HTTP connection manager (Envoy source/common/http/conn_manager_impl.h,
# with the HTTP/1 server codec of http1/codec_impl.h folded in): a network
# ReadFilter that parses HTTP/1.1 requests off one downstream connection,
# runs each through the HTTP filter chain (ext/http/filter.pxd) and writes
# the responses back, in order.
#
# Contracts:
# * One HttpConnectionManagerImpl per downstream connection; one
#   HttpActiveStream per connection, reused for each request (pipelined
#   requests run one at a time: the next is not parsed until the current
#   response is complete). Filter wrappers are made once per connection; the
#   filters themselves come from their factories per stream.
# * Decoder filters run in configured order, encoder filters in reverse; a
#   filter that stops resumes the chain with continue_decoding() /
#   continue_encoding(). Data a filter buffers is held up to the
#   connection's buffer limit (then 413).
# * The response reaches the connection as it is encoded (ConnectionImpl
#   queues the writes of one loop turn into one writev).
# * A stream ends when its response is complete (or it is reset): filters
#   get on_destroy() then, synchronously; the next pipelined request starts
#   from a zero-delay timer, never inside a filter's call.
# * Protocol errors, HTTP/1.0 without accept_http_10, a missing Host and an
#   unconfigured Upgrade are answered by the connection manager itself
#   (Envoy's bodies and headers, connection: close); nothing after them on
#   that connection is processed, and the connection closes after
#   delayed_close_timeout unless the client closes first.

cdef enum:  # HttpConnManagerStat: offsets in an HCM's stats block ("http.<stat_prefix>."; names: HTTP_CONN_MANAGER_STATS)
    HTTP_DOWNSTREAM_CX_ACTIVE
    HTTP_DOWNSTREAM_CX_DELAYED_CLOSE_TIMEOUT
    HTTP_DOWNSTREAM_CX_DESTROY
    HTTP_DOWNSTREAM_CX_DESTROY_ACTIVE_RQ
    HTTP_DOWNSTREAM_CX_DESTROY_LOCAL
    HTTP_DOWNSTREAM_CX_DESTROY_LOCAL_ACTIVE_RQ
    HTTP_DOWNSTREAM_CX_DESTROY_REMOTE
    HTTP_DOWNSTREAM_CX_DESTROY_REMOTE_ACTIVE_RQ
    HTTP_DOWNSTREAM_CX_DRAIN_CLOSE
    HTTP_DOWNSTREAM_CX_HTTP1_ACTIVE
    HTTP_DOWNSTREAM_CX_HTTP1_SOFT_DRAIN
    HTTP_DOWNSTREAM_CX_HTTP1_TOTAL
    HTTP_DOWNSTREAM_CX_HTTP2_ACTIVE
    HTTP_DOWNSTREAM_CX_HTTP2_TOTAL
    HTTP_DOWNSTREAM_CX_HTTP3_ACTIVE
    HTTP_DOWNSTREAM_CX_HTTP3_TOTAL
    HTTP_DOWNSTREAM_CX_IDLE_TIMEOUT
    HTTP_DOWNSTREAM_CX_MAX_DURATION_REACHED
    HTTP_DOWNSTREAM_CX_MAX_REQUESTS_REACHED
    HTTP_DOWNSTREAM_CX_OVERLOAD_DISABLE_KEEPALIVE
    HTTP_DOWNSTREAM_CX_PROTOCOL_ERROR
    HTTP_DOWNSTREAM_CX_RX_BYTES_BUFFERED
    HTTP_DOWNSTREAM_CX_RX_BYTES_TOTAL
    HTTP_DOWNSTREAM_CX_SSL_ACTIVE
    HTTP_DOWNSTREAM_CX_SSL_TOTAL
    HTTP_DOWNSTREAM_CX_TOTAL
    HTTP_DOWNSTREAM_CX_TX_BYTES_BUFFERED
    HTTP_DOWNSTREAM_CX_TX_BYTES_TOTAL
    HTTP_DOWNSTREAM_CX_UPGRADES_ACTIVE
    HTTP_DOWNSTREAM_CX_UPGRADES_TOTAL
    HTTP_DOWNSTREAM_FLOW_CONTROL_PAUSED_READING_TOTAL
    HTTP_DOWNSTREAM_FLOW_CONTROL_RESUMED_READING_TOTAL
    HTTP_DOWNSTREAM_RQ_1XX
    HTTP_DOWNSTREAM_RQ_2XX
    HTTP_DOWNSTREAM_RQ_3XX
    HTTP_DOWNSTREAM_RQ_4XX
    HTTP_DOWNSTREAM_RQ_5XX
    HTTP_DOWNSTREAM_RQ_ACTIVE
    HTTP_DOWNSTREAM_RQ_COMPLETED
    HTTP_DOWNSTREAM_RQ_FAILED_PATH_NORMALIZATION
    HTTP_DOWNSTREAM_RQ_HEADER_TIMEOUT
    HTTP_DOWNSTREAM_RQ_HTTP1_TOTAL
    HTTP_DOWNSTREAM_RQ_HTTP2_TOTAL
    HTTP_DOWNSTREAM_RQ_HTTP3_TOTAL
    HTTP_DOWNSTREAM_RQ_IDLE_TIMEOUT
    HTTP_DOWNSTREAM_RQ_MAX_DURATION_REACHED
    HTTP_DOWNSTREAM_RQ_NON_RELATIVE_PATH
    HTTP_DOWNSTREAM_RQ_OVERLOAD_CLOSE
    HTTP_DOWNSTREAM_RQ_REDIRECTED_WITH_NORMALIZED_PATH
    HTTP_DOWNSTREAM_RQ_REJECTED_VIA_IP_DETECTION
    HTTP_DOWNSTREAM_RQ_RESPONSE_BEFORE_RQ_COMPLETE
    HTTP_DOWNSTREAM_RQ_RX_RESET
    HTTP_DOWNSTREAM_RQ_TIMEOUT
    HTTP_DOWNSTREAM_RQ_TOO_LARGE
    HTTP_DOWNSTREAM_RQ_TOO_MANY_PREMATURE_RESETS
    HTTP_DOWNSTREAM_RQ_TOTAL
    HTTP_DOWNSTREAM_RQ_TX_RESET
    HTTP_DOWNSTREAM_RQ_WS_ON_NON_WS_ROUTE
    HTTP_NO_CLUSTER
    HTTP_NO_ROUTE
    HTTP_PASSTHROUGH_INTERNAL_REDIRECT_BAD_LOCATION
    HTTP_PASSTHROUGH_INTERNAL_REDIRECT_NO_ROUTE
    HTTP_PASSTHROUGH_INTERNAL_REDIRECT_PREDICATE
    HTTP_PASSTHROUGH_INTERNAL_REDIRECT_TOO_MANY_REDIRECTS
    HTTP_PASSTHROUGH_INTERNAL_REDIRECT_UNSAFE_SCHEME
    HTTP_RQ_DIRECT_RESPONSE
    HTTP_RQ_OVERLOAD_LOCAL_REPLY
    HTTP_RQ_REDIRECT
    HTTP_RQ_RESET_AFTER_DOWNSTREAM_RESPONSE_STARTED
    HTTP_RQ_TOTAL
    HTTP_RS_TOO_LARGE
    HTTP_TRACING_CLIENT_ENABLED
    HTTP_TRACING_HEALTH_CHECK
    HTTP_TRACING_NOT_TRACEABLE
    HTTP_TRACING_RANDOM_SAMPLING
    HTTP_TRACING_SERVICE_FORCED
    HTTP_STATS_COUNT

cdef enum:  # HttpListenerStat: offsets in an HCM's per-listener block (names: HTTP_LISTENER_STATS)
    HTTP_LISTENER_DOWNSTREAM_RQ_1XX
    HTTP_LISTENER_DOWNSTREAM_RQ_2XX
    HTTP_LISTENER_DOWNSTREAM_RQ_3XX
    HTTP_LISTENER_DOWNSTREAM_RQ_4XX
    HTTP_LISTENER_DOWNSTREAM_RQ_5XX
    HTTP_LISTENER_DOWNSTREAM_RQ_COMPLETED
    HTTP_LISTENER_STATS_COUNT

cdef enum HttpDrainState:
    HTTP_DRAIN_NOT_DRAINING = 0
    HTTP_DRAIN_DRAINING = 1         # responses say connection: close; closes at drain_timeout
    HTTP_DRAIN_CLOSING = 2          # the current response is the last: connection: close

cdef class HttpConnectionManagerImpl
cdef class HttpActiveStream


@cython.final
cdef class HttpConnectionManagerConfig(NetworkFilterFactory):
    """One http_connection_manager of a filter chain, built in a worker from
    its HttpConnectionManagerPlan (Envoy's HttpConnectionManagerConfig)."""
    cdef str stat_prefix
    cdef int64_t *stats             # HttpConnManagerStat block
    cdef int64_t *rq_time_hist      # downstream_rq_time; NULL: not recorded
    cdef int64_t *cx_length_hist    # downstream_cx_length_ms; NULL: not recorded
    cdef int64_t *listener_stats    # HttpListenerStat block (no_listener_stats if none)
    cdef int64_t no_listener_stats[HTTP_LISTENER_STATS_COUNT]
    cdef Worker worker              # its draining flag; None (tests): see draining
    cdef bint draining              # set by start_drain(): every response closes
    cdef HttpConnectionManagerImpl live_managers    # for drain (intrusive list)
    # Managers chained by next_free (no list to grow and shrink): closed
    # ones, recycled or their cycles cut at the next connection, and those
    # ready for a new connection (recycle()).
    cdef HttpConnectionManagerImpl closed_managers
    cdef HttpConnectionManagerImpl free_managers
    cdef Py_ssize_t free_managers_len
    cdef list filter_factories      # HttpFilterFactory, configured order
    cdef object route_config        # RouteConfigImpl, or None (no route: 404)
    cdef bytes server_name
    cdef int server_header_transformation
    cdef bint use_remote_address
    cdef bytes internal_ranges      # internal_address_config: n x 18 bytes (family 4/6, prefix, address)
    cdef int n_internal_ranges
    cdef int strip_port             # STRIP_PORT_* (http_connection_manager_plan.py)
    cdef bint strip_trailing_host_dot
    cdef bint append_x_forwarded_port
    cdef list internal_only_headers # bytes, lower-case (the route config's)
    cdef bint skip_xff_append
    cdef int xff_num_trusted_hops
    cdef bint generate_request_id
    cdef bint preserve_external_request_id
    cdef bint always_set_request_id_in_response
    cdef int max_request_headers_kb
    cdef int max_headers_count
    cdef int headers_with_underscores_action
    cdef double idle_timeout        # 0: off (all timeouts)
    cdef double max_connection_duration
    cdef int max_requests_per_connection    # 0: no limit
    cdef double stream_idle_timeout
    cdef double request_timeout
    cdef double max_stream_duration
    cdef double request_headers_timeout
    cdef double delayed_close_timeout
    cdef double drain_timeout
    cdef bint accept_http_10
    cdef bytes default_host_for_http_10
    cdef bint enable_trailers
    cdef frozenset upgrade_types    # bytes, lower-case: upgrade_configs enabled
    cdef bint proxy_100_continue
    cdef bytes via
    cdef bytes local_address_v4     # the proxy's first non-loopback IPv4 (x-forwarded-for)
    cdef list access_loggers        # envoy_fast.accesslog loggers; None: no logging
    cdef bint needs_addresses       # stream info carries the connection's addresses

    cdef int start_drain(self) except -1


@cython.final
cdef class HttpActiveStreamDecoderFilter(HttpStreamDecoderFilterCallbacks):
    """A decoder filter's place in its stream's chain (Envoy's
    ActiveStreamDecoderFilter); made once per connection and position."""
    cdef HttpActiveStream stream
    cdef HttpStreamDecoderFilter filter
    cdef int index
    cdef bint headers_continued     # headers passed on past this filter
    cdef bint end_stream            # this filter has seen the request's end


@cython.final
cdef class HttpActiveStreamEncoderFilter(HttpStreamEncoderFilterCallbacks):
    """An encoder filter's place in its stream's chain."""
    cdef HttpActiveStream stream
    cdef HttpStreamEncoderFilter filter
    cdef int index                  # in encode order (last configured first)
    cdef bint headers_continued
    cdef bint end_stream


@cython.final
cdef class HttpActiveStream:
    """The request/response in progress on a connection (Envoy's
    ConnectionManagerImpl::ActiveStream plus its FilterManager)."""
    cdef HttpConnectionManagerImpl hcm
    cdef HttpConnectionManagerConfig config
    cdef uint64_t stream_id
    cdef bint active                # between request head and stream end
    cdef HttpHeaderMap request_headers
    cdef HttpHeaderMap request_trailers     # None until a request has kept trailers
    cdef HttpHeaderMap local_headers        # a local reply's headers (made on first use)
    cdef HttpHeaderMap response_headers     # what was encoded (the filter's map), until the end
    cdef HttpStreamDecoderFilter local_reply_filter     # whose send_local_reply() is running
    cdef StreamInfoImpl stream_info
    cdef object route               # RouteEntryImpl or None
    cdef list decoder_filters       # HttpActiveStreamDecoderFilter
    cdef list encoder_filters       # HttpActiveStreamEncoderFilter, encode order
    cdef list watermark_callbacks   # HttpDownstreamWatermarkCallbacks: the first n_... are this stream's
    cdef Py_ssize_t n_watermark_callbacks   # (the list keeps its room: no allocation per request)
    cdef OwnedBuffer buffered_request       # held by a stopped decoder filter
    cdef OwnedBuffer buffered_response      # held by a stopped encoder filter
    cdef OwnedBuffer body           # one piece of request body on its way in
    cdef OwnedBuffer local_body     # a local reply's body
    # request state
    cdef int version                # Http1Version of the request
    cdef bint is_head
    cdef bint saw_connection_close  # the client asked to close (or HTTP/1.0)
    cdef bint remote_complete       # the whole request has been read
    cdef bint force_trace           # an internal request kept x-envoy-force-trace
    cdef bint decoding_done         # end_stream reached the last decoder filter
    cdef bint has_trailers          # request trailers kept (enable_trailers)
    cdef bint filters_created       # this stream's filters exist (after the head checks)
    cdef bytes upgrade_type         # Upgrade of a request with `connection: upgrade`, lower-case; None: none
    cdef bint upgrade               # an allowed upgrade: after the head, the bytes are the new protocol's
    # response state
    cdef bint local_reply_sent      # send_local_reply ran (no second one)
    cdef bint response_started      # headers encoded to the connection
    cdef bint local_complete        # the response's end was written
    cdef bint chunk_encoding        # the response body goes chunked
    cdef bint no_response_body      # HEAD, 204, 304: body dropped
    cdef int response_status
    # timing
    cdef double start_time          # head began (monotonic)
    cdef double last_activity       # for stream_idle_timeout
    cdef double idle_timeout        # stream_idle_timeout, or the route's

    cdef int begin_partial(self) except -1
    cdef int check_request_head(self) except -1
    cdef bint upgrade_allowed(self)
    cdef int refresh_cached_route(self) except -1
    cdef int mutate_request_headers(self) except -1
    cdef int set_remote_address(self) except -1
    cdef int create_filter_chain(self) except -1
    cdef int decode_headers(self, int start, bint end_stream) except -1
    cdef int decode_data(self, int start, OwnedBuffer data, bint end_stream) except -1
    cdef int decode_trailers(self, int start) except -1
    cdef int continue_decoding(self, HttpActiveStreamDecoderFilter f) except -1
    cdef int encode_headers(self, int start, HttpHeaderMap headers, bint end_stream) except -1
    cdef int encode_data(self, int start, OwnedBuffer data, bint end_stream) except -1
    cdef int encode_trailers(self, int start, HttpHeaderMap trailers) except -1
    cdef int continue_encoding(self, HttpActiveStreamEncoderFilter f) except -1
    cdef int encode_1xx_headers(self, HttpHeaderMap headers) except -1
    cdef int send_local_reply(self, int status, const char *body, size_t body_len,
                              int response_flag, const char *details) except -1
    cdef int buffer_request_data(self, OwnedBuffer data) except -1
    cdef int on_timeout(self, int status, const char *body, int stat,
                        int flag, const char *details) except -1
    cdef int reset_stream(self) except -1
    cdef int end_stream(self) except -1
    cdef int log(self) except -1


@cython.final
cdef class _HttpConnManagerConnectionCallbacks(ConnectionCallbacks):
    cdef HttpConnectionManagerImpl parent


@cython.final
cdef class HttpConnectionManagerImpl(ReadFilter):
    """One downstream connection's HTTP (Envoy's ConnectionManagerImpl +
    Http1::ServerConnectionImpl)."""
    cdef HttpConnectionManagerConfig config
    cdef Dispatcher dispatcher
    cdef ConnectionImpl connection
    cdef HttpConnectionManagerImpl next_free    # the config's closed / free chain
    cdef HttpConnectionManagerImpl live_prev    # the config's live managers
    cdef HttpConnectionManagerImpl live_next
    cdef _HttpConnManagerConnectionCallbacks connection_callbacks
    cdef Http1RequestParser parser
    cdef Http1BodyDecoder body_decoder
    cdef HttpActiveStream stream
    cdef OwnedBuffer out            # response bytes on their way to the connection
    cdef int drain_state            # HttpDrainState
    cdef bint closing               # nothing more is processed (error, close-after)
    cdef bint read_paused           # we read-disabled the downstream (pipelining)
    cdef int flow_paused            # decoder filters' upstream back-ups
    cdef int accumulated_requests
    cdef double created
    cdef bint dispatching           # inside dispatch(): a stream end needs no resume timer
    cdef char peer_ip[48]           # the downstream peer's address, as text (made for use_remote_address)
    cdef size_t peer_ip_len
    cdef bint peer_loopback
    cdef bint peer_internal         # in internal_address_config's ranges
    cdef int local_port             # the connection's own port (strip_matching_host_port,
                                    # append_x_forwarded_port); -1
    cdef bytes xff_key              # the last x-forwarded-for seen, and the
    cdef str xff_address            # remote address it gave (reused while equal)
    cdef double head_start          # first byte of the request head; 0: none pending
    cdef double idle_since          # last stream end (connection idle timeout); 0: busy
    cdef Timer idle_timer           # connection idle_timeout
    cdef Timer stream_idle_timer    # stream_idle_timeout (checks last_activity)
    cdef Timer request_timer        # request_timeout
    cdef Timer max_stream_timer     # common_http_protocol_options.max_stream_duration
    cdef Timer headers_timer        # request_headers_timeout
    cdef Timer duration_timer       # max_connection_duration
    cdef Timer delayed_close_timer
    cdef Timer resume_timer         # next pipelined request, after a stream ends
    cdef Timer drain_timer          # drain_timeout after the drain sequence starts

    cdef int create_connection_objects(self) except -1
    cdef int dispatch(self) except -1
    cdef bint recycle(self) except -1
    cdef int release(self) except -1
    cdef int on_head(self) except -1
    cdef int decode_body(self, OwnedBuffer data) except -1
    cdef int send_protocol_error(self, int status, const char *details) except -1
    cdef int write_response_head(self, HttpActiveStream s, HttpHeaderMap headers,
                                 bint end_stream) except -1
    cdef int write_response_data(self, HttpActiveStream s, OwnedBuffer data,
                                 bint end_stream) except -1
    cdef int write_response_trailers(self, HttpActiveStream s, HttpHeaderMap trailers) except -1
    cdef int on_stream_end(self, HttpActiveStream s) except -1
    cdef int resume_dispatch(self) except -1
    cdef int start_drain(self) except -1
    cdef int start_drain_sequence(self) except -1
    cdef int on_drain_timeout(self) except -1
    cdef bint bytes_pending(self)
    cdef int close_after_response(self, bint client_asked=*) except -1
    cdef int on_event(self, int event) except -1
    cdef int on_idle_timeout(self) except -1
    cdef int on_stream_idle_timeout(self) except -1
    cdef int on_request_timeout(self) except -1
    cdef int on_max_stream_duration(self) except -1
    cdef bint stream_timer_due(self, Timer timer, double t, bint until_request_end) except -1
    cdef int on_headers_timeout(self) except -1
    cdef int on_max_duration(self) except -1
    cdef int on_delayed_close(self) except -1
    cdef void disable_timers(self)
    cdef void drop_timers(self)


cdef int64_t *http_conn_manager_stats(HttpStreamFilterCallbacks callbacks) noexcept
