# Listener path: accept, listener filters, filter chain match, new connection.

cdef object _ip_int(sockaddr_storage *addr):
    """(family, address as int) of a socket address; per connection, only when
    a filter chain matches on addresses."""
    cdef sockaddr_in *a4
    cdef sockaddr_in6 *a6
    if addr.ss_family == AF_INET:
        a4 = <sockaddr_in*>addr
        return (4, ntohl(a4.sin_addr.s_addr))
    a6 = <sockaddr_in6*>addr
    return (6, int.from_bytes((<char*>a6.sin6_addr.s6_addr)[:16], "big"))


cdef int _port_of(sockaddr_storage *addr) noexcept:
    if addr.ss_family == AF_INET:
        return ntohs((<sockaddr_in*>addr).sin_port)
    return ntohs((<sockaddr_in6*>addr).sin6_port)


cdef int _longest_prefix(list ranges, object ip):
    """Length of the longest prefix in `ranges` containing `ip`; -1 if none."""
    cdef int best = -1
    cdef int family = ip[0]
    cdef object value = ip[1]
    cdef int bits
    for fam, net, plen in ranges:
        if fam != family:
            continue
        bits = 32 if family == 4 else 128
        if plen == 0 or (value >> (bits - plen)) == (net >> (bits - plen)):
            if plen > best:
                best = plen
    return best


cdef class NetworkFilterFactory:

    cdef int create_filter(self, FilterManager manager, ConnectionImpl conn) except -1:
        return 0


@cython.final
cdef class FilterChainImpl:

    def __init__(self, str name, list factories, object match):
        """`match`: a plan_types.FilterChainMatchPlan, or None (matches all)."""
        self.name = name
        self.factories = factories
        self.destination_port = -1
        self.prefix_ranges = []
        self.direct_source_prefix_ranges = []
        self.source_type = 0
        self.source_prefix_ranges = []
        self.source_ports = frozenset()
        if match is not None:
            if match.destination_port is not None:
                self.destination_port = match.destination_port
            self.prefix_ranges = [tuple(r) for r in match.prefix_ranges]
            self.direct_source_prefix_ranges = [tuple(r) for r in match.direct_source_prefix_ranges]
            self.source_type = match.source_type
            self.source_prefix_ranges = [tuple(r) for r in match.source_prefix_ranges]
            self.source_ports = frozenset(match.source_ports)

    @staticmethod
    cdef FilterChainImpl from_plan(FactoryContext ctx, object plan):
        """From a plan_types.FilterChainPlan: each filter through its registry factory."""
        return FilterChainImpl(plan.name, [ctx.network_filter_factory(f) for f in plan.filters],
                               plan.match)

    cdef bint matches_everything(self):
        return (self.destination_port < 0 and not self.prefix_ranges
                and not self.direct_source_prefix_ranges and self.source_type == 0
                and not self.source_prefix_ranges and not self.source_ports)


@cython.final
cdef class FilterChainManager:
    """Envoy's FilterChainManagerImpl: filter_chain_match with its precedence."""

    def __init__(self, list chains, FilterChainImpl default_chain):
        self.chains = chains
        self.default_chain = default_chain
        self.only_chain = None
        if len(chains) == 1 and (<FilterChainImpl>chains[0]).matches_everything():
            self.only_chain = chains[0]
        self.needs_local_address = any((<FilterChainImpl>c).prefix_ranges for c in chains)

    cdef FilterChainImpl find_filter_chain(self, ActiveTcpSocket socket):
        cdef list cands, exact, unset
        cdef FilterChainImpl c
        cdef int port, src_port, category
        if self.only_chain is not None:
            return self.only_chain
        if not self.chains:
            return self.default_chain
        # 1. destination port: exact beats unset; the port is the listener's own.
        port = socket.listener.port
        if self.needs_local_address:
            port = _port_of(&socket.local_addr)
        exact = [c for c in self.chains if c.destination_port == port]
        cands = exact if exact else [c for c in self.chains if c.destination_port < 0]
        # 2. destination IP, 3. direct source IP: longest prefix, then unset.
        if cands and any((<FilterChainImpl>c).prefix_ranges for c in cands):
            cands = _narrow_ranges(cands, 0, _ip_int(&socket.local_addr))
        src_ip = None
        if cands and any((<FilterChainImpl>c).direct_source_prefix_ranges for c in cands):
            src_ip = _ip_int(&socket.remote_addr)
            cands = _narrow_ranges(cands, 1, src_ip)
        # 4. source type: a specific match beats ANY.
        if cands and any((<FilterChainImpl>c).source_type for c in cands):
            if src_ip is None:
                src_ip = _ip_int(&socket.remote_addr)
            category = 2
            if _is_loopback(src_ip) or (socket.local_addr_len and src_ip == _ip_int(&socket.local_addr)):
                category = 1
            exact = [c for c in cands if c.source_type == category]
            cands = exact if exact else [c for c in cands if c.source_type == 0]
        # 5. source IP: longest prefix, then unset.
        if cands and any((<FilterChainImpl>c).source_prefix_ranges for c in cands):
            if src_ip is None:
                src_ip = _ip_int(&socket.remote_addr)
            cands = _narrow_ranges(cands, 2, src_ip)
        # 6. source port: exact beats unset.
        if cands and any((<FilterChainImpl>c).source_ports for c in cands):
            src_port = _port_of(&socket.remote_addr)
            exact = [c for c in cands if src_port in c.source_ports]
            cands = exact if exact else [c for c in cands if not c.source_ports]
        if cands:
            return cands[0]
        return self.default_chain

    def find_for_test(self, int port, str src_ip, int src_port, str dst_ip="127.0.0.1"):
        """Match a made-up connection (tests of the precedence rules)."""
        cdef ActiveTcpSocket s = ActiveTcpSocket.__new__(ActiveTcpSocket)
        cdef ActiveTcpListener l = ActiveTcpListener.__new__(ActiveTcpListener)
        l.port = port
        s.listener = l
        _fill_sockaddr(&s.remote_addr, &s.remote_addr_len, src_ip, src_port)
        _fill_sockaddr(&s.local_addr, &s.local_addr_len, dst_ip, port)
        c = self.find_filter_chain(s)
        return None if c is None else c.name


