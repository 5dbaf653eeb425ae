# Dispatcher: one per worker process (Envoy's Event::DispatcherImpl).
#
# Contracts:
# * FileEventHandler.on_file_event runs with the events epoll reported for its
#   fd; it may raise: the Dispatcher catches, calls on_handler_error (which must
#   close that handler) and goes on. One bad peer never kills a worker.
# * A handler registered with epoll is kept alive by the Dispatcher (one
#   reference) until unregister(); that reference is dropped only after the
#   current epoll batch, so a later event in the same batch never touches freed
#   memory. A handler whose fd is -1 is skipped.
# * set_epoll_mask() changes take effect at the end of the loop turn
#   (apply_epoll_changes): one epoll_ctl per fd per turn at most, none for a
#   connection closed in the turn it changed.
# * Timers fire after the epoll batch, in deadline order (a heap, and FIFO
#   queues for the common durations); a timer may re-arm
#   itself or others from its callback. A timer is a C callback plus the
#   context object it gets (Envoy's TimerCb): firing is one C call, and each
#   owner gives each of its timers its own function, so no kind numbers.
# * queue_write(h) asks for h.on_queued_write() once, at the end of the loop
#   turn (after the epoll batch and the timers, before epoll changes are
#   applied): several writes in one turn leave in one writev (uvloop's
#   queued writes). A handler closed meanwhile is skipped.
# * deferred_delete(obj) keeps obj alive until the end of the current batch
#   (Envoy's DeferredDeletable): nothing is freed inside its own callback.
# * A closed connection is kept until the end of the batch too; then, if
#   nothing else holds it, it is recycled (ConnectionImpl.recycle) for the
#   next connection instead of freed, up to CONN_FREE_LIST_MAX.

cdef class ConnectionImpl           # network/connection_impl.pxd


cdef class FileEventHandler:
    cdef int fd
    cdef uint32_t epoll_mask        # events wanted (0: not in epoll)
    cdef uint32_t kernel_mask       # events registered in the kernel now
    cdef bint dirty                 # queued for apply_epoll_changes()
    cdef FileEventHandler next_dirty    # the Dispatcher's dirty chain
    cdef bint write_queued          # queued for exec_queued_writes()
    cdef Dispatcher dispatcher

    cdef int on_file_event(self, uint32_t events) except -1
    cdef int on_queued_write(self) except -1
    cdef void on_handler_error(self, object exc) noexcept
    cdef int set_epoll_mask(self, uint32_t mask) except -1
    cdef void unregister(self, bint fd_is_private=*) noexcept


# A timer callback: `ctx` is the object given to Timer.new (borrowed).
ctypedef int (*timer_cb_t)(object ctx) except -1


@cython.final
cdef class Timer:
    cdef Dispatcher dispatcher
    cdef timer_cb_t cb
    cdef object ctx                 # the owner; it drops the Timer to cut the cycle
    cdef double deadline
    cdef Py_ssize_t heap_index      # in the heap; -1 when not there
    cdef int queue                  # in that timeout queue; -1 when not in one
    cdef PyObject *qprev            # neighbours in the queue (the queue's
    cdef PyObject *qnext            # reference is the armed timer's own)

    @staticmethod
    cdef Timer new(Dispatcher dispatcher, timer_cb_t cb, object ctx)
    cdef void enable(self, double timeout_s) noexcept
    cdef void enable_common(self, double timeout_s) noexcept
    cdef void arm(self, double timeout_s, int q) noexcept
    cdef void disable(self) noexcept
    cdef inline bint enabled(self) noexcept:
        return self.heap_index >= 0 or self.queue >= 0


@cython.final
cdef class Dispatcher:
    cdef int epfd
    cdef epoll_event *events
    cdef double now                 # monotonic seconds, refreshed once per loop turn
    cdef bint exit_requested
    cdef list deferred              # objects kept alive until the batch ends
    # Closed connections (chained by ConnectionImpl.next_free, no list to
    # grow and shrink): those closed in this batch, then those recycled.
    cdef ConnectionImpl closed_connections
    cdef ConnectionImpl free_connections
    cdef Py_ssize_t free_connections_len
    cdef FileEventHandler dirty     # handlers whose epoll interest changed (chained
                                    # by next_dirty: no list to grow each turn)
    cdef PyObject **write_queue     # handlers to flush at the end of the turn
    cdef Py_ssize_t write_queue_len
    cdef Py_ssize_t write_queue_cap
    cdef PyObject **heap            # binary min-heap of Timer, by deadline
    cdef Py_ssize_t heap_len
    cdef Py_ssize_t heap_cap
    # Timeout queues (libevent's common timeouts): timers armed with
    # enable_common() and one of the first TIMER_QUEUES such durations
    # (idle, stream idle, route timeouts...) fall due in the order they were
    # armed, so each duration keeps a FIFO list: O(1) in and out, no heap.
    cdef double queue_timeout[TIMER_QUEUES]
    cdef PyObject *queue_head[TIMER_QUEUES]
    cdef PyObject *queue_tail[TIMER_QUEUES]
    cdef int n_queues
    cdef Py_ssize_t timers_armed    # in the heap and the queues
    cdef uint64_t rng_state         # xorshift64* for load balancers
    cdef object error_log           # callable(str) for handler errors
    cdef uint64_t handler_errors
    # debug/leak accounting (EF_DEBUG builds and tests)
    cdef Py_ssize_t live_connections
    cdef uint64_t next_connection_id

    cdef int register(self, FileEventHandler h, uint32_t mask) except -1
    cdef inline void deferred_delete(self, object obj):
        self.deferred.append(obj)
    cdef int flush_deferred(self) except -1
    cdef ConnectionImpl take_free_connection(self)
    cdef int apply_epoll_changes(self) except -1
    cdef void queue_write(self, FileEventHandler h) noexcept
    cdef int exec_queued_writes(self) except -1
    cdef void on_handler_error(self, FileEventHandler h, object exc) noexcept
    cdef void update_now(self) noexcept
    cdef int run(self) except -1
    cdef int run_timers(self) except -1
    cdef int next_timeout_ms(self) noexcept
    cdef int timer_queue_for(self, double timeout_s) noexcept
    cdef void queue_append(self, int q, Timer t) noexcept
    cdef void queue_remove(self, Timer t) noexcept
    cdef Timer next_timer(self)
    cdef void heap_push(self, Timer t) noexcept
    cdef void heap_remove(self, Timer t) noexcept
    cdef void heap_sift_up(self, Py_ssize_t i) noexcept
    cdef void heap_sift_down(self, Py_ssize_t i) noexcept
    cdef inline uint64_t random(self) noexcept:
        # xorshift64*: cheap, per worker, good enough for load balancing.
        cdef uint64_t x = self.rng_state
        x ^= x >> 12
        x ^= x << 25
        x ^= x >> 27
        self.rng_state = x
        return x * <uint64_t>2685821657736338717ULL
