# HTTP stream filter base classes (see filter.pxd): defaults that pass
# everything on, so a filter overrides only what it handles.


cdef class HttpStreamFilterBase:

    cdef int on_destroy(self) except -1:
        return 0


cdef class HttpStreamDecoderFilter(HttpStreamFilterBase):

    cdef int set_decoder_filter_callbacks(self, HttpStreamDecoderFilterCallbacks callbacks) except -1:
        self.decoder_callbacks = callbacks
        return 0

    cdef int decode_headers(self, HttpHeaderMap headers, bint end_stream) except -1:
        return HTTP_FILTER_HEADERS_CONTINUE

    cdef int decode_data(self, OwnedBuffer data, bint end_stream) except -1:
        return HTTP_FILTER_DATA_CONTINUE

    cdef int decode_trailers(self, HttpHeaderMap trailers) except -1:
        return HTTP_FILTER_TRAILERS_CONTINUE

    cdef int modify_local_reply_headers(self, HttpHeaderMap headers) except -1:
        return 0


cdef class HttpStreamEncoderFilter(HttpStreamFilterBase):

    cdef int set_encoder_filter_callbacks(self, HttpStreamEncoderFilterCallbacks callbacks) except -1:
        self.encoder_callbacks = callbacks
        return 0

    cdef int encode_headers(self, HttpHeaderMap headers, bint end_stream) except -1:
        return HTTP_FILTER_HEADERS_CONTINUE

    cdef int encode_data(self, OwnedBuffer data, bint end_stream) except -1:
        return HTTP_FILTER_DATA_CONTINUE

    cdef int encode_trailers(self, HttpHeaderMap trailers) except -1:
        return HTTP_FILTER_TRAILERS_CONTINUE


cdef class HttpStreamFilterCallbacks:

    cdef ConnectionImpl connection(self):
        raise NotImplementedError

    cdef uint64_t stream_id(self) noexcept:
        return 0

    cdef int reset_stream(self) except -1:
        raise NotImplementedError

    cdef object clear_route_cache(self):
        raise NotImplementedError


cdef class HttpStreamDecoderFilterCallbacks(HttpStreamFilterCallbacks):

    cdef int continue_decoding(self) except -1:
        raise NotImplementedError

    cdef int encode_headers(self, HttpHeaderMap headers, bint end_stream) except -1:
        raise NotImplementedError

    cdef int encode_data(self, OwnedBuffer data, bint end_stream) except -1:
        raise NotImplementedError

    cdef int encode_trailers(self, HttpHeaderMap trailers) except -1:
        raise NotImplementedError

    cdef int encode_1xx_headers(self, HttpHeaderMap headers) except -1:
        raise NotImplementedError

    cdef int send_local_reply(self, int status, const char *body, size_t body_len,
                              int response_flag, const char *details) except -1:
        raise NotImplementedError

    cdef int on_decoder_filter_above_write_buffer_high_watermark(self) except -1:
        return 0

    cdef int on_decoder_filter_below_write_buffer_low_watermark(self) except -1:
        return 0

    cdef int add_downstream_watermark_callbacks(self, object callbacks) except -1:
        raise NotImplementedError

    cdef size_t decoder_buffer_limit(self) noexcept:
        return 0


cdef class HttpStreamEncoderFilterCallbacks(HttpStreamFilterCallbacks):

    cdef int continue_encoding(self) except -1:
        raise NotImplementedError

    cdef size_t encoder_buffer_limit(self) noexcept:
        return 0


cdef class HttpDownstreamWatermarkCallbacks:

    cdef int on_above_write_buffer_high_watermark(self) except -1:
        return 0

    cdef int on_below_write_buffer_low_watermark(self) except -1:
        return 0


cdef class HttpFilterFactory:

    cdef object create_filter(self):
        raise NotImplementedError
