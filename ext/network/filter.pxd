# Network filter interfaces (Envoy envoy/network/filter.h).
#
# Contracts:
# * Read filters run in the order they were added; write filters in reverse.
# * initialize_read_filter_callbacks() only stores the callbacks: no I/O.
# * on_new_connection() runs once, before the first on_data(); a filter that
#   returns FILTER_STOP_ITERATION resumes the chain with
#   read_callbacks.continue_reading().
# * on_data() sees the connection's whole read buffer; a filter that consumes
#   it drains or moves it.

cdef enum FilterStatus:
    FILTER_CONTINUE = 0
    FILTER_STOP_ITERATION = 1

cdef enum ConnectionEvent:
    CONN_EVENT_REMOTE_CLOSE = 0
    CONN_EVENT_LOCAL_CLOSE = 1
    CONN_EVENT_CONNECTED = 2

cdef enum ConnectionCloseType:
    CLOSE_NO_FLUSH = 0
    CLOSE_FLUSH_WRITE = 1

cdef class ConnectionImpl
cdef class FilterManager


cdef class ConnectionCallbacks:
    cdef int on_event(self, int event) except -1
    cdef int on_above_write_buffer_high_watermark(self) except -1
    cdef int on_below_write_buffer_low_watermark(self) except -1


cdef class ReadFilter:
    cdef FilterManager read_callbacks
    cdef Py_ssize_t filter_index        # position in the manager's read chain
    cdef bint initialized               # on_new_connection() has run

    cdef int initialize_read_filter_callbacks(self, FilterManager callbacks) except -1
    cdef int on_new_connection(self) except -1       # FilterStatus
    cdef int on_data(self, OwnedBuffer data, bint end_stream) except -1   # FilterStatus


cdef class WriteFilter:
    cdef int on_write(self, OwnedBuffer data, bint end_stream) except -1  # FilterStatus


@cython.final
cdef class FilterManager:
    """Envoy's Network::FilterManagerImpl; also each read filter's ReadFilterCallbacks."""
    cdef ConnectionImpl connection
    cdef list read_filters
    cdef list write_filters
    cdef ReadFilter sole_filter         # set while the chain has one filter

    cdef void add_read_filter(self, ReadFilter f)
    cdef void add_write_filter(self, WriteFilter f)
    cdef int initialize_read_filters(self) except -1
    cdef int on_read(self) except -1
    cdef int on_continue_reading(self, Py_ssize_t start) except -1
    cdef int on_write(self, OwnedBuffer data, bint end_stream) except -1
    cdef inline int continue_reading(self, ReadFilter after) except -1:
        return self.on_continue_reading(after.filter_index + 1)
    cdef void clear(self)
    cdef void release_filters(self)
