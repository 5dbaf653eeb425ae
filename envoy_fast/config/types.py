"""Typed bootstrap configuration: msgspec Structs named after Envoy's v3 messages.

Each Struct models the part of one Envoy message that envoy_fast implements. Field
names are Envoy's (snake_case), defaults are Envoy's defaults, and values are already
normalised by the loader:

* durations are ``float`` seconds (``"0.25s"`` -> ``0.25``);
* enums are their canonical upper-case names (``1`` or ``"least_request"`` ->
  ``"LEAST_REQUEST"``);
* wrapper types (``UInt32Value``, ``BoolValue``) are plain scalars;
* ``envoy.type.v3.Percent`` is a ``float`` percentage.

Besides its fields, every message class carries three class attributes the loader
reads (see ``normalise.py``):

``ENVOY_TYPE``
    the full Envoy message name, used in error messages;
``ENVOY_FIELDS``
    every field the Envoy 1.40 message has (taken from its descriptor), so that a
    field Envoy knows but envoy_fast does not implement is reported as "not
    supported" rather than "unknown";
``IGNORED``
    Envoy fields that are accepted and dropped because they cannot change
    behaviour within envoy_fast's subset, mapped to a light check of their value
    (``"duration"``, ``"bool"``, or ``None`` for no check).

Every other Envoy field not modelled here is rejected when set.
"""
import collections.abc as _abc
from typing import Annotated, Any, Dict, List, Mapping, Optional

from msgspec import Meta, field

from envoy_fast.extensions import registry as _extensions
from envoy_fast.extensions.registry import AccessLoggerConfig, NetworkFilterConfig

__all__ = [
    "ACCESS_LOGGER_TYPES",
    "ENUMS",
    "NETWORK_FILTER_TYPES",
    "AccessLog",
    "AccessLoggerConfig",
    "Address",
    "ApplicationLogConfig",
    "ApplicationLogFormat",
    "Admin",
    "Bootstrap",
    "CidrRange",
    "CircuitBreakers",
    "Cluster",
    "ClusterLoadAssignment",
    "CommonLbConfig",
    "DataSource",
    "Endpoint",
    "FileAccessLog",
    "FilterChain",
    "FilterChainMatch",
    "LbEndpoint",
    "LeastRequestLbConfig",
    "Listener",
    "LocalityLbEndpoints",
    "NetworkFilter",
    "NetworkFilterConfig",
    "Node",
    "SocketAddress",
    "StaticResources",
    "StderrAccessLog",
    "StdoutAccessLog",
    "SubstitutionFormatString",
    "Thresholds",
]

from .accesslog_types import (  # noqa: F401 (re-exported)
    ACCESS_LOG_FILE_TYPE_URL,
    ACCESS_LOG_STDERR_TYPE_URL,
    ACCESS_LOG_STDOUT_TYPE_URL,
    AccessLog,
    DataSource,
    FileAccessLog,
    StderrAccessLog,
    StdoutAccessLog,
    SubstitutionFormatString,
)
from .base import (  # noqa: F401 (re-exported)
    ENUMS,
    UINT32_MAX,
    ConnectionSourceType,
    DiscoveryType,
    Duration,
    HealthStatus,
    LbPolicy,
    NonEmptyStr,
    Percent,
    Port,
    Protocol,
    RoutingPriority,
    UInt32Value,
)
from .base import Message as _Message
from .base import names as _names
from .base import one_of as _one_of


# --- addresses -----------------------------------------------------------------


class SocketAddress(_Message, kw_only=True):
    """envoy.config.core.v3.SocketAddress (TCP, IP literal or hostname)."""

    ENVOY_TYPE = "envoy.config.core.v3.SocketAddress"
    ENVOY_FIELDS = _names(
        "protocol address port_value named_port resolver_name ipv4_compat"
        " network_namespace_filepath"
    )

    address: NonEmptyStr
    port_value: Port = 0
    protocol: Protocol = "TCP"


class Address(_Message, kw_only=True):
    """envoy.config.core.v3.Address; only ``socket_address`` is supported."""

    ENVOY_TYPE = "envoy.config.core.v3.Address"
    ENVOY_FIELDS = _names("socket_address pipe envoy_internal_address")

    socket_address: SocketAddress


