"""Field numbers and kinds of the protos envoy_fast prints.

protobuf's JSON printer writes fields in field-number order (Cluster's
circuit_breakers, 10, before load_assignment, 33), and a FieldMask path
(``/config_dump?mask=``) is valid only along message fields that are not
repeated. These tables give both for the messages envoy_fast models; a
message-typed field whose type is not modelled here is ``UNMODELLED``.
An extension's config messages come with its registry record
(``envoy_fast.extensions.registry``), which adds them to FIELD_NUMBERS.
"""
from __future__ import annotations

from typing import Any, Dict

# Proto field numbers of the messages envoy_fast models: protobuf's JSON
# printer writes fields in field-number order (Cluster's circuit_breakers, 10,
# before load_assignment, 33).
FIELD_NUMBERS: Dict[str, Dict[str, int]] = {
    "envoy.config.bootstrap.v3.Bootstrap": dict(
        node=1, static_resources=2, dynamic_resources=3, cluster_manager=4, flags_path=5,
        stats_sinks=6, stats_flush_interval=7, watchdog=8, tracing=9, admin=12,
        stats_config=13, hds_config=14, overload_manager=15, enable_dispatcher_stats=16,
        layered_runtime=17, header_prefix=18, stats_server_version_override=19,
        use_tcp_for_dns_lookups=20, bootstrap_extensions=21, fatal_actions=28,
        config_sources=22, default_config_source=23, default_socket_interface=24,
        certificate_provider_instances=25, node_context_params=26, watchdogs=27,
        stats_flush_on_admin=29, inline_headers=32, perf_tracing_file_path=33),
    "envoy.config.core.v3.Node": dict(
        id=1, cluster=2, metadata=3, locality=4, user_agent_name=6, user_agent_version=7,
        user_agent_build_version=8, extensions=9, client_features=10, listening_addresses=11,
        dynamic_parameters=12),
    "envoy.config.bootstrap.v3.Admin": dict(
        access_log_path=1, profile_path=2, address=3, socket_options=4, access_log=5,
        ignore_global_conn_limit=6, allow_paths=7),
    "envoy.config.core.v3.Address": dict(socket_address=1, pipe=2, envoy_internal_address=3),
    "envoy.config.core.v3.SocketAddress": dict(
        protocol=1, address=2, port_value=3, named_port=4, resolver_name=5, ipv4_compat=6,
        network_namespace_filepath=7),
    "envoy.config.bootstrap.v3.Bootstrap.StaticResources": dict(listeners=1, clusters=2, secrets=3),
    "envoy.config.listener.v3.Listener": dict(
        name=1, address=2, filter_chains=3, use_original_dst=4,
        per_connection_buffer_limit_bytes=5, metadata=6, deprecated_v1=7, drain_type=8,
        listener_filters=9, transparent=10, freebind=11, tcp_fast_open_queue_length=12,
        socket_options=13, listener_filters_timeout=15, traffic_direction=16,
        continue_on_listener_filters_timeout=17, udp_listener_config=18, api_listener=19,
        connection_balance_config=20, reuse_port=21, access_log=22, tcp_backlog_size=24,
        default_filter_chain=25, bind_to_port=26, internal_listener=27, stat_prefix=28,
        enable_reuse_port=29, enable_mptcp=30, ignore_global_conn_limit=31,
        filter_chain_matcher=32, additional_addresses=33,
        max_connections_to_accept_per_socket_event=34, bypass_overload_manager=35,
        fcds_config=36, tcp_keepalive=37),
    "envoy.config.listener.v3.FilterChain": dict(
        filter_chain_match=1, filters=3, use_proxy_proto=4, metadata=5, transport_socket=6,
        name=7, on_demand_configuration=8, transport_socket_connect_timeout=9),
    "envoy.config.listener.v3.FilterChainMatch": dict(
        prefix_ranges=3, address_suffix=4, suffix_len=5, source_prefix_ranges=6,
        source_ports=7, destination_port=8, transport_protocol=9, application_protocols=10,
        server_names=11, source_type=12, direct_source_prefix_ranges=13),
    "envoy.config.core.v3.CidrRange": dict(address_prefix=1, prefix_len=2),
    "envoy.config.listener.v3.Filter": dict(name=1, typed_config=4, config_discovery=5),
    "envoy.config.cluster.v3.Cluster": dict(
        name=1, type=2, eds_cluster_config=3, connect_timeout=4,
        per_connection_buffer_limit_bytes=5, lb_policy=6, health_checks=8,
        max_requests_per_connection=9, circuit_breakers=10, http_protocol_options=13,
        http2_protocol_options=14, dns_refresh_rate=16, dns_lookup_family=17,
        dns_resolvers=18, outlier_detection=19, cleanup_interval=20, upstream_bind_config=21,
        lb_subset_config=22, ring_hash_lb_config=23, transport_socket=24, metadata=25,
        protocol_selection=26, common_lb_config=27, alt_stat_name=28,
        common_http_protocol_options=29, upstream_connection_options=30,
        close_connections_on_host_health_failure=31, ignore_health_on_host_removal=32,
        load_assignment=33, original_dst_lb_config=34, typed_extension_protocol_options=36,
        least_request_lb_config=37, cluster_type=38, respect_dns_ttl=39, filters=40,
        load_balancing_policy=41, lrs_server=42, transport_socket_matches=43,
        dns_failure_refresh_rate=44, use_tcp_for_dns_lookups=45,
        upstream_http_protocol_options=46, track_timeout_budgets=47, upstream_config=48,
        track_cluster_stats=49, preconnect_policy=50,
        connection_pool_per_downstream_connection=51, maglev_lb_config=52,
        dns_resolution_config=53, typed_dns_resolver_config=55, round_robin_lb_config=56,
        wait_for_warm_on_init=54, lrs_report_endpoint_metrics=57, dns_jitter=58),
    "envoy.config.cluster.v3.CircuitBreakers": dict(thresholds=1, per_host_thresholds=2),
    "envoy.config.cluster.v3.CircuitBreakers.Thresholds": dict(
        priority=1, max_connections=2, max_pending_requests=3, max_requests=4, max_retries=5,
        track_remaining=6, max_connection_pools=7, retry_budget=8),
    "envoy.config.cluster.v3.Cluster.LeastRequestLbConfig": dict(
        choice_count=1, active_request_bias=2, slow_start_config=3),
    "envoy.config.cluster.v3.Cluster.CommonLbConfig": dict(
        healthy_panic_threshold=1, zone_aware_lb_config=2, locality_weighted_lb_config=3,
        update_merge_window=4, ignore_new_hosts_until_first_hc=5,
        close_connections_on_host_set_change=6, consistent_hashing_lb_config=7,
        override_host_status=8),
    "envoy.config.endpoint.v3.ClusterLoadAssignment": dict(
        cluster_name=1, endpoints=2, policy=4, named_endpoints=5),
    "envoy.config.endpoint.v3.LocalityLbEndpoints": dict(
        locality=1, lb_endpoints=2, load_balancing_weight=3, priority=5, proximity=6,
        leds_cluster_locality_config=7, load_balancer_endpoints=8, metadata=9),
    "envoy.config.endpoint.v3.LbEndpoint": dict(
        endpoint=1, health_status=2, metadata=3, load_balancing_weight=4, endpoint_name=5),
    "envoy.config.endpoint.v3.Endpoint": dict(
        address=1, health_check_config=2, hostname=3, additional_addresses=4),
}

