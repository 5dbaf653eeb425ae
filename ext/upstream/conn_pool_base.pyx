# ConnPoolImplBase and the TCP pool (state machine drawn in conn_pool_base.pxd).


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
        self.draining_clients = LinkedList()
        self.pending_streams = LinkedList()

    cdef PendingStream new_stream(self, object callbacks):
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
                not (self.reuses_clients and (self.busy_clients.size or self.connecting_clients.size
                                              or self.draining_clients.size)):
            # No connection coming for it and none to wait for (a TCP pool
            # never reuses one): fail now rather than leave it stranded. An
            # HTTP stream waits for any client of the pool (max_connections:
            # "the request waits as pending"): one that frees up takes it,
            # one that closes makes room for a new connection.
            self.remove_pending_stream(pending)
            self.on_pool_failure(POOL_FAILURE_OVERFLOW, callbacks)
            return None
        return pending

    cdef PendingStream new_pending_stream(self, object callbacks):
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
        self.init_active_client(client)
        return True

    cdef ActiveClient instantiate_active_client(self):
        """The protocol's part: a new client with its (unconnected) connection
        and the protocol's read filter; `capacity` set. None: cannot."""
        return None

    cdef int init_active_client(self, ActiveClient client) except -1:
        """Everything every protocol's client needs (Envoy's ActiveClient
        constructor and tryCreateNewConnection): stats, connect timer,
        CONNECTING, connect()."""
        cdef ConnectionImpl conn = client.connection
        cdef _ClientConnectionCallbacks cb = _ClientConnectionCallbacks.__new__(_ClientConnectionCallbacks)
        client.parent = self
        client.state = CLIENT_CLOSED
        cb.client = client
        conn.add_callbacks(cb)
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
            client.connect_timer.enable_common(self.cluster.connect_timeout)
        return conn.connect()

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
        elif new_state == CLIENT_DRAINING:
            target = self.draining_clients
        client.state = new_state
        if target is not None:
            target.push_back(client)

    cdef int attach_stream_to_client(self, ActiveClient client, object callbacks) except -1:
        if not self.cluster.requests.can_create():
            self.cluster.stats[CLUSTER_UPSTREAM_RQ_ACTIVE_OVERFLOW] += 1
            return self.on_pool_failure(POOL_FAILURE_OVERFLOW, callbacks)
        client.capacity -= 1
        client.active_streams += 1
        if client.capacity == 0:
            self.transition_active_client_state(client, CLIENT_BUSY)
        self.cluster.requests.inc()
        self.cluster.stats[CLUSTER_UPSTREAM_RQ_TOTAL] += 1
        self.cluster.stats[CLUSTER_UPSTREAM_RQ_ACTIVE] += 1
        self.host.rq_active += 1
        self.host.stats[HOST_RQ_TOTAL] += 1
        self.host.stats[HOST_RQ_ACTIVE] += 1
        return self.on_pool_ready(client, callbacks)

    cdef int on_stream_closed(self, ActiveClient client, bint reusable) except -1:
        """A stream of `client` ended. On a reusable client (HTTP/1
        keep-alive) its capacity comes back: BUSY -> READY and a waiting
        stream gets it; a DRAINING client closes with its last stream."""
        if client.active_streams == 0:
            return 0
        client.active_streams -= 1
        self.cluster.requests.dec()
        self.cluster.stats[CLUSTER_UPSTREAM_RQ_ACTIVE] -= 1
        self.host.rq_active -= 1
        self.host.stats[HOST_RQ_ACTIVE] -= 1
        if not reusable or client.state == CLIENT_CLOSED:
            return 0
        client.capacity += 1
        if client.state == CLIENT_DRAINING:
            if client.active_streams == 0:
                client.connection.close(CLOSE_NO_FLUSH)
            return 0
        if client.state == CLIENT_BUSY:
            self.transition_active_client_state(client, CLIENT_READY)
        return self.on_upstream_ready()

    cdef int drain_connections(self) except -1:
        """Take no new streams on the clients there are (Envoy's
        drainConnections): idle ones close now, busy ones go DRAINING and
        close when their streams end, connects no stream waits for close."""
        cdef ActiveClient client
        while self.ready_clients.size:
            client = <ActiveClient>self.ready_clients.head
            if client.active_streams:
                self.transition_active_client_state(client, CLIENT_DRAINING)
                continue
            client.connection.close(CLOSE_NO_FLUSH)     # leaves ready_clients
            if client.owner_list is self.ready_clients:
                break                                   # never loop on a stuck entry
        while self.busy_clients.size:
            self.transition_active_client_state(<ActiveClient>self.busy_clients.head, CLIENT_DRAINING)
        return self.close_excess_connecting_clients()

    cdef int on_upstream_ready(self) except -1:
        cdef PendingStream p
        cdef object cb
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
        if client.active_streams:
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
        while client.active_streams:
            self.on_stream_closed(client, False)
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
        elif self.pending_streams.size:
            # A connection that served streams went away: the streams
            # waiting for room get a new one (Envoy's onConnectionEvent).
            self.try_create_new_connections()
        return 0

    cdef int purge_pending_streams(self, int reason) except -1:
        cdef PendingStream p
        cdef object cb
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

    cdef int on_pool_ready(self, ActiveClient client, object callbacks) except -1:
        """The protocol tells its callbacks class that `client` has its stream."""
        raise NotImplementedError

    cdef int on_pool_failure(self, int reason, object callbacks) except -1:
        raise NotImplementedError

    def counts_for_test(self):
        return {"ready": self.ready_clients.size, "busy": self.busy_clients.size,
                "connecting": self.connecting_clients.size,
                "draining": self.draining_clients.size,
                "pending": self.pending_streams.size,
                "connecting_capacity": self.connecting_stream_capacity}


