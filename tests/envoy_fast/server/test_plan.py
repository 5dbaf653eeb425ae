"""The worker plan is typed: msgspec Structs built from a real Bootstrap,
which survive a msgpack round trip (the control channel's encoding) unchanged,
and from which a Worker builds a data plane that proxies real bytes."""
import socket
import time

import msgspec
import pytest
import yaml

from envoy_fast._worker import Worker
from envoy_fast.accesslog import AccessLogManager
from envoy_fast.accesslog.plan import AccessLogPlan, JsonFormatPlan, TextFormatPlan
from envoy_fast.config import load_bootstrap
from envoy_fast.extensions import registry
from envoy_fast.extensions.network.tcp_proxy import TcpProxyPlan
from envoy_fast.server import plan_types
from envoy_fast.server.plan import build_cluster_plan, build_plan
from envoy_fast.server.plan_types import (HOST_DEGRADED, HOST_EXCLUDED, HOST_HEALTHY, LB_LEAST_REQUEST,
                                          AnyClusterPlan, StaticClusterPlan, WorkerPlan)
from envoy_fast.stats.store import StatsLayout, StatsStore
from helpers import bootstrap, cluster, echo_server, listener, tcp_proxy_filter


def _config(listen_port=10000):
    up = cluster("up", [20001, (20002, 3)], lb_policy="LEAST_REQUEST",
                 least_request_lb_config={"choice_count": 3})
    up["load_assignment"]["endpoints"][0]["lb_endpoints"][1]["health_status"] = "DEGRADED"
    other = cluster("other", [20003])
    other["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["health_status"] = "DRAINING"
    chains = [
        {"name": "by-port", "filter_chain_match": {"destination_port": listen_port,
                                                   "source_prefix_ranges": [
                                                       {"address_prefix": "10.0.0.0", "prefix_len": 8}]},
         "filters": [tcp_proxy_filter(None, "w", weighted_clusters={"clusters": [
             {"name": "up", "weight": 1}, {"name": "other", "weight": 2}]})]},
        {"name": "all", "filters": [tcp_proxy_filter("up", "tp", idle_timeout="5s", access_log=[
            {"name": "envoy.access_loggers.stdout", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"}}])]},
    ]
    return bootstrap([listener("l0", listen_port, chains)], [up, other])


def _plan(cfg, fds=None):
    bs = load_bootstrap(config_yaml=yaml.safe_dump(cfg))
    layout = StatsLayout(bs, 1)
    return bs, layout, build_plan(bs, layout, fds or {"l0": -1})



def _ping_through(worker, port: int) -> None:
    """One echoed "ping" through `worker` (run by hand) on `port`; closed after."""
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    c.setblocking(False)
    c.sendall(b"ping")
    got = b""
    deadline = time.monotonic() + 10
    while got != b"ping" and time.monotonic() < deadline:
        worker.run_for_test(0.02)
        try:
            got += c.recv(100)
        except BlockingIOError:
            pass
    assert got == b"ping"
    c.close()

def test_plan_is_structs_resolved_from_the_bootstrap():
    bs, layout, plan = _plan(_config())
    assert isinstance(plan, WorkerPlan)
    up, other = plan.clusters
    assert isinstance(up, StaticClusterPlan) and up.name == "up"
    assert up.lb_policy == LB_LEAST_REQUEST and up.choice_count == 3
    assert [(h.name, h.weight, h.health) for h in up.hosts] == [
        ("127.0.0.1:20001", 1, HOST_HEALTHY), ("127.0.0.1:20002", 3, HOST_DEGRADED)]
    assert other.hosts[0].health == HOST_EXCLUDED
    assert up.stats.base == layout.cluster_base["up"]
    assert up.stats.upstream_cx_connect_ms == layout.cluster_hist["up"]["upstream_cx_connect_ms"]
    (l0,) = plan.listeners
    assert l0.fd == -1 and l0.stats.base == layout.listener_base["l0"]
    by_port, catch_all = l0.filter_chains
    assert by_port.match.destination_port == 10000
    assert by_port.match.source_prefix_ranges == [(4, 10 << 24, 8)]
    assert catch_all.match is None
    (w,) = by_port.filters
    assert isinstance(w, TcpProxyPlan)
    assert w.clusters == [("up", 1), ("other", 2)]
    assert w.stats_base == layout.block_base("tcp.w")
    (tp,) = catch_all.filters
    assert tp.idle_timeout == 5.0 and tp.access_log[0].sink == "stdout"


def test_plan_survives_a_msgpack_round_trip():
    _, _, plan = _plan(_config())
    data = plan_types.encode(plan)
    back = plan_types.decode(data)
    assert back == plan
    # The unions are tagged: the decoded members keep their types.
    assert type(back.clusters[0]) is StaticClusterPlan
    assert type(back.listeners[0].filter_chains[0].filters[0]) is TcpProxyPlan
    assert msgspec.msgpack.decode(data)["clusters"][0]["type"] == "STATIC"
    assert msgspec.msgpack.decode(data)["listeners"][0]["filter_chains"][0]["filters"][0][
        "name"] == "envoy.filters.network.tcp_proxy"


def test_one_cluster_travels_alone():
    bs, layout, _ = _plan(_config())
    c = build_cluster_plan(bs.static_resources.clusters[0], layout)
    assert plan_types.decode(plan_types.encode(c), AnyClusterPlan) == c
    # as a field of a control message decoded without a schema
    msg = msgspec.msgpack.decode(msgspec.msgpack.encode({"op": "cluster", "cluster": c}))
    assert plan_types.convert(msg["cluster"], AnyClusterPlan) == c


def test_unknown_filter_or_cluster_type_is_refused():
    _, _, plan = _plan(_config())
    raw = msgspec.msgpack.decode(plan_types.encode(plan))
    raw["listeners"][0]["filter_chains"][0]["filters"][0]["name"] = "envoy.filters.network.nope"
    with pytest.raises(msgspec.ValidationError, match="nope"):
        plan_types.decode(msgspec.msgpack.encode(raw))
    raw = msgspec.msgpack.decode(plan_types.encode(plan))
    raw["clusters"][0]["type"] = "STRICT_DNS"
    with pytest.raises(msgspec.ValidationError, match="STRICT_DNS"):
        plan_types.decode(msgspec.msgpack.encode(raw))


def test_filter_plans_come_from_the_registry():
    (rec,) = [r for r in registry.network_filters() if r.name == "envoy.filters.network.tcp_proxy"]
    assert rec.plan_type is TcpProxyPlan
    assert registry.network_filter_plan_union() is TcpProxyPlan or \
        TcpProxyPlan in registry.network_filter_plan_union().__args__


def test_worker_built_from_a_decoded_plan_proxies():
    with echo_server() as echo:
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(16)
        lsock.setblocking(False)
        port = lsock.getsockname()[1]
        cfg = bootstrap([listener("l0", port, [{"filters": [tcp_proxy_filter("up")]}])],
                        [cluster("up", [echo.port])])
        bs = load_bootstrap(config_yaml=yaml.safe_dump(cfg))
        layout = StatsLayout(bs, 1)
        store = StatsStore(layout)
        plan = plan_types.decode(plan_types.encode(build_plan(bs, layout, {"l0": lsock.fileno()})))
        worker = Worker(plan, store.mem, 0)
        _ping_through(worker, port)
        worker.run_for_test(0.1)
        assert store.values()["tcp.tp.downstream_cx_total"] == 1
        assert store.values()["cluster.up.upstream_cx_total"] == 1
        worker.close_all()
        lsock.close()


# --- access logs ----------------------------------------------------------------

FILE_LOG = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
STDOUT_LOG = "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
# Fields that do not change between two identical connections.
TEXT_LOG = "%BYTES_RECEIVED% %BYTES_SENT% %UPSTREAM_CLUSTER% %UPSTREAM_CLUSTER_RAW% %RESPONSE_FLAGS% %UPSTREAM_HOST%\n"
JSON_LOG = {"sent": "%BYTES_SENT%", "cluster": "%UPSTREAM_CLUSTER%", "flags": "%RESPONSE_FLAGS%",
            "list": [1, 2.5, True, None, "x%%", "%BYTES_RECEIVED%b"], "nested": {"host": "%UPSTREAM_HOST%"}}


def _logged_config(port, upstream_port, tmp_path):
    access_log = [
        {"name": "text", "typed_config": {"@type": FILE_LOG, "path": str(tmp_path / "text.log"),
                                          "log_format": {"text_format": TEXT_LOG}}},
        {"name": "json", "typed_config": {"@type": FILE_LOG, "path": str(tmp_path / "json.log"),
                                          "log_format": {"json_format": JSON_LOG, "omit_empty_values": True}}},
        {"name": "default", "typed_config": {"@type": STDOUT_LOG}},
        {"typed_config": {"@type": STDOUT_LOG, "log_format": {"json_format": {"d": "%DURATION%"}}}},
    ]
    return bootstrap([listener("l0", port, [{"filters": [tcp_proxy_filter("up", access_log=access_log)]}])],
                     [cluster("up", [upstream_port], alt_stat_name="alt")])


def _access_logs(plan):
    return plan.listeners[0].filter_chains[0].filters[0].access_log


def test_access_log_plans_survive_a_msgpack_round_trip(tmp_path):
    bs = load_bootstrap(config_yaml=yaml.safe_dump(_logged_config(10000, 20001, tmp_path)))
    plan = build_plan(bs, StatsLayout(bs, 1), {"l0": -1})
    logs = _access_logs(plan)
    assert [(type(p), p.sink, type(p.format)) for p in logs] == [
        (AccessLogPlan, "file", TextFormatPlan), (AccessLogPlan, "file", JsonFormatPlan),
        (AccessLogPlan, "stdout", TextFormatPlan), (AccessLogPlan, "stdout", JsonFormatPlan)]
    data = plan_types.encode(plan)
    back = plan_types.decode(data)
    assert back == plan
    assert _access_logs(back) == logs
    assert [type(p.format) for p in _access_logs(back)] == [type(p.format) for p in logs]
    raw = msgspec.msgpack.decode(data)["listeners"][0]["filter_chains"][0]["filters"][0]["access_log"]
    assert [r["format"]["kind"] for r in raw] == ["text", "json", "text", "json"]
    assert raw[1]["format"]["template"]["kind"] == "obj"
    # One access log alone, too.
    assert plan_types.decode(plan_types.encode(logs[1]), AccessLogPlan) == logs[1]
    # A worker's manager takes the decoded Structs and formats as from the originals.
    fields = {"start_time": 1764000000.25, "duration_ms": 7, "bytes_received": 4, "bytes_sent": 4,
              "upstream_cluster": "up", "upstream_host": "127.0.0.1:20001", "response_flags": ["UF"],
              "downstream_remote_address": "127.0.0.1:5555", "downstream_local_address": "127.0.0.1:10000"}
    managers = AccessLogManager(), AccessLogManager()
    try:
        records = [[lg.format(fields) for lg in m.create(p)] for m, p in zip(managers, (logs, _access_logs(back)))]
    finally:
        for m in managers:
            m.close()
    assert records[0] == records[1]
    assert records[0][:2] == ["4 4 alt up UF 127.0.0.1:20001\n",
                              '{"cluster":"alt","flags":"UF","list":[1,2.5,true,"x%","4b"],'
                              '"nested":{"host":"127.0.0.1:20001"},"sent":4}\n']


def test_access_log_plan_is_checked_when_decoded():
    raw = {"sink": "file", "format": {"kind": "text", "parts": ["x"]}}      # a file without a path
    with pytest.raises(msgspec.ValidationError, match="path"):
        plan_types.decode(msgspec.msgpack.encode(raw), AccessLogPlan)
    raw = {"sink": "stdout", "format": {"kind": "yaml", "parts": ["x"]}}
    with pytest.raises(msgspec.ValidationError, match="yaml"):
        plan_types.decode(msgspec.msgpack.encode(raw), AccessLogPlan)


def _proxy_one_logged_connection(echo_port, tmp_path, through_msgpack):
    """Run one connection through a Worker built from the plan (encoded and
    decoded first when `through_msgpack`); the file logs' contents."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    lsock.setblocking(False)
    port = lsock.getsockname()[1]
    for name in ("text.log", "json.log"):
        (tmp_path / name).write_text("")
    cfg = _logged_config(port, echo_port, tmp_path)
    cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["access_log"][2:] = []
    bs = load_bootstrap(config_yaml=yaml.safe_dump(cfg))
    layout = StatsLayout(bs, 1)
    store = StatsStore(layout)
    plan = build_plan(bs, layout, {"l0": lsock.fileno()})
    if through_msgpack:
        plan = plan_types.decode(plan_types.encode(plan))
    worker = Worker(plan, store.mem, 0)
    try:
        _ping_through(worker, port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (tmp_path / "json.log").read_text():
            worker.run_for_test(0.05)       # the log is written at close, flushed on the tick
    finally:
        worker.close_all()
        lsock.close()
    return (tmp_path / "text.log").read_text(), (tmp_path / "json.log").read_text()


def test_worker_built_from_a_decoded_plan_writes_the_same_access_logs(tmp_path):
    with echo_server() as echo:
        direct = _proxy_one_logged_connection(echo.port, tmp_path, through_msgpack=False)
        decoded = _proxy_one_logged_connection(echo.port, tmp_path, through_msgpack=True)
    host = "127.0.0.1:%d" % echo.port
    assert direct == ("4 4 alt up - %s\n" % host,
                      '{"cluster":"alt","flags":"-","list":[1,2.5,true,"x%%","4b"],'
                      '"nested":{"host":"%s"},"sent":4}\n' % host)
    assert decoded == direct
