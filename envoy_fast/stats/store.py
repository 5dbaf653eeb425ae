"""Shared-memory counters and gauges.

Every stat name is known once the config is loaded, so each gets an index in
a row of int64 slots. The region is an anonymous shared mmap created before
the workers fork; worker i adds to row i with plain C stores (one writer per
row, no lock), and the admin sums the rows when it reads. One extra row holds
the cluster-wide circuit-breaker counts, updated with atomics by every worker.

    row 0      | listener blocks | cluster blocks | tcp_proxy blocks |   worker 0
    row 1      |       ...                                           |   worker 1
    ...
    row N      | cluster resource counts (cx_open, rq_pending_open ...)   shared
"""
from __future__ import annotations

import mmap
from typing import Dict, Iterable, List, Tuple

from envoy_fast import _worker

# Listener stats Envoy also keeps per worker.
_PER_WORKER = (".downstream_cx_total", ".downstream_cx_active")

COUNTER = _worker.COUNTER
GAUGE = _worker.GAUGE


def stat_name_fragment(name: str) -> str:
    """Envoy's stat-name sanitising: ':' becomes '_' (e.g. IPv6 addresses)."""
    return name.replace(":", "_")


def listener_stat_prefix(listener) -> str:
    """`listener.<stat_prefix>` or `listener.<ip>_<port>` as Envoy names it."""
    if listener.stat_prefix:
        return "listener." + listener.stat_prefix
    sa = listener.address.socket_address
    addr = "[%s]" % sa.address if ":" in sa.address else sa.address
    return "listener.%s_%d" % (stat_name_fragment(addr), sa.port_value)


def cluster_stat_prefix(cluster) -> str:
    return "cluster." + stat_name_fragment(cluster.alt_stat_name or cluster.name)


class StatsLayout:
    """Assigns every stat of a bootstrap an index in a row."""

    def __init__(self, bootstrap, rows: int) -> None:
        self.rows = rows                   # worker slots
        self.names: List[Tuple[str, str]] = []   # (name, kind) by index
        self.listener_base: Dict[str, int] = {}
        self.cluster_base: Dict[str, int] = {}
        self.cluster_resources_base: Dict[str, int] = {}
        self.tcp_base: Dict[str, int] = {}
        self._prefix_base: Dict[str, int] = {}
        sr = bootstrap.static_resources
        for listener in sr.listeners:
            self.listener_base[listener.name] = self._block(
                listener_stat_prefix(listener), _worker.LISTENER_STATS)
            chains = list(listener.filter_chains)
            if listener.default_filter_chain is not None:
                chains.append(listener.default_filter_chain)
            for chain in chains:
                for f in chain.filters:
                    prefix = f.typed_config.stat_prefix
                    self.tcp_base[prefix] = self._block("tcp." + prefix, _worker.TCP_PROXY_STATS)
        for cluster in sr.clusters:
            self.cluster_base[cluster.name] = self._block(
                cluster_stat_prefix(cluster), _worker.CLUSTER_STATS)
        self.nstats = max(len(self.names), 1)
        # The shared row reuses the same width: resource counts by cluster.
        slot = 0
        for cluster in sr.clusters:
            self.cluster_resources_base[cluster.name] = slot
            slot += len(_worker.CLUSTER_RESOURCES)
        if slot > self.nstats:
            self.nstats = slot
        self.shared_row = rows

    def _block(self, prefix: str, table: Iterable[Tuple[str, str]]) -> int:
        # Two filters with one stat_prefix share their stats, as in Envoy.
        if prefix in self._prefix_base:
            return self._prefix_base[prefix]
        base = len(self.names)
        for name, kind in table:
            self.names.append(("%s.%s" % (prefix, name), kind))
        self._prefix_base[prefix] = base
        return base

    @property
    def size_bytes(self) -> int:
        return (self.rows + 1) * self.nstats * 8


class StatsStore:
    """The shared region and the admin's view of it (summed over workers)."""

    def __init__(self, layout: StatsLayout) -> None:
        self.layout = layout
        self.mem = mmap.mmap(-1, layout.size_bytes, flags=mmap.MAP_SHARED,
                             prot=mmap.PROT_READ | mmap.PROT_WRITE)
        self.view = memoryview(self.mem).cast("q")

    def values(self) -> Dict[str, int]:
        """name -> value summed over worker rows, plus Envoy's per-worker
        listener stats (`listener.<a>.worker_<i>.downstream_cx_total`)."""
        n = self.layout.nstats
        rows = self.layout.rows
        view = self.view
        out = {}
        for i, (name, _kind) in enumerate(self.layout.names):
            total = 0
            per_worker = name.startswith("listener.") and name.endswith(_PER_WORKER)
            for r in range(rows):
                v = view[r * n + i]
                total += v
                if per_worker:
                    head, _, tail = name.rpartition(".")
                    out["%s.worker_%d.%s" % (head, r, tail)] = v
            out[name] = total
        return out

    def kinds(self) -> Dict[str, str]:
        return dict(self.layout.names)

    def resource(self, cluster: str, which: str) -> int:
        """A cluster-wide circuit-breaker count ("cx_open", "rq_pending_open" ...)."""
        base = self.layout.cluster_resources_base[cluster]
        idx = _worker.CLUSTER_RESOURCES.index(which)
        return self.view[self.layout.shared_row * self.layout.nstats + base + idx]

    def reset_gauges_of_row(self, row: int) -> None:
        """Zero a dead worker's gauges (its connections are gone with it)."""
        n = self.layout.nstats
        for i, (_name, kind) in enumerate(self.layout.names):
            if kind == GAUGE:
                self.view[row * n + i] = 0