#: Enum fields inside a oneof: protobuf prints them even at their zero value.
ONEOF_ENUMS = {("envoy.config.cluster.v3.Cluster", "type")}


def order_fields(envoy_type: str, doc: Dict[str, Any]) -> Dict[str, Any]:
    """`doc`'s keys in field-number order ("@type" first, unknown fields last)."""
    numbers = FIELD_NUMBERS.get(envoy_type)
    if numbers is None:  # maybe an extension's message, known once they are loaded
        from envoy_fast.extensions import registry
        registry.network_filters()
        numbers = FIELD_NUMBERS.get(envoy_type, {})
    keys = list(doc)
    keyed = sorted(range(len(keys)), key=lambda i: (
        -1 if keys[i] == "@type" else numbers.get(keys[i], 1 << 20), i))
    return {keys[i]: doc[keys[i]] for i in keyed}


# ----------------------------------------------------------- field kinds

#: A field that holds a scalar or enum (no path goes on from it).
SCALAR = ""
#: A repeated field or map (a path may end at it, not go through it).
REPEATED = "*"
#: A message whose fields envoy_fast does not model: paths below it are
#: taken as written.
UNMODELLED = "?"
#: google.protobuf.Any holding the named type (a config dump resource's
#: ``cluster`` or ``listener``).
ANY = "Any:"

