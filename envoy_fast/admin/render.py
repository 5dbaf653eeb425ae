"""Envoy's admin output formats, as pure functions of constructed values.

Nothing here touches a socket or a server: the handlers in ``server.py`` gather
values and call these. Every format was checked against Envoy 1.40 on the same
configuration (tests/integration/test_admin.py runs both).

Histograms. Envoy keeps histograms as circllhist (log-linear, two significant
digits: value 0 is its own bin, 1..9.9 have bins 0.1 wide, 10..99 bins 1 wide,
100..999 bins 10 wide, ...) and computes everything from those bins: quantiles
(Hyndman-Fan type 1, each bin's n samples assumed at left + k/(n+1) * width),
Prometheus ``le`` counts (every bin whose left edge is <= the bound, so a 255 ms
sample counts under ``le="250"``), and ``_sum`` (each bin's count times its
"minimum error" midpoint, not the recorded sum). envoy_fast records integer
milliseconds in buckets that are exactly circllhist's bins for integers (see
ext/stats/stats.pxd); :func:`circll_bins` maps bucket counts onto bins (one
bin per bucket; a bucket spanning several bins would share its count in
proportion to the integers each holds). The output matches Envoy's digit for
digit for the same samples.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from envoy_fast.stats.tags import extract_tags, prometheus_name

# --------------------------------------------------------------------- numbers


def fmt_double(x: float) -> str:
    """A double as Envoy prints it with fmt's ``{}``: shortest round-trip
    digits, no ``.0`` on whole numbers, ``nan``/``inf``."""
    if x != x:
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == int(x) and abs(x) < 1e16:
        return str(int(x))
    return repr(float(x))


def fmt_g32(x: float) -> str:
    """fmt ``{:.32g}`` (Prometheus bucket bounds and ``_sum``)."""
    return "%.32g" % x


# ------------------------------------------------------------------ histograms

#: Envoy's supported quantiles (Histogram::supportedQuantiles) and their labels.
QUANTILES = (0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 1.0)
QUANTILE_LABELS = ("0", "25", "50", "75", "90", "95", "99", "99.5", "99.9", "100")
#: Envoy's default Prometheus histogram buckets (ms).
PROMETHEUS_BUCKETS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
                      30000, 60000, 300000, 600000, 1800000, 3600000)


class Bin(NamedTuple):
    """One circllhist bin: integers [start, end) fall in it; left/width as
    circllhist computes them in doubles (width 0 for the zero bin)."""
    start: int
    end: int
    left: float
    width: float
    count: int


def _bin_of(v: int) -> Tuple[int, int, float, float]:
    """(start, end, left, width) of the circllhist bin holding integer v >= 0."""
    if v == 0:
        return 0, 1, 0.0, 0.0
    exp = len(str(v)) - 1                    # floor(log10(v))
    if exp == 0:
        val = v * 10
        start, end = v, v + 1
    else:
        step = 10 ** (exp - 1)
        val = v // step
        start, end = val * step, (val + 1) * step
    pot = float("1e%d" % exp)                # circllhist's power_of_ten table
    return start, end, (val / 10.0) * pot, pot / 10.0


def _apportion(total: int, weights: Sequence[int]) -> List[int]:
    """Split `total` into integers proportional to `weights` (largest
    remainder; ties go to the earlier share)."""
    wsum = sum(weights)
    shares = [total * w // wsum for w in weights]
    rest = total - sum(shares)
    order = sorted(range(len(weights)), key=lambda i: (-((total * weights[i]) % wsum), i))
    for i in order[:rest]:
        shares[i] += 1
    return shares


def circll_bins(counts: Sequence[int], bounds: Sequence[Tuple[int, int]]) -> List[Bin]:
    """envoy_fast bucket counts ([lo, hi) integer ms) as circllhist bins, in order."""
    acc: Dict[int, List[Any]] = {}
    for (lo, hi), n in zip(bounds, counts):
        if not n:
            continue
        pieces = []
        v = lo
        while v < hi:
            start, end, left, width = _bin_of(v)
            top = min(end, hi)
            pieces.append(((start, end, left, width), top - v))
            v = top
        shares = [n] if len(pieces) == 1 else _apportion(n, [m for _, m in pieces])
        for (key, _m), share in zip(pieces, shares):
            if share:
                slot = acc.setdefault(key[0], [key, 0])
                slot[1] += share
    return [Bin(k[0], k[1], k[2], k[3], c) for _, (k, c) in sorted(acc.items())]


def bins_of_values(values: Iterable[int]) -> List[Bin]:
    """circllhist bins of integer samples (what Envoy would hold)."""
    acc: Dict[int, List[Any]] = {}
    for v in values:
        key = _bin_of(int(v))
        slot = acc.setdefault(key[0], [key, 0])
        slot[1] += 1
    return [Bin(k[0], k[1], k[2], k[3], c) for _, (k, c) in sorted(acc.items())]


def approx_quantiles(bins: Sequence[Bin], qs: Sequence[float] = QUANTILES) -> List[float]:
    """circllhist's hist_approx_quantile (type 1), operation for operation."""
    total = float(sum(b.count for b in bins))
    if total == 0:
        return [float("nan")] * len(qs)
    qout = [total * q for q in qs]
    used = len(bins)
    lower = upper = 0.0
    left = width = 0.0
    i_b = 0

    def track(i: int) -> None:
        nonlocal left, width, lower, upper
        width = bins[i].width
        left = bins[i].left
        lower = upper
        upper = lower + bins[i].count

    while i_b < used:
        if bins[i_b].count:
            track(i_b)
            break
        i_b += 1
    out = []
    for qn in qout:
        while i_b < used - 1 and upper < qn:
            i_b += 1
            track(i_b)
        if width == 0:
            out.append(left)
            continue
        n = bins[i_b].count
        k = math.ceil(qn - lower)
        if k == 0:
            out.append(left + 1.0 / (n + 1) * width)
        else:
            out.append(left + k / (n + 1) * width)
    return out


