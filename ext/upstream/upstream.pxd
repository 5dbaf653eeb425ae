# Cluster side of a worker (Envoy source/common/upstream/): hosts, cluster
# info with circuit breakers, ThreadLocalCluster and its load balancers.

cdef class TcpConnPoolImpl
cdef class Http1ConnPoolImpl
cdef class ClusterInfo
cdef class ThreadLocalCluster


cdef class LinkedObject:
    """An intrusive list entry (Envoy's LinkedObject): O(1) removal from the
    list it is in."""
    cdef LinkedObject prev
    cdef LinkedObject next
    cdef LinkedList owner_list


@cython.final
cdef class LinkedList:
    cdef LinkedObject head
    cdef LinkedObject tail
    cdef Py_ssize_t size

    cdef void push_back(self, LinkedObject o)
    cdef void remove(self, LinkedObject o)


cdef enum:  # ClusterStat: offsets in a cluster's stats block
    CLUSTER_UPSTREAM_CX_TOTAL
    CLUSTER_UPSTREAM_CX_ACTIVE
    CLUSTER_UPSTREAM_CX_CONNECT_FAIL
    CLUSTER_UPSTREAM_CX_CONNECT_TIMEOUT
    CLUSTER_UPSTREAM_CX_CONNECT_ATTEMPTS_EXCEEDED
    CLUSTER_UPSTREAM_CX_OVERFLOW
    CLUSTER_UPSTREAM_CX_NONE_HEALTHY
    CLUSTER_UPSTREAM_CX_DESTROY
    CLUSTER_UPSTREAM_CX_DESTROY_LOCAL
    CLUSTER_UPSTREAM_CX_DESTROY_REMOTE
    CLUSTER_UPSTREAM_CX_DESTROY_WITH_ACTIVE_RQ
    CLUSTER_UPSTREAM_CX_DESTROY_LOCAL_WITH_ACTIVE_RQ
    CLUSTER_UPSTREAM_CX_DESTROY_REMOTE_WITH_ACTIVE_RQ
    CLUSTER_UPSTREAM_CX_RX_BYTES_TOTAL
    CLUSTER_UPSTREAM_CX_TX_BYTES_TOTAL
    CLUSTER_UPSTREAM_RQ_TOTAL
    CLUSTER_UPSTREAM_RQ_ACTIVE
    CLUSTER_UPSTREAM_RQ_PENDING_TOTAL
    CLUSTER_UPSTREAM_RQ_PENDING_ACTIVE
    CLUSTER_UPSTREAM_RQ_PENDING_OVERFLOW
    CLUSTER_UPSTREAM_RQ_PENDING_FAILURE_EJECT
    CLUSTER_UPSTREAM_RQ_CANCELLED
    CLUSTER_LB_HEALTHY_PANIC
    CLUSTER_UPSTREAM_CX_HTTP1_TOTAL
    CLUSTER_UPSTREAM_CX_IDLE_TIMEOUT
    CLUSTER_UPSTREAM_CX_MAX_REQUESTS
    CLUSTER_UPSTREAM_CX_PROTOCOL_ERROR
    CLUSTER_UPSTREAM_CX_CLOSE_NOTIFY
    CLUSTER_UPSTREAM_RQ_ACTIVE_OVERFLOW
    CLUSTER_UPSTREAM_RQ_KEEPALIVE_RACE_RETRY    # envoy_fast's own (docs/decisions.md)
    # the router's (Envoy's ClusterTrafficStats)
    CLUSTER_UPSTREAM_RQ_COMPLETED
    CLUSTER_UPSTREAM_RQ_TIMEOUT
    CLUSTER_UPSTREAM_RQ_PER_TRY_TIMEOUT
    CLUSTER_UPSTREAM_RQ_RETRY
    CLUSTER_UPSTREAM_RQ_RETRY_SUCCESS
    CLUSTER_UPSTREAM_RQ_RETRY_OVERFLOW
    CLUSTER_UPSTREAM_RQ_RETRY_LIMIT_EXCEEDED
    CLUSTER_UPSTREAM_RQ_RETRY_BACKOFF_EXPONENTIAL
    CLUSTER_RETRY_OR_SHADOW_ABANDONED
    CLUSTER_STATS_COUNT

# Cluster-wide (all workers) circuit-breaker counts, in shared memory.
cdef enum:  # ClusterResource
    RESOURCE_CONNECTIONS
    RESOURCE_PENDING_REQUESTS
    RESOURCE_REQUESTS
    RESOURCE_RETRIES
    RESOURCE_COUNT