cdef list _narrow_ranges(list cands, int which, object ip):
    cdef list best = []
    cdef list unset = []
    cdef int best_len = -1, l
    cdef list ranges
    cdef FilterChainImpl c
    for c in cands:
        if which == 0:
            ranges = c.prefix_ranges
        elif which == 1:
            ranges = c.direct_source_prefix_ranges
        else:
            ranges = c.source_prefix_ranges
        if not ranges:
            unset.append(c)
            continue
        l = _longest_prefix(ranges, ip)
        if l < 0:
            continue
        if l > best_len:
            best_len = l
            best = [c]
        elif l == best_len:
            best.append(c)
    return best if best else unset


cdef bint _is_loopback(object ip):
    if ip[0] == 4:
        return (ip[1] >> 24) == 127
    return ip[1] == 1


cdef int _fill_sockaddr(sockaddr_storage *out, socklen_t *out_len, str ip, int port) except -1:
    import socket as pysocket
    cdef bytes packed
    cdef sockaddr_in *a4
    cdef sockaddr_in6 *a6
    memset(out, 0, sizeof(sockaddr_storage))
    if ":" in ip:
        packed = pysocket.inet_pton(pysocket.AF_INET6, ip)
        a6 = <sockaddr_in6*>out
        a6.sin6_family = AF_INET6
        a6.sin6_port = pysocket.htons(port)
        memcpy(&a6.sin6_addr, <char*>packed, 16)
        out_len[0] = sizeof(sockaddr_in6)
    else:
        packed = pysocket.inet_pton(pysocket.AF_INET, ip)
        a4 = <sockaddr_in*>out
        a4.sin_family = AF_INET
        a4.sin_port = pysocket.htons(port)
        memcpy(&a4.sin_addr, <char*>packed, 4)
        out_len[0] = sizeof(sockaddr_in)
    return 0


@cython.final
cdef class ActiveTcpSocket:
    """An accepted socket while listener filters run (Envoy's ActiveTcpSocket)."""

    cdef int continue_filter_chain(self, bint success) except -1:
        if not success:
            close(self.fd)
            self.fd = -1
            return 0
        # Listener filters (tls_inspector, proxy_protocol ...) will run here,
        # each able to stop iteration and resume with continue_filter_chain().
        return self.new_connection()

    cdef int new_connection(self) except -1:
        cdef ActiveTcpListener listener = self.listener
        cdef FilterChainImpl chain
        if listener.filter_chain_manager.needs_local_address:
            self.local_addr_len = sizeof(sockaddr_storage)
            getsockname(self.fd, <sockaddr*>&self.local_addr, &self.local_addr_len)  # void
        chain = listener.filter_chain_manager.find_filter_chain(self)
        if chain is None:
            # No match and no default_filter_chain: close, no bytes sent.
            listener.stats[LISTENER_NO_FILTER_CHAIN_MATCH] += 1
            close(self.fd)
            self.fd = -1
            return 0
        return listener.new_connection(self, chain)