cdef class TcpUpstreamCallbacks(ConnectionCallbacks):

    cdef int on_upstream_data(self, OwnedBuffer data, bint end_stream) except -1:
        data.drain_all()
        return 0


cdef class TcpPoolCallbacks:

    cdef int on_pool_ready(self, TcpConnectionData conn_data, HostImpl host) except -1:
        return conn_data.release()

    cdef int on_pool_failure(self, int reason, HostImpl host) except -1:
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


@cython.final
cdef class TcpConnectionData:

    cdef void add_upstream_callbacks(self, TcpUpstreamCallbacks callbacks):
        if self.client is not None:
            self.client.upstream_callbacks = callbacks
            if self.client.connection is not None:
                self.client.connection.add_callbacks(callbacks)

    cdef int release(self) except -1:
        """The stream is done: TCP upstream connections are not reused."""
        cdef ActiveTcpClient client = self.client
        self.client = None
        if client is None:
            return 0
        client.upstream_callbacks = None
        if client.connection is not None:
            client.connection.close(CLOSE_NO_FLUSH)
        return 0


@cython.final
cdef class TcpConnPoolImpl(ConnPoolImplBase):

    cdef ActiveClient instantiate_active_client(self):
        cdef ActiveTcpClient client = ActiveTcpClient.__new__(ActiveTcpClient)
        cdef _TcpClientReadFilter rf = _TcpClientReadFilter.__new__(_TcpClientReadFilter)
        cdef ConnectionImpl conn = ConnectionImpl.new_client(
            self.dispatcher, &self.host.address, self.host.address_len, self.cluster.buffer_limit)
        client.connection = conn
        client.capacity = 1
        rf.client = client
        conn.filter_manager.add_read_filter(rf)
        rf.initialized = True
        return client

    cdef int on_pool_ready(self, ActiveClient client, object callbacks) except -1:
        cdef TcpConnectionData data = TcpConnectionData.__new__(TcpConnectionData)
        data.client = <ActiveTcpClient>client
        return (<TcpPoolCallbacks>callbacks).on_pool_ready(data, self.host)

    cdef int on_pool_failure(self, int reason, object callbacks) except -1:
        return (<TcpPoolCallbacks>callbacks).on_pool_failure(reason, self.host)


# Unit tests drive a pool on its own Dispatcher, host and cluster, with real
# connections to a real upstream, and no Worker.


cdef list _blocks_for_test = []     # stat rows of test pools: live as long as the process


cdef HostImpl host_for_test(str ip, int port, double connect_timeout, int max_connections,
                            int max_pending_requests, int max_requests):
    """A host of a cluster named "test" of its own, outside any cluster
    manager: stats in a block of their own, circuit breakers at the given
    limits (the test pools build on it)."""
    cdef int64_t[::1] row
    cdef Py_ssize_t hist = CLUSTER_STATS_COUNT, res = hist + 2 * HIST_SLOTS
    cdef Py_ssize_t mine = res + RESOURCE_COUNT, host_base = mine + RESOURCE_COUNT
    cdef ClusterInfo info = ClusterInfo.__new__(ClusterInfo)
    cdef HostImpl host = HostImpl.__new__(HostImpl)
    block = bytearray(8 * (host_base + HOST_STATS_COUNT))
    _blocks_for_test.append(block)
    row = memoryview(block).cast("q")
    info.name = "test"
    info.stats = &row[0]
    info.connect_ms = &row[hist]
    info.length_ms = &row[hist + HIST_SLOTS]
    info.connect_timeout = connect_timeout
    info.buffer_limit = 1 << 20
    info.connections = _pool_resource(&row[res + RESOURCE_CONNECTIONS],
                                      &row[mine + RESOURCE_CONNECTIONS], max_connections)
    info.pending_requests = _pool_resource(&row[res + RESOURCE_PENDING_REQUESTS],
                                           &row[mine + RESOURCE_PENDING_REQUESTS],
                                           max_pending_requests)
    info.requests = _pool_resource(&row[res + RESOURCE_REQUESTS],
                                   &row[mine + RESOURCE_REQUESTS], max_requests)
    host.cluster = info
    host.weight = 1
    host.stats = &row[host_base]
    host.address_str = "%s:%d" % (ip, port)
    _fill_sockaddr(&host.address, &host.address_len, ip, port)
    return host


