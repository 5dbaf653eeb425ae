# ClusterManagerImpl, ThreadLocalCluster and its per-host pools (shape in
# cluster_manager.pxd).


@cython.final
cdef class HostConnPools:
    pass


@cython.final
cdef class ThreadLocalCluster:
    """A worker's view of one cluster (Envoy's ThreadLocalClusterManagerImpl::ClusterEntry):
    it picks a host through its load balancers and owns the pools of its hosts."""

    @staticmethod
    cdef ThreadLocalCluster from_plan(FactoryContext ctx, object plan):
        """From a plan_types.ClusterPlan (any cluster type: the host set is resolved)."""
        cdef ThreadLocalCluster tlc = ThreadLocalCluster.__new__(ThreadLocalCluster)
        cdef ClusterInfo info = ClusterInfo.from_plan(ctx, plan)
        tlc.info = info
        tlc.dispatcher = ctx.dispatcher
        tlc.hosts = []
        tlc.host_pools = []
        tlc.set_hosts([HostImpl.from_plan(ctx, info, h) for h in plan.hosts], plan)
        return tlc

    cdef int update_from_plan(self, FactoryContext ctx, object plan) except -1:
        """Take a new plan of this cluster in place: filters holding this
        cluster see it at once. A host that stays (same address) keeps its
        HostImpl and pools, so its connections live on; a host that goes
        leaves its pools to the connections still using them."""
        cdef HostImpl h, old
        cdef dict kept = {h.address_str: h for h in self.hosts}
        cdef list hosts = []
        self.info.apply_plan(ctx, plan)
        for hp in plan.hosts:
            old = kept.pop(hp.name, None)
            if old is None:
                hosts.append(HostImpl.from_plan(ctx, self.info, hp))
            else:
                old.weight = hp.weight
                old.health = hp.health
                old.stats = &ctx.stats_row[<int>hp.stats_base]
                hosts.append(old)
        return self.set_hosts(hosts, plan)

    cdef int set_hosts(self, list hosts, object plan) except -1:
        """One balancer over every host, and over the healthy and degraded
        ones when they differ; `plan` carries lb_policy and the host-set load
        (panic, healthy_load) computed as Envoy does. Pool containers follow
        their hosts."""
        cdef HostImpl h
        cdef HostConnPools pools
        cdef dict old_pools = {(<HostConnPools>p).host: p for p in self.host_pools}
        cdef list healthy = [h for h in hosts if h.health == HOST_HEALTHY]
        cdef list degraded = [h for h in hosts if h.health == HOST_DEGRADED]
        cdef list host_pools = []
        cdef Py_ssize_t i
        for i in range(len(hosts)):
            h = <HostImpl>hosts[i]
            h.index = i
            pools = old_pools.get(h)
            if pools is None:
                pools = HostConnPools.__new__(HostConnPools)
                pools.host = h
            host_pools.append(pools)
        for p in self.host_pools:
            pools = <HostConnPools>p
            if pools.http1 is not None and pools.host.index < len(host_pools) \
                    and host_pools[pools.host.index] is pools:
                continue
            if pools.http1 is not None:
                # A host that left: its idle HTTP connections close now,
                # busy ones after their response (Envoy drains its pools).
                pools.http1.drain_connections()
        self.hosts = hosts
        self.host_pools = host_pools
        self.panic = plan.panic
        self.healthy_load = plan.healthy_load
        self.lb = _make_lb(self.dispatcher, hosts, plan)
        self.healthy_lb = self.lb if len(healthy) == len(hosts) else _make_lb(self.dispatcher, healthy, plan)
        self.degraded_lb = _make_lb(self.dispatcher, degraded, plan) if degraded else None
        return 0

    cdef HostImpl choose_host(self, LoadBalancerContext context):
        # Envoy's hostSourceToUse for one priority: all hosts in panic, else
        # healthy or degraded ones by the host set's load split.
        if self.panic:
            self.info.stats[CLUSTER_LB_HEALTHY_PANIC] += 1
            return self.lb.choose_host(context)
        if self.healthy_load >= 100 or self.degraded_lb is None or \
                <int>(self.dispatcher.random() % 100) < self.healthy_load:
            return self.healthy_lb.choose_host(context)
        return self.degraded_lb.choose_host(context)

    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef TcpConnPoolImpl tcp_conn_pool(self, LoadBalancerContext context):
        """The TCP pool of the host the load balancer picks (Envoy's
        ThreadLocalCluster::tcpConnPool); None when no host is available."""
        cdef HostImpl host = self.choose_host(context)
        cdef HostConnPools pools
        if host is None:
            return None
        # The host's slot, by index: no lookup by key per connection.
        pools = <HostConnPools>self.host_pools[host.index]
        if pools.tcp is None:
            pools.tcp = TcpConnPoolImpl.__new__(TcpConnPoolImpl)
            pools.tcp.init_pool(self.dispatcher, host)
        return pools.tcp

    cdef TcpConnPoolImpl existing_tcp_pool(self, HostImpl host):
        """The TCP pool of `host` if it has one (None for a host gone since)."""
        cdef HostConnPools pools
        if host is None or host.index >= len(self.host_pools):
            return None
        pools = <HostConnPools>self.host_pools[host.index]
        return pools.tcp if pools.host is host else None

    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef Http1ConnPoolImpl http1_conn_pool(self, HostImpl host):
        """The HTTP/1.1 pool of `host` (chosen by the caller with
        choose_host), made on first use (Envoy's
        ThreadLocalCluster::httpConnPool); None for no host or a host no
        longer in this cluster."""
        cdef HostConnPools pools
        if host is None or host.index >= len(self.host_pools):
            return None
        pools = <HostConnPools>self.host_pools[host.index]
        if pools.host is not host:
            return None
        if pools.http1 is None:
            pools.http1 = Http1ConnPoolImpl.new(self.dispatcher, host)
        return pools.http1

    cdef str failure_reason(self, HostImpl host):
        """Why the last connect to `host` failed (access logs, warnings)."""
        cdef TcpConnPoolImpl pool = self.existing_tcp_pool(host)
        cdef HostConnPools pools
        if pool is not None:
            return pool.last_failure_reason
        if host is not None and host.index < len(self.host_pools):
            pools = <HostConnPools>self.host_pools[host.index]
            if pools.host is host and pools.http1 is not None:
                return pools.http1.last_failure_reason
        return None

    def choose_host_for_test(self):
        cdef HostImpl h = self.choose_host(None)
        return None if h is None else h.address_str

    def pool_counts_for_test(self):
        cdef HostConnPools p
        out = {}
        for p in self.host_pools:
            if p.tcp is not None:
                out[p.host.address_str] = p.tcp.counts_for_test()
            if p.http1 is not None:
                out["http1:" + p.host.address_str] = p.http1.counts_for_test()
        return out