def approx_sum(bins: Sequence[Bin]) -> float:
    """hist_approx_sum: each bin's count at its minimum-error midpoint."""
    total = 0.0
    for b in bins:
        if b.width == 0:
            mid = 0.0
        else:
            bottom = b.left
            top = bottom + b.width
            mid = bottom + b.width * (bottom / (bottom + top))
        total += mid * float(b.count)
    return total


def count_below(bins: Sequence[Bin], bound: float) -> int:
    """hist_approx_count_below: samples in bins whose left edge is <= bound."""
    return sum(b.count for b in bins if b.start <= bound)


class HistStats(NamedTuple):
    """What Envoy computes for one histogram at a stats flush."""
    quantiles: List[float]
    buckets: List[int]        # cumulative counts for PROMETHEUS_BUCKETS
    count: int
    sum: float


def hist_stats(bins: Sequence[Bin]) -> HistStats:
    return HistStats(approx_quantiles(bins), [count_below(bins, b) for b in PROMETHEUS_BUCKETS],
                     sum(b.count for b in bins), approx_sum(bins))


EMPTY_STATS = hist_stats([])


class HistView(NamedTuple):
    """A histogram as the admin shows it: the last flush's interval and
    cumulative statistics; `used` once a flush has seen a sample."""
    interval: HistStats
    cumulative: HistStats
    used: bool


UNUSED_HIST = HistView(EMPTY_STATS, EMPTY_STATS, False)


def quantile_summary(h: HistView) -> str:
    """``P0(interval,cumulative) ... P100(...)`` or ``No recorded values``."""
    if not h.used:
        return "No recorded values"
    return " ".join("P%s(%s,%s)" % (label, fmt_double(i), fmt_double(c))
                    for label, i, c in zip(QUANTILE_LABELS, h.interval.quantiles,
                                           h.cumulative.quantiles))


# ----------------------------------------------------------------------- /stats

#: ``?format=`` values /stats accepts (Envoy's usage line).
STATS_FORMATS = ("html", "active-html", "json", "prometheus", "text")
STATS_USAGE = "usage: /stats?format=(html|active-html|json|prometheus|text)\n\n"


class StatSet(NamedTuple):
    """Counters and gauges (name -> value), their kinds, histograms, and which
    gauges count as "used" (Envoy marks a gauge used once it is set)."""
    values: Dict[str, int]
    kinds: Dict[str, str]          # name -> "counter" | "gauge"
    histograms: Dict[str, HistView]
    used_gauges: frozenset = frozenset()

    def used(self, name: str) -> bool:
        if self.kinds.get(name) == "gauge":
            return name in self.used_gauges or self.values.get(name, 0) != 0
        return self.values.get(name, 0) != 0


