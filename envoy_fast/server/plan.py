"""Turn a loaded Bootstrap into a worker plan: the typed Structs of
`plan_types` a worker builds its data plane from (no config types cross into
the worker). Network filters build their own part through the registry."""
from __future__ import annotations

import dataclasses
import ipaddress
from typing import Dict, List, Optional

from envoy_fast.extensions import registry
from envoy_fast.server.plan_types import (
    HOST_DEGRADED, HOST_EXCLUDED, HOST_HEALTHY, HOST_UNHEALTHY, LB_LEAST_REQUEST, LB_RANDOM,
    LB_ROUND_ROBIN, SOURCE_ANY, SOURCE_EXTERNAL, SOURCE_SAME_IP_OR_LOOPBACK, AnyClusterPlan,
    ClusterStatsPlan, CidrRange, FilterChainMatchPlan, FilterChainPlan, HostPlan, ListenerPlan,
    ListenerStatsPlan, StaticClusterPlan, WorkerPlan)
from envoy_fast.stats.store import StatsLayout, host_address, listener_stat_prefix

_LB = {"ROUND_ROBIN": LB_ROUND_ROBIN, "LEAST_REQUEST": LB_LEAST_REQUEST, "RANDOM": LB_RANDOM}
_SOURCE_TYPE = {"ANY": SOURCE_ANY, "SAME_IP_OR_LOOPBACK": SOURCE_SAME_IP_OR_LOOPBACK,
                "EXTERNAL": SOURCE_EXTERNAL}
_HEALTH = {"UNKNOWN": HOST_HEALTHY, "HEALTHY": HOST_HEALTHY, "DEGRADED": HOST_DEGRADED,
           "UNHEALTHY": HOST_UNHEALTHY, "TIMEOUT": HOST_UNHEALTHY, "DRAINING": HOST_EXCLUDED}
_OVERPROVISIONING_FACTOR = 140     # Envoy's default, in percent


def _cidrs(ranges) -> List[CidrRange]:
    out = []
    for r in ranges:
        net = ipaddress.ip_network("%s/%d" % (r.address_prefix, r.prefix_len), strict=False)
        out.append((net.version, int(net.network_address), net.prefixlen))
    return out


def _match(m) -> Optional[FilterChainMatchPlan]:
    if m is None:
        return None
    return FilterChainMatchPlan(
        destination_port=m.destination_port,
        prefix_ranges=_cidrs(m.prefix_ranges),
        direct_source_prefix_ranges=_cidrs(m.direct_source_prefix_ranges),
        source_type=_SOURCE_TYPE[m.source_type],
        source_prefix_ranges=_cidrs(m.source_prefix_ranges),
        source_ports=list(m.source_ports),
    )


def _chain(chain, ctx: registry.PlanContext) -> FilterChainPlan:
    filters = [registry.for_config(f.typed_config).build_plan(f.typed_config, ctx)
               for f in chain.filters]
    return FilterChainPlan(name=chain.name, match=_match(chain.filter_chain_match),
                           filters=filters)


