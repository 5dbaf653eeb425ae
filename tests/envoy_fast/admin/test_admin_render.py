"""Admin rendering with constructed values.

Expected strings marked "Envoy 1.40" were read from the real binary's admin
(same samples), so these pin envoy_fast to Envoy's digits, not to itself.
"""
import json
import math
import re
import types

import pytest
import yaml

from envoy_fast.admin import config_doc, config_dump, render
from envoy_fast.admin.server import AdminServer
from envoy_fast.config import load_bootstrap
from envoy_fast.stats.store import BUCKET_BOUNDS, HISTOGRAM, StatsLayout, StatsStore

TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"


def bucket_counts(values):
    """envoy_fast bucket counts of integer samples (as the workers record)."""
    counts = [0] * len(BUCKET_BOUNDS)
    for v in values:
        for i, (lo, hi) in enumerate(BUCKET_BOUNDS):
            if lo <= v < hi:
                counts[i] += 1
                break
    return counts


def summary(values):
    s = render.hist_stats(render.bins_of_values(values))
    return render.quantile_summary(render.HistView(s, s, True)), render.fmt_g32(s.sum)


# --------------------------------------------------------------------- numbers


@pytest.mark.parametrize("x,text", [
    (0.0, "0"), (2.05, "2.05"), (61.5, "61.5"), (1.0166666666666666, "1.0166666666666666"),
    (float("nan"), "nan"), (1e16, "1e+16"), (123456.0, "123456"), (1e-05, "1e-05"),
    (float("inf"), "inf")])
def test_fmt_double_is_fmt_braces(x, text):
    assert render.fmt_double(x) == text


def test_fmt_g32():
    assert render.fmt_g32(0.5) == "0.5"
    assert render.fmt_g32(3600000) == "3600000"
    assert render.fmt_g32(0.0) == "0"


@pytest.mark.parametrize("s,text", [(600, "600s"), (1, "1s"), (0.25, "0.250s"),
                                    (1.5, "1.500s"), (0.000002, "0.000002s"),
                                    (1.000000002, "1.000000002s"), (0, "0s")])
def test_durations_as_protobuf_json(s, text):
    assert render.fmt_seconds(s) == text


# ------------------------------------------------------------------ histograms


@pytest.mark.parametrize("values,quantiles,total", [
    # Envoy 1.40: cluster.up.upstream_cx_length_ms after five connections.
    ([2, 4, 8, 22, 61],
     "P0(2.05,2.05) P25(4.05,4.05) P50(8.05,8.05) P75(22.5,22.5) P90(61.5,61.5) "
     "P95(61.5,61.5) P99(61.5,61.5) P99.5(61.5,61.5) P99.9(61.5,61.5) P100(61.5,61.5)",
     "98.13267649308653517437051050365"),
    ([2, 4, 8, 22, 62],
     "P0(2.05,2.05) P25(4.05,4.05) P50(8.05,8.05) P75(22.5,22.5) P90(62.5,62.5) "
     "P95(62.5,62.5) P99(62.5,62.5) P99.5(62.5,62.5) P99.9(62.5,62.5) P100(62.5,62.5)",
     "99.132741533736947303623310290277"),
    # Envoy 1.40: connections_accepted_per_socket_event, five 1s.
    ([1] * 5,
     "P0(1.0166666666666666,1.0166666666666666) P25(1.0333333333333334,1.0333333333333334) "
     "P50(1.05,1.05) P75(1.0666666666666667,1.0666666666666667) "
     "P90(1.0833333333333333,1.0833333333333333) P95(1.0833333333333333,1.0833333333333333) "
     "P99(1.0833333333333333,1.0833333333333333) P99.5(1.0833333333333333,1.0833333333333333) "
     "P99.9(1.0833333333333333,1.0833333333333333) P100(1.0833333333333333,1.0833333333333333)",
     "5.238095238095238137532305700006"),
    ([0, 1],
     "P0(0,0) P25(0,0) P50(0,0) P75(1.05,1.05) P90(1.05,1.05) P95(1.05,1.05) P99(1.05,1.05) "
     "P99.5(1.05,1.05) P99.9(1.05,1.05) P100(1.05,1.05)",
     "1.0476190476190476719153821250075"),
    ([16], " ".join("P%s(16.5,16.5)" % q for q in render.QUANTILE_LABELS),
     "16.484848484848484417852887418121"),
    ([1, 2, 3],
     "P0(1.05,1.05) P25(1.05,1.05) P50(2.05,2.05) P75(3.05,3.05) P90(3.05,3.05) "
     "P95(3.05,3.05) P99(3.05,3.05) P99.5(3.05,3.05) P99.9(3.05,3.05) P100(3.05,3.05)",
     "6.1455798632927773894607526017353"),
    ([0, 0, 0], " ".join("P%s(0,0)" % q for q in render.QUANTILE_LABELS), "0"),
])
def test_quantiles_and_sum_as_envoy(values, quantiles, total):
    assert summary(values) == (quantiles, total)


