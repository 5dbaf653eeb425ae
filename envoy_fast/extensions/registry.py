"""Network filter extension registry (Envoy's NamedNetworkFilterConfigFactory).

One `NetworkFilterRecord` per filter says everything the rest of envoy_fast
needs to know about it, so adding a filter touches only its own files:

* ``config_type``  the ``typed_config`` Struct: a config message
                   (``envoy_fast.config.base.Message``) that is also a
                   `NetworkFilterConfig`, tagged ``@type`` with its type URL
* ``plan_type``    the Struct a worker builds the filter from (a
                   `NetworkFilterPlan` subclass tagged with ``name``)
* ``stat_blocks``  config -> the stat blocks one instance needs
* ``listener_stat_blocks``  (config, listener stat prefix) -> the blocks one
                   instance needs under its listener (Envoy's per-listener
                   stats of a filter, ``listener.<address>.http.<prefix>.``)
* ``build_plan``   (config, `PlanContext`) -> plan Struct, in main
* ``factory``      (FactoryContext, plan) -> NetworkFilterFactory, in a worker
                   (a Cython ``from_plan``); may be given as
                   ``"module:attribute"``, imported at first use, so that
                   loading a config never imports the Cython extension
* ``check``        optional (config, checker, path): the cross-field checks
                   Envoy makes on load; it reports through ``checker`` (the
                   loader's ``config.checks.Checker``: ``fail(ConfigError)``,
                   ``known_cluster(name)``, ``cluster_hint(name)``, ``bs``)
* ``terminal``     must be last in its chain (Envoy's ``isTerminalFilter``)
* ``proto_fields`` {message name: {field: number}} of the config messages,
                   for printing them in field-number order (/config_dump)

Access loggers (an ``AccessLog``'s ``typed_config``) register the same way,
with an `AccessLoggerRecord`, and HTTP filters (an ``HttpFilter``'s
``typed_config`` inside http_connection_manager, Envoy's
NamedHttpFilterConfigFactory) with an `HttpFilterRecord`. The config loader
dispatches a ``typed_config`` on its ``@type`` through `config_types`.

The built-in extensions register when `envoy_fast.extensions.network`,
`envoy_fast.extensions.http` and `envoy_fast.extensions.access_loggers` are
imported (at the first lookup); none of them imports Cython at import time.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Tuple, Union

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
    #: The stats prefix of the listener whose chain is being planned
    #: (``listener.127.0.0.1_10000``), for ``listener_stat_blocks``.
    listener_stat_prefix: str = ""

    def block(self, prefix: str) -> Tuple[int, Dict[str, int]]:
        """(base slot, {histogram: slot}) of the stat block under `prefix`."""
        return self.layout.block_base(prefix), self.layout.block_histograms(prefix)


class ExtensionConfig:
    """Base of the config Struct of an extension: a ``google.protobuf.Any``
    field annotated with a subclass holds any registered Struct of that
    subclass's ``REGISTRY`` (the loader converts it by ``@type``)."""

    __slots__ = ()
    REGISTRY: ClassVar[str] = ""


class NetworkFilterConfig(ExtensionConfig):
    """Base (with ``config.base.Message``) of a network filter's ``typed_config`` Struct."""

    __slots__ = ()
    REGISTRY = "network_filter"


class AccessLoggerConfig(ExtensionConfig):
    """Base (with ``config.base.Message``) of an access logger's ``typed_config`` Struct."""

    __slots__ = ()
    REGISTRY = "access_logger"


class HttpFilterConfig(ExtensionConfig):
    """Base (with ``config.base.Message``) of an HTTP filter's ``typed_config`` Struct."""

    __slots__ = ()
    REGISTRY = "http_filter"


#: What each registry's extensions are called in the loader's messages.
REGISTRY_LABELS = {"network_filter": "network filter", "http_filter": "HTTP filter",
                   "access_logger": "access logger"}


def type_url(config_type: type) -> str:
    """The ``@type`` URL a config Struct is tagged with."""
    return getattr(config_type, "__struct_config__").tag


class NetworkFilterRecord:
    """A network filter: see the module docstring for each part."""

    def __init__(self, name: str, config_type: type, plan_type: type,
                 build_plan: Callable[[Any, PlanContext], NetworkFilterPlan],
                 factory: Union[Callable[[Any, NetworkFilterPlan], Any], str],
                 stat_blocks: Callable[[Any], List[StatBlock]] = lambda config: [],
                 check: Optional[Callable[[Any, Any, str], None]] = None,
                 terminal: bool = False,
                 proto_fields: Optional[Mapping[str, Mapping[str, int]]] = None,
                 listener_stat_blocks: Callable[[Any, str], List[StatBlock]] = lambda config, prefix: [],
                 ) -> None:
        self.name = name
        self.config_type = config_type
        self.plan_type = plan_type
        self.build_plan = build_plan
        self._factory = factory
        self.stat_blocks = stat_blocks
        self.listener_stat_blocks = listener_stat_blocks
        self.check = check
        self.terminal = terminal
        self.proto_fields = dict(proto_fields or {})

    @property
    def factory(self) -> Callable[[Any, NetworkFilterPlan], Any]:
        """(FactoryContext, plan) -> NetworkFilterFactory (imported at first use)."""
        if isinstance(self._factory, str):
            self._factory = _resolve(self._factory)
        return self._factory

    @property
    def type_url(self) -> str:
        return type_url(self.config_type)

    def __repr__(self) -> str:
        return f"NetworkFilterRecord({self.name!r})"


