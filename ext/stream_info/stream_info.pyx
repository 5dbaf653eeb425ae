# StreamInfoImpl (shape in stream_info.pxd).


cdef double _wall_clock() noexcept:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <double>ts.tv_sec + <double>ts.tv_nsec * 1e-9


cdef str _local_address(int fd):
    cdef sockaddr_storage addr
    cdef socklen_t len = sizeof(sockaddr_storage)
    if fd < 0 or getsockname(fd, <sockaddr*>&addr, &len) < 0:
        return None
    return _sockaddr_str(&addr)


# Short names of the ResponseFlag bits, bit i -> name (Envoy's order).
RESPONSE_FLAG_NAMES = ("LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DC", "URX",
                       "SI", "IH", "DPE", "UMSDR", "DT", "UPE", "NC", "OM", "DR")


cdef str response_flag_short_string(int flag):
    """Envoy's short name of one response flag (%RESPONSE_FLAGS%)."""
    cdef int i
    for i in range(len(RESPONSE_FLAG_NAMES)):
        if flag == (1 << i):
            return RESPONSE_FLAG_NAMES[i]
    raise ValueError("unknown response flag 0x%x" % flag)


@cython.final
cdef class StreamInfoImpl:
    """What one stream did, for access logs (Envoy's StreamInfo::StreamInfoImpl)."""

    cdef void set_response_flag(self, int flag):
        if not (self.response_flags & flag):
            self.response_flags |= flag
            if self.response_flag_names is None:
                self.response_flag_names = []
            self.response_flag_names.append(response_flag_short_string(flag))

    cdef void set_peer(self, ConnectionImpl conn) noexcept:
        """The downstream connection's peer; its text is made only when
        something reads it (a formatter, an access log)."""
        if conn.remote_addr_len:
            memcpy(&self.peer_addr, &conn.remote_addr, conn.remote_addr_len)
        else:
            self.peer_addr.ss_family = 0
        self.peer_text = None

    cdef str peer_address(self):
        """The peer as "ip:port" ("[ip]:port" for IPv6); None if unknown."""
        if self.peer_text is None:
            self.peer_text = _sockaddr_str(&self.peer_addr)
        return self.peer_text

    cdef str remote_address(self):
        """Envoy's downstream remote address: the peer, or what
        x-forwarded-for made of it."""
        if self.downstream_remote_address is not None:
            return self.downstream_remote_address
        return self.peer_address()

    cdef void fill_downstream(self, ConnectionImpl conn):
        self.connection_id = conn.connection_id
        self.start_time = _wall_clock()
        self.start_mono = conn.dispatcher.now
        self.set_peer(conn)
        self.downstream_remote_address = None
        self.downstream_local_address = _local_address(conn.fd)

    cdef void reset_for_stream(self, double now) noexcept:
        """Ready for the next request of a keep-alive connection (the
        connection's own fields stay)."""
        self.response_flags = 0
        self.response_flag_names = None
        self.attempt_count = 0
        self.upstream_host = None
        self.upstream_cluster_name = None
        self.upstream_local_address = None
        self.upstream_transport_failure_reason = None
        self.bytes_received = 0
        self.bytes_sent = 0
        self.start_mono = now
        self.protocol = 0
        self.response_code = 0
        self.response_code_details = NULL
        self.request_headers = None
        self.response_headers = None
        self.request_complete_mono = 0
        self.first_tx_mono = 0
        self.last_tx_mono = 0

    cdef void fill_upstream(self, ConnectionImpl conn):
        self.upstream_local_address = _local_address(conn.fd)

    cdef dict log_fields(self, double now):
        """The record access loggers get (envoy_fast/accesslog names each field)."""
        cdef HostImpl host = self.upstream_host
        return {
            "start_time": self.start_time,
            "duration_ms": int((now - self.start_mono) * 1000.0),
            "downstream_remote_address": self.remote_address(),
            "downstream_local_address": self.downstream_local_address,
            "upstream_host": host.address_str if host is not None else None,
            "upstream_cluster": self.upstream_cluster_name,
            "upstream_local_address": self.upstream_local_address,
            "bytes_received": self.bytes_received,
            "bytes_sent": self.bytes_sent,
            "response_flags": self.response_flag_names or [],
            "connection_id": self.connection_id,
            "upstream_transport_failure_reason": self.upstream_transport_failure_reason,
            "upstream_request_attempt_count": self.attempt_count,
            "response_code_details": self.response_code_details.decode()
                                     if self.response_code_details != NULL else None,
        }
