"""Turn a loaded Bootstrap into a worker plan: plain data the data plane
builds its objects from (no config types cross into the worker)."""
from __future__ import annotations

import ipaddress
from typing import Any, Dict, List, Optional

from envoy_fast.accesslog import build_access_log_plan
from envoy_fast.stats.store import StatsLayout, host_address

_LB = {"ROUND_ROBIN": 0, "LEAST_REQUEST": 1, "RANDOM": 3}
_SOURCE_TYPE = {"ANY": 0, "SAME_IP_OR_LOOPBACK": 1, "EXTERNAL": 2}


def _cidrs(ranges) -> List[tuple]:
    out = []
    for r in ranges:
        net = ipaddress.ip_network("%s/%d" % (r.address_prefix, r.prefix_len), strict=False)
        out.append((net.version, int(net.network_address), net.prefixlen))
    return out


def _match(m) -> Optional[Dict[str, Any]]:
    if m is None:
        return None
    return {
        "destination_port": m.destination_port,
        "prefix_ranges": _cidrs(m.prefix_ranges),
        "direct_source_prefix_ranges": _cidrs(m.direct_source_prefix_ranges),
        "source_type": _SOURCE_TYPE[m.source_type],
        "source_prefix_ranges": _cidrs(m.source_prefix_ranges),
        "source_ports": list(m.source_ports),
    }


def _chain(chain, layout: StatsLayout, alt_names: Dict[str, str]) -> Dict[str, Any]:
    filters = []
    for f in chain.filters:
        tp = f.typed_config
        if tp.weighted_clusters is not None:
            clusters = [(c.name, c.weight) for c in tp.weighted_clusters.clusters]
        else:
            clusters = [(tp.cluster, 1)]
        filters.append({
            "type": "tcp_proxy",
            "stat_prefix": tp.stat_prefix,
            "stats_base": layout.tcp_base[tp.stat_prefix],
            "clusters": clusters,
            "idle_timeout": tp.idle_timeout,
            "max_connect_attempts": tp.max_connect_attempts,
            "max_downstream_connection_duration": tp.max_downstream_connection_duration,
            "access_log": build_access_log_plan(tp, alt_names) if tp.access_log else [],
        })
    return {"name": chain.name, "match": _match(chain.filter_chain_match), "filters": filters}


# Host health from the configured HealthStatus, as Envoy classifies it:
# DRAINING hosts are also left out of the panic computation ("excluded").
HOST_HEALTHY, HOST_DEGRADED, HOST_UNHEALTHY, HOST_EXCLUDED = range(4)
_HEALTH = {"UNKNOWN": HOST_HEALTHY, "HEALTHY": HOST_HEALTHY, "DEGRADED": HOST_DEGRADED,
           "UNHEALTHY": HOST_UNHEALTHY, "TIMEOUT": HOST_UNHEALTHY, "DRAINING": HOST_EXCLUDED}
_OVERPROVISIONING_FACTOR = 140     # Envoy's default, in percent


def host_set_load(health: List[int], panic_threshold: float) -> Dict[str, Any]:
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


def _cluster(cluster, layout: StatsLayout) -> Dict[str, Any]:
    th = cluster.thresholds()
    hosts = []
    if cluster.load_assignment is not None:
        for loc in cluster.load_assignment.endpoints:
            for ep in loc.lb_endpoints:
                sa = ep.endpoint.address.socket_address
                name = host_address(sa.address, sa.port_value)
                hosts.append({"address": sa.address, "port": sa.port_value, "name": name,
                              "weight": ep.load_balancing_weight,
                              "health": _HEALTH[ep.health_status],
                              "stats_base": layout.hosts[(cluster.name, name)]})
    threshold = 50.0
    if cluster.common_lb_config is not None:
        threshold = cluster.common_lb_config.healthy_panic_threshold
    choice_count = 2
    if cluster.least_request_lb_config is not None:
        choice_count = cluster.least_request_lb_config.choice_count
    return {
        "name": cluster.name,
        "stats_base": layout.cluster_base[cluster.name],
        "histograms": layout.cluster_hist[cluster.name],
        "resources_base": layout.cluster_resources_base[cluster.name],
        "resources_row_base": layout.cluster_resources_row_base[cluster.name],
        "connect_timeout": cluster.connect_timeout,
        "buffer_limit": cluster.per_connection_buffer_limit_bytes,
        "max_connections": th.max_connections,
        "max_pending_requests": th.max_pending_requests,
        "max_requests": th.max_requests,
        "lb_policy": _LB[cluster.lb_policy],
        "choice_count": choice_count,
        "hosts": hosts,
        **host_set_load([h["health"] for h in hosts], threshold),
    }


def build_plan(bootstrap, layout: StatsLayout, listener_fds: Dict[str, int]) -> Dict[str, Any]:
    """The plan of one worker; `listener_fds` maps listener name to its socket."""
    sr = bootstrap.static_resources
    alt_names = {c.name: c.alt_stat_name for c in sr.clusters if c.alt_stat_name}
    listeners = []
    for listener in sr.listeners:
        limit = bootstrap.listener_connection_limit(listener.name)
        listeners.append({
            "name": listener.name,
            "fd": listener_fds[listener.name],
            "port": listener.address.socket_address.port_value,
            "stats_base": layout.listener_base[listener.name],
            "histograms": layout.listener_hist[listener.name],
            "connection_limit": -1 if limit is None else limit,
            "buffer_limit": listener.per_connection_buffer_limit_bytes,
            "filter_chains": [_chain(c, layout, alt_names) for c in listener.filter_chains],
            "default_filter_chain": (_chain(listener.default_filter_chain, layout, alt_names)
                                     if listener.default_filter_chain is not None else None),
        })
    return {
        "nstats": layout.nstats,
        "shared_row": layout.shared_row,
        "clusters": [_cluster(c, layout) for c in sr.clusters],
        "listeners": listeners,
    }