DURATION = "google.protobuf.Duration"
TIMESTAMP = "google.protobuf.Timestamp"
UINT32 = "google.protobuf.UInt32Value"
BOOL = "google.protobuf.BoolValue"
_R, _U = REPEATED, UNMODELLED

#: The non-scalar fields of each modelled message (the others in
#: FIELD_NUMBERS are scalars or enums).
MESSAGE_FIELDS: Dict[str, Dict[str, str]] = {
    DURATION: {}, TIMESTAMP: {}, UINT32: {}, BOOL: {},
    "envoy.config.bootstrap.v3.Bootstrap": dict(
        node="envoy.config.core.v3.Node",
        static_resources="envoy.config.bootstrap.v3.Bootstrap.StaticResources",
        dynamic_resources=_U, cluster_manager=_U, stats_sinks=_R, stats_flush_interval=DURATION,
        watchdog=_U, tracing=_U, admin="envoy.config.bootstrap.v3.Admin", stats_config=_U,
        hds_config=_U, overload_manager=_U, layered_runtime=_U,
        stats_server_version_override=_U, bootstrap_extensions=_R, fatal_actions=_R,
        config_sources=_R, default_config_source=_U, certificate_provider_instances=_R,
        node_context_params=_R, watchdogs=_U, inline_headers=_R),
    "envoy.config.core.v3.Node": dict(
        metadata=_U, locality=_U, user_agent_build_version=_U, extensions=_R,
        client_features=_R, listening_addresses=_R, dynamic_parameters=_R),
    "envoy.config.bootstrap.v3.Admin": dict(
        address="envoy.config.core.v3.Address", socket_options=_R, access_log=_R,
        allow_paths=_R),
    "envoy.config.core.v3.Address": dict(
        socket_address="envoy.config.core.v3.SocketAddress", pipe=_U,
        envoy_internal_address=_U),
    "envoy.config.core.v3.SocketAddress": {},
    "envoy.config.bootstrap.v3.Bootstrap.StaticResources": dict(
        listeners=_R, clusters=_R, secrets=_R),
    "envoy.config.listener.v3.Listener": dict(
        address="envoy.config.core.v3.Address", filter_chains=_R, use_original_dst=BOOL,
        per_connection_buffer_limit_bytes=UINT32, metadata=_U, deprecated_v1=_U,
        listener_filters=_R, transparent=BOOL, freebind=BOOL,
        tcp_fast_open_queue_length=UINT32, socket_options=_R,
        listener_filters_timeout=DURATION, udp_listener_config=_U, api_listener=_U,
        connection_balance_config=_U, access_log=_R, tcp_backlog_size=UINT32,
        default_filter_chain="envoy.config.listener.v3.FilterChain", bind_to_port=BOOL,
        internal_listener=_U, enable_reuse_port=BOOL, filter_chain_matcher=_U,
        additional_addresses=_R, max_connections_to_accept_per_socket_event=UINT32,
        fcds_config=_U, tcp_keepalive=_U),
    "envoy.config.listener.v3.FilterChain": dict(
        filter_chain_match="envoy.config.listener.v3.FilterChainMatch", filters=_R,
        use_proxy_proto=BOOL, metadata=_U, transport_socket=_U, on_demand_configuration=_U,
        transport_socket_connect_timeout=DURATION),
    "envoy.config.listener.v3.FilterChainMatch": dict(
        prefix_ranges=_R, suffix_len=UINT32, source_prefix_ranges=_R, source_ports=_R,
        destination_port=UINT32, application_protocols=_R, server_names=_R,
        direct_source_prefix_ranges=_R),
    "envoy.config.cluster.v3.Cluster": dict(
        eds_cluster_config=_U, connect_timeout=DURATION,
        per_connection_buffer_limit_bytes=UINT32, health_checks=_R,
        max_requests_per_connection=UINT32,
        circuit_breakers="envoy.config.cluster.v3.CircuitBreakers",
        http_protocol_options=_U, http2_protocol_options=_U, dns_refresh_rate=DURATION,
        dns_resolvers=_R, outlier_detection=_U, cleanup_interval=DURATION,
        upstream_bind_config=_U, lb_subset_config=_U, ring_hash_lb_config=_U,
        transport_socket=_U, metadata=_U,
        common_lb_config="envoy.config.cluster.v3.Cluster.CommonLbConfig",
        common_http_protocol_options=_U, upstream_connection_options=_U,
        load_assignment="envoy.config.endpoint.v3.ClusterLoadAssignment",
        original_dst_lb_config=_U, typed_extension_protocol_options=_R,
        least_request_lb_config="envoy.config.cluster.v3.Cluster.LeastRequestLbConfig",
        cluster_type=_U, filters=_R, load_balancing_policy=_U, lrs_server=_U,
        transport_socket_matches=_R, dns_failure_refresh_rate=_U,
        upstream_http_protocol_options=_U, upstream_config=_U, track_cluster_stats=_U,
        preconnect_policy=_U, maglev_lb_config=_U, dns_resolution_config=_U,
        typed_dns_resolver_config=_U, round_robin_lb_config=_U, wait_for_warm_on_init=BOOL,
        lrs_report_endpoint_metrics=_R, dns_jitter=DURATION),
    "envoy.config.cluster.v3.CircuitBreakers": dict(thresholds=_R, per_host_thresholds=_R),
    "envoy.config.cluster.v3.Cluster.LeastRequestLbConfig": dict(
        choice_count=UINT32, active_request_bias=_U, slow_start_config=_U),
    "envoy.config.cluster.v3.Cluster.CommonLbConfig": dict(
        healthy_panic_threshold=_U, zone_aware_lb_config=_U, locality_weighted_lb_config=_U,
        update_merge_window=DURATION, consistent_hashing_lb_config=_U,
        override_host_status=_U),
    "envoy.config.endpoint.v3.ClusterLoadAssignment": dict(
        endpoints=_R, policy=_U, named_endpoints=_R),
}
#: Fields of well-known types (FIELD_NUMBERS has only Envoy's messages).
ANY_TYPE = "google.protobuf.Any"
_WKT_FIELDS = {DURATION: ("seconds", "nanos"), TIMESTAMP: ("seconds", "nanos"),
               UINT32: ("value",), BOOL: ("value",), ANY_TYPE: ("type_url", "value")}


