# Stat names, declared once beside the hot-path enums they index
# (Envoy's ALL_*_STATS macros). Python builds the shared-memory layout and the
# admin output from these tuples; the data plane adds to `block[ENUM]`.
# A filter declares its own block's names beside its code (tcp_proxy.pyx:
# TCP_PROXY_STATS); this table holds the listener, cluster and host ones.

COUNTER = "counter"
GAUGE = "gauge"

LISTENER_STATS = (
    ("downstream_cx_total", COUNTER),            # LISTENER_DOWNSTREAM_CX_TOTAL
    ("downstream_cx_active", GAUGE),             # LISTENER_DOWNSTREAM_CX_ACTIVE
    ("downstream_cx_destroy", COUNTER),          # LISTENER_DOWNSTREAM_CX_DESTROY
    ("downstream_cx_overflow", COUNTER),         # LISTENER_DOWNSTREAM_CX_OVERFLOW
    ("no_filter_chain_match", COUNTER),          # LISTENER_NO_FILTER_CHAIN_MATCH
    ("downstream_global_cx_overflow", COUNTER),  # LISTENER_DOWNSTREAM_GLOBAL_CX_OVERFLOW
)

CLUSTER_STATS = (
    ("upstream_cx_total", COUNTER),
    ("upstream_cx_active", GAUGE),
    ("upstream_cx_connect_fail", COUNTER),
    ("upstream_cx_connect_timeout", COUNTER),
    ("upstream_cx_connect_attempts_exceeded", COUNTER),
    ("upstream_cx_overflow", COUNTER),
    ("upstream_cx_none_healthy", COUNTER),
    ("upstream_cx_destroy", COUNTER),
    ("upstream_cx_destroy_local", COUNTER),
    ("upstream_cx_destroy_remote", COUNTER),
    ("upstream_cx_destroy_with_active_rq", COUNTER),
    ("upstream_cx_destroy_local_with_active_rq", COUNTER),
    ("upstream_cx_destroy_remote_with_active_rq", COUNTER),
    ("upstream_cx_rx_bytes_total", COUNTER),
    ("upstream_cx_tx_bytes_total", COUNTER),
    ("upstream_rq_total", COUNTER),
    ("upstream_rq_active", GAUGE),
    ("upstream_rq_pending_total", COUNTER),
    ("upstream_rq_pending_active", GAUGE),
    ("upstream_rq_pending_overflow", COUNTER),
    ("upstream_rq_pending_failure_eject", COUNTER),
    ("upstream_rq_cancelled", COUNTER),
    ("lb_healthy_panic", COUNTER),               # CLUSTER_LB_HEALTHY_PANIC
    ("upstream_cx_http1_total", COUNTER),
    ("upstream_cx_idle_timeout", COUNTER),
    ("upstream_cx_max_requests", COUNTER),
    ("upstream_cx_protocol_error", COUNTER),
    ("upstream_cx_close_notify", COUNTER),
    ("upstream_rq_active_overflow", COUNTER),     # max_requests (Envoy 1.40, observed)
    # Not Envoy's: requests sent again after the keep-alive race (docs/decisions.md).
    ("upstream_rq_keepalive_race_retry", COUNTER),
    ("upstream_rq_completed", COUNTER),          # CLUSTER_UPSTREAM_RQ_COMPLETED
    ("upstream_rq_timeout", COUNTER),
    ("upstream_rq_per_try_timeout", COUNTER),
    ("upstream_rq_retry", COUNTER),
    ("upstream_rq_retry_success", COUNTER),
    ("upstream_rq_retry_overflow", COUNTER),
    ("upstream_rq_retry_limit_exceeded", COUNTER),
    ("upstream_rq_retry_backoff_exponential", COUNTER),
    ("retry_or_shadow_abandoned", COUNTER),      # CLUSTER_RETRY_OR_SHADOW_ABANDONED
)

# Per-host counters (HostStat order): shown by /clusters, not /stats.
HOST_STATS = (
    ("cx_total", COUNTER),
    ("cx_active", GAUGE),
    ("cx_connect_fail", COUNTER),
    ("rq_total", COUNTER),
    ("rq_active", GAUGE),
    ("rq_error", COUNTER),
    ("rq_success", COUNTER),
    ("rq_timeout", COUNTER),
)

# Histograms of each block (milliseconds).
LISTENER_HISTOGRAMS = ("downstream_cx_length_ms",)
CLUSTER_HISTOGRAMS = ("upstream_cx_connect_ms", "upstream_cx_length_ms", "upstream_rq_time")
HISTOGRAM_SLOTS = HIST_SLOTS
HISTOGRAM_BUCKETS = HIST_BUCKETS


def histogram_bucket_bounds():
    """[lower, upper) integer bounds of each histogram bucket, in order."""
    out = [(i, i + 1) for i in range(100)]
    cdef object k, step, val          # Python ints: exact, never C doubles
    for k in range(int(HIST_BUCKETS) - 100):
        step = 10 ** (1 + k // 90)
        val = 10 + k % 90
        out.append((val * step, (val + 1) * step))
    return out


def histogram_bucket_for_test(uint64_t v):
    return hist_bucket(v)

# The codes of Envoy's Http::Code enum (envoy/http/codes.h, Envoy 1.40:
# 599 is its LastUnassignedServerErrorCode), in its order: each has its own
# upstream_rq_<code> slot. Another code counts in its class only.
STATUS_CODES = (
    100, 101,
    200, 201, 202, 203, 204, 205, 206, 207, 208, 226,
    300, 301, 302, 303, 304, 305, 307, 308,
    400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417,
    421, 422, 423, 424, 425, 426, 428, 429, 431,
    500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511, 599,
)
# StatusCodeStat order: the classes, then the codes.
STATUS_CODE_STATS = tuple(("upstream_rq_%dxx" % c, COUNTER) for c in range(1, 6)) + \
    tuple(("upstream_rq_%d" % code, COUNTER) for code in STATUS_CODES)

# cluster.<c>.external.: the codes again, then upstream_rq_completed (Envoy
# charges each response to the cluster and to its external/internal scope).
EXTERNAL_STATUS_CODE_STATS = STATUS_CODE_STATS + (("upstream_rq_completed", COUNTER),)
EXTERNAL_HISTOGRAMS = ("upstream_rq_time",)
if len(EXTERNAL_STATUS_CODE_STATS) != STATUS_EXTERNAL_COMPLETED + 1:
    raise ImportError("STATUS_EXTERNAL_COMPLETED and STATUS_CODES disagree")


cdef _init_status_code_slots():
    cdef int i
    for i in range(600):
        ef_status_code_slot[i] = 0
    for i, code in enumerate(STATUS_CODES):
        ef_status_code_slot[<int>code] = <short>(STATUS_CODE_FIRST + i)

_init_status_code_slots()


def charge_status_code_for_test(buffer, Py_ssize_t base, int code):
    """Charge response `code` to the status-code block at slot `base` of a
    stats buffer, as the data plane does."""
    cdef int64_t[::1] view = memoryview(buffer).cast("B").cast("q")
    charge_status_code(&view[base], code)


# Circuit-breaker counts shared by all workers (ClusterResource order).
CLUSTER_RESOURCES = ("cx_open", "rq_pending_open", "rq_open", "rq_retry_open")

if len(LISTENER_STATS) != LISTENER_STATS_COUNT or len(CLUSTER_STATS) != CLUSTER_STATS_COUNT \
        or len(CLUSTER_RESOURCES) != RESOURCE_COUNT \
        or len(HOST_STATS) != HOST_STATS_COUNT:
    raise ImportError("stat name tables and enums disagree")
