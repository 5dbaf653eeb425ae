# Dispatcher, FileEventHandler and Timer: the worker's event loop over epoll.
#
# Level-triggered epoll: a readable socket is read once per event and the
# kernel reports it again while data remains, so no read ever ends in EAGAIN
# just to find out (one syscall saved per event on small messages). Interest
# in EPOLLOUT exists only while a write is blocked.


cdef class FileEventHandler:

    cdef int on_file_event(self, uint32_t events) except -1:
        return 0

    cdef int on_queued_write(self) except -1:
        return 0

    cdef void on_handler_error(self, object exc) noexcept:
        self.unregister()

    cdef int set_epoll_mask(self, uint32_t mask) except -1:
        """Want epoll to watch exactly `mask` for this fd (0: not at all).

        The change reaches the kernel at the end of the loop turn, so a
        connection that is read-disabled and closed in one turn costs no
        epoll_ctl at all, and several changes in one turn cost one.
        An fd with no interest is removed from epoll, because EPOLLHUP and
        EPOLLERR are reported whatever the mask says: a read-disabled socket
        whose peer hung up would otherwise wake the loop forever.
        """
        if self.fd < 0:
            return 0
        self.epoll_mask = mask
        if not self.dirty and mask != self.kernel_mask:
            self.dirty = True
            self.next_dirty = self.dispatcher.dirty
            self.dispatcher.dirty = self
        return 0

    cdef void unregister(self, bint fd_is_private=False) noexcept:
        """Remove from epoll (if watched) and close the fd.

        close() alone drops an fd from epoll only when no other process holds
        the same open file: true for connections (made after fork), false for
        listen sockets, which main keeps. `fd_is_private` saves the DEL.
        """
        cdef epoll_event ev
        if self.fd < 0:
            return
        if self.kernel_mask != 0:
            if not fd_is_private:
                epoll_ctl(self.dispatcher.epfd, EPOLL_CTL_DEL, self.fd, &ev)  # void
            self.kernel_mask = 0
            # epoll's reference, dropped after this batch: a later event of
            # the batch may still carry this pointer.
            self.dispatcher.deferred.append(self)
            Py_DECREF(self)
        self.epoll_mask = 0
        close(self.fd)  # void
        self.fd = -1


cdef int _stop_loop(object ctx) except -1:
    (<Dispatcher>ctx).exit_requested = True
    return 0


@cython.final
cdef class Timer:
    """A one-shot timer in the Dispatcher's heap (Envoy's Event::Timer)."""

    def __init__(self):
        raise TypeError("Timer is created by Timer.new()")

    @staticmethod
    cdef Timer new(Dispatcher dispatcher, timer_cb_t cb, object ctx):
        cdef Timer t = Timer.__new__(Timer)
        t.dispatcher = dispatcher
        t.cb = cb
        t.ctx = ctx
        t.heap_index = -1
        t.queue = -1
        return t

    cdef void enable(self, double timeout_s) noexcept:
        self.arm(timeout_s, -1)

    cdef void enable_common(self, double timeout_s) noexcept:
        """enable() for a duration that many timers share (a configured
        timeout, not a remainder or a client's value): O(1) in that
        duration's queue while there is one for it, else the heap."""
        self.arm(timeout_s, self.dispatcher.timer_queue_for(timeout_s))

    cdef void arm(self, double timeout_s, int q) noexcept:
        """Due timeout_s from now, in queue q (-1: the heap)."""
        self.disable()
        self.deadline = self.dispatcher.now + timeout_s
        if q >= 0:
            self.dispatcher.queue_append(q, self)
        else:
            self.dispatcher.heap_push(self)

    cdef void disable(self) noexcept:
        if self.heap_index >= 0:
            self.dispatcher.heap_remove(self)
        elif self.queue >= 0:
            self.dispatcher.queue_remove(self)


