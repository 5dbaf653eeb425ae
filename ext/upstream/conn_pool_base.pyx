# ConnPoolImplBase and the TCP pool (state machine drawn in conn_pool_base.pxd).


cdef class ConnPoolCallbacks:

    cdef int on_pool_ready(self, ActiveClient client, HostImpl host) except -1:
        return 0

    cdef int on_pool_failure(self, int reason, HostImpl host) except -1:
        return 0


cdef class PendingStream(LinkedObject):

    cdef int cancel(self) except -1:
        """The stream's owner went away before a connection was ready."""
        if self.parent is not None:
            self.parent.on_pending_stream_cancel(self)
        return 0


cdef class ActiveClient(LinkedObject):
    pass


cdef int _on_connect_timeout(object ctx) except -1:
    cdef ActiveClient client = <ActiveClient>ctx
    if client.parent is not None:
        return client.parent.on_connect_timeout(client)
    return 0


cdef class _ClientConnectionCallbacks(ConnectionCallbacks):

    cdef int on_event(self, int event) except -1:
        cdef ActiveClient client = self.client
        if client is not None and client.parent is not None:
            client.parent.on_connection_event(client, event)
        return 0


cdef class ConnPoolImplBase:

    cdef void init_pool(self, Dispatcher dispatcher, HostImpl host):
        self.dispatcher = dispatcher
        self.host = host
        self.cluster = host.cluster
        self.ready_clients = LinkedList()
        self.busy_clients = LinkedList()
        self.connecting_clients = LinkedList()
        self.pending_streams = LinkedList()

    cdef PendingStream new_stream(self, ConnPoolCallbacks callbacks):
        """Attach now (returns None), fail now (returns None, callbacks told),
        or wait (returns the PendingStream, cancellable)."""
        cdef PendingStream pending
        if self.ready_clients.size:
            self.attach_stream_to_client(<ActiveClient>self.ready_clients.head, callbacks)
            return None
        if not self.cluster.pending_requests.can_create():
            self.cluster.stats[CLUSTER_UPSTREAM_RQ_PENDING_OVERFLOW] += 1
            self.on_pool_failure(POOL_FAILURE_OVERFLOW, callbacks)
            return None
        pending = self.new_pending_stream(callbacks)
        self.try_create_new_connections()
        if pending.parent is None:
            return None               # already failed or attached
        if self.pending_streams.size > self.connecting_stream_capacity and \
                not (self.reuses_clients and self.busy_clients.size):
            # No connection coming for it and none to wait for (a TCP pool
            # never reuses one): fail now rather than leave it stranded.
            self.remove_pending_stream(pending)
            self.on_pool_failure(POOL_FAILURE_OVERFLOW, callbacks)
            return None
        return pending

    cdef PendingStream new_pending_stream(self, ConnPoolCallbacks callbacks):
        cdef PendingStream p = PendingStream.__new__(PendingStream)
        p.parent = self
        p.callbacks = callbacks
        self.pending_streams.push_back(p)
        self.cluster.pending_requests.inc()
        self.cluster.stats[CLUSTER_UPSTREAM_RQ_PENDING_TOTAL] += 1
        self.cluster.stats[CLUSTER_UPSTREAM_RQ_PENDING_ACTIVE] += 1
        return p

    cdef void remove_pending_stream(self, PendingStream stream):
        self.pending_streams.remove(stream)
        stream.parent = None
        stream.callbacks = None
        self.cluster.pending_requests.dec()
        self.cluster.stats[CLUSTER_UPSTREAM_RQ_PENDING_ACTIVE] -= 1

    cdef int on_pending_stream_cancel(self, PendingStream stream) except -1:
        cdef ActiveClient client
        self.remove_pending_stream(stream)
        self.cluster.stats[CLUSTER_UPSTREAM_RQ_CANCELLED] += 1
        # A connection opened only for this stream is no longer needed
        # (Envoy: CancelPolicy::CloseExcess).
        return self.close_excess_connecting_clients()

    cdef int close_excess_connecting_clients(self) except -1:
        """Close connects no waiting stream needs: one that completed would be
        a connection nobody uses, held open by the upstream."""
        cdef ActiveClient client
        while self.connecting_clients.size:
            client = <ActiveClient>self.connecting_clients.head
            if self.connecting_stream_capacity - client.capacity < self.pending_streams.size:
                break
            client.connection.close(CLOSE_NO_FLUSH)     # leaves connecting_clients
            if client.owner_list is self.connecting_clients:
                break                                   # never loop on a stuck entry
        return 0

    cdef int try_create_new_connections(self) except -1:
        # One new connection per stream not yet covered by a connecting one.
        while self.pending_streams.size > self.connecting_stream_capacity:
            if not self.try_create_new_connection():
                break
        return 0

    cdef bint try_create_new_connection(self) except -1:
        cdef ActiveClient client
        if not self.cluster.connections.try_inc():
            self.cluster.stats[CLUSTER_UPSTREAM_CX_OVERFLOW] += 1
            return False
        client = self.instantiate_active_client()
        if client is None:
            self.cluster.connections.dec()
            return False
        return True

    cdef ActiveClient instantiate_active_client(self):
        return None

    cdef void transition_active_client_state(self, ActiveClient client, int new_state):
        cdef LinkedList target = None
        if client.owner_list is not None:
            client.owner_list.remove(client)
        if client.state == CLIENT_CONNECTING and new_state != CLIENT_CONNECTING:
            self.connecting_stream_capacity -= client.capacity
        if new_state == CLIENT_CONNECTING:
            target = self.connecting_clients
            self.connecting_stream_capacity += client.capacity
        elif new_state == CLIENT_READY:
            target = self.ready_clients
        elif new_state == CLIENT_BUSY:
            target = self.busy_clients
        client.state = new_state
        if target is not None:
            target.push_back(client)

    cdef int attach_stream_to_client(self, ActiveClient client, ConnPoolCallbacks callbacks) except -1:
        if not self.cluster.requests.can_create():
            self.cluster.stats[CLUSTER_UPSTREAM_RQ_PENDING_OVERFLOW] += 1
            return self.on_pool_failure(POOL_FAILURE_OVERFLOW, callbacks)
        client.capacity -= 1
        client.has_stream = True
        if client.capacity == 0:
            self.transition_active_client_state(client, CLIENT_BUSY)
        self.cluster.requests.inc()
        self.cluster.stats[CLUSTER_UPSTREAM_RQ_TOTAL] += 1
        self.cluster.stats[CLUSTER_UPSTREAM_RQ_ACTIVE] += 1
        self.host.rq_active += 1
        self.host.stats[HOST_RQ_TOTAL] += 1
        self.host.stats[HOST_RQ_ACTIVE] += 1
        return self.on_pool_ready(client, callbacks)

    cdef int on_stream_closed(self, ActiveClient client) except -1:
        if client.has_stream:
            client.has_stream = False
            self.cluster.requests.dec()
            self.cluster.stats[CLUSTER_UPSTREAM_RQ_ACTIVE] -= 1
            self.host.rq_active -= 1
            self.host.stats[HOST_RQ_ACTIVE] -= 1
        return 0

    cdef int on_upstream_ready(self) except -1:
        cdef PendingStream p
        cdef ConnPoolCallbacks cb
        while self.pending_streams.size and self.ready_clients.size:
            p = <PendingStream>self.pending_streams.head
            cb = p.callbacks
            self.remove_pending_stream(p)
            self.attach_stream_to_client(<ActiveClient>self.ready_clients.head, cb)
        return 0

    cdef int on_connect_timeout(self, ActiveClient client) except -1:
        self.cluster.stats[CLUSTER_UPSTREAM_CX_CONNECT_TIMEOUT] += 1
        client.timed_out = True
        return client.connection.close(CLOSE_NO_FLUSH)

    cdef int on_connection_event(self, ActiveClient client, int event) except -1:
        cdef int was = client.state
        cdef int reason, connect_errno
        if client.state == CLIENT_CLOSED:
            return 0
        if event == CONN_EVENT_CONNECTED:
            client.connect_timer.disable()
            hist_record(self.cluster.connect_ms, (self.dispatcher.now - client.created) * 1000.0)
            self.transition_active_client_state(client, CLIENT_READY)
            return self.on_upstream_ready()
        # Closed.
        connect_errno = client.connection.connect_errno if client.connection is not None else 0
        client.connect_timer.disable()
        client.connect_timer = None
        self.cluster.stats[CLUSTER_UPSTREAM_CX_DESTROY] += 1
        if event == CONN_EVENT_REMOTE_CLOSE:
            self.cluster.stats[CLUSTER_UPSTREAM_CX_DESTROY_REMOTE] += 1
        else:
            self.cluster.stats[CLUSTER_UPSTREAM_CX_DESTROY_LOCAL] += 1
        if client.has_stream:
            self.cluster.stats[CLUSTER_UPSTREAM_CX_DESTROY_WITH_ACTIVE_RQ] += 1
            if event == CONN_EVENT_REMOTE_CLOSE:
                self.cluster.stats[CLUSTER_UPSTREAM_CX_DESTROY_REMOTE_WITH_ACTIVE_RQ] += 1
            else:
                self.cluster.stats[CLUSTER_UPSTREAM_CX_DESTROY_LOCAL_WITH_ACTIVE_RQ] += 1
        self.cluster.stats[CLUSTER_UPSTREAM_CX_ACTIVE] -= 1
        self.host.stats[HOST_CX_ACTIVE] -= 1
        if was != CLIENT_CONNECTING:
            hist_record(self.cluster.length_ms, (self.dispatcher.now - client.created) * 1000.0)
        self.cluster.connections.dec()
        self.on_stream_closed(client)
        self.transition_active_client_state(client, CLIENT_CLOSED)
        client.parent = None
        client.connection = None
        self.dispatcher.deferred_delete(client)
        if was == CLIENT_CONNECTING and (event == CONN_EVENT_REMOTE_CLOSE or client.timed_out):
            # A local close while connecting is a cancel, not a failure.
            self.cluster.stats[CLUSTER_UPSTREAM_CX_CONNECT_FAIL] += 1
            self.host.stats[HOST_CX_CONNECT_FAIL] += 1
            reason = POOL_FAILURE_TIMEOUT if client.timed_out else POOL_FAILURE_REMOTE_CONNECTION_FAILURE
            self.last_failure_reason = None if client.timed_out or not connect_errno else \
                "delayed connect error: " + strerror(connect_errno).decode()
            # A connect failure fails every waiting stream, so that their
            # owners decide (retry on another host, or give up) instead of
            # waiting on a host that does not answer (Envoy does the same).
            self.purge_pending_streams(reason)
        return 0

    cdef int purge_pending_streams(self, int reason) except -1:
        cdef PendingStream p
        cdef ConnPoolCallbacks cb
        cdef list streams = []
        while self.pending_streams.size:
            p = <PendingStream>self.pending_streams.head
            streams.append(p.callbacks)
            self.remove_pending_stream(p)
            self.cluster.stats[CLUSTER_UPSTREAM_RQ_PENDING_FAILURE_EJECT] += 1
        for cb in streams:
            self.on_pool_failure(reason, cb)
        # The failed streams' owners have retried (new streams wait for the
        # connects still in progress) or given up: the connects left over
        # would complete into connections nobody waits for.
        return self.close_excess_connecting_clients()

    cdef int on_pool_ready(self, ActiveClient client, ConnPoolCallbacks callbacks) except -1:
        return callbacks.on_pool_ready(client, self.host)

    cdef int on_pool_failure(self, int reason, ConnPoolCallbacks callbacks) except -1:
        return callbacks.on_pool_failure(reason, self.host)

    def counts_for_test(self):
        return {"ready": self.ready_clients.size, "busy": self.busy_clients.size,
                "connecting": self.connecting_clients.size,
                "pending": self.pending_streams.size,
                "connecting_capacity": self.connecting_stream_capacity}


