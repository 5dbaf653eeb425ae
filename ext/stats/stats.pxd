# Shared-memory stats: counters and gauges are int64 slots of a worker's row;
# a histogram is HIST_SLOTS consecutive slots (bucket counts, then the sum).
#
# Buckets are log-linear over integer values (milliseconds): values 0..15 have
# a bucket each, then every power of two is split in 16, so a bucket is never
# wider than 1/16 of its value (quantiles within ~6%), up to 2^36 ms.

cdef enum:
    HIST_SUB_BITS = 4
    HIST_SUB = 16                   # 1 << HIST_SUB_BITS
    HIST_BUCKETS = 528              # 16 + (36 - 3) * 16
    HIST_SUM = 528                  # slot of the sum, after the buckets
    HIST_SLOTS = 529

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
    cdef int msb
    if v < HIST_SUB:
        return <Py_ssize_t>v
    msb = 63 - __builtin_clzll(v)               # >= HIST_SUB_BITS
    if msb >= 36 + HIST_SUB_BITS - 1:
        return HIST_BUCKETS - 1
    return <Py_ssize_t>(HIST_SUB + (msb - HIST_SUB_BITS) * HIST_SUB
                        + ((v >> (msb - HIST_SUB_BITS)) & (HIST_SUB - 1)))


cdef inline void hist_record(int64_t *h, double value_ms) noexcept:
    cdef uint64_t v = <uint64_t>value_ms if value_ms > 0 else 0
    h[hist_bucket(v)] += 1
    h[HIST_SUM] += <int64_t>v