@cython.final
cdef class ClusterManagerImpl:
    """A worker's clusters by name (Envoy's ClusterManagerImpl and its
    thread-local part): built from plan Structs at start, changed later by
    add_or_update_cluster / remove_cluster."""

    def __cinit__(self, FactoryContext context):
        self.context = context
        self.clusters = {}

    cdef ThreadLocalCluster get_thread_local_cluster(self, str name):
        """The cluster named `name`, or None."""
        return <ThreadLocalCluster>self.clusters.get(name)

    def add_or_update_cluster(self, plan):
        """Add the cluster of `plan` (a plan_types.ClusterPlan) or update the
        one of that name in place. Returns True if it was added."""
        cdef ThreadLocalCluster tlc = self.get_thread_local_cluster(plan.name)
        if tlc is None:
            self.clusters[plan.name] = ThreadLocalCluster.from_plan(self.context, plan)
            return True
        tlc.update_from_plan(self.context, plan)
        return False

    def remove_cluster(self, str name):
        """Forget the cluster `name`; connections using it run to their end
        (idle HTTP ones close now). Returns whether it existed."""
        cdef ThreadLocalCluster tlc = self.clusters.pop(name, None)
        cdef HostConnPools pools
        if tlc is None:
            return False
        for p in tlc.host_pools:
            pools = <HostConnPools>p
            if pools.http1 is not None:
                pools.http1.drain_connections()
        return True

    def names(self):
        return list(self.clusters)
