"""tcp_proxy's configuration: its ``typed_config`` messages, the checks Envoy
makes on them when it loads a config, and their proto field numbers.

Imported by the config loader (through the registry), so it imports no
Cython; the record in ``tcp_proxy.py`` ties it to the worker side.
"""
from __future__ import annotations

from typing import Annotated, Any, Dict, List, Optional

from msgspec import Meta

from envoy_fast.config.accesslog_types import AccessLog
from envoy_fast.config.base import UINT32_MAX, Duration, NonEmptyStr
from envoy_fast.config.base import Message as _Message
from envoy_fast.config.base import names as _names
from envoy_fast.config.errors import ConfigError
from envoy_fast.extensions.registry import NetworkFilterConfig

__all__ = ["TCP_PROXY_TYPE_URL", "ClusterWeight", "WeightedClusters", "TcpProxy", "check", "FIELD_NUMBERS"]

TCP_PROXY_TYPE_URL = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"


class ClusterWeight(_Message, kw_only=True):
    """envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster.ClusterWeight."""

    ENVOY_TYPE = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster.ClusterWeight"
    ENVOY_FIELDS = _names("name weight metadata_match")

    name: NonEmptyStr
    weight: Annotated[int, Meta(ge=1, le=UINT32_MAX)]


class WeightedClusters(_Message, kw_only=True):
    """envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster."""

    ENVOY_TYPE = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster"
    ENVOY_FIELDS = _names("clusters")

    clusters: Annotated[List[ClusterWeight], Meta(min_length=1)]


class TcpProxy(_Message, NetworkFilterConfig, kw_only=True, tag_field="@type", tag=TCP_PROXY_TYPE_URL):
    """envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.

    Exactly one of ``cluster`` / ``weighted_clusters`` is set (`check` makes
    sure, and that every cluster named exists). ``idle_timeout`` 0 disables it.
    """

    ENVOY_TYPE = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
    ENVOY_FIELDS = _names(
        "stat_prefix cluster weighted_clusters on_demand metadata_match idle_timeout"
        " downstream_idle_timeout upstream_idle_timeout access_log max_connect_attempts"
        " backoff_options hash_policy tunneling_config max_downstream_connection_duration"
        " max_downstream_connection_duration_jitter_percentage access_log_flush_interval"
        " flush_access_log_on_connected access_log_options proxy_protocol_tlvs"
        " proxy_protocol_tlv_merge_policy upstream_connect_mode max_early_data_bytes"
        " check_drain_close"
    )

    stat_prefix: NonEmptyStr
    cluster: Optional[str] = None
    weighted_clusters: Optional[WeightedClusters] = None
    idle_timeout: Duration = 3600.0
    max_connect_attempts: Annotated[int, Meta(ge=1, le=UINT32_MAX, extra={"wrapper": True})] = 1
    max_downstream_connection_duration: Optional[Duration] = None
    access_log: List[AccessLog] = []


def check(proxy: TcpProxy, checker: Any, path: str) -> None:
    """What Envoy checks of a TcpProxy on load (``checker``: see the registry)."""
    if proxy.cluster is not None and proxy.weighted_clusters is not None:
        checker.fail(
            ConfigError(
                "only one of cluster and weighted_clusters may be set",
                path,
                hint="remove `cluster` or `weighted_clusters`",
            )
        )
    if proxy.cluster is None and proxy.weighted_clusters is None:
        checker.fail(
            ConfigError("one of cluster or weighted_clusters is required", path, hint="add `cluster: <cluster name>`")
        )
    # Envoy accepts an unknown cluster and resets every connection
    # (downstream_cx_no_route); envoy_fast refuses the config instead.
    if proxy.cluster is not None and not checker.known_cluster(proxy.cluster):
        checker.fail(
            ConfigError(f"unknown cluster '{proxy.cluster}'", f"{path}.cluster", hint=checker.cluster_hint(proxy.cluster))
        )
    if proxy.weighted_clusters is not None:
        for i, weighted in enumerate(proxy.weighted_clusters.clusters):
            if not checker.known_cluster(weighted.name):
                checker.fail(
                    ConfigError(
                        f"unknown cluster '{weighted.name}'",
                        f"{path}.weighted_clusters.clusters[{i}].name",
                        hint=checker.cluster_hint(weighted.name),
                    )
                )
    limit = proxy.max_downstream_connection_duration
    if limit is not None and limit < 0.001:
        checker.fail(
            ConfigError(
                "value must be greater than or equal to 1ms",
                f"{path}.max_downstream_connection_duration",
                hint='e.g. "0.001s", or leave it out for no limit',
            )
        )


#: Proto field numbers of the messages above (protobuf's JSON printer writes
#: fields in this order).
FIELD_NUMBERS: Dict[str, Dict[str, int]] = {
    "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy": dict(
        stat_prefix=1, cluster=2, downstream_idle_timeout=3, upstream_idle_timeout=4,
        access_log=5, max_connect_attempts=7, idle_timeout=8, metadata_match=9,
        weighted_clusters=10, hash_policy=11, tunneling_config=12,
        max_downstream_connection_duration=13, on_demand=14, access_log_flush_interval=15,
        flush_access_log_on_connected=16, access_log_options=17, backoff_options=18,
        proxy_protocol_tlvs=19),
    "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster": dict(clusters=1),
    "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster.ClusterWeight":
        dict(name=1, weight=2, metadata_match=3),
}
