"""The worker plan, typed: msgspec Structs the main process builds from a
loaded Bootstrap (`plan.build_plan`) and a worker builds its data plane from.

These are not Envoy's config messages (`envoy_fast.config.types` mirrors the
YAML): they are what a worker needs, resolved — stat slots given, host health
classified, names looked up. Each Cython config class reads its own Struct
(`ThreadLocalCluster`, `ActiveTcpListener`, `FilterChainImpl`, a filter's
factory). The same Structs travel over the control channel as msgpack, so a
cluster or listener can be added or changed at run time by sending one
(`encode` / `decode` below).

Unions are tagged (msgspec's ``tag_field``): a cluster by its discovery type,
a network filter by its extension name. A network filter's Struct is
declared by the filter itself and registered in
`envoy_fast.extensions.registry`.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple, Union

import msgspec

from envoy_fast.extensions.registry import (NetworkFilterPlan, PlanStruct,  # noqa: F401
                                            network_filter_plan_union)

# Host health, as Envoy classifies the configured HealthStatus: DRAINING
# hosts are also left out of the panic computation ("excluded").
HOST_HEALTHY, HOST_DEGRADED, HOST_UNHEALTHY, HOST_EXCLUDED = range(4)

# LbPolicy values of ext/upstream/upstream.pxd.
LB_ROUND_ROBIN, LB_LEAST_REQUEST, LB_RANDOM = 0, 1, 3

# FilterChainMatch source_type values of ext/network/listener.pyx.
SOURCE_ANY, SOURCE_SAME_IP_OR_LOOPBACK, SOURCE_EXTERNAL = 0, 1, 2

#: (ip version, network address as int, prefix length)
CidrRange = Tuple[int, int, int]


# --- clusters -----------------------------------------------------------------

class HostPlan(PlanStruct, kw_only=True):
    """One endpoint of a cluster."""
    address: str
    port: int
    name: str                       # "ip:port" as /clusters prints it
    hostname: str = ""              # the endpoint's hostname (auto_host_rewrite)
    weight: int = 1
    health: int = HOST_HEALTHY
    stats_base: int                 # HostStat block in a worker's row


class ClusterStatsPlan(PlanStruct, kw_only=True):
    """Where a cluster's stats live in a worker's row and in the shared row."""
    base: int                       # ClusterStat block
    upstream_cx_connect_ms: int     # histograms
    upstream_cx_length_ms: int
    resources_base: int             # circuit-breaker counts, in the shared row
    resources_row_base: int         # this worker's part of them, in its row
    status_codes: int               # StatusCodeStat block (upstream_rq_<code>)
    external_status_codes: int = 0  # cluster.<c>.external. codes + upstream_rq_completed
    retry_status_codes: int = 0     # cluster.<c>.retry. (responses retried), same layout
    internal_status_codes: int = 0  # cluster.<c>.internal. (x-envoy-internal requests)
    internal_upstream_rq_time: int = 0
    upstream_rq_time: int = 0       # histograms
    external_upstream_rq_time: int = 0


class ClusterPlan(PlanStruct, tag_field="type", kw_only=True):
    """What every cluster type shares; the subclasses are the union members."""
    name: str
    stats: ClusterStatsPlan
    connect_timeout: float
    buffer_limit: int
    max_connections: int
    max_pending_requests: int
    max_requests: int
    # HttpProtocolOptions.common_http_protocol_options (the HTTP pools')
    max_requests_per_connection: int = 0    # 0: no limit
    idle_timeout: float = 3600.0            # 0: none
    max_headers_count: int = 100            # response headers
    max_retries: int = 3
    enable_trailers: bool = False           # explicit_http_config.http_protocol_options
    lb_policy: int = LB_ROUND_ROBIN
    choice_count: int = 2           # least request
    hosts: List[HostPlan] = []
    # The host set's load, computed in main as Envoy's LoadBalancerBase does.
    panic: bool = False
    healthy_load: int = 100


class StaticClusterPlan(ClusterPlan, tag="STATIC", kw_only=True):
    """A STATIC cluster: the hosts are the configured endpoints."""


#: Every cluster type a worker knows (extend with STRICT_DNS, EDS ...).
AnyClusterPlan = Union[StaticClusterPlan]


# --- listeners ----------------------------------------------------------------

class FilterChainMatchPlan(PlanStruct, kw_only=True):
    """filter_chain_match, flattened for FilterChainManager."""
    destination_port: Optional[int] = None
    prefix_ranges: List[CidrRange] = []
    direct_source_prefix_ranges: List[CidrRange] = []
    source_type: int = SOURCE_ANY
    source_prefix_ranges: List[CidrRange] = []
    source_ports: List[int] = []


class ListenerStatsPlan(PlanStruct, kw_only=True):
    base: int                       # ListenerStat block
    downstream_cx_length_ms: int    # histogram


class FilterChainPlan(PlanStruct, kw_only=True):
    name: str = ""
    match: Optional[FilterChainMatchPlan] = None
    filters: List[network_filter_plan_union()] = []     # type: ignore[valid-type]


class ListenerPlan(PlanStruct, kw_only=True):
    name: str
    fd: int                         # -1: stopped listening before this worker
    port: int
    stats: ListenerStatsPlan
    connection_limit: int = -1      # -1: none
    buffer_limit: int
    filter_chains: List[FilterChainPlan] = []
    default_filter_chain: Optional[FilterChainPlan] = None


# --- a worker -----------------------------------------------------------------

class WorkerPlan(PlanStruct, kw_only=True):
    """Everything one worker builds at start: stats geometry, clusters, listeners."""
    nstats: int
    shared_row: int
    clusters: List[AnyClusterPlan] = []
    listeners: List[ListenerPlan] = []


_encoder = msgspec.msgpack.Encoder()
_decoders: Dict[Any, msgspec.msgpack.Decoder] = {}


def encode(plan: PlanStruct) -> bytes:
    """msgpack bytes of a plan Struct (for the control channel)."""
    return _encoder.encode(plan)


def decode(data: bytes, type: Any = WorkerPlan) -> Any:
    """The plan Struct of `type` (a Struct or a union such as AnyClusterPlan)
    encoded in `data`."""
    dec = _decoders.get(type)
    if dec is None:
        dec = _decoders[type] = msgspec.msgpack.Decoder(type)
    return dec.decode(data)


def convert(obj: Any, type: Any) -> Any:
    """A plan Struct from decoded plain data (a control message's field)."""
    return msgspec.convert(obj, type)
