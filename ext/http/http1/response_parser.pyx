# Http1ResponseParser (see response_parser.pxd).


@cython.final
cdef class Http1ResponseParser(Http1HeadParser):

    def __cinit__(self, *args, **kwargs):
        self.reset()        # the base's __cinit__ ran the base reset only

    cdef void reset(self) noexcept:
        Http1HeadParser.reset(self)
        self.status = 0
        self.reason_off = self.reason_len = 0
        self.drop_content_length = False

    cdef int _parse_head(self) noexcept:
        cdef const char *p = self.head
        cdef size_t i = self.request_start, eol, next_line, vend, start
        cdef int status
        if i:
            return self._error(502, HTTP1_DETAIL_CODEC_ERROR)   # no empty line before it
        # Status line: HTTP/d.d SP 3DIGIT [SP reason]
        eol = _http1_start_line_end(p, i, self.head_len, &next_line)
        vend = i
        while vend < eol and not _http1_ows(p[vend]):
            vend += 1
        self.version = _http1_parse_version(p, i, vend)
        if self.version < 0 or vend == eol:
            return self._error(502, HTTP1_DETAIL_CODEC_ERROR)
        # Status: digits, at least 100 (Envoy 1.40 relays 600 or 2000
        # too), then a reason without controls, possibly empty.
        i = _http1_skip_spaces(p, vend, eol)
        start = i
        status = 0
        while i < eol and 48 <= p[i] <= 57 and i - start < 9:
            status = status * 10 + (p[i] - 48)
            i += 1
        if status < 100 or (i < eol and not _http1_ows(p[i])):
            return self._error(502, HTTP1_DETAIL_CODEC_ERROR)
        self.status = status
        i = _http1_skip_spaces(p, i, eol)
        self.reason_off = <uint32_t>i
        self.reason_len = <uint32_t>(eol - i)
        while i < eol:
            if (<unsigned char>p[i] < 0x20 and p[i] != b'\t') or p[i] == 0x7f:
                return self._error(502, HTTP1_DETAIL_CODEC_ERROR)
            i += 1
        if self._parse_header_lines(next_line) != HTTP1_PARSE_DONE:
            return HTTP1_PARSE_ERROR
        if self.status < 200 or self.status == 204:
            # Envoy's client codec (strict 1xx and 204 headers): no
            # Transfer-Encoding; Content-Length only "0", then dropped.
            if self.header_index[<int>HTTP1_HEADER_TRANSFER_ENCODING] >= 0:
                return self._error(502, HTTP1_DETAIL_TE_NOT_ALLOWED)
            if self.content_length > 0:
                return self._error(502, HTTP1_DETAIL_CL_NOT_ALLOWED)
            if self.content_length == 0:
                self.drop_content_length = True
                self.content_length = -1
        if self._check_framing() != HTTP1_PARSE_DONE:
            self.error_status = 502
            return HTTP1_PARSE_ERROR
        return HTTP1_PARSE_DONE

    cdef int body_mode(self, bint request_was_head) noexcept:
        """RFC 9112 §6.3 as Envoy: no body after HEAD, 1xx, 204, 304; then
        chunked, Content-Length, else until the upstream closes."""
        if request_was_head or self.status < 200 or self.status == 204 or self.status == 304:
            return HTTP1_BODY_NONE
        if self.chunked:
            return HTTP1_BODY_CHUNKED
        if self.content_length >= 0:
            return HTTP1_BODY_CONTENT_LENGTH if self.content_length > 0 else HTTP1_BODY_NONE
        return HTTP1_BODY_UNTIL_CLOSE
