# Test hooks for the HTTP/1 codec pieces (response parser, body decoder,
# encoders): Python views built outside the cdef paths they exercise.

cdef tuple _HTTP1_BODY_STATUS_FOR_TEST = ("need_more", "done", "error")
cdef dict _HTTP1_VERSION_FOR_TEST = {HTTP1_VERSION_09: "HTTP/0.9", HTTP1_VERSION_10: "HTTP/1.0",
                                     HTTP1_VERSION_11: "HTTP/1.1"}
cdef tuple _HTTP1_TARGET_FORM_FOR_TEST = ("origin", "asterisk", "absolute", "authority")
cdef tuple _HTTP1_BODY_MODE_FOR_TEST = ("none", "content_length", "chunked", "until_close")


cdef dict _http1_head_for_test(Http1HeadParser p):
    """The fields every head has, copied out of the parser."""
    cdef Http1Header *h
    cdef int i
    head = p.head[:p.head_len]
    headers = []
    underscore = []
    for i in range(p.header_count):
        h = &p.headers[i]
        headers.append((head[h.name_off:h.name_off + h.name_len],
                        head[h.value_off:h.value_off + h.value_len],
                        _HTTP1_HEADER_ID_NAMES_FOR_TEST[h.id]))
        if h.flags & HTTP1_HEADER_FLAG_UNDERSCORE:
            underscore.append(i)
    return {"version": _HTTP1_VERSION_FOR_TEST[p.version],
            "headers": headers,
            "underscore": underscore,
            "content_length": p.content_length if p.content_length >= 0 else None,
            "chunked": bool(p.chunked),
            "connection": (bool(p.conn_close), bool(p.conn_keep_alive), bool(p.conn_upgrade)),
            "keep_alive": bool(p.keep_alive()),
            "expect_continue": bool(p.expect_continue),
            "head_len": p.head_len}


cdef dict _http1_request_for_test(Http1RequestParser p):
    cdef dict r = _http1_head_for_test(p)
    cdef HttpHeaderMap m = HttpHeaderMap()
    head = p.head[:p.head_len]
    r["method"] = _HTTP1_METHOD_NAMES[p.method].decode()
    r["target"] = head[p.target_off:p.target_off + p.target_len]
    r["target_form"] = _HTTP1_TARGET_FORM_FOR_TEST[p.target_form]
    r["missing_host"] = bool(p.missing_host())
    r["body_mode"] = _HTTP1_BODY_MODE_FOR_TEST[p.body_mode()]
    if p.target_form == HTTP1_TARGET_ABSOLUTE:
        r["url"] = ("https" if p.url_https else "http",
                    head[p.url_host_off:p.url_host_off + p.url_host_len],
                    head[p.url_path_off:p.url_path_off + p.url_path_len])
    # what the HCM would hold (absolute-form applied)
    m.load_request(p)
    r["map_path"] = m.buf[m.path_off:m.path_off + m.path_len]
    r["map_headers"] = m.items_for_test()
    return r


cdef class _Http1HeadParserForTest:
    """A head parser over its own OwnedBuffer. feed(data) appends and
    parses: "need_more", ("error", status, detail) or, once the head is
    complete, a dict of the parsed fields (bytes copied out for the test)."""
    cdef Http1HeadParser parser
    cdef OwnedBuffer buffer

    cdef dict _fields(self, bint request_was_head):
        return {}

    def feed(self, data, bint request_was_head=False):
        cdef Http1HeadParser p = self.parser
        self.buffer.append(data)
        rc = p.parse(self.buffer)
        if rc == HTTP1_PARSE_NEED_MORE:
            return "need_more"
        if rc == HTTP1_PARSE_ERROR:
            return ("error", p.error_status, p.error_detail.decode())
        return self._fields(request_was_head)

    def parse_repeat(self, data, int n):
        """Parse the head `data` n times (reset between): the cdef path
        alone, for timing. Returns the last status."""
        cdef int i, rc = HTTP1_PARSE_NEED_MORE
        self.buffer.drain_all()
        self.buffer.append(data)
        for i in range(n):
            self.parser.reset()
            rc = self.parser.parse(self.buffer)
        return rc

    def next_message(self):
        """Drain the parsed head and reset for the next one (pipelining)."""
        self.buffer.drain(self.parser.head_len)
        self.parser.reset()


