# HTTP stream filter interfaces (Envoy envoy/http/filter.h).
#
# An HTTP filter chain belongs to one stream (HttpActiveStream in the
# connection manager). Decoder filters see the request in the order they are
# configured; encoder filters see the response in reverse order. The router
# (envoy.filters.http.router) is the last decoder filter: it takes the request
# upstream and answers through its callbacks' encode_*().
#
# Contracts:
# * set_decoder_filter_callbacks()/set_encoder_filter_callbacks() only store
#   the callbacks (once per stream, before any decode/encode call).
# * decode_headers(headers, end_stream) comes once; then decode_data() for
#   each piece of body (the buffer is the filter's to drain or move; what it
#   leaves is passed on, or buffered under STOP_ITERATION_AND_BUFFER up to
#   the connection's buffer limit, else 413), then decode_trailers() when the
#   request had trailers that are kept. end_stream marks the last call.
# * A filter that returns STOP_ITERATION resumes the chain with
#   callbacks.continue_decoding() / continue_encoding().
# * send_local_reply() answers the stream from the proxy itself (Envoy's
#   exact status, body, headers and response flag); the stream's remaining
#   decode calls are not made.
# * on_destroy() runs once when the stream ends, however it ends; after it
#   the filter makes no callback.

cdef enum HttpFilterHeadersStatus:
    HTTP_FILTER_HEADERS_CONTINUE = 0
    HTTP_FILTER_HEADERS_STOP_ITERATION = 1

cdef enum HttpFilterDataStatus:
    HTTP_FILTER_DATA_CONTINUE = 0
    HTTP_FILTER_DATA_STOP_ITERATION_AND_BUFFER = 1
    HTTP_FILTER_DATA_STOP_ITERATION_NO_BUFFER = 2

cdef enum HttpFilterTrailersStatus:
    HTTP_FILTER_TRAILERS_CONTINUE = 0
    HTTP_FILTER_TRAILERS_STOP_ITERATION = 1

# Why a stream was reset (Envoy's Http::StreamResetReason), for the router's
# "reset reason: ..." and access logs.
cdef enum HttpStreamResetReason:
    HTTP_RESET_LOCAL_RESET = 0
    HTTP_RESET_CONNECTION_FAILURE = 1       # "remote connection failure"
    HTTP_RESET_CONNECTION_TERMINATION = 2   # "connection termination"
    HTTP_RESET_OVERFLOW = 3                 # "overflow"
    HTTP_RESET_CONNECT_TIMEOUT = 4          # "connection timeout"
    HTTP_RESET_PROTOCOL_ERROR = 5           # "protocol error"
    HTTP_RESET_REMOTE_RESET = 6


cdef class HttpStreamDecoderFilterCallbacks
cdef class HttpStreamEncoderFilterCallbacks


cdef class HttpStreamFilterBase:
    cdef int on_destroy(self) except -1


cdef class HttpStreamDecoderFilter(HttpStreamFilterBase):
    cdef HttpStreamDecoderFilterCallbacks decoder_callbacks

    cdef int set_decoder_filter_callbacks(self, HttpStreamDecoderFilterCallbacks callbacks) except -1
    cdef int decode_headers(self, HttpHeaderMap headers, bint end_stream) except -1   # HttpFilterHeadersStatus
    cdef int decode_data(self, OwnedBuffer data, bint end_stream) except -1          # HttpFilterDataStatus
    cdef int decode_trailers(self, HttpHeaderMap trailers) except -1                 # HttpFilterTrailersStatus
    # Envoy's sendLocalReply modify_headers: the connection manager calls it
    # on the filter whose callbacks' send_local_reply() made the reply, with
    # the reply's headers, before they are encoded (the router adds
    # x-envoy-overloaded, a redirect's location, route response headers).
    cdef int modify_local_reply_headers(self, HttpHeaderMap headers) except -1


cdef class HttpStreamEncoderFilter(HttpStreamFilterBase):
    cdef HttpStreamEncoderFilterCallbacks encoder_callbacks

    cdef int set_encoder_filter_callbacks(self, HttpStreamEncoderFilterCallbacks callbacks) except -1
    cdef int encode_headers(self, HttpHeaderMap headers, bint end_stream) except -1
    cdef int encode_data(self, OwnedBuffer data, bint end_stream) except -1
    cdef int encode_trailers(self, HttpHeaderMap trailers) except -1


cdef class HttpStreamFilterCallbacks:
    """What every HTTP filter may ask of its stream (Envoy's StreamFilterCallbacks)."""
    cdef Dispatcher dispatcher
    cdef StreamInfoImpl stream_info
    cdef object route                   # the stream's route (router RouteEntry), None: no route

    cdef ConnectionImpl connection(self)
    cdef uint64_t stream_id(self) noexcept
    cdef int reset_stream(self) except -1
    cdef object clear_route_cache(self)


cdef class HttpStreamDecoderFilterCallbacks(HttpStreamFilterCallbacks):
    """A decoder filter's hold on its stream (Envoy's StreamDecoderFilterCallbacks)."""
    cdef int continue_decoding(self) except -1
    # The response, from the filter (the router relays the upstream's).
    cdef int encode_headers(self, HttpHeaderMap headers, bint end_stream) except -1
    cdef int encode_data(self, OwnedBuffer data, bint end_stream) except -1
    cdef int encode_trailers(self, HttpHeaderMap trailers) except -1
    cdef int encode_1xx_headers(self, HttpHeaderMap headers) except -1
    # A reply made by the proxy: Envoy's sendLocalReply. `body` may be NULL;
    # `details` is the response code details (access logs).
    cdef int send_local_reply(self, int status, const char *body, size_t body_len,
                              int response_flag, const char *details) except -1
    # Flow control: the filter's upstream is backed up (stop reading the
    # downstream) / drained again.
    cdef int on_decoder_filter_above_write_buffer_high_watermark(self) except -1
    cdef int on_decoder_filter_below_write_buffer_low_watermark(self) except -1
    # The downstream is backed up: tell this filter (router pauses upstream reads).
    cdef int add_downstream_watermark_callbacks(self, object callbacks) except -1
    cdef size_t decoder_buffer_limit(self) noexcept


cdef class HttpStreamEncoderFilterCallbacks(HttpStreamFilterCallbacks):
    cdef int continue_encoding(self) except -1
    cdef size_t encoder_buffer_limit(self) noexcept


cdef class HttpDownstreamWatermarkCallbacks:
    """Told when the downstream connection's write buffer crosses its
    watermarks (Envoy's DownstreamWatermarkCallbacks)."""
    cdef int on_above_write_buffer_high_watermark(self) except -1
    cdef int on_below_write_buffer_low_watermark(self) except -1


cdef class HttpFilterFactory:
    """Makes one stream's filter(s) (Envoy's FilterFactoryCb). Built once per
    HCM config in a worker from the filter's plan; create_filter() runs per
    stream and should reuse what it can."""
    cdef object create_filter(self)      # HttpStreamDecoderFilter and/or HttpStreamEncoderFilter
