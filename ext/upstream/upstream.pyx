# Hosts, clusters, circuit breakers and load balancers (one copy per worker).


cdef class LinkedObject:
    pass


@cython.final
cdef class LinkedList:

    cdef void push_back(self, LinkedObject o):
        o.owner_list = self
        o.next = None
        o.prev = self.tail
        if self.tail is None:
            self.head = o
        else:
            self.tail.next = o
        self.tail = o
        self.size += 1

    cdef void remove(self, LinkedObject o):
        if o.owner_list is not self:
            return
        if o.prev is None:
            self.head = o.next
        else:
            o.prev.next = o.next
        if o.next is None:
            self.tail = o.prev
        else:
            o.next.prev = o.prev
        o.prev = None
        o.next = None
        o.owner_list = None
        self.size -= 1

    def __len__(self):
        return self.size


@cython.final
cdef class ResourceLimit:

    @staticmethod
    cdef ResourceLimit new(int64_t *count, int64_t *mine, int64_t max):
        cdef ResourceLimit r = ResourceLimit.__new__(ResourceLimit)
        r.count = count
        r.mine = mine
        r.max = max
        return r


@cython.final
cdef class ClusterInfo:

    @staticmethod
    cdef ClusterInfo from_plan(FactoryContext ctx, object plan):
        """From a plan_types.ClusterPlan: its stat slots, limits, timeouts."""
        cdef ClusterInfo info = ClusterInfo.__new__(ClusterInfo)
        info.apply_plan(ctx, plan)
        return info

    cdef int apply_plan(self, FactoryContext ctx, object plan) except -1:
        """Take the values of `plan` in place: hosts and pools that point
        here see an updated cluster at once."""
        cdef object st = plan.stats
        cdef int rbase = st.resources_base
        cdef int mbase = st.resources_row_base
        self.name = plan.name
        self.stats = &ctx.stats_row[<int>st.base]
        self.connect_ms = &ctx.stats_row[<int>st.upstream_cx_connect_ms]
        self.length_ms = &ctx.stats_row[<int>st.upstream_cx_length_ms]
        self.rq_status = &ctx.stats_row[<int>st.status_codes]
        self.external_rq_status = &ctx.stats_row[<int>st.external_status_codes]
        self.retry_rq_status = &ctx.stats_row[<int>st.retry_status_codes]
        self.internal_rq_status = &ctx.stats_row[<int>st.internal_status_codes]
        self.internal_rq_time = &ctx.stats_row[<int>st.internal_upstream_rq_time]
        self.rq_time = &ctx.stats_row[<int>st.upstream_rq_time]
        self.external_rq_time = &ctx.stats_row[<int>st.external_upstream_rq_time]
        self.connect_timeout = plan.connect_timeout
        self.log = _upstream_log if _upstream_log.isEnabledFor(_logging.WARNING) else None
        self.buffer_limit = plan.buffer_limit
        self.connections = ResourceLimit.new(&ctx.shared_row[rbase + RESOURCE_CONNECTIONS],
                                             &ctx.stats_row[mbase + RESOURCE_CONNECTIONS],
                                             plan.max_connections)
        self.pending_requests = ResourceLimit.new(
            &ctx.shared_row[rbase + RESOURCE_PENDING_REQUESTS],
            &ctx.stats_row[mbase + RESOURCE_PENDING_REQUESTS], plan.max_pending_requests)
        self.requests = ResourceLimit.new(&ctx.shared_row[rbase + RESOURCE_REQUESTS],
                                          &ctx.stats_row[mbase + RESOURCE_REQUESTS],
                                          plan.max_requests)
        self.max_requests_per_connection = plan.max_requests_per_connection
        self.idle_timeout = plan.idle_timeout
        self.max_response_headers_count = plan.max_headers_count
        self.retries = ResourceLimit.new(&ctx.shared_row[rbase + RESOURCE_RETRIES],
                                         &ctx.stats_row[mbase + RESOURCE_RETRIES],
                                         plan.max_retries)
        self.enable_trailers = plan.enable_trailers
        return 0


@cython.final
cdef class HostImpl:

    @staticmethod
    cdef HostImpl from_plan(FactoryContext ctx, ClusterInfo cluster, object plan):
        """From a plan_types.HostPlan."""
        cdef HostImpl host = HostImpl.__new__(HostImpl)
        host.cluster = cluster
        host.weight = plan.weight
        host.health = plan.health
        host.stats = &ctx.stats_row[<int>plan.stats_base]
        host.address_str = plan.name
        host.hostname = plan.hostname.encode()
        _fill_sockaddr(&host.address, &host.address_len, plan.address, plan.port)
        return host


cdef class LoadBalancerContext:
    pass