def test_envoy_fast_buckets_are_exact_below_32ms():
    for values in ([0, 1], [1] * 5, [1, 2, 3], [16], [0, 5, 9, 10, 17, 31, 31, 31]):
        assert render.circll_bins(bucket_counts(values), BUCKET_BOUNDS) == \
            render.bins_of_values(values)


def test_buckets_are_envoy_bins():
    # Every bucket is exactly one of Envoy's circllhist bins: counts land as-is.
    bins = render.circll_bins(bucket_counts([32, 32, 33, 33, 33]), BUCKET_BOUNDS)
    assert [(b.start, b.count) for b in bins] == [(32, 2), (33, 3)]
    bins = render.circll_bins(bucket_counts([100, 101, 109, 110]), BUCKET_BOUNDS)
    assert [(b.start, b.end, b.count) for b in bins] == [(100, 110, 3), (110, 120, 1)]
    for bound in BUCKET_BOUNDS:
        [b] = render.circll_bins([1], [bound])
        assert (b.start, b.end) == bound
    bins = render.circll_bins(bucket_counts([10 ** 9] * 7), BUCKET_BOUNDS)
    assert sum(b.count for b in bins) == 7


def test_a_bucket_spanning_bins_shares_its_count():
    # [32, 34) would hold two of Envoy's bins: 5 samples are split 3/2.
    bins = render.circll_bins([5], [(32, 34)])
    assert [(b.start, b.count) for b in bins] == [(32, 3), (33, 2)]


def test_prometheus_buckets_count_whole_envoy_bins():
    s = render.hist_stats(render.bins_of_values([0, 1]))
    assert s.buckets[:3] == [1, 2, 2]                # le 0.5, 1, 5 (Envoy 1.40)
    s = render.hist_stats(render.bins_of_values([2, 4, 8, 22, 61]))
    assert s.buckets[:8] == [0, 0, 2, 3, 4, 4, 5, 5]   # Envoy 1.40
    # Envoy counts every sample of the bin a bound falls in: 255 under 250,
    # 1099 under 1000 (circllhist compares bins, not values).
    s = render.hist_stats(render.bins_of_values([255, 1099, 1100]))
    le = dict(zip(render.PROMETHEUS_BUCKETS, s.buckets))
    assert (le[100], le[250], le[1000], le[2500]) == (0, 1, 2, 3)
    assert s.count == 3


def test_interval_without_samples_is_nan():
    cum = render.hist_stats(render.bins_of_values([1]))
    h = render.HistView(render.EMPTY_STATS, cum, True)
    assert render.quantile_summary(h).startswith("P0(nan,1.05) P25(nan,1.05)")
    assert render.quantile_summary(render.UNUSED_HIST) == "No recorded values"
    assert all(math.isnan(q) for q in render.EMPTY_STATS.quantiles)


# ----------------------------------------------------------------------- /stats


