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
    HTTP1_METHOD_COUNT = 34

cdef enum Http1Version:
    HTTP1_VERSION_09 = 9            # no version in the request line
    HTTP1_VERSION_10 = 10           # HTTP/1.0 and any HTTP/d.d but 1.1
    HTTP1_VERSION_11 = 11

# One header: offsets into the linearized head.
ctypedef struct Http1Header:
    uint32_t name_off
    uint32_t name_len
    uint32_t value_off
    uint32_t value_len
    int id                          # Http1HeaderId


@cython.final
cdef class Http1RequestParser:
    cdef size_t max_head_bytes      # max_request_headers_kb * 1024
    cdef int max_headers            # max_headers_count
    cdef Http1Header *headers       # max_headers entries, malloc'd once
    cdef int header_count
    cdef size_t scanned             # bytes already searched for the blank line
    cdef size_t line_start          # where the line being scanned starts
    cdef size_t request_start       # after the empty lines before the request
    cdef bint seen_line             # a non-empty line was scanned
    cdef const char *head           # the linearized head (valid until drain)
    cdef size_t head_len            # head bytes, blank line included
    cdef int method                 # Http1Method
    cdef uint32_t target_off
    cdef uint32_t target_len
    cdef int version                # Http1Version
    cdef int64_t content_length     # -1: none
    cdef bint chunked
    cdef bint te_invalid            # a coding other than one final chunked
    cdef int header_index[HTTP1_HEADER_COUNT]   # first header of each id, -1
    cdef int error_status           # 400, 431 or 501 on HTTP1_PARSE_ERROR
    cdef const char *error_detail   # a static string: response code details

    cdef void reset(self) noexcept
    cdef int parse(self, OwnedBuffer data) noexcept
    cdef int _error(self, int status, const char *detail) noexcept
    cdef int _parse_head(self) noexcept
    cdef int _on_header(self, Http1Header *h) noexcept
