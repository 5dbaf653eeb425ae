"""Shared-memory counters, gauges and histograms.

Every stat name is known once the config is loaded, so each gets an index in
a row of int64 slots. The region is an anonymous shared mmap created before
the workers fork; worker i adds to its row with plain C stores (one writer per
row, no lock), and the admin sums the rows when it reads.

    rows 0 .. W*G-1      block b, slot i: row b*W+i. One block per running
                         generation (up to G at once during reloads)
    rows W*G .. W*G+W-1  "retired", by slot: what finished workers counted,
                         folded in by main so counters keep counting
    row  W*G+W           cluster-wide circuit-breaker counts (atomics)

Indices never change once given: a reload appends the names it adds
(`extend`), so workers of two generations agree on every slot. A histogram is
HISTOGRAM_SLOTS consecutive slots (bucket counts, then the sum); per-host
stats (for /clusters) have slots but are not listed in /stats.
"""
from __future__ import annotations

import copy
import mmap
import threading
from typing import Dict, Iterable, List, NamedTuple, Optional, Set, Tuple

from envoy_fast import _worker
from envoy_fast.extensions import registry

COUNTER = _worker.COUNTER
GAUGE = _worker.GAUGE
HISTOGRAM = "histogram"

#: Main's own counters (``server.<name>``), counted in the retired row of
#: slot 0, which only main writes.
SERVER_STATS = (("reload_success", COUNTER), ("reload_failure", COUNTER))

# Listener stats Envoy also keeps per worker.
_PER_WORKER = (".downstream_cx_total", ".downstream_cx_active")


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


def host_address(address: str, port: int) -> str:
    """"ip:port" as /clusters prints it ("[::1]:port" for IPv6)."""
    return "[%s]:%d" % (address, port) if ":" in address else "%s:%d" % (address, port)


