"""Stat tag extraction as Envoy's default rules (the names /stats?format=prometheus uses)."""
import pytest

from envoy_fast.stats.tags import extract_tags, prometheus_name


@pytest.mark.parametrize("name,extracted,tags", [
    ("cluster.up.upstream_cx_total", "cluster.upstream_cx_total", [("envoy_cluster_name", "up")]),
    ("cluster.x.y.upstream_cx_total", "cluster.y.upstream_cx_total", [("envoy_cluster_name", "x")]),
    ("listener.127.0.0.1_10000.downstream_cx_total", "listener.downstream_cx_total",
     [("envoy_listener_address", "127.0.0.1_10000")]),
    ("listener.[__1]_80.downstream_cx_active", "listener.downstream_cx_active",
     [("envoy_listener_address", "[__1]_80")]),
    ("listener.foo.downstream_cx_total", "listener.downstream_cx_total",
     [("envoy_listener_address", "foo")]),
    ("listener.127.0.0.1_10000.worker_3.downstream_cx_total", "listener.worker_downstream_cx_total",
     [("envoy_worker_id", "3"), ("envoy_listener_address", "127.0.0.1_10000")]),
    # Envoy 1.40: a dotted stat_prefix keeps its tail, and "admin" is untagged.
    ("listener.a.b.worker_0.downstream_cx_total", "listener.b.worker_0.downstream_cx_total",
     [("envoy_listener_address", "a")]),
    ("listener.admin.worker_0.downstream_cx_total", "listener.admin.worker_downstream_cx_total",
     [("envoy_worker_id", "0")]),
    ("tcp.tp.downstream_cx_total", "tcp.downstream_cx_total", [("envoy_tcp_prefix", "tp")]),
    ("tcp.t.q.idle_timeout", "tcp.q.idle_timeout", [("envoy_tcp_prefix", "t")]),
    ("cluster.up.upstream_rq_200", "cluster.upstream_rq",
     [("envoy_response_code", "200"), ("envoy_cluster_name", "up")]),
    ("http.p.downstream_rq_2xx", "http.downstream_rq_xx",
     [("envoy_response_code_class", "2"), ("envoy_http_conn_manager_prefix", "p")]),
    ("listener.127.0.0.1_1.http.p.downstream_rq_5xx", "listener.http.downstream_rq_xx",
     [("envoy_response_code_class", "5"), ("envoy_http_conn_manager_prefix", "p"),
      ("envoy_listener_address", "127.0.0.1_1")]),
    ("server.live", "server.live", []),
])
def test_tag_extraction_as_envoy(name, extracted, tags):
    assert extract_tags(name) == (extracted, tags)
    assert prometheus_name("cluster.y.upstream_cx_total") == \
        "envoy_cluster_y_upstream_cx_total"
