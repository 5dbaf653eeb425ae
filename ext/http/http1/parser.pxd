# Http1RequestParser: the sans-I/O HTTP/1.1 request head parser (Envoy's
# Http::Http1::ServerConnectionImpl head path). It waits until the whole head
# (request line, headers, blank line) is in the OwnedBuffer, linearizes it
# and records every field as offsets into that block: no Python object per
# header. Known methods and headers come back as enum members.

cdef enum Http1ParseStatus:
    HTTP1_PARSE_NEED_MORE = 0
    HTTP1_PARSE_DONE = 1
    HTTP1_PARSE_ERROR = 2

# Order matches _HTTP1_METHOD_NAMES in parser.pyx: the methods Envoy 1.40
# accepts (checked one by one against the real binary).
cdef enum Http1Method:
    HTTP1_METHOD_GET = 0
    HTTP1_METHOD_HEAD
    HTTP1_METHOD_POST
    HTTP1_METHOD_PUT
    HTTP1_METHOD_DELETE
    HTTP1_METHOD_CONNECT
    HTTP1_METHOD_OPTIONS
    HTTP1_METHOD_TRACE
    HTTP1_METHOD_PATCH
    HTTP1_METHOD_ACL
    HTTP1_METHOD_BIND
    HTTP1_METHOD_CHECKOUT
    HTTP1_METHOD_COPY
    HTTP1_METHOD_LINK
    HTTP1_METHOD_LOCK
    HTTP1_METHOD_MSEARCH            # without the hyphen, as Envoy
    HTTP1_METHOD_MERGE
    HTTP1_METHOD_MKACTIVITY
    HTTP1_METHOD_MKCALENDAR
    HTTP1_METHOD_MKCOL
    HTTP1_METHOD_MOVE
    HTTP1_METHOD_NOTIFY
    HTTP1_METHOD_PROPFIND
    HTTP1_METHOD_PROPPATCH
    HTTP1_METHOD_PURGE
    HTTP1_METHOD_REBIND
    HTTP1_METHOD_REPORT
    HTTP1_METHOD_SEARCH
    HTTP1_METHOD_SOURCE
    HTTP1_METHOD_SUBSCRIBE
    HTTP1_METHOD_UNBIND
    HTTP1_METHOD_UNLINK
    HTTP1_METHOD_UNLOCK
    HTTP1_METHOD_UNSUBSCRIBE
    HTTP1_METHOD_QUERY              # the HCM refuses one without Content-Type (400)

# Headers recognised during the parse; order matches _HTTP1_HEADER_NAMES.
cdef enum Http1HeaderId:
    HTTP1_HEADER_OTHER = 0
    HTTP1_HEADER_HOST
    HTTP1_HEADER_CONTENT_LENGTH
    HTTP1_HEADER_TRANSFER_ENCODING
    HTTP1_HEADER_CONNECTION
    HTTP1_HEADER_UPGRADE
    HTTP1_HEADER_EXPECT
    HTTP1_HEADER_TE
    HTTP1_HEADER_X_FORWARDED_FOR
    HTTP1_HEADER_X_FORWARDED_PROTO
    HTTP1_HEADER_X_REQUEST_ID
    HTTP1_HEADER_KEEP_ALIVE
    HTTP1_HEADER_PROXY_CONNECTION
    HTTP1_HEADER_DATE
    HTTP1_HEADER_SERVER
    HTTP1_HEADER_USER_AGENT
    HTTP1_HEADER_CONTENT_TYPE
    HTTP1_HEADER_X_ENVOY_ORIGINAL_PATH
    HTTP1_HEADER_X_ENVOY_UPSTREAM_SERVICE_TIME
    HTTP1_HEADER_X_ENVOY_EXPECTED_RQ_TIMEOUT_MS

cdef enum:  # sizes of the tables above
    HTTP1_HEADER_COUNT = 20
    HTTP1_METHOD_COUNT = 35

cdef enum Http1Version:
    HTTP1_VERSION_09 = 9            # no version in the request line
    HTTP1_VERSION_10 = 10           # HTTP/1.0 and any HTTP/d.d but 1.1
    HTTP1_VERSION_11 = 11

# One header: offsets into the linearized head, whose names the parse
# lower-cases in place.
ctypedef struct Http1Header:
    uint32_t name_off
    uint32_t name_len
    uint32_t value_off
    uint32_t value_len
    int id                          # Http1HeaderId
    int flags                       # HTTP1_HEADER_FLAG_*
    uint32_t hash                   # of the (lower-cased) name

cdef enum:
    # The name holds '_' (headers_with_underscores_action: the HCM rejects
    # the request or drops the header).
    HTTP1_HEADER_FLAG_UNDERSCORE = 1
    # The value was rewritten in the head (obs-fold unfolded, bare CR dropped,
    # as Envoy forwards it).
    HTTP1_HEADER_FLAG_REWRITTEN = 2

# Where the request target sits (Envoy's ServerConnectionImpl::handlePath).
cdef enum Http1TargetForm:
    HTTP1_TARGET_ORIGIN = 0         # "/path?query"
    HTTP1_TARGET_ASTERISK           # OPTIONS "*"
    HTTP1_TARGET_ABSOLUTE           # "http://host[:port]/path": url_host/url_path
    HTTP1_TARGET_AUTHORITY          # CONNECT "host:port"