def register(messages: Dict[str, Dict[str, str]]) -> None:
    """Add messages another module prints (the admin's config dump messages):
    each one's fields, in field-number order, with their kinds."""
    for envoy_type, fields in messages.items():
        MESSAGE_FIELDS[envoy_type] = fields
        FIELD_NUMBERS.setdefault(envoy_type, {n: i for i, n in enumerate(fields, 1)})


def field_kind(envoy_type: str, name: str) -> Any:
    """The kind of `envoy_type`'s field `name` (SCALAR, REPEATED, UNMODELLED,
    ANY + type, or a message type), or None when there is no such field."""
    fields = MESSAGE_FIELDS.get(envoy_type, {})
    if name in fields:
        return fields[name]
    known = _WKT_FIELDS.get(envoy_type) or FIELD_NUMBERS.get(envoy_type, {})
    return SCALAR if name in known else None


def path_valid(envoy_type: str, path: str) -> bool:
    """protobuf's FieldMaskUtil::GetFieldDescriptors: every part a field, and
    every part but the last a message field that is not repeated."""
    parts = path.split(".")
    t = envoy_type
    for i, name in enumerate(parts):
        if t == UNMODELLED:
            return all(parts[i:])
        kind = field_kind(t, name)
        if kind is None:
            return False
        if i < len(parts) - 1:
            if kind in (SCALAR, REPEATED):
                return False
            t = ANY_TYPE if kind.startswith(ANY) else kind
    return True