class CidrRange(_Message, kw_only=True):
    """envoy.config.core.v3.CidrRange; ``prefix_len`` unset means 0."""

    ENVOY_TYPE = "envoy.config.core.v3.CidrRange"
    ENVOY_FIELDS = _names("address_prefix prefix_len")

    address_prefix: NonEmptyStr
    prefix_len: Annotated[int, Meta(ge=0, le=128, extra={"wrapper": True})] = 0


# --- bootstrap-level -------------------------------------------------------------


class Node(_Message, kw_only=True):
    """envoy.config.core.v3.Node: identity shown in ``/server_info``."""

    ENVOY_TYPE = "envoy.config.core.v3.Node"
    ENVOY_FIELDS = _names(
        "id cluster metadata dynamic_parameters locality user_agent_name"
        " user_agent_version user_agent_build_version extensions client_features"
        " listening_addresses"
    )
    # Node is informational only; nothing else in it changes behaviour.
    IGNORED = {
        name: None
        for name in (
            "metadata dynamic_parameters locality user_agent_name user_agent_version"
            " user_agent_build_version extensions client_features listening_addresses"
        ).split()
    }

    id: str = ""
    cluster: str = ""


class Admin(_Message, kw_only=True):
    """envoy.config.bootstrap.v3.Admin: the admin listener's address."""

    ENVOY_TYPE = "envoy.config.bootstrap.v3.Admin"
    ENVOY_FIELDS = _names(
        "access_log access_log_path profile_path address socket_options"
        " ignore_global_conn_limit allow_paths"
    )
    # No global connection limit or profiler exists in envoy_fast.
    IGNORED = {"profile_path": None, "ignore_global_conn_limit": "bool"}

    address: Address


# --- extensions ----------------------------------------------------------------
# A google.protobuf.Any typed_config holds the Struct an extension registers
# for its @type (envoy_fast.extensions.registry); these read-only views list them.


class _Registered(_abc.Mapping):
    """``{@type URL: config Struct}`` of one registry, as registered now."""

    def __init__(self, registry: str) -> None:
        self._registry = registry

    def _types(self) -> Dict[str, type]:
        return _extensions.config_types(self._registry)

    def __getitem__(self, url: str) -> type:
        return self._types()[url]

    def __iter__(self):
        return iter(self._types())

    def __len__(self) -> int:
        return len(self._types())


#: Network filter ``typed_config`` types envoy_fast implements, by ``@type`` URL.
NETWORK_FILTER_TYPES: Mapping[str, type] = _Registered(NetworkFilterConfig.REGISTRY)
#: Access logger ``typed_config`` types envoy_fast implements, by ``@type`` URL.
ACCESS_LOGGER_TYPES: Mapping[str, type] = _Registered(AccessLoggerConfig.REGISTRY)


# --- listeners -----------------------------------------------------------------


class NetworkFilter(_Message, kw_only=True):
    """envoy.config.listener.v3.Filter: ``name`` is a label; ``typed_config`` decides."""

    ENVOY_TYPE = "envoy.config.listener.v3.Filter"
    ENVOY_FIELDS = _names("name typed_config config_discovery")

    name: NonEmptyStr
    #: Any registered network filter's Struct, converted by its ``@type``.
    typed_config: Annotated[NetworkFilterConfig, Meta(extra={"registry": "network_filter"})]


class FilterChainMatch(_Message, kw_only=True):
    """envoy.config.listener.v3.FilterChainMatch (the L4 criteria)."""

    ENVOY_TYPE = "envoy.config.listener.v3.FilterChainMatch"
    ENVOY_FIELDS = _names(
        "destination_port prefix_ranges address_suffix suffix_len"
        " direct_source_prefix_ranges source_type source_prefix_ranges source_ports"
        " server_names transport_protocol application_protocols"
    )

    destination_port: Optional[Annotated[int, Meta(ge=1, le=65535, extra={"wrapper": True})]] = None
    prefix_ranges: List[CidrRange] = []
    direct_source_prefix_ranges: List[CidrRange] = []
    source_type: ConnectionSourceType = "ANY"
    source_prefix_ranges: List[CidrRange] = []
    source_ports: List[Port] = []