@cython.final
cdef class _StreamForTest(TcpPoolCallbacks):
    cdef TcpPoolForTest owner
    cdef int id
    cdef PendingStream handle
    cdef TcpConnectionData conn_data

    cdef int on_pool_ready(self, TcpConnectionData conn_data, HostImpl host) except -1:
        self.handle = None
        self.conn_data = conn_data
        self.owner.events.append(("ready", self.id))
        return 0

    cdef int on_pool_failure(self, int reason, HostImpl host) except -1:
        self.handle = None
        self.owner.events.append(("failure", self.id, reason))
        return 0


cdef class TcpPoolForTest:
    """A TcpConnPoolImpl to one host, outside any Worker. `events` records
    what the pool answered: ("ready", id) or ("failure", id, reason)."""
    cdef Dispatcher dispatcher
    cdef TcpConnPoolImpl pool
    cdef ClusterInfo info
    cdef HostImpl host
    cdef dict streams
    cdef public list events

    def __init__(self, Dispatcher dispatcher, str ip, int port, double connect_timeout=5.0,
                 int max_connections=1024, int max_pending_requests=1024,
                 int max_requests=1024, bint reuses_clients=False):
        self.dispatcher = dispatcher
        self.host = host_for_test(ip, port, connect_timeout, max_connections,
                                  max_pending_requests, max_requests)
        self.info = self.host.cluster
        self.pool = TcpConnPoolImpl.__new__(TcpConnPoolImpl)
        self.pool.init_pool(dispatcher, self.host)
        self.pool.reuses_clients = reuses_clients
        self.streams = {}
        self.events = []

    def new_stream(self):
        """Open a stream; returns its id."""
        cdef _StreamForTest s = _StreamForTest.__new__(_StreamForTest)
        s.owner = self
        s.id = len(self.streams)
        self.streams[s.id] = s
        s.handle = self.pool.new_stream(s)
        return s.id

    def cancel(self, int id):
        cdef _StreamForTest s = self.streams[id]
        if s.handle is not None:
            s.handle.cancel()
            s.handle = None

    def release(self, int id, bint reusable=False):
        """End stream `id`. reusable=True: as a protocol that keeps the
        connection (HTTP/1 keep-alive) would, give it back to the pool."""
        cdef _StreamForTest s = self.streams[id]
        cdef TcpConnectionData data = s.conn_data
        cdef ActiveTcpClient client
        if data is None:
            raise ValueError("stream %d holds no connection" % id)
        s.conn_data = None
        if reusable:
            client = data.client
            data.client = None
            if client is not None:
                self.pool.on_stream_closed(client, True)
        else:
            data.release()

    def send(self, int id, bytes payload):
        """Write `payload` on stream `id`'s upstream connection."""
        cdef _StreamForTest s = self.streams[id]
        cdef OwnedBuffer b
        if s.conn_data is None or s.conn_data.connection() is None:
            raise ValueError("stream %d holds no connection" % id)
        b = OwnedBuffer.new()
        b.add(payload, len(payload))
        s.conn_data.connection().write(b, False)

    def drain_connections(self):
        self.pool.drain_connections()

    def counts(self):
        return self.pool.counts_for_test()

    def stat(self, str name):
        """A cluster or host counter by name ("upstream_cx_total", "host.cx_active")."""
        if name.startswith("host."):
            return self.host.stats[[n for n, _ in HOST_STATS].index(name[5:])]
        return self.info.stats[[n for n, _ in CLUSTER_STATS].index(name)]


cdef ResourceLimit _pool_resource(int64_t *count, int64_t *mine, int64_t max):
    cdef ResourceLimit r = ResourceLimit.__new__(ResourceLimit)
    r.count = count
    r.mine = mine
    r.max = max
    return r