def stat_set():
    values = {
        "cluster.a-b.upstream_cx_total": 2, "cluster.a.upstream_cx_total": 3,
        "cluster.a.upstream_cx_active": 0, "cluster.a-b.upstream_cx_active": 0,
        "cluster.a.upstream_cx_overflow": 0,
        "listener.127.0.0.1_9.worker_0.downstream_cx_total": 3,
        "listener.127.0.0.1_9.downstream_cx_total": 3,
        "server.live": 1,
    }
    kinds = {n: ("gauge" if n.endswith("active") or n == "server.live" else "counter")
             for n in values}
    hist = render.hist_stats(render.bins_of_values([0, 1]))
    hists = {"cluster.a.upstream_cx_connect_ms": render.HistView(hist, hist, True),
             "cluster.a-b.upstream_cx_connect_ms": render.UNUSED_HIST}
    used = render.gauges_in_use(values, kinds, always=["server.live"])
    return render.StatSet(values, kinds, hists, used)


def test_stats_text_sorted_then_histograms():
    text = render.render_stats_text(stat_set())
    lines = text.splitlines()
    assert lines[0] == "cluster.a-b.upstream_cx_active: 0"      # plain string order
    assert lines[-2] == ("cluster.a-b.upstream_cx_connect_ms: No recorded values")
    assert lines[-1].startswith("cluster.a.upstream_cx_connect_ms: P0(0,0) P25(0,0)")
    assert text.endswith("\n")


def test_stats_usedonly_and_filter():
    s = stat_set()
    used = render.render_stats_text(s, render.StatsQuery(used_only=True)).splitlines()
    names = [l.split(": ")[0] for l in used]
    # Counters that counted; x_active gauges whose x_total counted; histograms with samples.
    assert "cluster.a.upstream_cx_overflow" not in names
    assert "cluster.a.upstream_cx_active" in names and "server.live" in names
    assert "cluster.a-b.upstream_cx_connect_ms" not in names
    assert "cluster.a.upstream_cx_connect_ms" in names
    q = render.StatsQuery(regex=re.compile(r"^cluster\.a\."))
    assert all(l.startswith("cluster.a.") for l in render.render_stats_text(s, q).splitlines())
    q = render.StatsQuery(kind="gauges")
    assert [l.split(":")[0] for l in render.render_stats_text(s, q).splitlines()] == [
        "cluster.a-b.upstream_cx_active", "cluster.a.upstream_cx_active", "server.live"]


def test_stats_json_shape():
    doc = json.loads(render.render_stats_json(stat_set()))
    assert doc["stats"][0] == {"name": "cluster.a-b.upstream_cx_active", "value": 0}
    h = doc["stats"][-1]["histograms"]
    assert h["supported_quantiles"] == [0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100]
    unused, used = h["computed_quantiles"]
    assert unused["values"][0] == {"cumulative": None, "interval": None}
    assert used["values"][3] == {"cumulative": 1.05, "interval": 1.05}
    text = render.render_stats_json(stat_set())
    assert '"values":[{"cumulative":0,"interval":0},' in text and " " not in text
    assert render.render_stats_json(stat_set(), render.StatsQuery(regex=re.compile("zzz"))) == \
        '{"stats":[]}'


