# OwnedBuffer: a chain of malloc'd slices (Envoy's Buffer::OwnedImpl).
#
#   | Drained | Data | Reservable |      one slice of SLICE_SIZE bytes
#   base      start  end            cap
#
# * drain(n) advances `start`; an emptied slice goes back to the worker's
#   freelist, so steady traffic costs no malloc.
# * move(other) hands other's slices over without copying the bytes (a small
#   slice is copied into our tail instead, so a stream of tiny writes does not
#   become a chain of mostly empty slices).
# * reserve_for_read()/commit() let readv() land directly in slice memory;
#   fill_iovec()/drain() feed writev().
# * A parser works in place: search()/find_byte() scan each slice with
#   memmem/memchr and check only the last few bytes of a slice for a pattern
#   that straddles it; copy_out() and a BufferCursor read at any offset;
#   linearize(n) returns the first n bytes contiguous, copying them into one
#   new head slice only when they straddle slices; move_n() hands over whole
#   slices and copies only the part of a split one. Offsets are ssize_t
#   (-1: not found), data comes back as const char*: no Python object.
#   A cursor or pointer is valid until the next drain, move out or linearize.
# * Watermarks: when length() goes above `high_watermark` the watermark
#   callback runs with above=1; when it falls to `low_watermark` (half the
#   high one) or less, with above=0. A high watermark of 0 disables them.

ctypedef struct Slice:
    char *base
    size_t start
    size_t end
    size_t cap

# A read position: slice `index` (counted from the head), byte `offset` in
# that slice's data.
ctypedef struct BufferCursor:
    size_t index
    size_t offset

ctypedef void (*watermark_cb_t)(object ctx, bint above)


@cython.final
cdef class OwnedBuffer:
    cdef Slice *ring                # ring of slices: power-of-two capacity
    cdef Slice inline_ring[INLINE_SLICES]
    cdef size_t ring_cap
    cdef size_t head
    cdef size_t count
    cdef size_t len
    cdef size_t high_watermark
    cdef size_t low_watermark
    cdef bint above_high
    cdef watermark_cb_t watermark_cb
    cdef object watermark_ctx       # the owning connection; cleared on close
    cdef size_t reserve_first       # logical index of the first reserved slice
    cdef int reserve_n              # iovecs handed out by reserve_for_read

    @staticmethod
    cdef OwnedBuffer new()
    cdef inline size_t length(self) noexcept:
        return self.len
    cdef void set_watermarks(self, size_t high, watermark_cb_t cb, object ctx) noexcept
    cdef void check_watermarks(self) noexcept
    cdef inline Slice *slice_at(self, size_t i) noexcept:
        return &self.ring[(self.head + i) & (self.ring_cap - 1)]
    cdef void grow_ring(self) noexcept
    cdef Slice *push_slice(self) noexcept
    cdef void append_data(self, const char *data, size_t n) noexcept
    cdef void add(self, const char *data, size_t n) noexcept
    cdef char *tail_space(self, size_t n) noexcept
    cdef void commit_tail(self, size_t n) noexcept
    cdef void drain_front(self, size_t n) noexcept
    cdef void drain(self, size_t n) noexcept
    cdef void drain_all(self) noexcept
    cdef void take_slice(self, Slice *src) noexcept
    cdef void move(self, OwnedBuffer other) noexcept
    cdef void move_n(self, OwnedBuffer other, size_t n) noexcept
    cdef ssize_t search(self, const char *pattern, size_t m, size_t start, size_t end) noexcept
    cdef inline const char *peek(self, size_t n) noexcept:
        """The first n bytes in place when one slice holds them (the usual
        case for a message head), else NULL: nothing is copied."""
        cdef Slice *s
        if self.count == 0 or n > self.len:
            return NULL
        s = self.slice_at(0)
        return s.base + s.start if s.end - s.start >= n else NULL
    cdef inline ssize_t find_byte(self, char c, size_t start, size_t end) noexcept:
        return self.search(&c, 1, start, end)
    cdef bint match_at(self, size_t index, size_t offset, const char *pattern, size_t m) noexcept
    cdef size_t copy_out(self, size_t offset, char *out, size_t n) noexcept
    cdef bint seek(self, BufferCursor *c, size_t offset) noexcept
    cdef const char *chunk(self, BufferCursor *c, size_t *n) noexcept
    cdef void advance(self, BufferCursor *c, size_t n) noexcept
    cdef const char *linearize(self, size_t n) noexcept
    cdef int reserve_for_read(self, iovec *iov, size_t max_bytes) noexcept
    cdef void commit(self, size_t n) noexcept
    cdef int fill_iovec(self, iovec *iov, int max_iov) noexcept
    cdef bytes to_bytes(self)
