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


cdef inline void slice_free(Slice *s) noexcept:
    """Give back a slice's storage: a standard one to the freelist, a larger
    one (made by linearize) to malloc."""
    global live_slices
    if s.cap == SLICE_SIZE:
        slice_release(s.base)
    else:
        free(s.base)
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

    cdef void grow_ring(self) noexcept:
        """Double the ring (it is full); the head moves to index 0."""
        cdef Slice *grown
        cdef size_t i
        cdef size_t new_cap = self.ring_cap * 2
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

    cdef Slice *push_slice(self) noexcept:
        """Append an empty slice at the tail and return it."""
        cdef Slice *s
        if self.count == self.ring_cap:
            self.grow_ring()
        s = &self.ring[(self.head + self.count) & (self.ring_cap - 1)]
        s.base = slice_alloc()
        s.start = 0
        s.end = 0
        s.cap = SLICE_SIZE
        self.count += 1
        return s

    cdef void append_data(self, const char *data, size_t n) noexcept:
        """add() without the watermark check."""
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

    cdef void add(self, const char *data, size_t n) noexcept:
        if n:
            self.append_data(data, n)
            self.check_watermarks()

    cdef char *tail_space(self, size_t n) noexcept:
        """n contiguous writable bytes at the end, for an encoder to write a
        message head in place (no staging copy); NULL when n exceeds a
        slice. commit_tail(k) then keeps the first k (1..n) of them."""
        cdef Slice *s
        if n > SLICE_SIZE:
            return NULL
        if self.count:
            s = &self.ring[(self.head + self.count - 1) & (self.ring_cap - 1)]
            if s.cap - s.end >= n:
                return s.base + s.end
        s = self.push_slice()
        return s.base

    cdef void commit_tail(self, size_t n) noexcept:
        cdef Slice *s = &self.ring[(self.head + self.count - 1) & (self.ring_cap - 1)]
        s.end += n
        self.len += n
        self.check_watermarks()

    cdef void drain_front(self, size_t n) noexcept:
        """drain() without the watermark check."""
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
            slice_free(s)
            self.head = (self.head + 1) & (self.ring_cap - 1)
            self.count -= 1
            if n == 0:
                break
        if self.count == 0:
            self.head = 0

    cdef void drain(self, size_t n) noexcept:
        """Drop the first n bytes (all of them when n >= length())."""
        self.drain_front(n)
        self.check_watermarks()

    cdef void drain_all(self) noexcept:
        while self.count:
            slice_free(&self.ring[self.head])
            self.head = (self.head + 1) & (self.ring_cap - 1)
            self.count -= 1
        self.head = 0
        self.len = 0
        self.above_high = False

    cdef void take_slice(self, Slice *src) noexcept:
        """Append the data of `src`, which the caller then forgets: the slice
        itself changes hands, or, when small, its bytes are copied into our
        tail (a stream of tiny writes must not become a chain of mostly empty
        slices)."""
        cdef Slice *dst = NULL
        cdef size_t n = src.end - src.start
        if n == 0:
            slice_free(src)
            return
        if self.count:
            dst = &self.ring[(self.head + self.count - 1) & (self.ring_cap - 1)]
        if n <= 1024 and dst != NULL and dst.cap - dst.end >= n:
            memcpy(dst.base + dst.end, src.base + src.start, n)
            dst.end += n
            slice_free(src)
        else:
            if self.count == self.ring_cap:
                self.grow_ring()
            dst = &self.ring[(self.head + self.count) & (self.ring_cap - 1)]
            self.count += 1
            dst[0] = src[0]
        self.len += n

    cdef void move(self, OwnedBuffer other) noexcept:
        """Append all of `other` to self; `other` is left empty."""
        if other.len == 0:
            return
        while other.count:
            self.take_slice(&other.ring[other.head])
            other.head = (other.head + 1) & (other.ring_cap - 1)
            other.count -= 1
        other.head = 0
        other.len = 0
        other.check_watermarks()
        self.check_watermarks()

    cdef void move_n(self, OwnedBuffer other, size_t n) noexcept:
        """Append the first n bytes of `other` to self and drain them from
        `other`: whole slices change hands, the one split at n is copied up
        to n (at most one slice of copying)."""
        cdef Slice *src
        cdef size_t avail
        if n >= other.len:
            self.move(other)
            return
        while n:
            src = &other.ring[other.head]
            avail = src.end - src.start
            if avail > n:
                self.append_data(src.base + src.start, n)
                src.start += n
                other.len -= n
                break
            self.take_slice(src)
            other.head = (other.head + 1) & (other.ring_cap - 1)
            other.count -= 1
            other.len -= avail
            n -= avail
        other.check_watermarks()
        self.check_watermarks()

    # Parsing in place

    cdef ssize_t search(self, const char *pattern, size_t m, size_t start, size_t end) noexcept:
        """Offset of the first occurrence of pattern[:m] that begins at or
        after `start` and ends at or before `end` (clamped to length()); -1
        when there is none. An empty pattern is found at `start`."""
        cdef size_t pos = 0             # offset of slice i's first byte
        cdef size_t i = 0
        cdef size_t n, lo, lim, q, last
        cdef Slice *s
        cdef const char *data
        cdef const char *p
        if end > self.len:
            end = self.len
        if start > end or m > end - start:
            return -1
        if m == 0:
            return <ssize_t>start
        last = end - m                  # the last offset a match may begin at
        while i < self.count:
            s = self.slice_at(i)
            n = s.end - s.start
            if start < pos + n:
                break
            pos += n
            i += 1
        while i < self.count and pos <= last:
            s = self.slice_at(i)
            n = s.end - s.start
            data = s.base + s.start
            lo = start - pos if start > pos else 0
            lim = n if pos + n <= end else end - pos
            # Matches wholly inside this slice come first...
            if lim >= lo + m:
                if m == 1:
                    p = <const char*>memchr(data + lo, pattern[0], lim - lo)
                else:
                    p = <const char*>memmem(data + lo, lim - lo, pattern, m)
                if p != NULL:
                    return <ssize_t>(pos + <size_t>(p - data))
            # ...then those that begin in its last m-1 bytes and run on into
            # the next slices (only when `end` lies beyond this slice).
            if m > 1 and lim == n:
                q = n + 1 - m if n + 1 > m else 0
                if q < lo:
                    q = lo
                while q < n and pos + q <= last:
                    p = <const char*>memchr(data + q, pattern[0], n - q)
                    if p == NULL:
                        break
                    q = <size_t>(p - data)
                    if pos + q > last:
                        break
                    if self.match_at(i, q, pattern, m):
                        return <ssize_t>(pos + q)
                    q += 1
            pos += n
            i += 1
        return -1

    cdef bint match_at(self, size_t index, size_t offset, const char *pattern, size_t m) noexcept:
        """Whether pattern[:m] is at byte `offset` of slice `index` (the
        bytes may run over several slices; the caller knows they exist)."""
        cdef Slice *s
        cdef size_t k
        while m:
            if index >= self.count:
                return False
            s = self.slice_at(index)
            k = s.end - s.start - offset
            if k > m:
                k = m
            if memcmp(s.base + s.start + offset, pattern, k) != 0:
                return False
            pattern += k
            m -= k
            index += 1
            offset = 0
        return True

    cdef size_t copy_out(self, size_t offset, char *out, size_t n) noexcept:
        """Copy up to n bytes from `offset` into out (nothing is drained);
        returns how many there were."""
        cdef BufferCursor c
        cdef const char *p
        cdef size_t k, done = 0
        if not self.seek(&c, offset):
            return 0
        while done < n:
            p = self.chunk(&c, &k)
            if p == NULL:
                break
            if k > n - done:
                k = n - done
            memcpy(out + done, p, k)
            done += k
            self.advance(&c, k)
        return done

    cdef bint seek(self, BufferCursor *c, size_t offset) noexcept:
        """Put the cursor on byte `offset`; False (cursor at the end) when
        offset >= length()."""
        cdef size_t i = 0
        cdef size_t n
        cdef Slice *s
        while i < self.count:
            s = self.slice_at(i)
            n = s.end - s.start
            if offset < n:
                c.index = i
                c.offset = offset
                return True
            offset -= n
            i += 1
        c.index = self.count
        c.offset = 0
        return False

    cdef const char *chunk(self, BufferCursor *c, size_t *n) noexcept:
        """The contiguous bytes at the cursor and their count in *n (the rest
        of its slice); NULL and 0 at the end."""
        cdef Slice *s
        while c.index < self.count:
            s = self.slice_at(c.index)
            if c.offset < s.end - s.start:
                n[0] = s.end - s.start - c.offset
                return s.base + s.start + c.offset
            c.index += 1
            c.offset = 0
        n[0] = 0
        return NULL

    cdef void advance(self, BufferCursor *c, size_t n) noexcept:
        """Move the cursor n bytes on (stops at the end)."""
        cdef Slice *s
        cdef size_t k
        while c.index < self.count:
            s = self.slice_at(c.index)
            k = s.end - s.start - c.offset
            if n < k:
                c.offset += n
                return
            n -= k
            c.index += 1
            c.offset = 0

    cdef const char *linearize(self, size_t n) noexcept:
        """The first n bytes as one contiguous block (NULL when n > length()
        or the buffer is empty). They are copied, into one new head slice,
        only when they straddle slices."""
        cdef Slice *s
        cdef char *base
        cdef size_t cap
        global live_slices
        if n > self.len or self.count == 0:
            return NULL
        s = self.slice_at(0)
        if s.end - s.start >= n:
            return s.base + s.start
        if n <= SLICE_SIZE:
            cap = SLICE_SIZE
            base = slice_alloc()
        else:
            # A block larger than a slice (a big header block) gets a slice
            # of its own size; slice_free() gives it back to malloc.
            cap = n
            base = <char*>malloc(n)
            if base == NULL:
                abort()
            live_slices += 1
        self.copy_out(0, base, n)
        self.drain_front(n)
        if self.count == self.ring_cap:
            self.grow_ring()
        self.head = (self.head + self.ring_cap - 1) & (self.ring_cap - 1)
        self.count += 1
        s = &self.ring[self.head]
        s.base = base
        s.start = 0
        s.end = n
        s.cap = cap
        self.len += n
        return base

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
            slice_free(s)
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

    def move_from(self, OwnedBuffer other, n=None):
        """Move all of `other`, or its first n bytes, to the end of self."""
        if n is None:
            self.move(other)
        else:
            self.move_n(other, <size_t>n)

    def search_bytes(self, pattern, size_t start=0, end=None):
        """search(): offset of `pattern` in [start, end), or -1."""
        cdef const unsigned char[::1] view = pattern
        cdef size_t e = self.len if end is None else <size_t>end
        cdef char empty = 0
        cdef const char *p = &empty
        if view.shape[0]:
            p = <const char*>&view[0]
        return self.search(p, view.shape[0], start, e)

    def find_byte_for_test(self, int c, size_t start=0, end=None):
        cdef size_t e = self.len if end is None else <size_t>end
        return self.find_byte(<char>c, start, e)

    def peek_bytes(self, size_t offset, size_t n):
        """copy_out(): up to n bytes from `offset`, nothing drained."""
        cdef bytearray out = bytearray(n)
        cdef size_t k
        if n == 0:
            return b""
        k = self.copy_out(offset, <char*>out, n)
        return bytes(out[:k])

    def chunks_for_test(self, size_t offset):
        """The contiguous chunks a BufferCursor walks from `offset`."""
        cdef BufferCursor c
        cdef const char *p
        cdef size_t n
        out = []
        self.seek(&c, offset)
        while True:
            p = self.chunk(&c, &n)
            if p == NULL:
                return out
            out.append(p[:n])
            self.advance(&c, n)

    def linearize_for_test(self, size_t n):
        """(the n bytes linearize() points at or None, whether it copied)."""
        cdef const char *before = NULL
        cdef const char *p
        if self.count:
            before = self.slice_at(0).base + self.slice_at(0).start
        p = self.linearize(n)
        if p == NULL:
            return None, False
        return p[:n], p != before

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
