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
    pass


@cython.final
cdef class ClusterInfo:
    pass


@cython.final
cdef class HostImpl:

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

    cdef HostImpl choose_host(self):
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

    cdef HostImpl choose_host(self):
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

    cdef HostImpl choose_host(self):
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

    cdef HostImpl choose_host(self):
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


cdef LoadBalancer _make_lb(Dispatcher dispatcher, list hosts, dict plan):
    policy = plan["lb_policy"]
    if policy == LB_ROUND_ROBIN:
        return RoundRobinLoadBalancer(dispatcher, hosts)
    if policy == LB_RANDOM:
        return RandomLoadBalancer(dispatcher, hosts)
    if policy == LB_LEAST_REQUEST:
        return LeastRequestLoadBalancer(dispatcher, hosts, plan.get("choice_count", 2))
    raise ValueError("lb_policy %r" % (policy,))


@cython.final
cdef class ThreadLocalCluster:
    """A worker's view of one cluster (Envoy's ThreadLocalClusterManagerImpl::ClusterEntry)."""

    cdef int init_load_balancers(self, Dispatcher dispatcher, list hosts, dict plan) except -1:
        """One balancer over every host, and over the healthy and degraded
        ones when they differ; `plan` carries lb_policy and the host-set load
        (panic, healthy_load) computed as Envoy does."""
        cdef HostImpl h
        cdef list healthy = [h for h in hosts if h.health == HOST_HEALTHY]
        cdef list degraded = [h for h in hosts if h.health == HOST_DEGRADED]
        self.dispatcher = dispatcher
        self.hosts = hosts
        self.panic = plan.get("panic", False)
        self.healthy_load = plan.get("healthy_load", 100)
        self.lb = _make_lb(dispatcher, hosts, plan)
        self.healthy_lb = self.lb if len(healthy) == len(hosts) else _make_lb(dispatcher, healthy, plan)
        self.degraded_lb = _make_lb(dispatcher, degraded, plan) if degraded else None
        return 0

    cdef HostImpl choose_host(self):
        # Envoy's hostSourceToUse for one priority: all hosts in panic, else
        # healthy or degraded ones by the host set's load split.
        if self.panic:
            self.info.stats[CLUSTER_LB_HEALTHY_PANIC] += 1
            return self.lb.choose_host()
        if self.healthy_load >= 100 or self.degraded_lb is None or \
                <int>(self.dispatcher.random() % 100) < self.healthy_load:
            return self.healthy_lb.choose_host()
        return self.degraded_lb.choose_host()

    cdef TcpConnPoolImpl tcp_conn_pool(self):
        cdef HostImpl host = self.choose_host()
        if host is None:
            return None
        if host.tcp_pool is None:
            host.tcp_pool = TcpConnPoolImpl.__new__(TcpConnPoolImpl)
            host.tcp_pool.init_pool(self.dispatcher, host)
        return host.tcp_pool

    def choose_host_for_test(self):
        cdef HostImpl h = self.choose_host()
        return None if h is None else h.address_str