cdef dict _http1_response_for_test(Http1ResponseParser p, bint request_was_head):
    cdef HttpHeaderMap m = HttpHeaderMap()
    cdef dict r = _http1_head_for_test(p)
    r["status"] = p.status
    r["reason"] = p.head[p.reason_off:p.reason_off + p.reason_len]
    r["body_mode"] = _HTTP1_BODY_MODE_FOR_TEST[p.body_mode(request_was_head)]
    m.load_response(p)
    r["map_headers"] = m.items_for_test()
    return r


@cython.final
cdef class Http1RequestParserForTest(_Http1HeadParserForTest):

    def __init__(self, size_t max_request_headers_kb=HTTP1_MAX_HEADERS_KB,
                 int max_headers_count=HTTP1_MAX_HEADERS_COUNT):
        self.parser = Http1RequestParser(max_request_headers_kb, max_headers_count)
        self.buffer = OwnedBuffer.new()

    cdef dict _fields(self, bint request_was_head):
        cdef Http1RequestParser p = <Http1RequestParser>self.parser
        cdef dict r = _http1_head_for_test(p)
        cdef dict full = _http1_request_for_test(p)
        head = p.head[:p.head_len]
        return {"method": _HTTP1_METHOD_NAMES[p.method].decode(),
                "target": head[p.target_off:p.target_off + p.target_len],
                "version": r["version"],
                "headers": r["headers"],
                "known": {_HTTP1_HEADER_ID_NAMES_FOR_TEST[k]: p.header_index[k]
                          for k in range(1, HTTP1_HEADER_COUNT)
                          if p.header_index[k] >= 0},
                "content_length": r["content_length"],
                "chunked": r["chunked"],
                "head_len": p.head_len,
                "buffered": self.buffer.length(),
                "map_path": full["map_path"],
                "map_headers": full["map_headers"]}


@cython.final
cdef class Http1ResponseParserForTest(_Http1HeadParserForTest):

    def __init__(self, size_t max_request_headers_kb=HTTP1_MAX_HEADERS_KB,
                 int max_headers_count=HTTP1_MAX_HEADERS_COUNT):
        self.parser = Http1ResponseParser(max_request_headers_kb, max_headers_count)
        self.buffer = OwnedBuffer.new()

    cdef dict _fields(self, bint request_was_head):
        return _http1_response_for_test(<Http1ResponseParser>self.parser, request_was_head)