cdef class TcpUpstreamCallbacks(ConnectionCallbacks):

    cdef int on_upstream_data(self, OwnedBuffer data, bint end_stream) except -1:
        data.drain_all()
        return 0


@cython.final
cdef class _TcpClientReadFilter(ReadFilter):

    cdef int on_data(self, OwnedBuffer data, bint end_stream) except -1:
        cdef ActiveTcpClient client = self.client
        if client is not None and client.upstream_callbacks is not None:
            client.upstream_callbacks.on_upstream_data(data, end_stream)
            return FILTER_STOP_ITERATION
        # Bytes or a FIN on a connection no stream holds (idle in the pool):
        # the upstream closed it or speaks first; either way no stream can
        # use it any more (Envoy's ActiveTcpClient closes it too).
        data.drain_all()
        if client is not None and client.connection is not None:
            if end_stream:
                client.connection.close_socket(CONN_EVENT_REMOTE_CLOSE)
            else:
                client.connection.close(CLOSE_NO_FLUSH)
        return FILTER_STOP_ITERATION


@cython.final
cdef class ActiveTcpClient(ActiveClient):
    """One upstream TCP connection of the pool (Envoy's Tcp::ActiveTcpClient)."""

    cdef int release(self) except -1:
        """The stream is done: TCP upstream connections are not reused."""
        self.upstream_callbacks = None
        if self.connection is not None:
            self.connection.close(CLOSE_NO_FLUSH)
        return 0