class FilterChain(_Message, kw_only=True):
    """envoy.config.listener.v3.FilterChain (no transport socket: plain TCP)."""

    ENVOY_TYPE = "envoy.config.listener.v3.FilterChain"
    ENVOY_FIELDS = _names(
        "filter_chain_match filters use_proxy_proto metadata transport_socket"
        " transport_socket_connect_timeout name"
    )
    # Metadata is only read by extensions envoy_fast lacks; the timeout only
    # applies to a transport socket, which is rejected.
    IGNORED = {"metadata": None, "transport_socket_connect_timeout": "duration"}

    name: str = ""
    filter_chain_match: Optional[FilterChainMatch] = None
    filters: List[NetworkFilter] = []


class Listener(_Message, kw_only=True):
    """envoy.config.listener.v3.Listener.

    ``name`` is filled in by the loader when the config leaves it out (Envoy
    assigns an internal UUID). ``enable_reuse_port`` (default true): one
    ``SO_REUSEPORT`` socket per worker; false: one socket all workers share,
    bound without ``SO_REUSEPORT`` so no other process can bind the port.
    """

    ENVOY_TYPE = "envoy.config.listener.v3.Listener"
    ENVOY_FIELDS = _names(
        "name address additional_addresses stat_prefix stats_matcher filter_chains"
        " fcds_config filter_chain_matcher use_original_dst default_filter_chain"
        " per_connection_buffer_limit_bytes per_connection_buffer_high_watermark_timeout"
        " metadata deprecated_v1 drain_type listener_filters listener_filters_timeout"
        " continue_on_listener_filters_timeout transparent freebind socket_options"
        " tcp_fast_open_queue_length traffic_direction udp_listener_config api_listener"
        " connection_balance_config reuse_port enable_reuse_port access_log"
        " tcp_backlog_size max_connections_to_accept_per_socket_event bind_to_port"
        " internal_listener enable_mptcp ignore_global_conn_limit bypass_overload_manager"
        " tcp_keepalive"
    )
    # Accepted without effect: listener-filter knobs only matter with listener
    # filters (rejected); there is no overload manager or global connection
    # limit; reuse_port is the deprecated spelling of enable_reuse_port, which
    # envoy_fast does not vary on; the rest are labels or accept-loop tuning.
    IGNORED = {
        "metadata": None,
        "traffic_direction": None,
        "reuse_port": "bool",
        "listener_filters_timeout": "duration",
        "continue_on_listener_filters_timeout": "bool",
        "ignore_global_conn_limit": "bool",
        "bypass_overload_manager": "bool",
        "max_connections_to_accept_per_socket_event": None,
    }

    name: str = ""
    address: Address
    stat_prefix: str = ""
    filter_chains: List[FilterChain] = []
    default_filter_chain: Optional[FilterChain] = None
    per_connection_buffer_limit_bytes: UInt32Value = 1048576
    enable_reuse_port: bool = True


# --- clusters ------------------------------------------------------------------


class Thresholds(_Message, kw_only=True):
    """envoy.config.cluster.v3.CircuitBreakers.Thresholds (defaults as Envoy)."""

    ENVOY_TYPE = "envoy.config.cluster.v3.CircuitBreakers.Thresholds"
    ENVOY_FIELDS = _names(
        "priority max_connections max_pending_requests max_requests max_retries"
        " retry_budget track_remaining max_connection_pools"
    )

    priority: RoutingPriority = "DEFAULT"
    max_connections: UInt32Value = 1024
    max_pending_requests: UInt32Value = 1024
    max_requests: UInt32Value = 1024
    max_retries: UInt32Value = 3
    track_remaining: bool = False


class CircuitBreakers(_Message, kw_only=True):
    """envoy.config.cluster.v3.CircuitBreakers."""

    ENVOY_TYPE = "envoy.config.cluster.v3.CircuitBreakers"
    ENVOY_FIELDS = _names("thresholds per_host_thresholds")

    thresholds: List[Thresholds] = []


class LeastRequestLbConfig(_Message, kw_only=True):
    """envoy.config.cluster.v3.Cluster.LeastRequestLbConfig."""

    ENVOY_TYPE = "envoy.config.cluster.v3.Cluster.LeastRequestLbConfig"
    ENVOY_FIELDS = _names("choice_count active_request_bias slow_start_config")

    choice_count: Annotated[int, Meta(ge=2, le=UINT32_MAX, extra={"wrapper": True})] = 2