@cython.final
cdef class ActiveTcpConnection(ConnectionCallbacks):

    cdef int on_event(self, int event) except -1:
        if event != CONN_EVENT_CONNECTED and self.listener is not None:
            self.listener.remove_connection(self)
        return 0


cdef int _warn_listener(ActiveTcpListener l, int err) except -1:
    """Warn that new connections are refused: the connection limit (err 0)
    or accept() failing with `err`. Callers check `l.log is not None`; at
    most one line a second, the next one counting those left out."""
    if l.dispatcher.now < l.log_next:
        l.log_suppressed += 1
        return 0
    l.log_next = l.dispatcher.now + 1.0
    if err == 0:
        what = "connection limit (%d) reached: closing new connections" % l.connection_limit
    else:
        what = "accept failed: %s; pausing accepts for 100 ms" % strerror(err).decode()
    more = ""
    if l.log_suppressed:
        more = " (and %d more since the last such line)" % l.log_suppressed
        l.log_suppressed = 0
    l.log.warning("listener '%s': %s%s", l.name, what, more)
    return 0


@cython.final
cdef class ActiveTcpListener:
    """Per-worker listener state (Envoy's ActiveTcpListener)."""

    def __init__(self, str name, int port, FilterChainManager manager,
                 Py_ssize_t connection_limit, size_t buffer_limit):
        self.name = name
        self.port = port
        self.filter_chain_manager = manager
        self.connection_limit = connection_limit
        self.buffer_limit = buffer_limit

    @staticmethod
    cdef ActiveTcpListener from_plan(FactoryContext ctx, object plan):
        """From a plan_types.ListenerPlan (not yet listening: see Worker.listen_on)."""
        cdef FilterChainManager mgr = FilterChainManager(
            [FilterChainImpl.from_plan(ctx, c) for c in plan.filter_chains],
            FilterChainImpl.from_plan(ctx, plan.default_filter_chain)
            if plan.default_filter_chain is not None else None)
        cdef ActiveTcpListener active = ActiveTcpListener(
            plan.name, plan.port, mgr, plan.connection_limit, plan.buffer_limit)
        active.dispatcher = ctx.dispatcher
        active.stats = &ctx.stats_row[<int>plan.stats.base]
        active.cx_length_ms = &ctx.stats_row[<int>plan.stats.downstream_cx_length_ms]
        return active

    cdef int on_accept(self, int fd, sockaddr_storage *addr, socklen_t addr_len) except -1:
        cdef ActiveTcpSocket socket
        if self.connection_limit >= 0 and self.num_connections >= self.connection_limit:
            self.stats[LISTENER_DOWNSTREAM_CX_OVERFLOW] += 1
            close(fd)
            if self.log is not None:
                _warn_listener(self, 0)
            return 0
        socket = self.spare_socket
        if socket is not None:
            self.spare_socket = None
        else:
            socket = ActiveTcpSocket.__new__(ActiveTcpSocket)
            socket.listener = self
        socket.fd = fd
        memcpy(&socket.remote_addr, addr, addr_len)
        socket.remote_addr_len = addr_len
        socket.local_addr_len = 0
        socket.continue_filter_chain(True)
        if socket.fd < 0 and Py_REFCNT(socket) == 1 and not EF_DEBUG:
            # Done with (no listener filter holds it): the next accept's.
            self.spare_socket = socket
        return 0

    cdef int new_connection(self, ActiveTcpSocket socket, FilterChainImpl chain) except -1:
        # Accepted by a TcpListener, whose socket has TCP_NODELAY (listen_on).
        cdef ConnectionImpl conn = ConnectionImpl.new_server(self.dispatcher, socket.fd, self.buffer_limit, True)
        cdef ActiveTcpConnection active = self.free_active
        cdef NetworkFilterFactory factory
        if active is not None:
            self.free_active = active.next_free
            active.next_free = None
            self.free_active_len -= 1
        else:
            active = ActiveTcpConnection.__new__(ActiveTcpConnection)
        socket.fd = -1
        memcpy(&conn.remote_addr, &socket.remote_addr, socket.remote_addr_len)
        conn.remote_addr_len = socket.remote_addr_len
        active.listener = self
        active.connection = conn
        active.created = self.dispatcher.now
        conn.add_callbacks(active)
        self.live_head = live_list_push(self.live_head, active)
        self.num_connections += 1
        self.stats[LISTENER_DOWNSTREAM_CX_TOTAL] += 1
        self.stats[LISTENER_DOWNSTREAM_CX_ACTIVE] += 1
        for factory in chain.factories:
            factory.create_filter(conn.filter_manager, conn)
        if not conn.filter_manager.read_filters:
            # An empty filter chain has nothing to do with the bytes.
            return conn.close(CLOSE_NO_FLUSH)
        conn.filter_manager.initialize_read_filters()
        # Registered with epoll only now, with the interest the filters left:
        # tcp_proxy read-disables until its upstream connects, so this is one
        # epoll_ctl, not an ADD then a DEL.
        return conn.update_epoll()

    cdef void remove_connection(self, ActiveTcpConnection active):
        if active.listener is None:
            return
        active.listener = None
        active.connection = None
        self.live_head = live_list_remove(self.live_head, active)
        self.num_connections -= 1
        self.stats[LISTENER_DOWNSTREAM_CX_ACTIVE] -= 1
        self.stats[LISTENER_DOWNSTREAM_CX_DESTROY] += 1
        hist_record(self.cx_length_ms, (self.dispatcher.now - active.created) * 1000.0)
        if self.free_active_len < CONN_FREE_LIST_MAX and not EF_DEBUG:
            # Its connection's close has called it for the last time: it can
            # track the next connection (it holds nothing now).
            active.next_free = self.free_active
            self.free_active = active
            self.free_active_len += 1

    def close_all_for_shutdown(self):
        cdef ActiveTcpConnection a
        for a in live_list_items(self.live_head):
            if a.connection is not None:
                a.connection.close(CLOSE_NO_FLUSH)