@cython.final
cdef class TcpConnPoolImpl(ConnPoolImplBase):

    cdef ActiveClient instantiate_active_client(self):
        cdef ActiveTcpClient client = ActiveTcpClient.__new__(ActiveTcpClient)
        cdef _ClientConnectionCallbacks cb = _ClientConnectionCallbacks.__new__(_ClientConnectionCallbacks)
        cdef _TcpClientReadFilter rf = _TcpClientReadFilter.__new__(_TcpClientReadFilter)
        cdef ConnectionImpl conn = ConnectionImpl.new_client(
            self.dispatcher, &self.host.address, self.host.address_len, self.cluster.buffer_limit)
        client.parent = self
        client.connection = conn
        client.capacity = 1
        client.state = CLIENT_CLOSED
        cb.client = client
        rf.client = client
        conn.add_callbacks(cb)
        conn.filter_manager.add_read_filter(rf)
        rf.initialized = True
        conn.set_stats(&self.cluster.stats[CLUSTER_UPSTREAM_CX_RX_BYTES_TOTAL],
                       &self.cluster.stats[CLUSTER_UPSTREAM_CX_TX_BYTES_TOTAL])
        self.cluster.stats[CLUSTER_UPSTREAM_CX_TOTAL] += 1
        self.cluster.stats[CLUSTER_UPSTREAM_CX_ACTIVE] += 1
        self.host.stats[HOST_CX_TOTAL] += 1
        self.host.stats[HOST_CX_ACTIVE] += 1
        client.created = self.dispatcher.now
        self.transition_active_client_state(client, CLIENT_CONNECTING)
        client.connect_timer = Timer.new(self.dispatcher, _on_connect_timeout, client)
        if self.cluster.connect_timeout > 0:
            client.connect_timer.enable(self.cluster.connect_timeout)
        conn.connect()
        return client
