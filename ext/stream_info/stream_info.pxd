# StreamInfo: what is known about one downstream stream or connection, for
# access logs and filters (Envoy envoy/stream_info/stream_info.h). Shared by
# every filter that logs: tcp_proxy now, HTTP later.

# Response flags (Envoy's CoreResponseFlag), as bits in Envoy's enum order;
# access logs print the names in the order they were set.
cdef enum ResponseFlag:
    RF_FAILED_LOCAL_HEALTH_CHECK = 0x1          # LH
    RF_NO_HEALTHY_UPSTREAM = 0x2                # UH
    RF_UPSTREAM_REQUEST_TIMEOUT = 0x4           # UT
    RF_LOCAL_RESET = 0x8                        # LR
    RF_UPSTREAM_REMOTE_RESET = 0x10             # UR
    RF_UPSTREAM_CONNECTION_FAILURE = 0x20       # UF
    RF_UPSTREAM_CONNECTION_TERMINATION = 0x40   # UC
    RF_UPSTREAM_OVERFLOW = 0x80                 # UO
    RF_NO_ROUTE_FOUND = 0x100                   # NR
    RF_DOWNSTREAM_CONNECTION_TERMINATION = 0x200    # DC
    RF_UPSTREAM_RETRY_LIMIT_EXCEEDED = 0x400    # URX
    RF_STREAM_IDLE_TIMEOUT = 0x800              # SI
    RF_INVALID_ENVOY_REQUEST_HEADERS = 0x1000   # IH
    RF_DOWNSTREAM_PROTOCOL_ERROR = 0x2000       # DPE
    RF_UPSTREAM_MAX_STREAM_DURATION_REACHED = 0x4000    # UMSDR
    RF_DURATION_TIMEOUT = 0x8000                # DT
    RF_UPSTREAM_PROTOCOL_ERROR = 0x10000        # UPE
    RF_NO_CLUSTER_FOUND = 0x20000               # NC
    RF_OVERLOAD_MANAGER = 0x40000               # OM
    RF_DOWNSTREAM_REMOTE_RESET = 0x80000        # DR


@cython.final
cdef class StreamInfoImpl:
    cdef int response_flags
    cdef list response_flag_names       # in the order set (access logs print them so)
    cdef int attempt_count              # upstream connect attempts
    cdef HostImpl upstream_host         # the host picked (even if its connect failed)
    cdef str upstream_cluster_name
    # filled only for access logs (fill_downstream / fill_upstream)
    cdef uint64_t connection_id
    cdef double start_time              # wall clock at accept
    cdef double start_mono
    cdef str downstream_local_address
    cdef str downstream_remote_address  # None: the peer's (remote_address())
    cdef sockaddr_storage peer_addr     # the downstream connection's peer
    cdef str peer_text                  # peer_addr as text, made on first use
    cdef str upstream_local_address
    cdef str upstream_transport_failure_reason
    cdef uint64_t bytes_received
    cdef uint64_t bytes_sent
    # HTTP streams (reset per request by reset_for_stream)
    cdef int protocol                   # Http1Version of the request; 0: not HTTP
    cdef int response_code              # 0: none sent
    cdef const char *response_code_details  # a static string, or NULL
    cdef object request_headers         # HttpHeaderMap of the request, or None
    cdef object response_headers        # HttpHeaderMap of the response, or None
    cdef double request_complete_mono   # last request byte; 0: not yet
    cdef double first_tx_mono           # first response byte; 0: not yet
    cdef double last_tx_mono            # last response byte; 0: not yet
    cdef bytes response_code_details_storage    # keeps a dynamic response_code_details alive

    cdef void set_response_flag(self, int flag)
    cdef inline bint has_response_flag(self, int flag) noexcept:
        return (self.response_flags & flag) != 0
    cdef void set_peer(self, ConnectionImpl conn) noexcept
    cdef str peer_address(self)
    cdef str remote_address(self)
    cdef void fill_downstream(self, ConnectionImpl conn)
    cdef void reset_for_stream(self, double now) noexcept
    cdef void fill_upstream(self, ConnectionImpl conn)
    cdef dict log_fields(self, double now)