@cython.final
cdef class TcpListener(FileEventHandler):
    """The listen socket in epoll (Envoy's TcpListenerImpl)."""

    cdef int enable(self) except -1:
        return self.set_epoll_mask(EPOLLIN)

    cdef int disable(self) except -1:
        return self.set_epoll_mask(0)

    cdef int on_file_event(self, uint32_t events) except -1:
        self.accept_connections(ACCEPT_BATCH)
        return 0

    cdef bint accept_connections(self, int limit) except -1:
        """Accept up to `limit` queued connections; True if more may wait."""
        cdef sockaddr_storage addr
        cdef socklen_t addr_len
        cdef int fd, i
        for i in range(limit):
            addr_len = sizeof(sockaddr_storage)
            fd = accept4(self.fd, <sockaddr*>&addr, &addr_len, SOCK_NONBLOCK | SOCK_CLOEXEC)
            if fd < 0:
                if errno == EINTR or errno == ECONNABORTED:
                    continue
                if errno == EAGAIN:
                    return False
                if errno == EINVAL:
                    # No longer listening: the worker that stopped it for good
                    # shares this socket (a slot's owner and the sibling that
                    # stood in for it). Stop watching it.
                    self.disable()
                    return False
                if errno == EMFILE or errno == ENFILE or errno == ENOBUFS or errno == ENOMEM:
                    # Out of descriptors: the queue stays full and level-triggered
                    # epoll would spin; pause accepting for a moment instead.
                    self.disable()
                    self.resume_timer.enable(0.1)
                    if self.cb.log is not None:
                        _warn_listener(self.cb, errno)
                    return False
                raise OSError(errno, "accept4: " + strerror(errno).decode())
            try:
                self.cb.on_accept(fd, &addr, addr_len)
            except BaseException as exc:
                self.dispatcher.handler_errors += 1
                if self.dispatcher.error_log is not None:
                    self.dispatcher.error_log("on_accept error: %r" % (exc,))
        return True

    cdef int stop(self, bint for_good) except -1:
        """Stop accepting here and close this worker's descriptor.

        `for_good`: nobody accepts on this socket again. Every connection it
        has queued is accepted first, then the socket is shut down, which
        takes it out of its SO_REUSEPORT group: new clients are refused at
        once, whoever else still holds the socket (closing it would reset the
        queue, and only once its last holder closes). Otherwise the socket
        carries on for the workers that still use it.
        """
        cdef int i
        if self.fd < 0:
            return 0
        if for_good:
            for i in range(STOP_ACCEPT_BATCHES):
                if not self.accept_connections(ACCEPT_BATCH):
                    break
            shutdown(self.fd, SHUT_RD)  # void: ENOTCONN if already shut down
        self.resume_timer.disable()
        self.unregister()
        return 0

    cdef void on_handler_error(self, object exc) noexcept:
        # A listener outlives any one bad accept; keep listening.
        pass


cdef int _on_listener_resume(object ctx) except -1:
    # Accept again after EMFILE/ENFILE backed off.
    cdef TcpListener listener = <TcpListener>ctx
    if listener.fd >= 0:
        listener.enable()
    return 0
