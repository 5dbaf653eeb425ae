# OwnedBuffer implementation; the layout diagram is in owned_buffer.pxd.

# Per-worker freelist of slice storage: each worker is one thread, so a plain
# C array is enough.
cdef char *slice_freelist[SLICE_FREELIST_MAX]
cdef Py_ssize_t slice_freelist_len = 0
cdef Py_ssize_t live_slices = 0         # allocated and not freed (leak checks)


cdef inline char *slice_alloc() noexcept:
    global slice_freelist_len, live_slices
    cdef char *p
    if slice_freelist_len:
        slice_freelist_len -= 1
        return slice_freelist[slice_freelist_len]
    p = <char*>malloc(SLICE_SIZE)
    if p == NULL:
        abort()
    live_slices += 1
    return p


cdef inline void slice_release(char *p) noexcept:
    global slice_freelist_len, live_slices
    if slice_freelist_len < SLICE_FREELIST_MAX:
        slice_freelist[slice_freelist_len] = p
        slice_freelist_len += 1
    else:
        free(p)
        live_slices -= 1


def buffer_slices_for_test():
    """(allocated slices, slices in the freelist) of this process."""
    return live_slices, slice_freelist_len


@cython.final
cdef class OwnedBuffer:
    """Byte buffer made of a chain of slices. Python methods exist for tests."""

    def __cinit__(self):
        self.ring = self.inline_ring
        self.ring_cap = INLINE_SLICES
        self.head = 0
        self.count = 0
        self.len = 0

    def __dealloc__(self):
        self.drain_all()
        if self.ring != self.inline_ring:
            free(self.ring)

    @staticmethod
    cdef OwnedBuffer new():
        return OwnedBuffer.__new__(OwnedBuffer)

    cdef void set_watermarks(self, size_t high, watermark_cb_t cb, object ctx) noexcept:
        self.high_watermark = high
        self.low_watermark = high // 2
        self.watermark_cb = cb
        self.watermark_ctx = ctx

    cdef void check_watermarks(self) noexcept:
        if self.high_watermark == 0:
            return
        if not self.above_high:
            if self.len > self.high_watermark:
                self.above_high = True
                if self.watermark_cb != NULL:
                    self.watermark_cb(self.watermark_ctx, True)
        elif self.len <= self.low_watermark:
            self.above_high = False
            if self.watermark_cb != NULL:
                self.watermark_cb(self.watermark_ctx, False)

    cdef Slice *push_slice(self) noexcept:
        """Append an empty slice at the tail and return it."""
        cdef Slice *grown
        cdef size_t i, new_cap
        cdef Slice *s
        if self.count == self.ring_cap:
            new_cap = self.ring_cap * 2
            grown = <Slice*>malloc(sizeof(Slice) * new_cap)
            if grown == NULL:
                abort()
            for i in range(self.count):
                grown[i] = self.ring[(self.head + i) & (self.ring_cap - 1)]
            if self.ring != self.inline_ring:
                free(self.ring)
            self.ring = grown
            self.ring_cap = new_cap
            self.head = 0
        s = &self.ring[(self.head + self.count) & (self.ring_cap - 1)]
        s.base = slice_alloc()
        s.start = 0
        s.end = 0
        s.cap = SLICE_SIZE
        self.count += 1
        return s

    cdef void add(self, const char *data, size_t n) noexcept:
        cdef Slice *s
        cdef size_t room
        if n == 0:
            return
        if self.count:
            s = &self.ring[(self.head + self.count - 1) & (self.ring_cap - 1)]
        else:
            s = self.push_slice()
        while n:
            room = s.cap - s.end
            if room == 0:
                s = self.push_slice()
                room = s.cap
            if room > n:
                room = n
            memcpy(s.base + s.end, data, room)
            s.end += room
            data += room
            n -= room
            self.len += room
        self.check_watermarks()

    cdef void drain(self, size_t n) noexcept:
        cdef Slice *s
        cdef size_t avail
        if n > self.len:
            n = self.len
        self.len -= n
        while self.count:
            s = &self.ring[self.head]
            avail = s.end - s.start
            if n < avail:
                s.start += n
                break
            n -= avail
            slice_release(s.base)
            self.head = (self.head + 1) & (self.ring_cap - 1)
            self.count -= 1
            if n == 0:
                break
        if self.count == 0:
            self.head = 0
        self.check_watermarks()

    cdef void drain_all(self) noexcept:
        while self.count:
            slice_release(self.ring[self.head].base)
            self.head = (self.head + 1) & (self.ring_cap - 1)
            self.count -= 1
        self.head = 0
        self.len = 0
        self.above_high = False

    cdef void move(self, OwnedBuffer other) noexcept:
        """Append all of `other` to self; `other` is left empty."""
        cdef Slice *src
        cdef Slice *dst
        cdef size_t n
        if other.len == 0:
            return
        while other.count:
            src = &other.ring[other.head]
            n = src.end - src.start
            if n:
                dst = NULL
                if self.count:
                    dst = &self.ring[(self.head + self.count - 1) & (self.ring_cap - 1)]
                if n <= 1024 and dst != NULL and dst.cap - dst.end >= n:
                    # Coalesce a small slice into our tail.
                    memcpy(dst.base + dst.end, src.base + src.start, n)
                    dst.end += n
                    slice_release(src.base)
                else:
                    dst = self.push_slice()
                    slice_release(dst.base)
                    dst[0] = src[0]
                self.len += n
            else:
                slice_release(src.base)
            other.head = (other.head + 1) & (other.ring_cap - 1)
            other.count -= 1
        other.head = 0
        other.len = 0
        other.check_watermarks()
        self.check_watermarks()

    cdef int reserve_for_read(self, iovec *iov, size_t max_bytes) noexcept:
        """Hand out up to max_bytes of slice space for readv(); commit() after."""
        cdef int n = 0
        cdef size_t total = 0
        cdef Slice *s
        self.reserve_first = self.count
        if self.count:
            s = &self.ring[(self.head + self.count - 1) & (self.ring_cap - 1)]
            if s.cap - s.end >= 2048:
                iov[0].iov_base = s.base + s.end
                iov[0].iov_len = s.cap - s.end
                total = iov[0].iov_len
                self.reserve_first = self.count - 1
                n = 1
        while total < max_bytes and n < MAX_IOV:
            s = self.push_slice()
            iov[n].iov_base = s.base
            iov[n].iov_len = s.cap
            total += s.cap
            n += 1
        self.reserve_n = n
        return n

    cdef void commit(self, size_t n) noexcept:
        """Take `n` bytes read into the reserved space; give back the rest."""
        cdef size_t i = self.reserve_first
        cdef size_t room
        cdef Slice *s
        self.len += n
        while n and i < self.count:
            s = &self.ring[(self.head + i) & (self.ring_cap - 1)]
            room = s.cap - s.end
            if room > n:
                room = n
            s.end += room
            n -= room
            i += 1
        # Unused fresh slices at the tail go back to the freelist.
        while self.count:
            s = &self.ring[(self.head + self.count - 1) & (self.ring_cap - 1)]
            if s.end != 0:
                break
            slice_release(s.base)
            self.count -= 1
        if self.count == 0:
            self.head = 0
        self.reserve_n = 0
        self.check_watermarks()

    cdef int fill_iovec(self, iovec *iov, int max_iov) noexcept:
        cdef int n = 0
        cdef size_t i
        cdef Slice *s
        for i in range(self.count):
            if n == max_iov:
                break
            s = &self.ring[(self.head + i) & (self.ring_cap - 1)]
            if s.end == s.start:
                continue
            iov[n].iov_base = s.base + s.start
            iov[n].iov_len = s.end - s.start
            n += 1
        return n

    cdef bytes to_bytes(self):
        cdef bytearray out = bytearray()
        cdef size_t i
        cdef Slice *s
        for i in range(self.count):
            s = &self.ring[(self.head + i) & (self.ring_cap - 1)]
            out += (s.base + s.start)[:s.end - s.start]
        return bytes(out)

    # Python API, for tests and the control plane; never on the data path.

    def __len__(self):
        return self.len

    def append(self, data):
        cdef const unsigned char[::1] view = data
        if view.shape[0]:
            self.add(<const char*>&view[0], view.shape[0])

    def bytes(self):
        return self.to_bytes()

    def drain_bytes(self, size_t n):
        self.drain(n)

    def move_from(self, OwnedBuffer other):
        self.move(other)

    def slice_count(self):
        return self.count

    def read_from_fd(self, int fd, size_t max_bytes=READ_MAX_BYTES):
        """readv() into reserved slices; returns the byte count (or -errno)."""
        cdef iovec iov[MAX_IOV]
        cdef int n = self.reserve_for_read(iov, max_bytes)
        cdef ssize_t r = readv(fd, iov, n)
        if r < 0:
            self.commit(0)
            return -errno
        self.commit(<size_t>r)
        return r

    def write_to_fd(self, int fd):
        """writev() as much as the fd takes; returns the byte count (or -errno)."""
        cdef iovec iov[MAX_IOV]
        cdef int n = self.fill_iovec(iov, MAX_IOV)
        cdef ssize_t r
        if n == 0:
            return 0
        r = writev(fd, iov, n)
        if r < 0:
            return -errno
        self.drain(<size_t>r)
        return r

    def set_high_watermark_for_test(self, size_t high, callback):
        self.set_watermarks(high, _py_watermark_cb, callback)


cdef void _py_watermark_cb(object ctx, bint above) noexcept:
    try:
        ctx(bool(above))
    except BaseException:
        pass
