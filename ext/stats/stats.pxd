# Shared-memory stats: counters and gauges are int64 slots of a worker's row;
# a histogram is HIST_SLOTS consecutive slots (bucket counts, then the sum).
#
# Histogram buckets are Envoy's circllhist bins for integer values (ms): two
# significant decimal digits. 0..99 have a bucket each; above, each decade
# has 90: [100,110) [110,120) ... [990,1000) [1000,1100) ... up to 10^11 ms.
# So admin quantiles and Prometheus buckets come out exactly as Envoy's.

cdef enum:
    HIST_BUCKETS = 910              # 100 + 9 decades * 90
    HIST_SUM = 910                  # slot of the sum, after the buckets
    HIST_SLOTS = 911

cdef enum:  # HostStat: offsets in a host's stats block
    HOST_CX_TOTAL
    HOST_CX_ACTIVE
    HOST_CX_CONNECT_FAIL
    HOST_RQ_TOTAL
    HOST_RQ_ACTIVE
    HOST_RQ_ERROR
    HOST_RQ_SUCCESS
    HOST_RQ_TIMEOUT
    HOST_STATS_COUNT


cdef inline Py_ssize_t hist_bucket(uint64_t v) noexcept:
    cdef uint64_t step = 10         # 10^(exp - 1)
    cdef int exp = 2
    if v < 100:
        return <Py_ssize_t>v
    while v >= step * 100:
        step *= 10
        exp += 1
        if exp > 10:
            return HIST_BUCKETS - 1
    return 100 + (exp - 2) * 90 + <Py_ssize_t>(v // step) - 10


cdef inline void hist_record(int64_t *h, double value_ms) noexcept:
    cdef uint64_t v = <uint64_t>value_ms if value_ms > 0 else 0
    h[hist_bucket(v)] += 1
    h[HIST_SUM] += <int64_t>v


# HTTP response codes, as Envoy's CodeStats charges them per cluster
# (upstream_rq_<class>xx and upstream_rq_<code>). Envoy creates these names on
# first use; here every cluster has a block of slots for them made in
# advance (names listed once non-zero), so charging one is a C store.
cdef enum:  # StatusCodeStat: offsets in a status-code block
    STATUS_CLASS_1XX = 0            # .. STATUS_CLASS_1XX + 4: 5xx
    STATUS_CODE_FIRST = 5           # then one slot per code of STATUS_CODES
    STATUS_EXTERNAL_COMPLETED = 64  # external block: upstream_rq_completed after the codes

cdef extern from *:
    """
    /* code -> offset in a status-code block; 0: the code has no slot of its own */
    static short ef_status_code_slot[600];
    """
    short ef_status_code_slot[600]


cdef inline void charge_status_code(int64_t *block, int code) noexcept:
    cdef short slot
    if code < 100 or code >= 600:
        return
    block[STATUS_CLASS_1XX + code // 100 - 1] += 1
    slot = ef_status_code_slot[code]
    if slot:
        block[slot] += 1
