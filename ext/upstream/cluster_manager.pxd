# A worker's cluster manager (Envoy source/common/upstream/cluster_manager_impl.h,
# ClusterManagerImpl with its ThreadLocalClusterManagerImpl): the clusters by
# name, each with its load balancers and the connection pools of its hosts.
# Clusters are added, updated and removed from plan Structs (plan_types), at
# start-up or later by a control message.


@cython.final
cdef class HostConnPools:
    """The pools of one host of one cluster, one slot per protocol (Envoy's
    ConnPoolsContainer). A slot is filled on first use."""
    cdef HostImpl host
    cdef TcpConnPoolImpl tcp
    cdef Http1ConnPoolImpl http1


@cython.final
cdef class ThreadLocalCluster:
    cdef ClusterInfo info
    cdef list hosts                 # HostImpl; host.index is its position
    cdef list host_pools            # HostConnPools, aligned with hosts
    cdef LoadBalancer lb            # every host: panic mode
    cdef LoadBalancer healthy_lb    # healthy hosts (lb itself when all are)
    cdef LoadBalancer degraded_lb   # degraded hosts; None when none
    cdef bint panic                 # too few healthy hosts: balance over all
    cdef int healthy_load           # % of picks among healthy hosts, else degraded
    cdef Dispatcher dispatcher

    @staticmethod
    cdef ThreadLocalCluster from_plan(FactoryContext ctx, object plan)
    cdef int update_from_plan(self, FactoryContext ctx, object plan) except -1
    cdef int set_hosts(self, list hosts, object plan) except -1
    cdef HostImpl choose_host(self, LoadBalancerContext context)
    cdef TcpConnPoolImpl tcp_conn_pool(self, LoadBalancerContext context)
    cdef TcpConnPoolImpl existing_tcp_pool(self, HostImpl host)
    cdef Http1ConnPoolImpl http1_conn_pool(self, HostImpl host)
    cdef str failure_reason(self, HostImpl host)


@cython.final
cdef class ClusterManagerImpl:
    cdef FactoryContext context
    cdef dict clusters              # name -> ThreadLocalCluster

    cdef ThreadLocalCluster get_thread_local_cluster(self, str name)
