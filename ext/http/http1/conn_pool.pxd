# The HTTP/1.1 upstream connection pool (Envoy source/common/http/http1/conn_pool.h,
# source/common/http/codec_client.h and the client half of
# source/common/http/http1/codec_impl.h).
#
# Http1ConnPoolImpl is a ConnPoolImplBase whose clients are reused: one
# request per connection at a time, the connection going back to READY (idle,
# still read-registered: an upstream FIN removes it at once) when the
# response ends, unless Envoy's shouldCloseConnection (`connection: close`,
# HTTP/1.0 without keep-alive, `proxy-connection: close`),
# max_requests_per_connection, a response before the request's end or a
# reset retire it. Made by ThreadLocalCluster.http1_conn_pool(host).
#
# Encoders are recycled: after its stream is over, an encoder nobody else
# references is used again for a later stream, so a caller may keep one as
# long as it likes (it is then never reused), but must not use it after the
# stream ended.
#
#   caller (router)                     pool / client
#   new_http_stream(callbacks, decoder) -> PendingStream (wait) or None
#   <- callbacks.on_pool_ready(encoder, host)   or on_pool_failure(reason, host)
#   encoder.encode_headers / encode_data / encode_trailers
#   <- decoder.decode_1xx_headers / decode_headers / decode_data / decode_trailers
#   <- decoder.on_reset_stream(HTTP_RESET_*)  (the stream ended without a full response)
#   encoder.reset_stream()                    (the caller abandons it: connection closed)
#
# After the response's last decode_* call (end_stream) or on_reset_stream the
# stream is over: the encoder is detached and its methods do nothing.
#
# Upgrades: a request with Upgrade and `Connection: upgrade` goes without
# framing headers; a 101 answer is decode_headers(end_stream=False), then the
# connection is a tunnel: upstream bytes come as decode_data, encode_data
# writes raw bytes, the upstream's close ends it with decode_data(end_stream)
# and the connection is never reused.
#
# Keep-alive race (beyond Envoy): a request that fails on a REUSED connection
# before any response byte arrives is sent again, once, on a fresh connection
# when that is safe (no body byte sent yet, or an idempotent method whose
# body is still held); the decoder hears nothing of the first try.

cdef class Http1ActiveClient
cdef class Http1ConnPoolImpl


cdef class HttpResponseDecoder:
    """The upstream response, heard by the caller's upstream request (Envoy's
    ResponseDecoder + StreamCallbacks). Maps passed in are the client's,
    reused for its next response: copy what must outlive the call."""
    cdef int decode_1xx_headers(self, HttpHeaderMap headers) except -1
    cdef int decode_headers(self, HttpHeaderMap headers, bint end_stream) except -1
    cdef int decode_data(self, OwnedBuffer data, bint end_stream) except -1     # drain/move it
    cdef int decode_trailers(self, HttpHeaderMap trailers) except -1      # with enable_trailers only
    # The stream ended without a complete response; reason: HttpStreamResetReason
    # (CONNECTION_TERMINATION, PROTOCOL_ERROR (-> 502 UPE), LOCAL_RESET ...).
    cdef int on_reset_stream(self, int reason) except -1
    # Flow control of the upstream connection's write side.
    cdef int on_above_write_buffer_high_watermark(self) except -1
    cdef int on_below_write_buffer_low_watermark(self) except -1


@cython.final
cdef class Http1RequestEncoder:
    """One request on a pooled connection (Envoy's RequestEncoder + Stream),
    handed over in HttpPoolCallbacks.on_pool_ready."""
    cdef Http1ActiveClient client       # None once the stream is over
    cdef Http1ConnPoolImpl pool
    cdef HttpPoolCallbacks callbacks    # until on_pool_ready / on_pool_failure
    cdef HttpResponseDecoder decoder
    cdef bint reused                    # the connection served a request before
    cdef int method                     # Http1Method of the request
    cdef bint chunked                   # the request body goes out chunked
    cdef bint upgrade                   # Upgrade + Connection: upgrade (body raw, 101 tunnels)
    cdef bint request_complete          # end_stream encoded
    cdef bint body_sent                 # a body byte went out
    cdef bint retried                   # the keep-alive race retry was used
    cdef bint retry_safe                # a retry may still be made
    cdef bint decode_complete           # the response's last decode_* call was made
    cdef Http1RequestEncoder next_spare  # the pool's list of finished encoders

    cdef void set_response_decoder(self, HttpResponseDecoder decoder) noexcept
    cdef int encode_headers(self, HttpHeaderMap headers, bint end_stream) except -1
    cdef int encode_data(self, OwnedBuffer data, bint end_stream) except -1
    cdef int encode_trailers(self, HttpHeaderMap trailers) except -1
    cdef int reset_stream(self) except -1       # abandon: the connection is closed, not reused
    cdef int read_disable(self, bint disable) except -1   # back-pressure from downstream
    cdef ConnectionImpl connection(self)        # for upstream addresses (access logs)
    cdef int _write(self, OwnedBuffer data, bint end_stream) except -1