@cython.final
cdef class Http1MessageStreamForTest:
    """A connection's worth of HTTP/1 messages in one direction, decoded the
    way the HCM / upstream codec will: head parser -> HttpHeaderMap, drain
    the head, Http1BodyDecoder for the body, next head. feed(data) returns
    the messages completed so far (each a dict with "head", "body" and
    "trailers") and, after an error, ("error", status, detail) last.
    `heads` (responses only): which requests were HEAD, in order."""
    cdef bint is_request
    cdef Http1RequestParser req
    cdef Http1ResponseParser resp
    cdef Http1BodyDecoder body
    cdef OwnedBuffer input
    cdef OwnedBuffer output
    cdef object current             # the message being decoded (dict) or None
    cdef object heads
    cdef bint failed
    cdef public int max_body_buffered       # largest output seen (streaming check)

    def __init__(self, bint is_request=True, bint keep_trailers=False, heads=(),
                 size_t max_headers_kb=HTTP1_MAX_HEADERS_KB,
                 int max_headers_count=HTTP1_MAX_HEADERS_COUNT):
        self.is_request = is_request
        self.req = Http1RequestParser(max_headers_kb, max_headers_count)
        self.resp = Http1ResponseParser(max_headers_kb, max_headers_count)
        self.body = Http1BodyDecoder(keep_trailers, max_headers_kb, max_headers_count)
        self.input = OwnedBuffer.new()
        self.output = OwnedBuffer.new()
        self.current = None
        self.heads = list(heads)
        self.failed = False
        self.max_body_buffered = 0

    def feed(self, data, bint discard_body=False):
        """Append `data` and decode. discard_body: drop body bytes as they
        come (count them only), for very large bodies."""
        cdef list out = []
        cdef int rc
        cdef Http1HeadParser hp = self.req if self.is_request else self.resp
        if self.failed:
            return out
        self.input.append(data)
        while True:
            if self.current is None:
                if self.is_request:
                    rc = self.req.parse(self.input)
                else:
                    rc = self.resp.parse(self.input)
                if rc == HTTP1_PARSE_NEED_MORE:
                    return out
                if rc == HTTP1_PARSE_ERROR:
                    self.failed = True
                    out.append(("error", hp.error_status, hp.error_detail.decode()))
                    return out
                if self.is_request:
                    head = _http1_request_for_test(self.req)
                    mode = self.req.body_mode()
                else:
                    head = _http1_response_for_test(
                        self.resp, self.heads.pop(0) if self.heads and self.resp.status >= 200 else False)
                    mode = _HTTP1_BODY_MODE_FOR_TEST.index(head["body_mode"])
                self.current = {"head": head, "body": b"", "body_len": 0, "trailers": None}
                self.input.drain(hp.head_len)
                hp.reset()
                self.body.start(mode, head["content_length"] if head["content_length"] is not None else -1)
            rc = self.body.decode(self.input, self.output)
            if self.output.length() > self.max_body_buffered:
                self.max_body_buffered = self.output.length()
            self.current["body_len"] += self.output.length()
            if discard_body:
                self.output.drain_all()
            else:
                self.current["body"] += self.output.to_bytes()
                self.output.drain_all()
            if rc == HTTP1_BODY_NEED_MORE:
                return out
            if rc == HTTP1_BODY_ERROR:
                self.failed = True
                out.append(("error", self.body.error_status, self.body.error_detail.decode()))
                return out
            if self.body.keep_trailers and self.body.trailers.count:
                self.current["trailers"] = self.body.trailers.items_for_test()
            out.append(self.current)
            self.current = None

    def eof(self):
        """The peer closed: the message cut there, if it may end so."""
        cdef int rc
        if self.failed or self.current is None:
            return []
        rc = self.body.on_eof()
        self.failed = True
        if rc == HTTP1_BODY_DONE:
            m = self.current
            self.current = None
            return [m]
        return [("error", self.body.error_status, self.body.error_detail.decode())]

    def buffered(self):
        return self.input.length()