cdef class LoadBalancer:

    cdef void init_hosts(self, Dispatcher dispatcher, list hosts):
        cdef HostImpl h
        self.dispatcher = dispatcher
        self.hosts = hosts
        self.n = len(hosts)
        self.total_weight = 0
        self.equal_weights = True
        for h in hosts:
            self.total_weight += h.weight
            if h.weight != (<HostImpl>hosts[0]).weight:
                self.equal_weights = False

    cdef HostImpl choose_host(self, LoadBalancerContext context):
        return None

    cdef HostImpl weighted_random(self):
        cdef int pick
        cdef HostImpl h
        if self.equal_weights:
            return <HostImpl>self.hosts[self.dispatcher.random() % <uint64_t>self.n]
        pick = <int>(self.dispatcher.random() % <uint64_t>self.total_weight)
        for h in self.hosts:
            pick -= h.weight
            if pick < 0:
                return h
        return <HostImpl>self.hosts[self.n - 1]


@cython.final
cdef class RoundRobinLoadBalancer(LoadBalancer):
    """Equal weights: strict rotation. Unequal: smooth weighted round robin,
    which spreads picks like Envoy's EDF scheduler (no host picked twice in a
    row unless its weight dominates)."""

    def __cinit__(self):
        self.current = NULL
        self.weights = NULL

    def __dealloc__(self):
        free(self.current)
        free(self.weights)

    def __init__(self, Dispatcher dispatcher, list hosts):
        cdef Py_ssize_t i
        self.init_hosts(dispatcher, hosts)
        # Each worker starts the rotation somewhere else, so N workers do not
        # all send their first connection to the same host.
        self.rr_index = <Py_ssize_t>(dispatcher.random() % <uint64_t>max(self.n, 1))
        if not self.equal_weights:
            self.current = <int*>malloc(sizeof(int) * self.n)
            self.weights = <int*>malloc(sizeof(int) * self.n)
            if self.current == NULL or self.weights == NULL:
                raise MemoryError()
            for i in range(self.n):
                self.current[i] = 0
                self.weights[i] = (<HostImpl>hosts[i]).weight

    cdef HostImpl choose_host(self, LoadBalancerContext context):
        cdef Py_ssize_t i, best = 0
        if self.n == 0:
            return None
        if self.equal_weights:
            self.rr_index += 1
            if self.rr_index >= self.n:
                self.rr_index = 0
            return <HostImpl>self.hosts[self.rr_index]
        for i in range(self.n):
            self.current[i] += self.weights[i]
            if self.current[i] > self.current[best]:
                best = i
        self.current[best] -= self.total_weight
        return <HostImpl>self.hosts[best]


@cython.final
cdef class RandomLoadBalancer(LoadBalancer):

    def __init__(self, Dispatcher dispatcher, list hosts):
        self.init_hosts(dispatcher, hosts)

    cdef HostImpl choose_host(self, LoadBalancerContext context):
        if self.n == 0:
            return None
        return self.weighted_random()


@cython.final
cdef class LeastRequestLoadBalancer(LoadBalancer):
    """Equal weights: the least busy of `choice_count` random hosts (power of
    two choices). Unequal weights: as Envoy, a weighted schedule on
    weight / (active + 1) — smooth weighted round robin over those effective
    weights, so with nothing in flight the shares follow the weights."""

    def __cinit__(self):
        self.current = NULL

    def __dealloc__(self):
        free(self.current)

    def __init__(self, Dispatcher dispatcher, list hosts, int choice_count=2):
        cdef Py_ssize_t i
        self.init_hosts(dispatcher, hosts)
        self.choice_count = choice_count if choice_count > 0 else 2
        if not self.equal_weights:
            self.current = <double*>malloc(sizeof(double) * self.n)
            if self.current == NULL:
                raise MemoryError()
            for i in range(self.n):
                self.current[i] = 0.0

    cdef HostImpl choose_host(self, LoadBalancerContext context):
        cdef HostImpl best = None, h
        cdef int i
        cdef Py_ssize_t j, best_j = 0
        cdef double eff, total = 0.0
        if self.n == 0:
            return None
        if self.n == 1:
            return <HostImpl>self.hosts[0]
        if self.equal_weights:
            for i in range(self.choice_count):
                h = <HostImpl>self.hosts[self.dispatcher.random() % <uint64_t>self.n]
                if best is None or h.rq_active < best.rq_active:
                    best = h
            return best
        for j in range(self.n):
            h = <HostImpl>self.hosts[j]
            eff = <double>h.weight / <double>(h.rq_active + 1)
            total += eff
            self.current[j] += eff
            if self.current[j] > self.current[best_j]:
                best_j = j
        self.current[best_j] -= total
        return <HostImpl>self.hosts[best_j]


cdef LoadBalancer _make_lb(Dispatcher dispatcher, list hosts, object plan):
    policy = plan.lb_policy
    if policy == LB_ROUND_ROBIN:
        return RoundRobinLoadBalancer(dispatcher, hosts)
    if policy == LB_RANDOM:
        return RandomLoadBalancer(dispatcher, hosts)
    if policy == LB_LEAST_REQUEST:
        return LeastRequestLoadBalancer(dispatcher, hosts, plan.choice_count)
    raise ValueError("lb_policy %r" % (policy,))