def host_set_load(health: List[int], panic_threshold: float) -> Dict[str, object]:
    """Envoy's LoadBalancerBase arithmetic for one priority (integer
    percentages, as Envoy computes them): whether the host set is in panic
    (then every host takes traffic) and the share of picks that go to
    healthy hosts (the rest to degraded ones)."""
    threshold = min(100, int(panic_threshold + 0.5))
    counted = [h for h in health if h != HOST_EXCLUDED]
    n = len(counted)
    healthy = counted.count(HOST_HEALTHY)
    degraded = counted.count(HOST_DEGRADED)
    h_avail = min(100, _OVERPROVISIONING_FACTOR * healthy // n) if n else 0
    d_avail = min(100, _OVERPROVISIONING_FACTOR * degraded // n) if n else 0
    total = min(100, h_avail + d_avail)
    if total == 0:
        # Nothing available: panic, unless the threshold is 0 (then no host).
        return {"panic": threshold > 0, "healthy_load": 100}
    healthy_pct = 100.0 * healthy / n
    degraded_pct = 100.0 * degraded / n
    healthy_load = min(100, h_avail * 100 // total)
    degraded_load = min(100 - healthy_load, d_avail * 100 // total)
    if h_avail:
        healthy_load = 100 - degraded_load      # the rounding remainder
    return {"panic": healthy_pct + degraded_pct < threshold, "healthy_load": healthy_load}


def build_cluster_plan(cluster, layout: StatsLayout) -> AnyClusterPlan:
    """The plan of one cluster (also what a run-time update sends)."""
    th = cluster.thresholds()
    hosts = []
    if cluster.load_assignment is not None:
        for loc in cluster.load_assignment.endpoints:
            for ep in loc.lb_endpoints:
                sa = ep.endpoint.address.socket_address
                name = host_address(sa.address, sa.port_value)
                hosts.append(HostPlan(address=sa.address, port=sa.port_value, name=name,
                                      hostname=ep.endpoint.hostname,
                                      weight=ep.load_balancing_weight,
                                      health=_HEALTH[ep.health_status],
                                      stats_base=layout.hosts[(cluster.name, name)]))
    threshold = 50.0
    if cluster.common_lb_config is not None:
        threshold = cluster.common_lb_config.healthy_panic_threshold
    choice_count = 2
    if cluster.least_request_lb_config is not None:
        choice_count = cluster.least_request_lb_config.choice_count
    hist = layout.cluster_hist[cluster.name]
    http = cluster.http_protocol_options()
    common = http.common() if http is not None else None
    return StaticClusterPlan(
        name=cluster.name,
        stats=ClusterStatsPlan(
            base=layout.cluster_base[cluster.name],
            upstream_cx_connect_ms=hist["upstream_cx_connect_ms"],
            upstream_cx_length_ms=hist["upstream_cx_length_ms"],
            resources_base=layout.cluster_resources_base[cluster.name],
            resources_row_base=layout.cluster_resources_row_base[cluster.name],
            status_codes=layout.cluster_status_codes[cluster.name],
            external_status_codes=layout.cluster_external_status_codes[cluster.name],
            retry_status_codes=layout.cluster_retry_status_codes[cluster.name],
            internal_status_codes=layout.cluster_internal_status_codes[cluster.name],
            internal_upstream_rq_time=layout.cluster_internal_hist[cluster.name]["upstream_rq_time"],
            upstream_rq_time=hist["upstream_rq_time"],
            external_upstream_rq_time=layout.cluster_external_hist[cluster.name]["upstream_rq_time"]),
        connect_timeout=cluster.connect_timeout,
        buffer_limit=cluster.per_connection_buffer_limit_bytes,
        max_connections=th.max_connections,
        max_pending_requests=th.max_pending_requests,
        max_requests=th.max_requests,
        max_retries=th.max_retries,
        max_requests_per_connection=(common.max_requests_per_connection or 0) if common
        else (cluster.max_requests_per_connection or 0),
        idle_timeout=common.idle_timeout if common else 3600.0,
        max_headers_count=common.max_headers_count if common else 100,
        enable_trailers=bool(http is not None and http.explicit_http_config is not None
                             and http.explicit_http_config.http_protocol_options is not None
                             and http.explicit_http_config.http_protocol_options.enable_trailers),
        lb_policy=_LB[cluster.lb_policy],
        choice_count=choice_count,
        hosts=hosts,
        **host_set_load([h.health for h in hosts], threshold),
    )


def build_listener_plan(listener, bootstrap, layout: StatsLayout, fd: int,
                        ctx: Optional[registry.PlanContext] = None) -> ListenerPlan:
    """The plan of one listener on socket `fd` (-1: not listening)."""
    if ctx is None:
        ctx = _context(bootstrap, layout)
    ctx = dataclasses.replace(ctx, listener_stat_prefix=listener_stat_prefix(listener))
    limit = bootstrap.listener_connection_limit(listener.name)
    dfc = listener.default_filter_chain
    return ListenerPlan(
        name=listener.name,
        fd=fd,
        port=listener.address.socket_address.port_value,
        stats=ListenerStatsPlan(
            base=layout.listener_base[listener.name],
            downstream_cx_length_ms=layout.listener_hist[listener.name]["downstream_cx_length_ms"]),
        connection_limit=-1 if limit is None else limit,
        buffer_limit=listener.per_connection_buffer_limit_bytes,
        filter_chains=[_chain(c, ctx) for c in listener.filter_chains],
        default_filter_chain=_chain(dfc, ctx) if dfc is not None else None,
    )


def _context(bootstrap, layout: StatsLayout) -> registry.PlanContext:
    sr = bootstrap.static_resources
    alt_names = {c.name: c.alt_stat_name for c in sr.clusters if c.alt_stat_name}
    return registry.PlanContext(layout=layout, bootstrap=bootstrap, cluster_alt_names=alt_names)


def build_plan(bootstrap, layout: StatsLayout, listener_fds: Dict[str, int]) -> WorkerPlan:
    """The plan of one worker; `listener_fds` maps listener name to its socket."""
    sr = bootstrap.static_resources
    ctx = _context(bootstrap, layout)
    return WorkerPlan(
        nstats=layout.nstats,
        shared_row=layout.shared_row,
        clusters=[build_cluster_plan(c, layout) for c in sr.clusters],
        listeners=[build_listener_plan(l, bootstrap, layout, listener_fds[l.name], ctx)
                   for l in sr.listeners],
    )
