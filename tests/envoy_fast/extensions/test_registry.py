"""The network filter registry: one record per filter, and every part of
envoy_fast that deals with filters (stats layout, plan builder, worker) goes
through it."""
import pytest
import yaml

from envoy_fast import _worker
from envoy_fast.config import load_bootstrap
from envoy_fast.config import TcpProxy
from envoy_fast.extensions import registry
from envoy_fast.extensions.network.tcp_proxy import TcpProxyPlan
from envoy_fast.extensions.registry import NetworkFilterPlan, NetworkFilterRecord
from envoy_fast.server.plan import build_plan
from envoy_fast.stats.store import StatsLayout
from helpers import bootstrap, cluster, listener, tcp_proxy_filter


def test_tcp_proxy_record():
    rec = registry.for_config(TcpProxy(stat_prefix="x", cluster="c"))
    assert rec.name == "envoy.filters.network.tcp_proxy"
    assert rec.plan_type is TcpProxyPlan and rec.terminal
    assert rec.factory == _worker.TcpProxyConfig.from_plan
    (block,) = rec.stat_blocks(TcpProxy(stat_prefix="x", cluster="c"))
    assert block.prefix == "tcp.x" and block.table == tuple(_worker.TCP_PROXY_STATS)
    assert registry.for_plan(TcpProxyPlan(stat_prefix="x", stats_base=0, clusters=[])) is rec


def _record(name, plan_type, **kw):
    return NetworkFilterRecord(name=name, config_type=type("Cfg" + plan_type.__name__, (), {}),
                               plan_type=plan_type, build_plan=lambda c, ctx: None,
                               factory=lambda ctx, p: None, **kw)


def test_a_name_registers_once():
    class Again(NetworkFilterPlan, tag="envoy.filters.network.tcp_proxy"):
        pass
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_network_filter(_record("envoy.filters.network.tcp_proxy", Again))


def test_the_plan_struct_is_tagged_with_the_filter_name():
    class Mislabelled(NetworkFilterPlan, tag="something.else"):
        pass
    with pytest.raises(ValueError, match="must be tagged"):
        registry.register_network_filter(_record("envoy.filters.network.mislabelled", Mislabelled))


def test_unknown_config_or_plan_is_a_clear_error():
    with pytest.raises(ValueError, match="no network filter for"):
        registry.for_config(object())

    class Stray(NetworkFilterPlan, tag="stray"):
        pass
    with pytest.raises(ValueError, match="no network filter for Stray"):
        registry.for_plan(Stray())


def test_stats_layout_allocates_the_blocks_a_record_declares():
    cfg = bootstrap([listener("l", 10000, [
        {"filter_chain_match": {"destination_port": 1}, "filters": [tcp_proxy_filter("c", "a")]},
        {"filters": [tcp_proxy_filter("c", "a")]},        # same prefix: same block
        {"filter_chain_match": {"destination_port": 2}, "filters": [tcp_proxy_filter("c", "b")]}])],
        [cluster("c", [1])])
    bs = load_bootstrap(config_yaml=yaml.safe_dump(cfg))
    layout = StatsLayout(bs, 1)
    a, b = layout.block_base("tcp.a"), layout.block_base("tcp.b")
    assert a != b
    for i, (name, kind) in enumerate(_worker.TCP_PROXY_STATS):
        assert layout.entries["tcp.a." + name] == (kind, a + i)
        assert layout.entries["tcp.b." + name] == (kind, b + i)
    plan = build_plan(bs, layout, {"l": -1})
    bases = [c.filters[0].stats_base for c in plan.listeners[0].filter_chains]
    assert bases == [a, a, b]
    # A reload that adds a filter keeps the slots of the others.
    cfg["static_resources"]["listeners"][0]["filter_chains"].append(
        {"filter_chain_match": {"destination_port": 3}, "filters": [tcp_proxy_filter("c", "new")]})
    layout.extend(load_bootstrap(config_yaml=yaml.safe_dump(cfg)))
    assert (layout.block_base("tcp.a"), layout.block_base("tcp.b")) == (a, b)
    assert layout.block_base("tcp.new") not in (a, b)


def test_add_block_with_histograms():
    cfg = bootstrap([], [cluster("c", [1])])
    layout = StatsLayout(load_bootstrap(config_yaml=yaml.safe_dump(cfg)), 1)
    base = layout.add_block("x.y", (("one", "counter"), ("two", "gauge")), ("lat_ms",))
    assert layout.entries["x.y.one"] == ("counter", base)
    assert layout.entries["x.y.two"] == ("gauge", base + 1)
    assert layout.entries["x.y.lat_ms"] == ("histogram", layout.block_histograms("x.y")["lat_ms"])
    assert layout.add_block("x.y", (("one", "counter"),)) == base