@cython.final
cdef class Dispatcher:
    """One epoll loop with timers and deferred deletion (Envoy's DispatcherImpl)."""

    def __cinit__(self):
        self.epfd = -1
        self.events = NULL
        self.heap = NULL
        self.write_queue = NULL

    def __init__(self, uint64_t seed=0x9E3779B97F4A7C15ULL, error_log=None):
        self.epfd = epoll_create1(EPOLL_CLOEXEC)
        if self.epfd < 0:
            raise OSError(errno, "epoll_create1")
        self.events = <epoll_event*>malloc(sizeof(epoll_event) * MAX_EPOLL_EVENTS)
        self.heap_cap = 64
        self.heap = <PyObject**>malloc(sizeof(PyObject*) * self.heap_cap)
        self.write_queue_cap = 64
        self.write_queue = <PyObject**>malloc(sizeof(PyObject*) * self.write_queue_cap)
        if self.events == NULL or self.heap == NULL or self.write_queue == NULL:
            raise MemoryError()
        self.heap_len = 0
        self.deferred = []
        self.rng_state = seed if seed else 1
        self.error_log = error_log
        self.update_now()

    def __dealloc__(self):
        cdef Py_ssize_t i
        cdef Timer t
        for i in range(self.n_queues):
            while self.queue_head[i] != NULL:
                t = <Timer>self.queue_head[i]
                self.queue_remove(t)
            t = None
        if self.heap != NULL:
            for i in range(self.heap_len):
                (<Timer>self.heap[i]).heap_index = -1
                Py_DECREF(<object>self.heap[i])
            free(self.heap)
        if self.write_queue != NULL:
            for i in range(self.write_queue_len):
                Py_DECREF(<object>self.write_queue[i])
            free(self.write_queue)
        if self.events != NULL:
            free(self.events)
        if self.epfd >= 0:
            close(self.epfd)

    cdef int register(self, FileEventHandler h, uint32_t mask) except -1:
        h.dispatcher = self
        return h.set_epoll_mask(mask)

    cdef void update_now(self) noexcept:
        cdef timespec ts
        clock_gettime(CLOCK_MONOTONIC, &ts)
        self.now = <double>ts.tv_sec + <double>ts.tv_nsec * 1e-9

    cdef int next_timeout_ms(self) noexcept:
        cdef double delta
        cdef Timer t = self.next_timer()
        if t is None:
            return 1000
        delta = t.deadline - self.now
        if delta <= 0:
            return 0
        if delta > 1.0:
            return 1000
        return <int>(delta * 1000.0) + 1

    cdef int apply_epoll_changes(self) except -1:
        """Bring the kernel's epoll set in line with what handlers want."""
        cdef FileEventHandler h
        cdef epoll_event ev
        cdef int op
        while self.dirty is not None:
            h = self.dirty
            self.dirty = h.next_dirty
            h.next_dirty = None
            h.dirty = False
            if h.fd < 0 or h.epoll_mask == h.kernel_mask:
                continue
            ev.events = h.epoll_mask
            ev.data.ptr = <void*>h
            if h.epoll_mask == 0:
                op = EPOLL_CTL_DEL
            elif h.kernel_mask == 0:
                op = EPOLL_CTL_ADD
            else:
                op = EPOLL_CTL_MOD
            if epoll_ctl(self.epfd, op, h.fd, &ev) < 0:
                self.handler_errors += 1
                if self.error_log is not None:
                    self.error_log("epoll_ctl(fd %d): %s" % (h.fd, strerror(errno).decode()))
                continue
            if h.kernel_mask == 0:
                Py_INCREF(h)            # epoll's data.ptr holds a reference
            elif h.epoll_mask == 0:
                self.deferred.append(h)
                Py_DECREF(h)
            h.kernel_mask = h.epoll_mask
        return 0

    cdef int flush_deferred(self) except -1:
        """Let go of what the last batch kept alive. A connection closed in
        it that nothing else holds now is not freed but kept for a next one
        (ConnectionImpl.recycle): its buffers, filter manager and transport
        socket are made once, not per connection. (EF_DEBUG builds count
        objects from allocation to free: there nothing is kept.)"""
        cdef ConnectionImpl c
        ef_list_clear(self.deferred)
        while self.closed_connections is not None:
            c = self.closed_connections
            self.closed_connections = c.next_free
            c.next_free = None
            c.release_closed()
            if Py_REFCNT(c) == 1 and not EF_DEBUG \
                    and self.free_connections_len < CONN_FREE_LIST_MAX:
                c.recycle()
        return 0

    cdef ConnectionImpl take_free_connection(self):
        """A recycled connection, or None."""
        cdef ConnectionImpl c = self.free_connections
        if c is not None:
            self.free_connections = c.next_free
            c.next_free = None
            self.free_connections_len -= 1
        return c

    cdef void queue_write(self, FileEventHandler h) noexcept:
        """Run h.on_queued_write() at the end of this loop turn (once: the
        caller sets h.write_queued and queues only when it was clear)."""
        cdef PyObject **grown
        if self.write_queue_len == self.write_queue_cap:
            grown = <PyObject**>realloc(self.write_queue,
                                        sizeof(PyObject*) * self.write_queue_cap * 2)
            if grown == NULL:
                abort()
            self.write_queue = grown
            self.write_queue_cap *= 2
        Py_INCREF(h)
        self.write_queue[self.write_queue_len] = <PyObject*>h
        self.write_queue_len += 1

    cdef void on_handler_error(self, FileEventHandler h, object exc) noexcept:
        # A handler that raised: count and log it, then let it clean up; the
        # loop goes on.
        self.handler_errors += 1
        if self.error_log is not None:
            try:
                self.error_log("handler error: %r" % (exc,))
            except BaseException:
                pass
        h.on_handler_error(exc)

    cdef int exec_queued_writes(self) except -1:
        """Flush every handler queued in this turn, in queue order. A flush
        may queue more (a close whose callbacks write elsewhere): they run
        in the same pass."""
        cdef Py_ssize_t i = 0
        cdef FileEventHandler h
        while i < self.write_queue_len:
            h = <FileEventHandler>self.write_queue[i]
            Py_DECREF(h)                # the queue's reference; h holds its own
            i += 1
            if not h.write_queued or h.fd < 0:
                continue
            h.write_queued = False
            try:
                h.on_queued_write()
            except BaseException as exc:
                self.on_handler_error(h, exc)
        self.write_queue_len = 0
        return 0

    cdef int run(self) except -1:
        cdef int n, i, timeout
        cdef FileEventHandler h
        # The GIL is dropped in epoll_wait only when another thread may
        # want it (tests run a Dispatcher beside Python threads): a worker
        # process has none, and the hand-over costs a mutex and a condition
        # variable every turn.
        cdef bint release_gil = _threading.active_count() > 1
        self.exit_requested = False
        while not self.exit_requested:
            # End of the previous turn: queued writes first, so a blocked
            # write's EPOLLOUT joins this turn's epoll changes.
            if self.write_queue_len:
                self.exec_queued_writes()
            if self.dirty is not None:
                self.apply_epoll_changes()
            if self.deferred or self.closed_connections is not None:
                self.flush_deferred()
            timeout = self.next_timeout_ms()
            if release_gil:
                with nogil:
                    n = epoll_wait(self.epfd, self.events, MAX_EPOLL_EVENTS, timeout)
            else:
                n = epoll_wait(self.epfd, self.events, MAX_EPOLL_EVENTS, timeout)
            self.update_now()
            if n < 0:
                if errno == EINTR:
                    PyErr_CheckSignals()
                    continue
                raise OSError(errno, "epoll_wait")
            for i in range(n):
                h = <FileEventHandler>self.events[i].data.ptr
                if h.fd < 0:
                    continue               # closed earlier in this batch
                try:
                    h.on_file_event(self.events[i].events)
                except BaseException as exc:
                    self.on_handler_error(h, exc)
            h = None    # else the last handler stays alive while the loop idles
            if self.timers_armed:
                self.run_timers()
        if self.write_queue_len:
            self.exec_queued_writes()
        if self.dirty is not None:
            self.apply_epoll_changes()
        return 0

    def run_for_test(self, double seconds):
        """Run the loop until `seconds` pass (tests drive a Dispatcher this way)."""
        cdef Timer t = Timer.new(self, _stop_loop, self)
        t.enable(seconds)
        self.run()
        t.disable()

    cdef int run_timers(self) except -1:
        # At most MAX_TIMERS_PER_TURN per turn (HAProxy's runqueue-depth):
        # a thousand request_headers_timeouts due at once then answer in
        # batches between epoll turns instead of holding every other
        # client for the whole burst. The rest stay due, so the next
        # epoll_wait does not block.
        cdef Timer t
        cdef int budget = MAX_TIMERS_PER_TURN
        while budget:
            t = self.next_timer()
            if t is None or t.deadline > self.now:
                break
            budget -= 1
            t.disable()
            try:
                t.cb(t.ctx)
            except BaseException as exc:
                self.handler_errors += 1
                if self.error_log is not None:
                    self.error_log("timer error: %r" % (exc,))
        return 0

    cdef Timer next_timer(self):
        """The armed timer with the earliest deadline (None when none)."""
        cdef PyObject *best = self.heap[0] if self.heap_len else NULL
        cdef int q
        for q in range(self.n_queues):
            if self.queue_head[q] != NULL and (best == NULL or (<Timer>self.queue_head[q]).deadline
                                               < (<Timer>best).deadline):
                best = self.queue_head[q]
        return <Timer>best if best != NULL else None

    cdef int timer_queue_for(self, double timeout_s) noexcept:
        """The queue of this duration (made for the first TIMER_QUEUES
        durations seen), or -1: the heap."""
        cdef int q
        for q in range(self.n_queues):
            if self.queue_timeout[q] == timeout_s:
                return q
        if self.n_queues == TIMER_QUEUES:
            return -1
        q = self.n_queues
        self.queue_timeout[q] = timeout_s
        self.queue_head[q] = self.queue_tail[q] = NULL
        self.n_queues += 1
        return q

    cdef void queue_append(self, int q, Timer t) noexcept:
        # Deadlines are now + one duration, and `now` never goes back: the
        # tail is the latest.
        Py_INCREF(t)
        t.queue = q
        t.qnext = NULL
        t.qprev = self.queue_tail[q]
        if self.queue_tail[q] != NULL:
            (<Timer>self.queue_tail[q]).qnext = <PyObject*>t
        else:
            self.queue_head[q] = <PyObject*>t
        self.queue_tail[q] = <PyObject*>t
        self.timers_armed += 1

    cdef void queue_remove(self, Timer t) noexcept:
        cdef int q = t.queue
        if t.qprev != NULL:
            (<Timer>t.qprev).qnext = t.qnext
        else:
            self.queue_head[q] = t.qnext
        if t.qnext != NULL:
            (<Timer>t.qnext).qprev = t.qprev
        else:
            self.queue_tail[q] = t.qprev
        t.qprev = t.qnext = NULL
        t.queue = -1
        self.timers_armed -= 1
        Py_DECREF(t)

    # Indexed binary heap: each Timer knows its slot, so disable() is
    # O(log n) and a connection that connects in 1 ms leaves no stale entry.

    cdef void heap_push(self, Timer t) noexcept:
        cdef PyObject **grown
        if self.heap_len == self.heap_cap:
            grown = <PyObject**>realloc(self.heap, sizeof(PyObject*) * self.heap_cap * 2)
            if grown == NULL:
                abort()
            self.heap = grown
            self.heap_cap *= 2
        Py_INCREF(t)
        self.heap[self.heap_len] = <PyObject*>t
        t.heap_index = self.heap_len
        self.heap_len += 1
        self.timers_armed += 1
        self.heap_sift_up(t.heap_index)

    cdef void heap_remove(self, Timer t) noexcept:
        cdef Py_ssize_t i = t.heap_index
        cdef Timer last
        self.heap_len -= 1
        if i != self.heap_len:
            last = <Timer>self.heap[self.heap_len]
            self.heap[i] = <PyObject*>last
            last.heap_index = i
            self.heap_sift_down(i)
            self.heap_sift_up(last.heap_index)
        t.heap_index = -1
        self.timers_armed -= 1
        Py_DECREF(t)

    cdef void heap_sift_up(self, Py_ssize_t i) noexcept:
        cdef PyObject *item = self.heap[i]
        cdef double d = (<Timer>item).deadline
        cdef Py_ssize_t parent
        while i > 0:
            parent = (i - 1) >> 1
            if (<Timer>self.heap[parent]).deadline <= d:
                break
            self.heap[i] = self.heap[parent]
            (<Timer>self.heap[i]).heap_index = i
            i = parent
        self.heap[i] = item
        (<Timer>item).heap_index = i

    cdef void heap_sift_down(self, Py_ssize_t i) noexcept:
        cdef PyObject *item = self.heap[i]
        cdef double d = (<Timer>item).deadline
        cdef Py_ssize_t child
        while True:
            child = 2 * i + 1
            if child >= self.heap_len:
                break
            if child + 1 < self.heap_len and \
                    (<Timer>self.heap[child + 1]).deadline < (<Timer>self.heap[child]).deadline:
                child += 1
            if d <= (<Timer>self.heap[child]).deadline:
                break
            self.heap[i] = self.heap[child]
            (<Timer>self.heap[i]).heap_index = i
            i = child
        self.heap[i] = item
        (<Timer>item).heap_index = i
