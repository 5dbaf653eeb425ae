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


cdef class HttpResponseDecoder:
    cdef int decode_1xx_headers(self, HttpHeaderMap headers) except -1:
        return 0
    cdef int decode_headers(self, HttpHeaderMap headers, bint end_stream) except -1:
        return 0
    cdef int decode_data(self, OwnedBuffer data, bint end_stream) except -1:
        return 0
    cdef int decode_trailers(self, HttpHeaderMap trailers) except -1:
        return 0
    cdef int on_reset_stream(self, int reason) except -1:
        return 0
    cdef int on_above_write_buffer_high_watermark(self) except -1:
        return 0
    cdef int on_below_write_buffer_low_watermark(self) except -1:
        return 0


@cython.final
cdef class Http1RequestEncoder:
    cdef void set_response_decoder(self, HttpResponseDecoder decoder) noexcept:
        pass
    cdef int encode_headers(self, HttpHeaderMap headers, bint end_stream) except -1:
        return 0
    cdef int encode_data(self, OwnedBuffer data, bint end_stream) except -1:
        return 0
    cdef int encode_trailers(self, HttpHeaderMap trailers) except -1:
        return 0
    cdef int reset_stream(self) except -1:
        return 0
    cdef int read_disable(self, bint disable) except -1:
        return 0
    cdef ConnectionImpl connection(self):
        return None


cdef class HttpPoolCallbacks:
    cdef int on_pool_ready(self, Http1RequestEncoder encoder, HostImpl host) except -1:
        return 0
    cdef int on_pool_failure(self, int reason, HostImpl host) except -1:
        return 0


@cython.final
cdef class Http1ConnPoolImpl(ConnPoolImplBase):
    cdef PendingStream new_http_stream(self, HttpPoolCallbacks callbacks, HttpResponseDecoder decoder):
        return None


cdef Http1ConnPoolImpl _stub_http1_conn_pool(ThreadLocalCluster cluster, HostImpl host):
    return None


cdef int64_t _stub_hcm_stats[16]

cdef int64_t *http_conn_manager_stats(HttpStreamFilterCallbacks callbacks) noexcept:
    return _stub_hcm_stats