@dataclass(frozen=True)
class AccessLoggerRecord:
    """An access logger: its name and its ``typed_config`` Struct (an
    `AccessLoggerConfig`); ``proto_fields`` as for a network filter."""
    name: str
    config_type: type
    proto_fields: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    @property
    def type_url(self) -> str:
        return type_url(self.config_type)


class HttpFilterPlan(PlanStruct, tag_field="name"):
    """Base of an HTTP filter's plan, tagged with its extension name."""


@dataclass(frozen=True)
class HttpFilterRecord:
    """An HTTP filter (inside http_connection_manager's ``http_filters``).

    ``config_type`` is its ``typed_config`` Struct (an `HttpFilterConfig`
    tagged ``@type``), ``plan_type`` its plan (an `HttpFilterPlan` tagged with
    ``name``), ``build_plan`` (config, `PlanContext`) -> plan in main;
    ``factory`` (FactoryContext, plan) -> the worker's filter factory, or
    ``"module:attribute"`` imported at first use (None while the worker side
    does not exist); ``check``, ``terminal`` (must be last in
    ``http_filters``, Envoy's isTerminalFilter) and ``proto_fields`` as for
    a network filter."""
    name: str
    config_type: type
    plan_type: type
    build_plan: Callable[[Any, PlanContext], Any]
    factory: Union[Callable[[Any, Any], Any], str, None] = None
    check: Optional[Callable[[Any, Any, str], None]] = None
    terminal: bool = False
    proto_fields: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    @property
    def type_url(self) -> str:
        return type_url(self.config_type)

    def resolve_factory(self) -> Callable[[Any, Any], Any]:
        """(FactoryContext, plan) -> the worker's HTTP filter factory."""
        if self.factory is None:
            raise ValueError("HTTP filter %s has no worker factory" % self.name)
        if isinstance(self.factory, str):
            object.__setattr__(self, "factory", _resolve(self.factory))
        return self.factory  # type: ignore[return-value]