class StatsLayout:
    """Assigns every stat of a bootstrap a slot in a row; grows on reload."""

    def __init__(self, bootstrap, rows: int, generations: int = 1,
                 capacity: Optional[int] = None) -> None:
        self.rows = rows                    # worker slots per generation
        self.generations = generations
        self.entries: Dict[str, Tuple[str, int]] = {}     # name -> (kind, index)
        self.hosts: Dict[Tuple[str, str], int] = {}       # (cluster, host) -> base
        self.listener_base: Dict[str, int] = {}
        self.listener_hist: Dict[str, Dict[str, int]] = {}
        self.cluster_base: Dict[str, int] = {}
        self.cluster_hist: Dict[str, Dict[str, int]] = {}
        self.cluster_resources_base: Dict[str, int] = {}      # in the shared row
        self.cluster_resources_row_base: Dict[str, int] = {}  # each worker's part
        self.cluster_status_codes: Dict[str, int] = {}     # StatusCodeStat block
        self.cluster_external_status_codes: Dict[str, int] = {}   # cluster.<c>.external.
        self.cluster_external_hist: Dict[str, Dict[str, int]] = {}
        self.cluster_retry_status_codes: Dict[str, int] = {}      # cluster.<c>.retry.
        self.cluster_internal_status_codes: Dict[str, int] = {}   # cluster.<c>.internal.
        self.cluster_internal_hist: Dict[str, Dict[str, int]] = {}
        # Names Envoy creates on first use (upstream_rq_<code> ...): they
        # have slots from the start but are listed only once non-zero.
        self.dynamic: Set[str] = set()
        self._blocks: Dict[str, int] = {}                  # block key -> base
        self._block_hists: Dict[str, Dict[str, int]] = {}  # prefix -> {histogram: slot}
        self._next = 0
        self.nstats = 0
        self.server_base = self._block("server", SERVER_STATS)
        self.extend(bootstrap)
        # Room for what reloads may add.
        self.nstats = capacity or (2 * self._next + 8192)
        self.retired_base = rows * generations
        self.shared_row = self.retired_base + rows

    @property
    def total_rows(self) -> int:
        return self.shared_row + 1

    @property
    def size_bytes(self) -> int:
        return self.total_rows * self.nstats * 8

    @property
    def names(self) -> List[Tuple[str, str]]:
        """(name, kind) of the counters and gauges, in slot order."""
        return [(n, k) for n, (k, _) in self.entries.items() if k != HISTOGRAM]

    def extend(self, bootstrap) -> None:
        """Give slots to the stats of `bootstrap` that have none yet."""
        sr = bootstrap.static_resources
        for listener in sr.listeners:
            prefix = listener_stat_prefix(listener)
            self.listener_base[listener.name] = self._block(prefix, _worker.LISTENER_STATS)
            self.listener_hist[listener.name] = self._histograms(prefix, _worker.LISTENER_HISTOGRAMS)
            chains = list(listener.filter_chains)
            if listener.default_filter_chain is not None:
                chains.append(listener.default_filter_chain)
            for chain in chains:
                for f in chain.filters:
                    # Each filter declares its blocks in its registry record.
                    record = registry.for_config(f.typed_config)
                    blocks = (list(record.stat_blocks(f.typed_config))
                              + list(record.listener_stat_blocks(f.typed_config, prefix)))
                    for block in blocks:
                        self.add_block(block.prefix, block.table, block.histograms,
                                       dynamic=block.dynamic, key=block.key)
        for cluster in sr.clusters:
            prefix = cluster_stat_prefix(cluster)
            self.cluster_base[cluster.name] = self._block(prefix, _worker.CLUSTER_STATS)
            # envoy_fast's own (docs/decisions.md, the keep-alive race): listed
            # once non-zero, so a run that never met the race shows Envoy's names.
            self.dynamic.add(prefix + ".upstream_rq_keepalive_race_retry")
            self.cluster_hist[cluster.name] = self._histograms(prefix, _worker.CLUSTER_HISTOGRAMS)
            # The router's response time: Envoy makes it on the first response.
            self.dynamic.add(prefix + ".upstream_rq_time")
            self.cluster_status_codes[cluster.name] = self.add_block(
                prefix, _worker.STATUS_CODE_STATS, dynamic=True, key=prefix + "/status_codes")
            self.cluster_external_status_codes[cluster.name] = self.add_block(
                prefix + ".external", _worker.EXTERNAL_STATUS_CODE_STATS,
                _worker.EXTERNAL_HISTOGRAMS, dynamic=True, key=prefix + "/external")
            self.cluster_external_hist[cluster.name] = self.block_histograms(prefix + "/external")
            self.cluster_internal_status_codes[cluster.name] = self.add_block(
                prefix + ".internal", _worker.EXTERNAL_STATUS_CODE_STATS,
                _worker.EXTERNAL_HISTOGRAMS, dynamic=True, key=prefix + "/internal")
            self.cluster_internal_hist[cluster.name] = self.block_histograms(prefix + "/internal")
            self.cluster_retry_status_codes[cluster.name] = self.add_block(
                prefix + ".retry", _worker.EXTERNAL_STATUS_CODE_STATS, dynamic=True,
                key=prefix + "/retry")
            if cluster.load_assignment is not None:
                for loc in cluster.load_assignment.endpoints:
                    for ep in loc.lb_endpoints:
                        sa = ep.endpoint.address.socket_address
                        key = (cluster.name, host_address(sa.address, sa.port_value))
                        if key not in self.hosts:
                            self.hosts[key] = self._alloc(len(_worker.HOST_STATS))
        # Circuit-breaker counts live in the shared row, by cluster.
        width = len(_worker.CLUSTER_RESOURCES)
        for cluster in sr.clusters:
            if cluster.name not in self.cluster_resources_base:
                self.cluster_resources_base[cluster.name] = width * len(self.cluster_resources_base)
                self.cluster_resources_row_base[cluster.name] = self._alloc(width)
        if self.nstats and (self._next > self.nstats
                            or width * len(self.cluster_resources_base) > self.nstats):
            raise ValueError("the stats region is full (%d slots): restart envoy_fast to "
                             "apply this configuration" % self.nstats)

    def add_block(self, prefix: str, table: Iterable[Tuple[str, str]],
                  histograms: Iterable[str] = (), dynamic: bool = False, key: str = "") -> int:
        """Slots for a stat block (counters/gauges of `table`, consecutive in
        table order, then each of `histograms`) named `prefix`.<name>.
        `key` (default: the prefix) identifies the block: the same key again
        shares its slots, as two Envoy filters with one stat_prefix do, and
        a reload keeps them. `dynamic`: the names are listed only once
        non-zero (Envoy creates them on first use). Returns the base slot."""
        key = key or prefix
        base = self._block(prefix, table, key)
        hists = self._block_hists.setdefault(key, {})
        hists.update(self._histograms(prefix, histograms))
        if dynamic:
            self.dynamic.update("%s.%s" % (prefix, name) for name, _kind in table)
            self.dynamic.update("%s.%s" % (prefix, name) for name in histograms)
        return base

    def block_base(self, key: str) -> int:
        """Base slot of the block of `key` (add_block; by default its prefix)."""
        return self._blocks[key]

    def block_histograms(self, key: str) -> Dict[str, int]:
        """{histogram name: slot} of the block of `key`."""
        return dict(self._block_hists.get(key, {}))

    def _alloc(self, n: int) -> int:
        base = self._next
        self._next += n
        return base

    def _block(self, prefix: str, table: Iterable[Tuple[str, str]], key: str = "") -> int:
        # Two filters with one stat_prefix share their stats, as in Envoy.
        key = key or prefix
        if key in self._blocks:
            return self._blocks[key]
        table = list(table)
        base = self._alloc(len(table))
        for i, (name, kind) in enumerate(table):
            self.entries["%s.%s" % (prefix, name)] = (kind, base + i)
        self._blocks[key] = base
        return base

    def _histograms(self, prefix: str, names: Iterable[str]) -> Dict[str, int]:
        out = {}
        for name in names:
            full = "%s.%s" % (prefix, name)
            if full not in self.entries:
                self.entries[full] = (HISTOGRAM, self._alloc(_worker.HISTOGRAM_SLOTS))
            out[name] = self.entries[full][1]
        return out

    def worker_row(self, block: int, slot: int) -> int:
        return block * self.rows + slot

    def slot_rows(self, slot: int) -> List[int]:
        """Every row that counts for worker slot `slot` (blocks and retired)."""
        return [self.worker_row(b, slot) for b in range(self.generations)] + \
            [self.retired_base + slot]


