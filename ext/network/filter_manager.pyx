# Network filter chain iteration (Envoy source/common/network/filter_manager_impl.cc).


cdef class ConnectionCallbacks:

    cdef int on_event(self, int event) except -1:
        return 0

    cdef int on_above_write_buffer_high_watermark(self) except -1:
        return 0

    cdef int on_below_write_buffer_low_watermark(self) except -1:
        return 0


cdef class ReadFilter:

    cdef int initialize_read_filter_callbacks(self, FilterManager callbacks) except -1:
        self.read_callbacks = callbacks
        return 0

    cdef int on_new_connection(self) except -1:
        return FILTER_CONTINUE

    cdef int on_data(self, OwnedBuffer data, bint end_stream) except -1:
        return FILTER_CONTINUE


cdef class WriteFilter:

    cdef int on_write(self, OwnedBuffer data, bint end_stream) except -1:
        return FILTER_CONTINUE


@cython.final
cdef class FilterManager:

    def __cinit__(self):
        self.read_filters = []
        self.write_filters = None         # made on first add: most chains have none

    cdef void add_read_filter(self, ReadFilter f):
        f.filter_index = len(self.read_filters)
        self.read_filters.append(f)
        self.sole_filter = f if len(self.read_filters) == 1 else None
        f.initialize_read_filter_callbacks(self)

    cdef void add_write_filter(self, WriteFilter f):
        # Write filters run in reverse order of addition.
        if self.write_filters is None:
            self.write_filters = []
        self.write_filters.insert(0, f)

    cdef int initialize_read_filters(self) except -1:
        """Run on_new_connection() down the chain; False when it is empty."""
        if not self.read_filters:
            return 0
        self.on_continue_reading(0)
        return 1

    cdef int on_read(self) except -1:
        return self.on_continue_reading(0)

    cdef int on_continue_reading(self, Py_ssize_t start) except -1:
        cdef Py_ssize_t i, n
        cdef ReadFilter f = self.sole_filter
        cdef ConnectionImpl conn = self.connection
        if f is not None and start == 0 and f.initialized:
            # One initialized filter (tcp_proxy): the per-read fast path.
            if conn.read_buffer.len or conn.read_end_seen:
                f.on_data(conn.read_buffer, conn.read_end_seen)
            return 0
        n = len(self.read_filters)
        for i in range(start, n):
            f = <ReadFilter>self.read_filters[i]
            if not f.initialized:
                f.initialized = True
                if f.on_new_connection() == FILTER_STOP_ITERATION:
                    return 0
                if conn.state == CONN_CLOSED:
                    return 0
            if conn.read_buffer.len or conn.read_end_seen:
                if f.on_data(conn.read_buffer, conn.read_end_seen) == FILTER_STOP_ITERATION:
                    return 0
                if conn.state == CONN_CLOSED:
                    return 0
        return 0

    cdef int on_write(self, OwnedBuffer data, bint end_stream) except -1:
        cdef WriteFilter f
        for f in self.write_filters:
            if f.on_write(data, end_stream) == FILTER_STOP_ITERATION:
                return FILTER_STOP_ITERATION
        return FILTER_CONTINUE

    cdef void clear(self):
        # Cut the connection <-> filter cycles on close. A filter may be
        # running below us on the stack (it closed its own connection): the
        # list keeps the filters alive until the batch ends, when the
        # Dispatcher empties it (release_filters).
        cdef ReadFilter f
        for f in self.read_filters:
            f.read_callbacks = None
        self.write_filters = None
        self.sole_filter = None
        self.connection = None

    cdef void release_filters(self):
        # (The list itself stays, for a recycled connection.)
        ef_list_clear(self.read_filters)