def test_prometheus_groups_and_order():
    text = render.render_prometheus(stat_set())
    lines = text.splitlines()
    types_ = [l for l in lines if l.startswith("# TYPE")]
    assert types_ == [
        "# TYPE envoy_cluster_upstream_cx_overflow counter",
        "# TYPE envoy_cluster_upstream_cx_total counter",
        "# TYPE envoy_listener_downstream_cx_total counter",
        "# TYPE envoy_listener_worker_downstream_cx_total counter",
        "# TYPE envoy_cluster_upstream_cx_active gauge",
        "# TYPE envoy_server_live gauge",
        "# TYPE envoy_cluster_upstream_cx_connect_ms histogram",
    ]
    # In a group, Envoy orders by stat name element-wise: "a" before "a-b".
    i = lines.index("# TYPE envoy_cluster_upstream_cx_total counter")
    assert lines[i + 1:i + 3] == ['envoy_cluster_upstream_cx_total{envoy_cluster_name="a"} 3',
                                  'envoy_cluster_upstream_cx_total{envoy_cluster_name="a-b"} 2']
    assert 'envoy_listener_worker_downstream_cx_total{envoy_worker_id="0",' \
           'envoy_listener_address="127.0.0.1_9"} 3' in lines
    assert "envoy_server_live{} 1" in lines
    h = lines[lines.index("# TYPE envoy_cluster_upstream_cx_connect_ms histogram") + 1:]
    assert h[0] == 'envoy_cluster_upstream_cx_connect_ms_bucket{envoy_cluster_name="a",le="0.5"} 1'
    assert h[1] == 'envoy_cluster_upstream_cx_connect_ms_bucket{envoy_cluster_name="a",le="1"} 2'
    assert h[19] == \
        'envoy_cluster_upstream_cx_connect_ms_bucket{envoy_cluster_name="a",le="+Inf"} 2'
    assert h[20] == ('envoy_cluster_upstream_cx_connect_ms_sum{envoy_cluster_name="a"} '
                     '1.0476190476190476719153821250075')
    assert h[21] == 'envoy_cluster_upstream_cx_connect_ms_count{envoy_cluster_name="a"} 2'
    assert h[22].endswith('{envoy_cluster_name="a-b",le="0.5"} 0')
    assert h[-2] == 'envoy_cluster_upstream_cx_connect_ms_sum{envoy_cluster_name="a-b"} 0'
    used = render.render_prometheus(stat_set(), render.StatsQuery(used_only=True))
    assert "overflow" not in used and 'envoy_cluster_name="a-b",le' not in used


# ------------------------------------------------------------------- /clusters


def cluster_views():
    hosts = [
        render.HostView("127.0.0.1", 9000, "backend-1", 1, 0, "UNKNOWN",
                        {"cx_total": 5, "rq_total": 5, "cx_active": 1}),
        render.HostView("::1", 9001, "", 3, 0, "UNHEALTHY", {}),
        render.HostView("127.0.0.2", 9002, "", 1, 0, "DEGRADED", {}),
    ]
    default = dict(max_connections=7, max_pending_requests=1024, max_requests=1024, max_retries=2)
    high = dict(max_connections=1024, max_pending_requests=1024, max_requests=9, max_retries=3)
    return [render.ClusterView("two", "two", default, high, hosts)]


def test_clusters_text():
    lines = render.render_clusters_text(cluster_views()).splitlines()
    assert lines[:10] == [
        "two::observability_name::two",
        "two::default_priority::max_connections::7",
        "two::default_priority::max_pending_requests::1024",
        "two::default_priority::max_requests::1024",
        "two::default_priority::max_retries::2",
        "two::high_priority::max_connections::1024",
        "two::high_priority::max_pending_requests::1024",
        "two::high_priority::max_requests::9",
        "two::high_priority::max_retries::3",
        "two::added_via_api::false",
    ]
    prefix = "two::127.0.0.1:9000::"
    host = [l[len(prefix):] for l in lines if l.startswith(prefix)]
    assert host == ["cx_active::1", "cx_connect_fail::0", "cx_total::5", "rq_active::0",
                    "rq_error::0", "rq_pending_active::0", "rq_success::0", "rq_timeout::0",
                    "rq_total::5", "hostname::backend-1", "health_flags::healthy", "weight::1",
                    "region::", "zone::", "sub_zone::", "canary::false", "priority::0",
                    "success_rate::-1", "local_origin_success_rate::-1"]
    assert "two::[::1]:9001::health_flags::/failed_eds_health" in lines
    assert "two::[::1]:9001::weight::3" in lines
    assert "two::127.0.0.2:9002::health_flags::/degraded_eds_health" in lines