class CommonLbConfig(_Message, kw_only=True):
    """envoy.config.cluster.v3.Cluster.CommonLbConfig; only the panic threshold acts."""

    ENVOY_TYPE = "envoy.config.cluster.v3.Cluster.CommonLbConfig"
    ENVOY_FIELDS = _names(
        "healthy_panic_threshold zone_aware_lb_config locality_weighted_lb_config"
        " update_merge_window ignore_new_hosts_until_first_hc"
        " close_connections_on_host_set_change consistent_hashing_lb_config"
        " override_host_status"
    )
    # STATIC host sets never change and there are no health checks, so these
    # cannot act.
    IGNORED = {
        "update_merge_window": "duration",
        "ignore_new_hosts_until_first_hc": "bool",
        "close_connections_on_host_set_change": "bool",
    }

    healthy_panic_threshold: Percent = 50.0


class Endpoint(_Message, kw_only=True):
    """envoy.config.endpoint.v3.Endpoint."""

    ENVOY_TYPE = "envoy.config.endpoint.v3.Endpoint"
    ENVOY_FIELDS = _names(
        "address health_check_config hostname additional_addresses observability_name"
    )
    IGNORED = {"observability_name": None}

    address: Address
    hostname: str = ""


class LbEndpoint(_Message, kw_only=True):
    """envoy.config.endpoint.v3.LbEndpoint."""

    ENVOY_TYPE = "envoy.config.endpoint.v3.LbEndpoint"
    ENVOY_FIELDS = _names("endpoint endpoint_name health_status metadata load_balancing_weight")
    IGNORED = {"metadata": None}

    endpoint: Endpoint
    load_balancing_weight: Annotated[int, Meta(ge=1, le=UINT32_MAX, extra={"wrapper": True})] = 1
    health_status: HealthStatus = "UNKNOWN"


class LocalityLbEndpoints(_Message, kw_only=True):
    """envoy.config.endpoint.v3.LocalityLbEndpoints; only priority 0 is supported."""

    ENVOY_TYPE = "envoy.config.endpoint.v3.LocalityLbEndpoints"
    ENVOY_FIELDS = _names(
        "locality metadata lb_endpoints load_balancer_endpoints"
        " leds_cluster_locality_config load_balancing_weight priority proximity"
    )
    # Locality weights and proximity only act with locality-weighted or
    # zone-aware balancing, which is rejected.
    IGNORED = {
        "locality": None,
        "metadata": None,
        "load_balancing_weight": None,
        "proximity": None,
    }

    lb_endpoints: List[LbEndpoint] = []
    priority: Annotated[int, Meta(ge=0, le=128)] = 0


class ClusterLoadAssignment(_Message, kw_only=True):
    """envoy.config.endpoint.v3.ClusterLoadAssignment.

    ``cluster_name`` defaults to "" here, but the loader requires it, as Envoy does,
    whenever ``load_assignment`` is given.
    """

    ENVOY_TYPE = "envoy.config.endpoint.v3.ClusterLoadAssignment"
    ENVOY_FIELDS = _names("cluster_name endpoints named_endpoints policy")

    cluster_name: str = ""
    endpoints: List[LocalityLbEndpoints] = []


