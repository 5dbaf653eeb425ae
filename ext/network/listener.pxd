# Listeners (Envoy source/common/network/tcp_listener_impl.h and
# source/common/listener_manager/active_tcp_listener.h, active_tcp_socket.h,
# filter_chain_manager_impl.h).
#
# Path of one connection:
#   TcpListener.on_file_event: accept4() up to ACCEPT_BATCH
#    -> ActiveTcpListener.on_accept: connection limit, stats
#    -> ActiveTcpSocket: listener filters (none configured yet), continue_filter_chain
#    -> ActiveTcpSocket.new_connection: FilterChainManager.find_filter_chain
#    -> ActiveTcpListener.new_connection: ConnectionImpl + network filters,
#       initialize_read_filters (-> on_new_connection), then epoll.

cdef class ActiveTcpSocket
cdef class ActiveTcpListener
cdef class TcpListener


cdef class NetworkFilterFactory:
    """Builds one network filter of a chain for each new connection."""
    cdef bint allows_splice         # the filter lets bytes bypass the chain
    cdef int create_filter(self, FilterManager manager, ConnectionImpl conn) except -1


@cython.final
cdef class FilterChainImpl:
    cdef str name
    cdef list factories             # NetworkFilterFactory
    # filter_chain_match, flattened
    cdef int destination_port       # -1: unset
    cdef list prefix_ranges         # [(family, network int, prefix_len)]
    cdef list direct_source_prefix_ranges
    cdef int source_type            # 0 ANY, 1 SAME_IP_OR_LOOPBACK, 2 EXTERNAL
    cdef list source_prefix_ranges
    cdef frozenset source_ports

    @staticmethod
    cdef FilterChainImpl from_plan(FactoryContext ctx, object plan)
    cdef bint matches_everything(self)


@cython.final
cdef class FilterChainManager:
    cdef list chains                # FilterChainImpl
    cdef FilterChainImpl default_chain
    cdef FilterChainImpl only_chain # set when one chain matches everything
    cdef bint needs_local_address   # some chain matches on destination IP

    cdef FilterChainImpl find_filter_chain(self, ActiveTcpSocket socket)


@cython.final
cdef class ActiveTcpSocket:
    cdef ActiveTcpListener listener
    cdef int fd
    cdef sockaddr_storage remote_addr
    cdef socklen_t remote_addr_len
    cdef sockaddr_storage local_addr
    cdef socklen_t local_addr_len

    cdef int continue_filter_chain(self, bint success) except -1
    cdef int new_connection(self) except -1


@cython.final
cdef class ActiveTcpConnection(ConnectionCallbacks):
    """Tracks one downstream connection for its listener's stats and limit."""
    cdef ActiveTcpListener listener
    cdef ConnectionImpl connection
    cdef double created
    cdef ActiveTcpConnection next_free  # the listener's free chain
    # The listener's live connections (intrusive: O(1) in and out, no set
    # to hash into per connection).
    cdef ActiveTcpConnection live_prev
    cdef ActiveTcpConnection live_next


cdef enum:  # ListenerStat: offsets in a listener's stats block
    LISTENER_DOWNSTREAM_CX_TOTAL
    LISTENER_DOWNSTREAM_CX_ACTIVE
    LISTENER_DOWNSTREAM_CX_DESTROY
    LISTENER_DOWNSTREAM_CX_OVERFLOW
    LISTENER_NO_FILTER_CHAIN_MATCH
    LISTENER_DOWNSTREAM_GLOBAL_CX_OVERFLOW
    LISTENER_STATS_COUNT


@cython.final
cdef class ActiveTcpListener:
    cdef Dispatcher dispatcher
    cdef TcpListener listener
    cdef str name
    cdef int port
    cdef int64_t *stats
    cdef int64_t *cx_length_ms      # histogram
    cdef FilterChainManager filter_chain_manager
    cdef Py_ssize_t connection_limit    # -1: none
    cdef Py_ssize_t num_connections
    cdef size_t buffer_limit
    cdef ActiveTcpConnection live_head  # live connections, for drain/shutdown
    cdef ActiveTcpSocket spare_socket   # the last accepted socket's, for the next
    cdef ActiveTcpConnection free_active    # closed ones' trackers, for new connections
    cdef Py_ssize_t free_active_len
    # Warnings (connection limit reached, accept failing): None when the
    # level hides them; at most one line a second, the rest counted.
    cdef object log                 # logging.Logger or None
    cdef double log_next
    cdef int64_t log_suppressed

    @staticmethod
    cdef ActiveTcpListener from_plan(FactoryContext ctx, object plan)
    cdef int on_accept(self, int fd, sockaddr_storage *addr, socklen_t addr_len) except -1
    cdef int new_connection(self, ActiveTcpSocket socket, FilterChainImpl chain) except -1
    cdef void remove_connection(self, ActiveTcpConnection active)


@cython.final
cdef class TcpListener(FileEventHandler):
    cdef ActiveTcpListener cb
    cdef Timer resume_timer         # re-arms accept after EMFILE/ENFILE

    cdef int enable(self) except -1
    cdef int disable(self) except -1
    cdef bint accept_connections(self, int limit) except -1
    cdef int stop(self, bint for_good) except -1