def gauges_in_use(values: Dict[str, int], kinds: Dict[str, str],
                  always: Iterable[str] = ()) -> frozenset:
    """Gauges Envoy would show under ``?usedonly``: those ever set. A shared
    gauge cannot tell, so ``x_active`` counts as set once ``x_total`` has
    counted (it went up, and maybe down again); `always` are set at start-up."""
    out = set(always)
    for name, kind in kinds.items():
        if kind != "gauge":
            continue
        if values.get(name, 0):
            out.add(name)
        elif name.endswith("_active") and values.get(name[:-len("active")] + "total", 0):
            out.add(name)
    return frozenset(out)


class StatsQuery(NamedTuple):
    """The /stats query parameters envoy_fast honours."""
    regex: Optional[Any] = None
    used_only: bool = False
    kind: str = "all"              # all | counters | gauges | histograms | textreadouts
    invert: bool = False

    def wants(self, name: str) -> bool:
        if self.regex is None:
            return True
        return bool(self.regex.search(name)) != self.invert


def _selected(stats: StatSet, q: StatsQuery) -> Tuple[List[str], List[str]]:
    scalars = []
    if q.kind in ("all", "counters", "gauges"):
        for name in sorted(stats.values):
            kind = stats.kinds.get(name, "counter")
            if q.kind != "all" and q.kind != kind + "s":
                continue
            if q.used_only and not stats.used(name):
                continue
            if q.wants(name):
                scalars.append(name)
    hists = []
    if q.kind in ("all", "histograms"):
        for name in sorted(stats.histograms):
            if q.used_only and not stats.histograms[name].used:
                continue
            if q.wants(name):
                hists.append(name)
    return scalars, hists


def render_stats_text(stats: StatSet, q: StatsQuery = StatsQuery()) -> str:
    scalars, hists = _selected(stats, q)
    out = ["%s: %d\n" % (n, stats.values[n]) for n in scalars]
    out += ["%s: %s\n" % (n, quantile_summary(stats.histograms[n])) for n in hists]
    return "".join(out)


def _json_num(x: float) -> str:
    return "null" if x != x or math.isinf(x) else fmt_double(x)


def render_stats_json(stats: StatSet, q: StatsQuery = StatsQuery()) -> str:
    """Envoy's compact ``{"stats":[...]}``; histograms last, as one element."""
    scalars, hists = _selected(stats, q)
    parts = ['{"name":%s,"value":%d}' % (json.dumps(n), stats.values[n]) for n in scalars]
    if hists:
        computed = []
        for n in hists:
            h = stats.histograms[n]
            if h.used:
                vals = ",".join('{"cumulative":%s,"interval":%s}' % (_json_num(c), _json_num(i))
                                for i, c in zip(h.interval.quantiles, h.cumulative.quantiles))
            else:
                vals = ",".join(['{"cumulative":null,"interval":null}'] * len(QUANTILES))
            computed.append('{"name":%s,"values":[%s]}' % (json.dumps(n), vals))
        parts.append('{"histograms":{"supported_quantiles":[%s],"computed_quantiles":[%s]}}'
                     % (",".join(QUANTILE_LABELS), ",".join(computed)))
    return '{"stats":[%s]}' % ",".join(parts)


# ------------------------------------------------------------------ Prometheus

def _token_key(name: str) -> List[str]:
    """Envoy's StatName order: element by element between the dots."""
    return name.split(".")


def _labels(tags: List[Tuple[str, str]]) -> str:
    return ",".join('%s="%s"' % (k, v) for k, v in tags)