class Cluster(_Message, kw_only=True):
    """envoy.config.cluster.v3.Cluster (STATIC only for now)."""

    ENVOY_TYPE = "envoy.config.cluster.v3.Cluster"
    ENVOY_FIELDS = _names(
        "transport_socket_matches transport_socket_matcher name alt_stat_name"
        " stats_matcher type cluster_type eds_cluster_config connect_timeout"
        " per_connection_buffer_limit_bytes per_connection_buffer_high_watermark_timeout"
        " lb_policy load_assignment health_checks max_requests_per_connection"
        " circuit_breakers upstream_http_protocol_options common_http_protocol_options"
        " http_protocol_options http2_protocol_options typed_extension_protocol_options"
        " dns_refresh_rate dns_jitter dns_failure_refresh_rate respect_dns_ttl"
        " dns_lookup_family dns_resolvers use_tcp_for_dns_lookups dns_resolution_config"
        " typed_dns_resolver_config wait_for_warm_on_init outlier_detection"
        " cleanup_interval upstream_bind_config lb_subset_config ring_hash_lb_config"
        " maglev_lb_config original_dst_lb_config least_request_lb_config"
        " round_robin_lb_config common_lb_config transport_socket metadata"
        " protocol_selection upstream_connection_options"
        " close_connections_on_host_health_failure ignore_health_on_host_removal filters"
        " load_balancing_policy lrs_server lrs_report_endpoint_metrics"
        " track_timeout_budgets upstream_config track_cluster_stats preconnect_policy"
        " connection_pool_per_downstream_connection queuing_policies"
    )
    # DNS settings only act for DNS cluster types (rejected); cleanup_interval
    # only for ORIGINAL_DST; a STATIC cluster is warm at once and never removes
    # hosts; metadata is only read by extensions envoy_fast lacks.
    IGNORED = {
        "metadata": None,
        "dns_refresh_rate": "duration",
        "dns_jitter": "duration",
        "dns_failure_refresh_rate": None,
        "respect_dns_ttl": "bool",
        "dns_lookup_family": None,
        "dns_resolvers": None,
        "use_tcp_for_dns_lookups": "bool",
        "dns_resolution_config": None,
        "typed_dns_resolver_config": None,
        "cleanup_interval": "duration",
        "wait_for_warm_on_init": "bool",
        "ignore_health_on_host_removal": "bool",
    }

    name: NonEmptyStr
    alt_stat_name: str = ""
    type: DiscoveryType = "STATIC"
    connect_timeout: Duration = 5.0
    lb_policy: LbPolicy = "ROUND_ROBIN"
    load_assignment: Optional[ClusterLoadAssignment] = None
    circuit_breakers: Optional[CircuitBreakers] = None
    per_connection_buffer_limit_bytes: UInt32Value = 1048576
    least_request_lb_config: Optional[LeastRequestLbConfig] = None
    common_lb_config: Optional[CommonLbConfig] = None
    #: Deprecated in Envoy, still honoured: common_http_protocol_options' field.
    max_requests_per_connection: Optional[UInt32Value] = None
    #: {name: normalised Any}; the upstream HTTP options only (upstream_http_types).
    typed_extension_protocol_options: Optional[
        Annotated[Dict[str, Any], Meta(extra={"kind": "protocol_options"})]] = None

    def http_protocol_options(self) -> Any:
        """envoy.extensions.upstreams.http.v3.HttpProtocolOptions of this
        cluster (an UpstreamHttpProtocolOptions), or None."""
        from .upstream_http_types import parsed  # lazily: it imports the HCM's config
        return parsed(self.typed_extension_protocol_options)

    def thresholds(self) -> Thresholds:
        """The ``DEFAULT``-priority circuit-breaker thresholds.

        As Envoy, the first ``DEFAULT`` entry wins; without one, Envoy's defaults
        (1024 connections / pending / requests, 3 retries) apply.
        """
        if self.circuit_breakers is not None:
            for thresholds in self.circuit_breakers.thresholds:
                if thresholds.priority == "DEFAULT":
                    return thresholds
        return Thresholds()


# --- bootstrap -----------------------------------------------------------------


class StaticResources(_Message, kw_only=True):
    """envoy.config.bootstrap.v3.Bootstrap.StaticResources."""

    ENVOY_TYPE = "envoy.config.bootstrap.v3.Bootstrap.StaticResources"
    ENVOY_FIELDS = _names("listeners clusters secrets")

    listeners: List[Listener] = []
    clusters: List[Cluster] = []


class ApplicationLogFormat(_Message, kw_only=True):
    """envoy.config.bootstrap.v3.Bootstrap.ApplicationLogConfig.LogFormat:
    the application log line as an Envoy (spdlog) pattern, or a JSON object
    whose string values are patterns."""

    ENVOY_TYPE = "envoy.config.bootstrap.v3.Bootstrap.ApplicationLogConfig.LogFormat"
    ENVOY_FIELDS = _names("json_format text_format")

    json_format: Optional[Dict[str, Any]] = None
    text_format: Optional[str] = None

    def __post_init__(self) -> None:
        given = _one_of(self, "json_format text_format")
        if len(given) > 1:
            raise ValueError("only one of json_format, text_format may be set")