# What follows a head (Http1BodyDecoder.start's mode).
cdef enum Http1BodyMode:
    HTTP1_BODY_NONE = 0
    HTTP1_BODY_CONTENT_LENGTH
    HTTP1_BODY_CHUNKED
    HTTP1_BODY_UNTIL_CLOSE          # a response without framing: ends at EOF


# The part of head parsing shared by requests, responses and trailers: the
# scan for the blank line (each LF looked at once over calls), the header
# lines, Content-Length / Transfer-Encoding / Connection semantics, limits.
# Usable alone for a trailer block (Http1BodyDecoder does).
cdef class Http1HeadParser:
    cdef size_t max_head_bytes      # max_request_headers_kb * 1024
    cdef int max_headers            # max_headers_count
    cdef Http1Header *headers       # max_headers entries, malloc'd once
    cdef int header_count
    cdef size_t scanned             # bytes already searched for the blank line
    cdef size_t line_start          # where the line being scanned starts
    cdef size_t request_start       # start line's offset (empty lines skipped)
    cdef bint seen_line             # a non-empty line was scanned
    cdef const char *head           # the linearized head (valid until drain)
    cdef size_t head_len            # head bytes, blank line included
    cdef int version                # Http1Version
    cdef int64_t content_length     # -1: none
    cdef bint chunked
    cdef bint te_invalid            # a coding other than one final chunked
    cdef bint conn_close            # "close" among the Connection tokens
    cdef bint conn_keep_alive       # "keep-alive" among them
    cdef bint conn_upgrade          # "upgrade" among them
    cdef bint expect_continue       # Expect: 100-continue (any case)
    cdef int underscore_headers     # headers whose name holds '_'
    cdef bint trailers              # a trailer block: no Host / framing semantics
    cdef bint check_authority       # Host must be an RFC 3986 authority (requests)
    cdef int header_index[HTTP1_HEADER_COUNT]   # first header of each id, -1
    cdef int error_status           # 400, 431 or 501 (requests) on ERROR
    cdef const char *error_detail   # a static string: response code details

    cdef void reset(self) noexcept
    # NEED_MORE until the head is complete, then DONE with head/head_len and
    # the fields set (nothing drained), or ERROR with error_status/detail.
    cdef int parse(self, OwnedBuffer data) noexcept
    cdef int _parse_head(self) noexcept     # per subclass: start line + headers
    cdef int _error(self, int status, const char *detail) noexcept
    cdef int _scan(self, OwnedBuffer data) noexcept
    cdef int _parse_header_lines(self, size_t i) noexcept
    cdef int _on_header(self, Http1Header *h) noexcept
    cdef int _check_framing(self) noexcept
    cdef inline bint keep_alive(self) noexcept:
        """The connection stays open after this message (HTTP/1.1 unless
        `Connection: close`; HTTP/1.0 only with `keep-alive`)."""
        if self.version == HTTP1_VERSION_11:
            return not self.conn_close
        return self.conn_keep_alive and not self.conn_close


# The request head (Envoy's Http::Http1::ServerConnectionImpl head path).
# After DONE the caller copies what it keeps (HttpHeaderMap.load_request:
# absolute-form and CONNECT targets applied to Host and :path), reads
# body_mode() / content_length / keep_alive() / missing_host() /
# underscore_headers, drains head_len, reset()s, and decodes the body with
# an Http1BodyDecoder. On ERROR: error_status (400/431/501) and error_detail
# (Envoy's %RESPONSE_CODE_DETAILS%) make the local reply; nothing more on
# the connection is parsed.
@cython.final
cdef class Http1RequestParser(Http1HeadParser):
    cdef int method                 # Http1Method
    cdef uint32_t target_off
    cdef uint32_t target_len
    cdef int target_form            # Http1TargetForm
    # absolute-form: Host and :path for the upstream, as Envoy 1.40 derives
    # them (host[:port] as written, userinfo left out; path "/" when the URL
    # has none). CONNECT: url_host is the target.
    cdef uint32_t url_host_off
    cdef uint32_t url_host_len
    cdef uint32_t url_path_off
    cdef uint32_t url_path_len
    cdef bint url_https             # the URL's scheme was https

    cdef int _parse_target(self) noexcept
    cdef inline bint missing_host(self) noexcept:
        """HTTP/1.1 without Host (nor an absolute-form or CONNECT target to
        take it from): Envoy's HCM answers 400 with an empty body, details
        missing_host_header, no DPE flag (the HCM reports it, not the codec)."""
        return (self.version == HTTP1_VERSION_11
                and self.header_index[<int>HTTP1_HEADER_HOST] < 0
                and self.target_form != HTTP1_TARGET_ABSOLUTE
                and self.target_form != HTTP1_TARGET_AUTHORITY)
    cdef inline int body_mode(self) noexcept:
        if self.chunked:
            return HTTP1_BODY_CHUNKED
        if self.content_length > 0:
            return HTTP1_BODY_CONTENT_LENGTH
        return HTTP1_BODY_NONE