def render_prometheus(stats: StatSet, q: StatsQuery = StatsQuery()) -> str:
    """``# TYPE`` groups: counters, then gauges, then histograms; groups by
    tag-extracted name, stats in a group by their full name."""
    out: List[str] = []

    def section(names: Iterable[str], kind: str, emit) -> None:
        groups: Dict[str, List[Tuple[str, List[Tuple[str, str]]]]] = {}
        for name in names:
            extracted, tags = extract_tags(name)
            groups.setdefault(extracted, []).append((name, tags))
        for extracted in sorted(groups, key=_token_key):
            metric = prometheus_name(extracted)
            out.append("# TYPE %s %s\n" % (metric, kind))
            for name, tags in sorted(groups[extracted], key=lambda e: _token_key(e[0])):
                emit(metric, name, tags)

    def scalar(metric: str, name: str, tags) -> None:
        out.append("%s{%s} %d\n" % (metric, _labels(tags), stats.values[name]))

    def histogram(metric: str, name: str, tags) -> None:
        c = stats.histograms[name].cumulative
        lab = _labels(tags)
        pre = lab + "," if lab else ""
        for bound, n in zip(PROMETHEUS_BUCKETS, c.buckets):
            out.append('%s_bucket{%sle="%s"} %d\n' % (metric, pre, fmt_g32(bound), n))
        out.append('%s_bucket{%sle="+Inf"} %d\n' % (metric, pre, c.count))
        out.append("%s_sum{%s} %s\n" % (metric, lab, fmt_g32(c.sum)))
        out.append("%s_count{%s} %d\n" % (metric, lab, c.count))

    def keep(name: str) -> bool:
        return (not q.used_only or stats.used(name)) and q.wants(name)

    section([n for n in stats.values if stats.kinds.get(n) == "counter" and keep(n)],
            "counter", scalar)
    section([n for n in stats.values if stats.kinds.get(n) == "gauge" and keep(n)],
            "gauge", scalar)
    section([n for n, h in stats.histograms.items()
             if (not q.used_only or h.used) and q.wants(n)], "histogram", histogram)
    return "".join(out)


# ---------------------------------------------------------------- JSON helpers


def envoy_json(obj: Any) -> str:
    """Envoy's pretty JSON (protobuf printer): one-space indent, newline at end."""
    return json.dumps(_whole_floats(obj), indent=1, ensure_ascii=False) + "\n"


