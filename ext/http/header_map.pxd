# HttpHeaderMap: one message's headers (Envoy's Http::HeaderMapImpl), held
# as entries of offsets into one byte block the map owns. A parsed head is
# copied in once (load_head); names are lower-cased there, as Envoy's map
# keys are. Added names and values are appended to the block, so nothing
# per header is a Python object. Removal marks the entry dead; iteration
# (encode_headers) skips dead entries and keeps the rest in order.
#
# Pseudo-headers are fields: `method` (Http1Method) and `path_*` for a
# request, `status` for a response. `:authority` is the `host` entry.
#
# Loading a head merges the repeats of the headers Envoy keeps inline into
# the first one ("a,b"), as Envoy's map does (merge_inline_repeats).
#
# Known headers (Http1HeaderId) are indexed: get(id) is O(1). Any other name
# is found by a case-insensitive scan (find): a message has at most
# max_headers_count entries.

ctypedef struct HttpHeaderEntry:
    uint32_t name_off
    uint32_t name_len
    uint32_t value_off
    uint32_t value_len
    int id                          # Http1HeaderId; HTTP_HEADER_DEAD once removed

cdef enum:
    HTTP_HEADER_DEAD = -1


@cython.final
cdef class HttpHeaderMap:
    cdef char *buf                  # names and values (lower-case names)
    cdef size_t buf_len
    cdef size_t buf_cap
    cdef HttpHeaderEntry *entries
    cdef int count                  # entries used, dead ones included
    cdef int cap
    cdef int live                   # entries not dead
    cdef int index[HTTP1_HEADER_COUNT]  # first live entry of each known id, -1
    # pseudo-headers
    cdef int method                 # Http1Method; -1 for a response
    cdef uint32_t path_off          # :path in buf (request target as sent)
    cdef uint32_t path_len
    cdef int status                 # :status; 0 for a request
    cdef int version                # Http1Version of the message received
    cdef size_t byte_size           # names + values, as Envoy's byteSize()
    cdef bint maybe_repeated        # load_head saw a name that may repeat

    cdef void clear(self) noexcept
    cdef void shrink(self) noexcept
    cdef int reserve_bytes(self, size_t n) except -1
    cdef int reserve_entries(self, int n) except -1
    cdef int load_head(self, const char *head, size_t head_len,
                       const Http1Header *headers, int count) except -1
    cdef int load_request(self, Http1RequestParser parser) except -1
    cdef int load_response(self, Http1ResponseParser parser) except -1
    cdef int merge_inline_repeats(self, bint response) except -1
    cdef uint32_t append_bytes(self, const char *data, size_t n) except? 0xffffffff
    cdef int add(self, const char *name, size_t name_len,
                 const char *value, size_t value_len, int id) except -1
    cdef int add_lower(self, const char *name, size_t name_len,
                       const char *value, size_t value_len, int id) except -1
    cdef int add_entry(self, const char *name, size_t name_len,
                       const char *value, size_t value_len, int id, bint lower) except -1
    cdef int set_id(self, int id, const char *value, size_t value_len) except -1
    cdef int set_value(self, int i, const char *value, size_t value_len) except -1
    cdef int append_value(self, int i, const char *value, size_t value_len,
                          const char *sep, size_t sep_len) except -1
    cdef int set_path(self, const char *path, size_t path_len) except -1
    cdef void remove_at(self, int i) noexcept
    cdef int remove_id(self, int id) noexcept
    cdef int remove_name(self, const char *name, size_t name_len) noexcept
    cdef int find(self, const char *name, size_t name_len) noexcept
    cdef int next_same(self, int i) noexcept
    cdef inline int get(self, int id) noexcept:
        return self.index[id]
    cdef inline const char *name_at(self, int i) noexcept:
        return self.buf + self.entries[i].name_off
    cdef inline const char *value_at(self, int i) noexcept:
        return self.buf + self.entries[i].value_off
    cdef inline bint value_is(self, int i, const char *v, size_t n) noexcept:
        """Entry i exists (i >= 0) and its value is exactly v."""
        return i >= 0 and self.entries[i].value_len == n and \
            memcmp(self.buf + self.entries[i].value_off, v, n) == 0
    cdef inline const char *path(self) noexcept:
        return self.buf + self.path_off
    cdef size_t headers_size(self) noexcept
    cdef char *write_headers(self, char *p, int first_id) noexcept