def _resolve(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    value: Any = importlib.import_module(module)
    for part in attr.split("."):
        value = getattr(value, part)
    return value


_by_name: Dict[str, NetworkFilterRecord] = {}
_by_config: Dict[type, NetworkFilterRecord] = {}
_by_plan: Dict[type, NetworkFilterRecord] = {}
_access_loggers: Dict[str, AccessLoggerRecord] = {}
_http_filters: Dict[str, HttpFilterRecord] = {}
_http_by_config: Dict[type, HttpFilterRecord] = {}
_http_by_plan: Dict[type, HttpFilterRecord] = {}
#: Message names of extensions Envoy has and envoy_fast does not yet, with
#: the reason the loader gives (by registry).
_not_yet: Dict[str, Dict[str, str]] = {"network_filter": {}, "http_filter": {}, "access_logger": {}}


def _add_proto_fields(tables: Mapping[str, Mapping[str, int]]) -> None:
    from envoy_fast.config import proto_schema   # plain tables; no cycle at call time
    for message, numbers in tables.items():
        proto_schema.FIELD_NUMBERS[message] = dict(numbers)


def _check_config_type(record: Any, base: type, others: Any) -> None:
    cls = record.config_type
    config = getattr(cls, "__struct_config__", None)
    if not (isinstance(cls, type) and issubclass(cls, base) and config is not None
            and config.tag_field == "@type" and isinstance(config.tag, str)):
        raise ValueError("%s's config_type must be a %s Struct tagged '@type' with its type URL"
                         % (record.name, base.__name__))
    for other in others:
        if other.type_url.rsplit("/", 1)[-1] == config.tag.rsplit("/", 1)[-1]:
            raise ValueError("%s's type URL is %s's already" % (record.name, other.name))


def register_network_filter(record: NetworkFilterRecord) -> NetworkFilterRecord:
    """Make a network filter known (once, at import of its module)."""
    if record.name in _by_name:
        raise ValueError("network filter %r registered twice" % record.name)
    if getattr(record.plan_type, "__struct_config__").tag != record.name:
        raise ValueError("%s must be tagged %r" % (record.plan_type.__name__, record.name))
    _check_config_type(record, NetworkFilterConfig, _by_name.values())
    _by_name[record.name] = record
    _by_config[record.config_type] = record
    _by_plan[record.plan_type] = record
    _add_proto_fields(record.proto_fields)
    return record


def unregister_network_filter(name: str) -> None:
    """Forget a network filter (for tests that register one of their own)."""
    record = _by_name.pop(name)
    _by_config.pop(record.config_type, None)
    _by_plan.pop(record.plan_type, None)
    from envoy_fast.config import proto_schema
    for message in record.proto_fields:
        proto_schema.FIELD_NUMBERS.pop(message, None)


def register_access_logger(record: AccessLoggerRecord) -> AccessLoggerRecord:
    """Make an access logger known (once, at import of its module)."""
    if record.name in _access_loggers:
        raise ValueError("access logger %r registered twice" % record.name)
    _check_config_type(record, AccessLoggerConfig, _access_loggers.values())
    _access_loggers[record.name] = record
    _add_proto_fields(record.proto_fields)
    return record


def register_http_filter(record: HttpFilterRecord) -> HttpFilterRecord:
    """Make an HTTP filter known (once, at import of its module)."""
    if record.name in _http_filters:
        raise ValueError("HTTP filter %r registered twice" % record.name)
    if getattr(record.plan_type, "__struct_config__").tag != record.name:
        raise ValueError("%s must be tagged %r" % (record.plan_type.__name__, record.name))
    _check_config_type(record, HttpFilterConfig, _http_filters.values())
    _http_filters[record.name] = record
    _http_by_config[record.config_type] = record
    _http_by_plan[record.plan_type] = record
    _add_proto_fields(record.proto_fields)
    return record


def unregister_http_filter(name: str) -> None:
    """Forget an HTTP filter (for tests that register one of their own)."""
    record = _http_filters.pop(name)
    _http_by_config.pop(record.config_type, None)
    _http_by_plan.pop(record.plan_type, None)
    from envoy_fast.config import proto_schema
    for message in record.proto_fields:
        proto_schema.FIELD_NUMBERS.pop(message, None)


def not_supported_yet(registry: str, message_name: str, reason: str) -> None:
    """Say why a ``@type`` Envoy knows is refused (until its record exists)."""
    _not_yet[registry][message_name] = reason


def _load_builtins() -> None:
    import envoy_fast.extensions.access_loggers  # noqa: F401  (registers the built-ins)
    import envoy_fast.extensions.http  # noqa: F401
    import envoy_fast.extensions.network  # noqa: F401


def network_filters() -> List[NetworkFilterRecord]:
    _load_builtins()
    return list(_by_name.values())


def http_filters() -> List[HttpFilterRecord]:
    _load_builtins()
    return list(_http_filters.values())


def config_types(registry: str) -> Dict[str, type]:
    """{``@type`` URL: config Struct} of every extension in ``registry``
    ("network_filter", "http_filter" or "access_logger"), in registration order."""
    _load_builtins()
    records: Mapping[str, Any] = {NetworkFilterConfig.REGISTRY: _by_name,
                                  HttpFilterConfig.REGISTRY: _http_filters}.get(registry, _access_loggers)
    return {r.type_url: r.config_type for r in records.values()}


def config_type(registry: str, url: Any) -> Optional[type]:
    """The config Struct registered in ``registry`` for a ``@type`` URL
    (only the message name counts: protobuf ignores the URL's host part)."""
    name = str(url).rsplit("/", 1)[-1]
    for known, cls in config_types(registry).items():
        if known.rsplit("/", 1)[-1] == name:
            return cls
    return None


def reason_not_supported(registry: str, message_name: str) -> Optional[str]:
    """Why a ``@type`` without a record is refused, when it is a known one."""
    _load_builtins()
    return _not_yet[registry].get(message_name)


def for_config(config: Any) -> NetworkFilterRecord:
    """The record of a ``typed_config`` Struct."""
    _load_builtins()
    try:
        return _by_config[type(config)]
    except KeyError:
        raise ValueError("no network filter for %s" % type(config).__name__) from None


def for_http_config(config: Any) -> HttpFilterRecord:
    """The record of an HTTP filter's ``typed_config`` Struct."""
    _load_builtins()
    try:
        return _http_by_config[type(config)]
    except KeyError:
        raise ValueError("no HTTP filter for %s" % type(config).__name__) from None


def for_http_plan(plan: Any) -> HttpFilterRecord:
    """The record of an HTTP filter plan Struct."""
    _load_builtins()
    try:
        return _http_by_plan[type(plan)]
    except KeyError:
        raise ValueError("no HTTP filter for %s" % type(plan).__name__) from None


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


def http_filter_plan_union() -> Any:
    """The tagged union of every registered HTTP filter plan (for decoding)."""
    _load_builtins()
    types = tuple(r.plan_type for r in _http_filters.values())
    return Union[types] if len(types) > 1 else types[0]