def test_clusters_json():
    doc = render.clusters_json(cluster_views())
    c = doc["cluster_statuses"][0]
    assert list(c) == ["name", "host_statuses", "circuit_breakers", "observability_name"]
    h = c["host_statuses"][0]
    assert list(h) == ["address", "stats", "health_status", "weight", "hostname", "locality"]
    assert h["stats"][:2] == [{"name": "cx_connect_fail"}, {"value": "5", "name": "cx_total"}]
    assert h["stats"][6] == {"type": "GAUGE", "value": "1", "name": "cx_active"}
    assert c["host_statuses"][1]["health_status"] == {"eds_health_status": "UNHEALTHY"}
    assert c["host_statuses"][1]["address"] == {"socket_address": {"address": "::1",
                                                                   "port_value": 9001}}
    assert c["circuit_breakers"]["thresholds"][1] == {
        "priority": "HIGH", "max_connections": 1024, "max_pending_requests": 1024,
        "max_requests": 9, "max_retries": 3}
    text = render.envoy_json(doc)
    assert text.startswith('{\n "cluster_statuses": [\n  {\n   "name": "two",')
    assert text.endswith("}\n")


def test_listeners():
    ls = [("l0", "127.0.0.1", 10000), ("v6", "::1", 10001)]
    assert render.render_listeners_text(ls) == "l0::127.0.0.1:10000\nv6::[::1]:10001\n"
    assert render.listeners_json(ls)["listener_statuses"][1] == {
        "name": "v6", "local_address": {"socket_address": {"address": "::1", "port_value": 10001}}}


def test_server_info_and_memory():
    opts = types.SimpleNamespace(config_path="/x.yaml", config_yaml="", log_level="info",
                                 drain_time_s=600.0, parent_shutdown_time_s=900.0, base_id=0)
    info = render.server_info(version="1.2.3", state="LIVE", uptime_s=30.7, options=opts,
                              concurrency=4, node={"id": "n", "cluster": "c"})
    assert list(info) == ["version", "state", "uptime_current_epoch", "uptime_all_epochs",
                          "hot_restart_version", "command_line_options", "node",
                          "hot_restart_initializing"]
    assert info["uptime_current_epoch"] == "30s"
    clo = info["command_line_options"]
    assert (clo["concurrency"], clo["drain_time"], clo["parent_shutdown_time"], clo["mode"],
            clo["base_id"]) == (4, "600s", "900s", "Serve", "0")
    assert list(clo)[:4] == ["base_id", "concurrency", "config_path", "config_yaml"]
    assert info["node"]["user_agent_build_version"]["version"] == {
        "major_number": 1, "minor_number": 2, "patch": 3}
    assert render.memory_json(10, 20, 30) == {
        "allocated": "10", "heap_size": "20", "pageheap_unmapped": "0", "pageheap_free": "0",
        "total_thread_cache": "0", "total_physical_bytes": "30"}


# ----------------------------------------------------------------- config_dump

CONFIG = {
    "node": {"id": "n1"},
    "stats_flush_interval": "2.5s",
    "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9901}}},
    "static_resources": {
        "listeners": [{
            "name": "l0",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}},
            "stat_prefix": "",
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.tcp_proxy",
                "typed_config": {"@type": TCP_PROXY, "stat_prefix": "tp", "cluster": "up",
                                 "idle_timeout": "0.250s"}}]}]}],
        "clusters": [{
            "name": "up", "connect_timeout": "1s", "type": "STATIC", "lb_policy": "ROUND_ROBIN",
            "load_assignment": {"cluster_name": "up", "endpoints": [{"lb_endpoints": [
                {"load_balancing_weight": 2, "health_status": "HEALTHY",
                 "endpoint": {"address": {"socket_address": {"address": "127.0.0.1",
                                                             "port_value": 9000}}}}]}]},
            "circuit_breakers": {"thresholds": [{"max_connections": 5}]}}],
    },
}