@cython.final
cdef class ResourceLimit:
    """One circuit-breaker threshold over a shared-memory count (Envoy's
    ResourceManagerImpl::ResourceImpl)."""
    cdef int64_t *count             # cluster-wide, in the shared row
    cdef int64_t *mine              # this worker's part, in its own row: main
                                    # takes it back if the worker dies
    cdef int64_t max

    @staticmethod
    cdef ResourceLimit new(int64_t *count, int64_t *mine, int64_t max)
    cdef inline bint can_create(self) noexcept:
        return ef_atomic_load(self.count) < self.max
    cdef inline bint try_inc(self) noexcept:
        # Reserve atomically: check-then-add would let two workers both pass.
        if ef_atomic_add(self.count, 1) > self.max:
            ef_atomic_add(self.count, -1)
            return False
        self.mine[0] += 1
        return True
    cdef inline void inc(self) noexcept:
        ef_atomic_add(self.count, 1)
        self.mine[0] += 1
    cdef inline void dec(self) noexcept:
        ef_atomic_add(self.count, -1)
        self.mine[0] -= 1


@cython.final
cdef class ClusterInfo:
    cdef str name
    cdef int64_t *stats
    cdef int64_t *connect_ms        # histograms
    cdef int64_t *length_ms
    cdef int64_t *rq_status         # StatusCodeStat block: charge_status_code()
    cdef int64_t *external_rq_status    # cluster.<c>.external.: StatusCodeStat + completed
    cdef int64_t *retry_rq_status   # cluster.<c>.retry.: the responses retried, same layout
    cdef int64_t *internal_rq_status    # cluster.<c>.internal.: x-envoy-internal requests
    cdef int64_t *rq_time           # histograms: upstream_rq_time, external.upstream_rq_time
    cdef int64_t *external_rq_time
    cdef int64_t *internal_rq_time
    cdef double connect_timeout
    cdef size_t buffer_limit
    cdef ResourceLimit connections
    cdef ResourceLimit pending_requests
    cdef ResourceLimit requests
    # HttpProtocolOptions (typed_extension_protocol_options): the HTTP pools'.
    cdef int64_t max_requests_per_connection    # 0: no limit
    cdef double idle_timeout                    # seconds; 0: none
    cdef int max_response_headers_count
    cdef ResourceLimit retries
    cdef bint enable_trailers                   # explicit_http_config.http_protocol_options
    # Warnings about downstream connections closed for want of an upstream:
    # None when the level hides them (nothing is built then); at most one
    # line per log_interval, the others counted in log_suppressed.
    cdef object log                 # logging.Logger or None
    cdef double log_next
    cdef int64_t log_suppressed

    @staticmethod
    cdef ClusterInfo from_plan(FactoryContext ctx, object plan)
    cdef int apply_plan(self, FactoryContext ctx, object plan) except -1


@cython.final
cdef class HostImpl:
    cdef ClusterInfo cluster
    cdef str address_str            # "ip:port"
    cdef bytes hostname             # the endpoint's hostname; b"" when none
    cdef sockaddr_storage address
    cdef socklen_t address_len
    cdef int weight
    cdef int health                 # HOST_HEALTHY ... HOST_EXCLUDED
    cdef Py_ssize_t rq_active       # this worker's active requests (least request)
    cdef Py_ssize_t index           # in its cluster's host set: its pools' slot
    cdef int64_t *stats             # HostStat block in this worker's row (/clusters)

    @staticmethod
    cdef HostImpl from_plan(FactoryContext ctx, ClusterInfo cluster, object plan)


cdef enum HostHealth:                # from the endpoint's health_status (plan.py)
    HOST_HEALTHY = 0
    HOST_DEGRADED = 1
    HOST_UNHEALTHY = 2
    HOST_EXCLUDED = 3               # DRAINING: not counted for panic


cdef enum LbPolicy:
    LB_ROUND_ROBIN = 0
    LB_LEAST_REQUEST = 1
    LB_RANDOM = 3


cdef class LoadBalancerContext:
    """What the caller of choose_host tells the load balancer (Envoy's
    LoadBalancerContext); None means nothing. Hash policies set a hash key."""
    cdef bint has_hash_key
    cdef uint64_t hash_key
    cdef ConnectionImpl downstream_connection


cdef class LoadBalancer:
    cdef Dispatcher dispatcher
    cdef list hosts                 # HostImpl
    cdef Py_ssize_t n
    cdef bint equal_weights
    cdef int total_weight

    cdef void init_hosts(self, Dispatcher dispatcher, list hosts)
    cdef HostImpl choose_host(self, LoadBalancerContext context)
    cdef HostImpl weighted_random(self)


@cython.final
cdef class RoundRobinLoadBalancer(LoadBalancer):
    cdef Py_ssize_t rr_index
    cdef int *current               # smooth weighted round robin state
    cdef int *weights


@cython.final
cdef class RandomLoadBalancer(LoadBalancer):
    pass


@cython.final
cdef class LeastRequestLoadBalancer(LoadBalancer):
    cdef int choice_count
    cdef double *current            # weighted schedule state (unequal weights)