@cython.final
cdef class Http1BodyDecoderForTest:
    """Http1BodyDecoder alone: start(mode, content_length), then feed(data)
    -> (status, body bytes out, bytes left in input)."""
    cdef Http1BodyDecoder decoder
    cdef OwnedBuffer input
    cdef OwnedBuffer output

    def __init__(self, bint keep_trailers=False, size_t max_headers_kb=HTTP1_MAX_HEADERS_KB,
                 int max_headers_count=HTTP1_MAX_HEADERS_COUNT):
        self.decoder = Http1BodyDecoder(keep_trailers, max_headers_kb, max_headers_count)
        self.input = OwnedBuffer.new()
        self.output = OwnedBuffer.new()

    def start(self, str mode, int64_t content_length=-1):
        self.decoder.start(_HTTP1_BODY_MODE_FOR_TEST.index(mode), content_length)
        self.input.drain_all()
        self.output.drain_all()

    def feed(self, data):
        self.input.append(data)
        rc = self.decoder.decode(self.input, self.output)
        body = self.output.to_bytes()
        self.output.drain_all()
        return (_HTTP1_BODY_STATUS_FOR_TEST[rc], body, self.input.to_bytes())

    def eof(self):
        return _HTTP1_BODY_STATUS_FOR_TEST[self.decoder.on_eof()]

    def error(self):
        if not self.decoder.error_status:
            return None
        return (self.decoder.error_status, self.decoder.error_detail.decode())

    def trailers(self):
        if self.decoder.trailers is None:
            return None
        return self.decoder.trailers.items_for_test()

    def body_bytes(self):
        return self.decoder.body_bytes

    def decode_repeat(self, data, int n):
        """Decode the body `data` n times (start + decode, input refilled),
        for timing; the last status."""
        cdef int i, rc = HTTP1_BODY_NEED_MORE
        cdef bytes b = bytes(data)
        cdef int mode = self.decoder.mode
        cdef int64_t cl = len(b)
        for i in range(n):
            self.input.add(b, len(b))
            self.decoder.start(mode, cl)
            rc = self.decoder.decode(self.input, self.output)
            self.output.drain_all()
            self.input.drain_all()
        return rc


cdef HttpHeaderMap _http1_map_for_test(list headers):
    cdef HttpHeaderMap m = HttpHeaderMap()
    for name, value in headers:
        m.add(name, len(name), value, len(value), HTTP1_HEADER_OTHER)
    return m


def http1_encode_request_for_test(str method, bytes path, list headers, list chunks=None,
                                  list trailers=None):
    """A request encoded by the cdef encoders: the head, then each body
    chunk chunk-framed when `chunks` is given, then the last chunk."""
    cdef HttpHeaderMap m = _http1_map_for_test(headers)
    cdef OwnedBuffer out = OwnedBuffer.new()
    m.method = _HTTP1_METHOD_NAMES_LIST_FOR_TEST.index(method)
    m.set_path(path, len(path))
    http1_encode_request_head(out, m, NULL, 0)
    _http1_encode_body_for_test(out, chunks, trailers)
    return out.to_bytes()


def http1_encode_response_for_test(int status, list headers, bint http10=False, list chunks=None,
                                   list trailers=None):
    cdef HttpHeaderMap m = _http1_map_for_test(headers)
    cdef OwnedBuffer out = OwnedBuffer.new()
    m.status = status
    http1_encode_response_head(out, m, http10)
    _http1_encode_body_for_test(out, chunks, trailers)
    return out.to_bytes()


cdef _http1_encode_body_for_test(OwnedBuffer out, list chunks, list trailers):
    cdef OwnedBuffer data
    if chunks is None:
        return
    for c in chunks:
        data = OwnedBuffer.new()
        data.append(c)
        http1_encode_chunk(out, data)
        assert data.length() == 0
    http1_encode_last_chunk(out, _http1_map_for_test(trailers) if trailers else None)


def http1_reason_phrase_for_test(int status):
    cdef size_t n
    cdef const char *p = http1_reason_phrase(status, &n)
    return p[:n].decode()


cdef list _HTTP1_METHOD_NAMES_LIST_FOR_TEST = [
    _HTTP1_METHOD_NAMES[_i].decode() for _i in range(HTTP1_METHOD_COUNT)]


def http1_request_repeat_for_test(data, int n):
    """Parse the request head `data` and load it into an HttpHeaderMap, n
    times (what the HCM does per request), for timing."""
    cdef Http1RequestParser p = Http1RequestParser()
    cdef HttpHeaderMap m = HttpHeaderMap()
    cdef OwnedBuffer b = OwnedBuffer.new()
    cdef int i
    b.append(data)
    for i in range(n):
        p.reset()
        if p.parse(b) != HTTP1_PARSE_DONE:
            return False
        m.load_request(p)
    return True