class Histogram(NamedTuple):
    """A histogram summed over workers: per-bucket counts and the sum (ms)."""
    counts: List[int]
    sum: int

    @property
    def count(self) -> int:
        return sum(self.counts)

    def quantile(self, q: float) -> float:
        """Value at quantile q (0..1), interpolated inside its bucket."""
        total = self.count
        if total == 0:
            return float("nan")
        target = q * total
        seen = 0
        for (lo, hi), n in zip(BUCKET_BOUNDS, self.counts):
            if n and seen + n >= target:
                frac = (target - seen) / n if n else 0.0
                return lo + (hi - lo) * frac
            seen += n
        return float(BUCKET_BOUNDS[-1][1])


BUCKET_BOUNDS = _worker.histogram_bucket_bounds()


class StatsStore:
    """The shared region and the admin's view of it (summed over rows)."""

    def __init__(self, layout: StatsLayout) -> None:
        self.layout = layout
        self.mem = mmap.mmap(-1, layout.size_bytes, flags=mmap.MAP_SHARED,
                             prot=mmap.PROT_READ | mmap.PROT_WRITE)
        self.view = memoryview(self.mem).cast("q")
        # Held while rows are read for the admin (in its thread) and while a
        # gone worker's counters are folded, so a read never counts them twice.
        self.lock = threading.Lock()

    def snapshot(self) -> "StatsStore":
        """A view for another thread: the same region and lock, with copies of
        the name tables (a reload adds names while the admin thread reads;
        slots never move, so the copy stays right)."""
        layout = copy.copy(self.layout)
        for attr in ("entries", "hosts", "cluster_resources_base"):
            setattr(layout, attr, dict(getattr(layout, attr)))
        layout.dynamic = set(layout.dynamic)
        snap = copy.copy(self)
        snap.layout = layout
        return snap

    def _summed(self, index: int) -> int:
        n = self.layout.nstats
        view = self.view
        return sum(view[r * n + index] for r in range(self.layout.shared_row))

    def values(self) -> Dict[str, int]:
        """Counters and gauges summed over rows, plus Envoy's per-worker
        listener stats (`listener.<a>.worker_<i>.downstream_cx_total`)."""
        with self.lock:
            return self._values()

    def _values(self) -> Dict[str, int]:
        n = self.layout.nstats
        rows = self.layout.rows
        view = self.view
        dynamic = self.layout.dynamic
        out = {}
        for name, (kind, i) in self.layout.entries.items():
            if kind == HISTOGRAM:
                continue
            v = self._summed(i)
            if not v and name in dynamic:
                continue                    # not used yet: Envoy has no such stat
            out[name] = v
            if name.startswith("listener.") and name.endswith(_PER_WORKER):
                head, _, tail = name.rpartition(".")
                for slot in range(rows):
                    v = sum(view[r * n + i] for r in self.layout.slot_rows(slot))
                    out["%s.worker_%d.%s" % (head, slot, tail)] = v
        return out

    def kinds(self) -> Dict[str, str]:
        return {name: kind for name, (kind, _) in self.layout.entries.items()}

    def histograms(self) -> Dict[str, Histogram]:
        """name -> Histogram summed over rows."""
        with self.lock:
            return self._histograms()

    def _histograms(self) -> Dict[str, Histogram]:
        n = self.layout.nstats
        view = self.view
        rows = range(self.layout.shared_row)
        nb = _worker.HISTOGRAM_BUCKETS
        zero = bytes(8 * (nb + 1))
        mem = self.mem
        out = {}
        for name, (kind, base) in self.layout.entries.items():
            if kind != HISTOGRAM:
                continue
            counts = [0] * nb
            total = 0
            for r in rows:
                off = r * n + base
                # Most rows of most histograms are empty (idle slots, other
                # generations): skip them with one C-level compare.
                if mem[8 * off:8 * (off + nb + 1)] == zero:
                    continue
                for b, v in enumerate(view[off:off + nb]):
                    if v:
                        counts[b] += v
                total += view[off + nb]
            if name in self.layout.dynamic and not any(counts):
                continue                    # Envoy makes it on first use
            out[name] = Histogram(counts, total)
        return out

    def host_values(self) -> Dict[str, Dict[str, Dict[str, int]]]:
        """{cluster: {"ip:port": {stat: value}}} summed over rows (for /clusters)."""
        with self.lock:
            return self._host_values()

    def _host_values(self) -> Dict[str, Dict[str, Dict[str, int]]]:
        out: Dict[str, Dict[str, Dict[str, int]]] = {}
        for (cluster, host), base in self.layout.hosts.items():
            out.setdefault(cluster, {})[host] = {
                name: self._summed(base + i) for i, (name, _k) in enumerate(_worker.HOST_STATS)}
        return out

    def resource(self, cluster: str, which: str) -> int:
        """A cluster-wide circuit-breaker count ("cx_open", "rq_pending_open" ...)."""
        base = self.layout.cluster_resources_base[cluster]
        idx = _worker.CLUSTER_RESOURCES.index(which)
        return self.view[self.layout.shared_row * self.layout.nstats + base + idx]

    def inc_server(self, name: str, n: int = 1) -> None:
        """Count one of main's own ``server.*`` counters (SERVER_STATS)."""
        i = self.layout.entries["server." + name][1]
        self.view[self.layout.retired_base * self.layout.nstats + i] += n

    def retire_row(self, row: int) -> None:
        """Fold a finished worker's counters and histograms into the retired
        row and zero its slots (its gauges died with its connections)."""
        with self.lock:
            self._retire_row(row)

    def _retire_row(self, row: int) -> None:
        self.release_resources_of_row(row)
        n = self.layout.nstats
        view = self.view
        dst = (self.layout.retired_base + row % self.layout.rows) * n
        src = row * n
        for name, (kind, i) in self.layout.entries.items():
            width = _worker.HISTOGRAM_SLOTS if kind == HISTOGRAM else 1
            for j in range(i, i + width):
                if kind != GAUGE:
                    view[dst + j] += view[src + j]
                view[src + j] = 0
        width = len(_worker.HOST_STATS)
        for base in self.layout.hosts.values():
            for i, (_name, kind) in enumerate(_worker.HOST_STATS):
                if kind != GAUGE:
                    view[dst + base + i] += view[src + base + i]
                view[src + base + i] = 0

    def release_resources_of_row(self, row: int) -> None:
        """Take a gone worker's part out of the cluster-wide circuit-breaker
        counts: its connections and pending requests died with it."""
        n = self.layout.nstats
        width = len(_worker.CLUSTER_RESOURCES)
        for cluster, base in self.layout.cluster_resources_row_base.items():
            shared = self.layout.shared_row * n + self.layout.cluster_resources_base[cluster]
            for k in range(width):
                mine = self.view[row * n + base + k]
                if mine:
                    _worker.atomic_add(self.mem, shared + k, -mine)
                    self.view[row * n + base + k] = 0

    def reset_gauges_of_row(self, row: int) -> None:
        """Zero a dead worker's gauges (its connections are gone with it)."""
        n = self.layout.nstats
        for name, (kind, i) in self.layout.entries.items():
            if kind == GAUGE:
                self.view[row * n + i] = 0
        for base in self.layout.hosts.values():
            for i, (_name, kind) in enumerate(_worker.HOST_STATS):
                if kind == GAUGE:
                    self.view[row * n + base + i] = 0