cdef class HttpPoolCallbacks:
    """Envoy's Http::ConnectionPool::Callbacks. The decoder given to
    new_http_stream is set on the encoder before on_pool_ready."""
    cdef int on_pool_ready(self, Http1RequestEncoder encoder, HostImpl host) except -1
    cdef int on_pool_failure(self, int reason, HostImpl host) except -1   # PoolFailureReason


# Where the client codec is in the response.
cdef enum Http1ClientState:
    HTTP1_CLIENT_IDLE = 0               # no response expected: bytes from upstream are an error
    HTTP1_CLIENT_HEAD = 1               # the (next) head: Http1ResponseParser
    HTTP1_CLIENT_BODY = 2               # the body: Http1BodyDecoder
    HTTP1_CLIENT_TUNNEL = 3             # after a 101 to an upgrade: raw bytes both ways


@cython.final
cdef class _Http1ClientReadFilter(ReadFilter):
    cdef Http1ActiveClient client


@cython.final
cdef class _Http1ClientWatermarks(ConnectionCallbacks):
    cdef Http1ActiveClient client


@cython.final
cdef class Http1ActiveClient(ActiveClient):
    """One upstream HTTP/1.1 connection and its codec (Envoy's
    Http1::ActiveClient + CodecClient + ClientConnectionImpl)."""
    cdef Http1ConnPoolImpl pool         # kept past close (parent is cut then)
    cdef Http1RequestEncoder encoder    # the stream it serves; None when idle
    cdef HttpHeaderMap headers          # each response's head, reused
    cdef Http1ResponseParser parser     # the codec's (response_parser.pxd)
    cdef Http1BodyDecoder body_decoder  # its trailers map when enable_trailers
    cdef OwnedBuffer out                # request encoding scratch
    cdef OwnedBuffer body               # decoded body bytes not yet handed on
    cdef OwnedBuffer replay             # the request sent, while a retry may come
    cdef Timer idle_timer
    cdef int64_t requests_served        # streams attached so far
    cdef int read_disabled              # the stream's read_disable(True) count
    cdef int cstate                     # Http1ClientState
    cdef bint head_request
    cdef bint response_started          # a byte of this response arrived
    cdef bint close_after               # retire the connection after this response
    cdef bint reserved_retry            # opened for a keep-alive race retry

    cdef int init_codec(self, int max_headers, size_t max_head_kb, bint keep_trailers) except -1
    cdef void start_response(self) noexcept
    cdef int on_data(self, OwnedBuffer data, bint end_stream) except -1
    cdef int dispatch(self, OwnedBuffer data) except -1
    cdef int on_head(self, OwnedBuffer data, Http1RequestEncoder e) except -1
    cdef int flush_body(self, bint end_stream) except -1
    cdef int end_body(self, Http1RequestEncoder e) except -1
    cdef int on_response_complete(self, Http1RequestEncoder e) except -1
    cdef int on_protocol_error(self) except -1
    cdef int on_close(self, int event, int was) except -1


@cython.final
cdef class Http1ConnPoolImpl(ConnPoolImplBase):
    # Limits are read from the cluster (ClusterInfo) at each use.
    cdef size_t max_response_headers_kb
    cdef Http1RequestEncoder spare_head         # finished encoders, to reuse once
    cdef int spare_count                        # nobody else holds them

    # PendingStream (waiting) or None (attached at once, or failure told).
    # Cancel a waiting one with PendingStream.cancel().
    cdef PendingStream new_http_stream(self, HttpPoolCallbacks callbacks, HttpResponseDecoder decoder)
    cdef int on_client_idle(self, Http1ActiveClient client) except -1
    cdef int end_stream(self, Http1ActiveClient client, bint reusable) except -1
    cdef int retry_stream(self, Http1RequestEncoder encoder, OwnedBuffer replay) except -1
    cdef void spare(self, Http1RequestEncoder e)
    cdef int on_idle_timeout(self, Http1ActiveClient client) except -1

    @staticmethod
    cdef Http1ConnPoolImpl new(Dispatcher dispatcher, HostImpl host)