def test_config_dump_prints_what_was_set(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    bs = load_bootstrap(config_path=str(path))
    src = config_doc.read_sources(str(path), None)
    assert (bs.stats_flush_interval, bs.stats_flush_on_admin) == (2.5, False)
    doc = config_doc.bootstrap_json(bs, src.doc, "1.2.0")
    assert list(doc) == ["node", "static_resources", "stats_flush_interval", "admin"]
    assert doc["stats_flush_interval"] == "2.500s"
    assert doc["node"] == {"id": "n1", "user_agent_name": "envoy_fast",
                           "user_agent_build_version": {"version": {"major_number": 1,
                                                                    "minor_number": 2}}}
    c = doc["static_resources"]["clusters"][0]
    # Field-number order; the enum default (ROUND_ROBIN) left out, the oneof
    # member (type) kept; wrappers kept.
    assert list(c) == ["name", "type", "connect_timeout", "circuit_breakers", "load_assignment"]
    assert list(c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]) == [
        "endpoint", "health_status", "load_balancing_weight"]
    l0 = doc["static_resources"]["listeners"][0]
    assert "stat_prefix" not in l0
    assert l0["filter_chains"][0]["filters"][0]["typed_config"] == {
        "@type": TCP_PROXY, "stat_prefix": "tp", "cluster": "up", "idle_timeout": "0.250s"}
    dump = config_dump.config_dump(doc, "2026-01-01T00:00:00.000Z")
    assert [c["@type"].rsplit(".", 1)[1] for c in dump["configs"]] == [
        "BootstrapConfigDump", "ClustersConfigDump", "ListenersConfigDump", "SecretsConfigDump"]
    item = dump["configs"][1]["static_clusters"][0]
    assert list(item) == ["cluster", "last_updated"]
    assert list(item["cluster"])[:2] == ["@type", "name"]