class ApplicationLogConfig(_Message, kw_only=True):
    """envoy.config.bootstrap.v3.Bootstrap.ApplicationLogConfig (applied at
    start-up; ``--log-format`` may not be given too, as in Envoy)."""

    ENVOY_TYPE = "envoy.config.bootstrap.v3.Bootstrap.ApplicationLogConfig"
    ENVOY_FIELDS = _names("log_format")

    log_format: Optional[ApplicationLogFormat] = None


#: layered_runtime is kept as a plain dict: {"layers": [{"name", "static_layer"
#: | "admin_layer"}]}, static_layer holding the user's keys untouched.
LayeredRuntime = Annotated[Dict[str, Any], Meta(extra={"kind": "layered_runtime"})]

_CONNECTION_LIMIT_KEY = "envoy.resource_limits.listener.{}.connection_limit"


class Bootstrap(_Message, kw_only=True):
    """envoy.config.bootstrap.v3.Bootstrap: the whole static configuration."""

    ENVOY_TYPE = "envoy.config.bootstrap.v3.Bootstrap"
    ENVOY_FIELDS = _names(
        "node node_context_params static_resources dynamic_resources cluster_manager"
        " hds_config flags_path stats_sinks deferred_stat_options stats_config"
        " stats_flush_interval stats_flush_on_admin stats_eviction_interval watchdog"
        " watchdogs tracing layered_runtime admin overload_manager"
        " enable_dispatcher_stats header_prefix stats_server_version_override"
        " use_tcp_for_dns_lookups dns_resolution_config typed_dns_resolver_config"
        " bootstrap_extensions fatal_actions config_sources default_config_source"
        " default_socket_interface certificate_provider_instances inline_headers"
        " perf_tracing_file_path default_regex_engine xds_delegate_extension"
        " xds_config_tracker_extension listener_manager application_log_config"
        " grpc_async_client_manager_config memory_allocator_manager"
        " enable_worker_cpu_affinity"
    )
    # Without stats sinks, DNS clusters or regex matching these cannot act;
    # watchdogs and log format are process housekeeping.
    IGNORED = {
        "node_context_params": None,
        "watchdog": None,
        "watchdogs": None,
        "enable_dispatcher_stats": "bool",
        "use_tcp_for_dns_lookups": "bool",
        "dns_resolution_config": None,
        "typed_dns_resolver_config": None,
        "default_regex_engine": None,
        "enable_worker_cpu_affinity": "bool",
    }

    static_resources: StaticResources = field(default_factory=StaticResources)
    admin: Optional[Admin] = None
    node: Optional[Node] = None
    layered_runtime: Optional[LayeredRuntime] = None
    application_log_config: Optional[ApplicationLogConfig] = None
    # The admin's histogram flush: every interval (Envoy's default 5 s), or
    # at each stats request.
    stats_flush_interval: Optional[Duration] = None
    stats_flush_on_admin: bool = False

    def runtime_value(self, key: str) -> Any:
        """The value of runtime ``key`` in the static layers (later layers win), or None.

        Nested static_layer maps are flattened with ``.``, as Envoy does.
        """
        value = None
        for layer in (self.layered_runtime or {}).get("layers", []):
            static = layer.get("static_layer")
            if isinstance(static, dict):
                flat = _flatten(static)
                if key in flat:
                    value = flat[key]
        return value

    def listener_connection_limit(self, name: str) -> Optional[int]:
        """Runtime ``envoy.resource_limits.listener.<name>.connection_limit``, or None.

        A value that is not a non-negative whole number is ignored (None), as
        Envoy's runtime ignores values it cannot read as an integer.
        """
        return _as_uint(self.runtime_value(_CONNECTION_LIMIT_KEY.format(name)))


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    flat: Dict[str, Any] = {}
    for key, value in tree.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, full + "."))
        else:
            flat[full] = value
    return flat


def _as_uint(value: Any) -> Optional[int]:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, (int, float)) and value >= 0 and float(value).is_integer():
        return int(value)
    return None
