"""Network filter extension registry (Envoy's NamedNetworkFilterConfigFactory).

One `NetworkFilterRecord` per filter says everything the rest of envoy_fast
needs to know about it, so adding a filter touches only its own files:

* ``config_type``  the ``typed_config`` Struct (``envoy_fast.config.types``)
* ``plan_type``    the Struct a worker builds the filter from (a
                   `NetworkFilterPlan` subclass tagged with ``name``)
* ``stat_blocks``  config -> the stat blocks one instance needs
* ``build_plan``   (config, `PlanContext`) -> plan Struct, in main
* ``factory``      (FactoryContext, plan) -> NetworkFilterFactory, in a worker
                   (a Cython ``from_plan``)
* ``check``        optional (config, bootstrap, path) -> error messages

The built-in filters register when `envoy_fast.extensions.network` is imported.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import msgspec


class PlanStruct(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every worker plan Struct: immutable, keyword-only."""


class NetworkFilterPlan(PlanStruct, tag_field="name"):
    """Base of a network filter's plan; each filter subclasses it with its
    extension name as tag."""


@dataclass(frozen=True)
class StatBlock:
    """Stats one filter instance declares under its prefix (Envoy's
    ALL_*_STATS): counters and gauges get consecutive slots in table order
    (the filter indexes them with its own enum), then each histogram its own
    slots. ``table`` is ((name, kind), ...). Instances with the same ``key``
    (default: the prefix) share one block, as Envoy's filters with one
    stat_prefix do. ``dynamic`` names (Envoy creates them on first use, e.g.
    per response code) are listed only once non-zero."""
    prefix: str
    table: Tuple[Tuple[str, str], ...] = ()
    histograms: Tuple[str, ...] = ()
    dynamic: bool = False
    key: str = ""


@dataclass
class PlanContext:
    """What a filter's build_plan may consult in main."""
    layout: Any                                    # stats.store.StatsLayout
    bootstrap: Any
    cluster_alt_names: Dict[str, str] = field(default_factory=dict)

    def block(self, prefix: str) -> Tuple[int, Dict[str, int]]:
        """(base slot, {histogram: slot}) of the stat block under `prefix`."""
        return self.layout.block_base(prefix), self.layout.block_histograms(prefix)


@dataclass(frozen=True)
class NetworkFilterRecord:
    name: str
    config_type: type
    plan_type: type
    build_plan: Callable[[Any, PlanContext], NetworkFilterPlan]
    factory: Callable[[Any, NetworkFilterPlan], Any]
    stat_blocks: Callable[[Any], List[StatBlock]] = lambda config: []
    check: Optional[Callable[[Any, Any, str], List[str]]] = None
    terminal: bool = False


_by_name: Dict[str, NetworkFilterRecord] = {}
_by_config: Dict[type, NetworkFilterRecord] = {}
_by_plan: Dict[type, NetworkFilterRecord] = {}


def register_network_filter(record: NetworkFilterRecord) -> NetworkFilterRecord:
    """Make a network filter known (once, at import of its module)."""
    if record.name in _by_name:
        raise ValueError("network filter %r registered twice" % record.name)
    if getattr(record.plan_type, "__struct_config__").tag != record.name:
        raise ValueError("%s must be tagged %r" % (record.plan_type.__name__, record.name))
    _by_name[record.name] = record
    _by_config[record.config_type] = record
    _by_plan[record.plan_type] = record
    return record


def _load_builtins() -> None:
    import envoy_fast.extensions.network  # noqa: F401  (registers the built-ins)


def network_filters() -> List[NetworkFilterRecord]:
    _load_builtins()
    return list(_by_name.values())


def for_config(config: Any) -> NetworkFilterRecord:
    """The record of a ``typed_config`` Struct."""
    _load_builtins()
    try:
        return _by_config[type(config)]
    except KeyError:
        raise ValueError("no network filter for %s" % type(config).__name__) from None


def for_plan(plan: NetworkFilterPlan) -> NetworkFilterRecord:
    """The record of a filter plan Struct."""
    _load_builtins()
    try:
        return _by_plan[type(plan)]
    except KeyError:
        raise ValueError("no network filter for %s" % type(plan).__name__) from None


def network_filter_plan_union() -> Any:
    """The tagged union of every registered filter plan (for decoding)."""
    _load_builtins()
    types = tuple(r.plan_type for r in _by_name.values())
    return Union[types] if len(types) > 1 else types[0]