def test_config_dump_falls_back_to_the_running_bootstrap(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    bs = load_bootstrap(config_path=str(path))
    src = config_doc.read_sources(str(tmp_path / "gone.yaml"), None)
    assert src.doc is None
    doc = config_doc.bootstrap_json(bs, None, "1.2.0")
    assert doc["static_resources"]["clusters"][0]["name"] == "up"


# ------------------------------------------------------- the handlers (no socket)


class FakeServer:
    """What AdminServer reads from envoy_fast.server.Server."""

    def __init__(self, bootstrap, concurrency=2):
        self.bootstrap = bootstrap
        self.options = types.SimpleNamespace(config_path="", config_yaml="", log_level="info",
                                             drain_time_s=600.0, parent_shutdown_time_s=900.0,
                                             base_id=0)
        self.concurrency = concurrency
        self.layout = StatsLayout(bootstrap, concurrency)
        self.stats = StatsStore(self.layout)
        self.state = "LIVE"
        self.started = 0.0
        self.worker_restarts = 2
        self.shut = None

    def uptime(self):
        return 12.3

    def listener_ports(self):
        return {"l0": ("127.0.0.1", 10000)}

    def shutdown(self, code):
        self.shut = code

    def memory_info(self):
        return {"main": 1000, "worker_0_gen_0": 24}

    def record(self, name, value, row=0):
        kind, base = self.layout.entries[name]
        n = self.layout.nstats
        if kind == HISTOGRAM:
            idx = next(i for i, (lo, hi) in enumerate(BUCKET_BOUNDS) if lo <= value < hi)
            self.stats.view[row * n + base + idx] += 1
            self.stats.view[row * n + base + len(BUCKET_BOUNDS)] += value
        else:
            self.stats.view[row * n + base] += value


@pytest.fixture
def admin():
    bs = load_bootstrap(config_yaml=yaml.safe_dump(CONFIG))
    return AdminServer(FakeServer(bs))


def test_methods_and_paths(admin):
    assert admin.dispatch("GET", "/quitquitquit") == (
        405, "text/plain; charset=UTF-8", "Method GET not allowed, POST required.")
    status, _, body = admin.dispatch("GET", "/nope")
    assert status == 404 and body.startswith("invalid path. admin commands are:\n")
    assert "  /healthcheck/fail (POST): cause the server to fail health checks\n" in body
    assert admin.dispatch("GET", "/ready")[::2] == (200, "LIVE\n")
    assert admin.dispatch("GET", "/stats?format=xml")[0] == 400
    assert admin.dispatch("GET", "/stats?filter=(")[0] == 400
    res = admin.dispatch("POST", "/quitquitquit")
    assert res[:3] == (200, "text/plain; charset=UTF-8", "OK\n")
    res[3]()
    assert admin.server.shut == 0


def test_healthcheck_without_server_methods(admin):
    assert admin.dispatch("POST", "/healthcheck/fail")[2] == "OK\n"
    assert admin.dispatch("GET", "/ready")[::2] == (503, "DRAINING\n")
    assert admin.dispatch("POST", "/healthcheck/ok")[2] == "OK\n"
    assert admin.dispatch("GET", "/ready")[::2] == (200, "LIVE\n")


def test_server_stats(admin):
    srv = admin.server
    srv.record("listener.127.0.0.1_10000.downstream_cx_active", 2, row=0)
    srv.record("listener.127.0.0.1_10000.downstream_cx_active", 1, row=1)
    text = admin.dispatch("GET", "/stats?filter=^server")[2]
    values = dict(l.split(": ") for l in text.splitlines())
    assert values == {"server.concurrency": "2", "server.live": "1", "server.state": "0",
                      "server.uptime": "12", "server.total_connections": "3",
                      "server.memory_allocated": "1024", "server.memory_heap_size": "1024",
                      "server.memory_physical_size": "1024", "server.worker_restarts": "2",
                      "server.reload_success": "0", "server.reload_failure": "0"}
    text = admin.dispatch("GET", "/stats/prometheus?filter=worker_restarts")[2]
    assert text == "# TYPE envoy_server_worker_restarts counter\nenvoy_server_worker_restarts{} 2\n"
    mem = json.loads(admin.dispatch("GET", "/memory")[2])
    assert mem["total_physical_bytes"] == "1024"


def test_histograms_change_at_flushes(admin):
    srv = admin.server
    name = "cluster.up.upstream_cx_connect_ms"

    def line():
        return admin.dispatch("GET", "/stats?filter=connect_ms")[2].strip()

    srv.record(name, 1)
    assert line() == name + ": No recorded values"       # not flushed yet
    admin.flush_histograms()
    assert line() == name + ": " + " ".join("P%s(1.05,1.05)" % q for q in render.QUANTILE_LABELS)
    srv.record(name, 3, row=1)
    admin.flush_histograms()
    assert line().startswith(name + ": P0(3.05,1.05) ")
    admin.flush_histograms()                            # an interval without samples
    assert line().startswith(name + ": P0(nan,1.05) ")
    assert line().endswith(" P100(nan,3.05)")
    prom = admin.dispatch("GET", "/stats/prometheus?filter=connect_ms")[2]
    assert 'envoy_cluster_upstream_cx_connect_ms_count{envoy_cluster_name="up"} 2' in prom
    assert name in admin.dispatch("GET", "/stats?usedonly")[2]


def test_flush_on_admin(admin):
    admin.server.bootstrap.stats_flush_on_admin = True
    admin.server.record("cluster.up.upstream_cx_length_ms", 16)
    text = admin.dispatch("GET", "/stats?filter=length_ms")[2]
    assert "P0(16.5,16.5)" in text


def test_clusters_and_config_dump_from_server(admin):
    srv = admin.server
    text = admin.dispatch("GET", "/clusters")[2]
    assert "up::default_priority::max_connections::5\n" in text
    assert "up::127.0.0.1:9000::weight::2\n" in text
    assert "up::127.0.0.1:9000::health_flags::healthy\n" in text
    doc = json.loads(admin.dispatch("GET", "/config_dump")[2])
    assert doc["configs"][1]["static_clusters"][0]["cluster"]["name"] == "up"
    assert srv is admin.server
