"""tcp_proxy's registry record: its plan Struct, stat block and factory
(its config messages and checks are in ``tcp_proxy_config``)."""
from __future__ import annotations

from typing import List, Tuple

from envoy_fast.accesslog import build_access_log_plan
from envoy_fast.accesslog.plan import AccessLogPlan
from envoy_fast.extensions.network import tcp_proxy_config
from envoy_fast.extensions.network.tcp_proxy_config import TcpProxy
from envoy_fast.extensions.registry import (NetworkFilterPlan, NetworkFilterRecord, PlanContext,
                                            StatBlock, register_network_filter)

NAME = "envoy.filters.network.tcp_proxy"


class TcpProxyPlan(NetworkFilterPlan, tag=NAME, kw_only=True):
    """What a worker's TcpProxyConfig is built from."""
    stat_prefix: str
    stats_base: int                             # TcpProxyStat block
    clusters: List[Tuple[str, int]]             # (cluster name, weight)
    idle_timeout: float = 0.0                   # 0: off
    max_connect_attempts: int = 1
    max_downstream_connection_duration: float = 0.0     # 0: none
    access_log: List[AccessLogPlan] = []


def _stat_blocks(config: TcpProxy) -> List[StatBlock]:
    from envoy_fast import _worker    # in main, once the stats layout is built
    return [StatBlock("tcp." + config.stat_prefix, tuple(_worker.TCP_PROXY_STATS))]


def _build_plan(config: TcpProxy, ctx: PlanContext) -> TcpProxyPlan:
    if config.weighted_clusters is not None:
        clusters = [(c.name, c.weight) for c in config.weighted_clusters.clusters]
    else:
        clusters = [(config.cluster, 1)]
    base, _ = ctx.block("tcp." + config.stat_prefix)
    return TcpProxyPlan(
        stat_prefix=config.stat_prefix,
        stats_base=base,
        clusters=clusters,
        idle_timeout=config.idle_timeout,
        max_connect_attempts=config.max_connect_attempts,
        max_downstream_connection_duration=config.max_downstream_connection_duration or 0.0,
        access_log=(build_access_log_plan(config, ctx.cluster_alt_names)
                    if config.access_log else []),
    )


RECORD = register_network_filter(NetworkFilterRecord(
    name=NAME,
    config_type=TcpProxy,
    plan_type=TcpProxyPlan,
    build_plan=_build_plan,
    factory="envoy_fast._worker:TcpProxyConfig.from_plan",
    stat_blocks=_stat_blocks,
    check=tcp_proxy_config.check,
    terminal=True,
    proto_fields=tcp_proxy_config.FIELD_NUMBERS,
))