def _whole_floats(obj: Any) -> Any:
    """protobuf prints a double 50.0 as 50."""
    if isinstance(obj, float) and obj.is_integer() and abs(obj) < 1e16:
        return int(obj)
    if isinstance(obj, dict):
        return {k: _whole_floats(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_whole_floats(v) for v in obj]
    return obj


# -------------------------------------------------------------------- /clusters

#: Host stats /clusters prints, in Envoy's order (alphabetical); counters then
#: gauges in ?format=json.
HOST_COUNTERS = ("cx_connect_fail", "cx_total", "rq_error", "rq_success", "rq_timeout", "rq_total")
HOST_GAUGES = ("cx_active", "rq_active", "rq_pending_active")
THRESHOLD_KEYS = ("max_connections", "max_pending_requests", "max_requests", "max_retries")

# envoy.config.core.v3.HealthStatus set in the config -> Envoy's host flags.
_EDS_FLAGS = {"UNHEALTHY": "/failed_eds_health", "DRAINING": "/eds_status_draining",
              "TIMEOUT": "/failed_eds_health", "DEGRADED": "/degraded_eds_health"}


class HostView(NamedTuple):
    address: str               # IP literal
    port: int
    hostname: str
    weight: int
    priority: int
    health_status: str         # config's HealthStatus name
    stats: Dict[str, int]      # HOST_COUNTERS + HOST_GAUGES (missing ones are 0)

    @property
    def address_port(self) -> str:
        a = "[%s]" % self.address if ":" in self.address else self.address
        return "%s:%d" % (a, self.port)

    @property
    def health_flags(self) -> str:
        return _EDS_FLAGS.get(self.health_status, "healthy")

    @property
    def eds_health_status(self) -> str:
        # Envoy reports the host's state, in which TIMEOUT is UNHEALTHY.
        if self.health_status in ("UNKNOWN", "HEALTHY"):
            return "HEALTHY"
        return "UNHEALTHY" if self.health_status == "TIMEOUT" else self.health_status


class ClusterView(NamedTuple):
    name: str
    observability_name: str
    default_thresholds: Dict[str, int]
    high_thresholds: Dict[str, int]
    hosts: List[HostView]
    added_via_api: bool = False


def render_clusters_text(clusters: Sequence[ClusterView]) -> str:
    out: List[str] = []
    for c in clusters:
        n = c.name
        out.append("%s::observability_name::%s\n" % (n, c.observability_name))
        for prio, th in (("default_priority", c.default_thresholds),
                         ("high_priority", c.high_thresholds)):
            for k in THRESHOLD_KEYS:
                out.append("%s::%s::%s::%d\n" % (n, prio, k, th[k]))
        out.append("%s::added_via_api::%s\n" % (n, "true" if c.added_via_api else "false"))
        for h in c.hosts:
            p = "%s::%s::" % (n, h.address_port)
            for k in sorted(HOST_COUNTERS + HOST_GAUGES):
                out.append("%s%s::%d\n" % (p, k, h.stats.get(k, 0)))
            out.append("%shostname::%s\n" % (p, h.hostname))
            out.append("%shealth_flags::%s\n" % (p, h.health_flags))
            out.append("%sweight::%d\n" % (p, h.weight))
            out.append("%sregion::\n%szone::\n%ssub_zone::\n" % (p, p, p))
            out.append("%scanary::false\n" % p)
            out.append("%spriority::%d\n" % (p, h.priority))
            out.append("%ssuccess_rate::-1\n" % p)
            out.append("%slocal_origin_success_rate::-1\n" % p)
    return "".join(out)


def clusters_json(clusters: Sequence[ClusterView]) -> Dict[str, Any]:
    """envoy.admin.v3.Clusters as Envoy prints it (defaults left out)."""
    statuses = []
    for c in clusters:
        hosts = []
        for h in c.hosts:
            stats: List[Dict[str, Any]] = []
            for k in HOST_COUNTERS:
                e: Dict[str, Any] = {}
                if h.stats.get(k, 0):
                    e["value"] = str(h.stats[k])
                e["name"] = k
                stats.append(e)
            for k in HOST_GAUGES:
                e = {"type": "GAUGE"}
                if h.stats.get(k, 0):
                    e["value"] = str(h.stats[k])
                e["name"] = k
                stats.append(e)
            host: Dict[str, Any] = {
                "address": {"socket_address": {"address": h.address, "port_value": h.port}},
                "stats": stats,
                "health_status": {"eds_health_status": h.eds_health_status},
                "weight": h.weight,
            }
            if h.hostname:
                host["hostname"] = h.hostname
            host["locality"] = {}
            if h.priority:
                host["priority"] = h.priority
            hosts.append(host)
        entry: Dict[str, Any] = {"name": c.name}
        if c.added_via_api:
            entry["added_via_api"] = True
        entry["host_statuses"] = hosts
        high = {"priority": "HIGH"}
        high.update(c.high_thresholds)
        entry["circuit_breakers"] = {"thresholds": [dict(c.default_thresholds), high]}
        entry["observability_name"] = c.observability_name
        statuses.append(entry)
    return {"cluster_statuses": statuses}


# ------------------------------------------------------------------- /listeners


def render_listeners_text(listeners: Sequence[Tuple[str, str, int]]) -> str:
    return "".join("%s::%s:%d\n" % (name, "[%s]" % a if ":" in a else a, port)
                   for name, a, port in listeners)


def listeners_json(listeners: Sequence[Tuple[str, str, int]]) -> Dict[str, Any]:
    return {"listener_statuses": [
        {"name": name, "local_address": {"socket_address": {"address": a, "port_value": port}}}
        for name, a, port in listeners]}


# --------------------------------------------------------------- /server_info

#: Envoy's default log format (command_line_options.log_format).
DEFAULT_LOG_FORMAT = "[%Y-%m-%d %T.%e][%t][%l][%n] [%g:%#] %v"


def fmt_seconds(s: float) -> str:
    """A google.protobuf.Duration in JSON: "600s", "0.250s", "1.000001s"."""
    nanos_total = int(round(s * 1e9))
    sign = "-" if nanos_total < 0 else ""
    secs, nanos = divmod(abs(nanos_total), 1000000000)
    if nanos == 0:
        return "%s%ds" % (sign, secs)
    if nanos % 1000000 == 0:
        return "%s%d.%03ds" % (sign, secs, nanos // 1000000)
    if nanos % 1000 == 0:
        return "%s%d.%06ds" % (sign, secs, nanos // 1000)
    return "%s%d.%09ds" % (sign, secs, nanos)


def command_line_options(opts: Any, concurrency: int) -> Dict[str, Any]:
    """envoy.admin.v3.CommandLineOptions in Envoy's field order, every field
    printed (server_info prints defaults); unknown options keep Envoy's defaults."""
    g = lambda name, default: getattr(opts, name, default)  # noqa: E731
    return {
        "base_id": str(g("base_id", 0)),
        "concurrency": concurrency,
        "config_path": g("config_path", "") or "",
        "config_yaml": g("config_yaml", "") or "",
        "allow_unknown_static_fields": bool(g("allow_unknown_static_fields", False)),
        "admin_address_path": g("admin_address_path", "") or "",
        "local_address_ip_version": g("local_address_ip_version", "v4"),
        "log_level": g("log_level", "info"),
        "component_log_level": g("component_log_level", "") or "",
        "log_format": g("log_format", None) or DEFAULT_LOG_FORMAT,
        "log_path": g("log_path", "") or "",
        "service_cluster": g("service_cluster", "") or "",
        "service_node": g("service_node", "") or "",
        "service_zone": g("service_zone", "") or "",
        "file_flush_interval": fmt_seconds(g("file_flush_interval_s", 10.0)),
        "drain_time": fmt_seconds(g("drain_time_s", 600.0)),
        "parent_shutdown_time": fmt_seconds(g("parent_shutdown_time_s", 900.0)),
        "mode": g("mode", "Serve"),
        "disable_hot_restart": bool(g("disable_hot_restart", False)),
        "enable_mutex_tracing": False,
        "restart_epoch": int(g("restart_epoch", 0)),
        "cpuset_threads": bool(g("cpuset_threads", False)),
        "reject_unknown_dynamic_fields": bool(g("reject_unknown_dynamic_fields", False)),
        "log_format_escaped": bool(g("log_format_escaped", False)),
        "disabled_extensions": list(g("disabled_extensions", []) or []),
        "ignore_unknown_dynamic_fields": bool(g("ignore_unknown_dynamic_fields", False)),
        "use_dynamic_base_id": bool(g("use_dynamic_base_id", False)),
        "base_id_path": g("base_id_path", "") or "",
        "drain_strategy": g("drain_strategy", "Gradual"),
        "enable_fine_grain_logging": bool(g("enable_fine_grain_logging", False)),
        "socket_path": g("socket_path", "@envoy_domain_socket"),
        "socket_mode": int(g("socket_mode", 0)),
        "enable_core_dump": bool(g("enable_core_dump", False)),
        "stats_tag": list(g("stats_tag", []) or []),
        "skip_hot_restart_on_no_parent": False,
        "skip_hot_restart_parent_stats": False,
        "skip_deprecated_logs": bool(g("skip_deprecated_logs", False)),
        "file_flush_min_size": int(g("file_flush_min_size", 0)),
        "log_stacktrace_single_entry": False,
    }


def version_parts(version: str) -> Dict[str, int]:
    nums = [int(x) for x in re.findall(r"\d+", version)[:3]] + [0, 0, 0]
    return {"major_number": nums[0], "minor_number": nums[1], "patch": nums[2]}


def node_json(node: Optional[Dict[str, Any]], version: str, defaults: bool) -> Dict[str, Any]:
    """The node as Envoy reports it: the configured one plus the build's user
    agent; `defaults` prints empty fields too (server_info does, config_dump not)."""
    node = dict(node or {})
    out: Dict[str, Any] = {}
    for k in ("id", "cluster"):
        if node.get(k) or defaults:
            out[k] = node.get(k, "")
    for k in ("metadata", "locality"):
        if k in node:
            out[k] = node[k]
    out["user_agent_name"] = "envoy_fast"
    ver = version_parts(version)
    if not defaults:
        ver = {k: v for k, v in ver.items() if v}
    out["user_agent_build_version"] = {"version": ver}
    if defaults:
        out["extensions"] = []
        out["client_features"] = []
        out["listening_addresses"] = []
        out["dynamic_parameters"] = {}
    return out


def server_info(*, version: str, state: str, uptime_s: float, options: Any, concurrency: int,
                node: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    up = "%ds" % int(uptime_s)
    return {
        "version": "envoy_fast/%s/Clean/RELEASE/none" % version,
        "state": state,
        "uptime_current_epoch": up,
        "uptime_all_epochs": up,
        "hot_restart_version": "disabled",
        "command_line_options": command_line_options(options, concurrency),
        "node": node_json(node, version, defaults=True),
        "hot_restart_initializing": False,
    }


# ---------------------------------------------------------------------- /memory


def memory_json(allocated: int, heap_size: int, physical: int) -> Dict[str, str]:
    """envoy.admin.v3.Memory: uint64 fields print as strings."""
    return {
        "allocated": str(allocated),
        "heap_size": str(heap_size),
        "pageheap_unmapped": "0",
        "pageheap_free": "0",
        "total_thread_cache": "0",
        "total_physical_bytes": str(physical),
    }


# ------------------------------------------------------------------ timestamps

def timestamp(t: float) -> str:
    """google.protobuf.Timestamp in JSON, millisecond precision as Envoy."""
    import time as _time
    ms = int(round(t * 1000))
    secs, ms = divmod(ms, 1000)
    return _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(secs)) + ".%03dZ" % ms
