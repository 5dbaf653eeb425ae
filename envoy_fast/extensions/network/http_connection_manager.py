"""http_connection_manager's registry record: its plan, stat blocks and factory
(its config messages and checks are in ``http_connection_manager_config``,
the plan Structs in ``http_connection_manager_plan``)."""
from __future__ import annotations

import ipaddress
from typing import List, Tuple

from envoy_fast.accesslog import build_access_log_plan
from envoy_fast.extensions import registry
from envoy_fast.extensions.network import http_connection_manager_config as config_module
from envoy_fast.extensions.network.http_connection_manager_config import HttpConnectionManager
from envoy_fast.extensions.network.http_connection_manager_plan import (
    NAME, STRIP_PORT_ANY, STRIP_PORT_MATCHING, STRIP_PORT_NONE, SERVER_HEADER_APPEND_IF_ABSENT, SERVER_HEADER_OVERWRITE, SERVER_HEADER_PASS_THROUGH,
    UNDERSCORES_ALLOW, UNDERSCORES_DROP_HEADER, UNDERSCORES_REJECT_REQUEST, HttpConnectionManagerPlan)
from envoy_fast.extensions.registry import NetworkFilterRecord, PlanContext, StatBlock, register_network_filter
from envoy_fast.router.plan import build_route_table_plan

#: Envoy's ``http.<stat_prefix>.`` counters and gauges (ALL_HTTP_CONN_MAN_STATS
#: and the router's ALL_ROUTER_STATS, which Envoy keeps under the same
#: prefix), as the real Envoy 1.40 lists them at startup. Stand-in for
#: ``_worker.HTTP_CONN_MANAGER_STATS``, the table beside the worker's enum,
#: which is authoritative once it exists.
ENVOY_HTTP_CONN_MANAGER_STATS: Tuple[Tuple[str, str], ...] = tuple(
    (name, "gauge" if name.endswith(("_active", "_buffered")) else "counter") for name in """
    downstream_cx_total downstream_cx_active downstream_cx_delayed_close_timeout
    downstream_cx_destroy downstream_cx_destroy_active_rq downstream_cx_destroy_local
    downstream_cx_destroy_local_active_rq downstream_cx_destroy_remote
    downstream_cx_destroy_remote_active_rq downstream_cx_drain_close downstream_cx_http1_active
    downstream_cx_http1_soft_drain downstream_cx_http1_total downstream_cx_http2_active
    downstream_cx_http2_total downstream_cx_http3_active downstream_cx_http3_total
    downstream_cx_idle_timeout downstream_cx_max_duration_reached
    downstream_cx_max_requests_reached downstream_cx_overload_disable_keepalive
    downstream_cx_protocol_error downstream_cx_rx_bytes_buffered downstream_cx_rx_bytes_total
    downstream_cx_ssl_active downstream_cx_ssl_total downstream_cx_tx_bytes_buffered
    downstream_cx_tx_bytes_total downstream_cx_upgrades_active downstream_cx_upgrades_total
    downstream_flow_control_paused_reading_total downstream_flow_control_resumed_reading_total
    downstream_rq_1xx downstream_rq_2xx downstream_rq_3xx downstream_rq_4xx downstream_rq_5xx
    downstream_rq_active downstream_rq_completed downstream_rq_failed_path_normalization
    downstream_rq_header_timeout downstream_rq_http1_total downstream_rq_http2_total
    downstream_rq_http3_total downstream_rq_idle_timeout downstream_rq_max_duration_reached
    downstream_rq_non_relative_path downstream_rq_overload_close
    downstream_rq_redirected_with_normalized_path downstream_rq_rejected_via_ip_detection
    downstream_rq_response_before_rq_complete downstream_rq_rx_reset downstream_rq_timeout
    downstream_rq_too_large downstream_rq_too_many_premature_resets downstream_rq_total
    downstream_rq_tx_reset downstream_rq_ws_on_non_ws_route no_cluster no_route
    passthrough_internal_redirect_bad_location passthrough_internal_redirect_no_route
    passthrough_internal_redirect_predicate passthrough_internal_redirect_too_many_redirects
    passthrough_internal_redirect_unsafe_scheme rq_direct_response rq_overload_local_reply
    rq_redirect rq_reset_after_downstream_response_started rq_total rs_too_large
    tracing.client_enabled tracing.health_check tracing.not_traceable tracing.random_sampling
    tracing.service_forced
    """.split())

#: ``http.<stat_prefix>.`` histograms (ms).
HTTP_CONN_MANAGER_HISTOGRAMS = ("downstream_cx_length_ms", "downstream_rq_time")

#: Envoy also counts per listener: ``listener.<address>.http.<stat_prefix>.``
#: (ListenerStats of the HCM). Stand-in for ``_worker.HTTP_LISTENER_STATS``.
ENVOY_HTTP_LISTENER_STATS: Tuple[Tuple[str, str], ...] = tuple(
    (name, "counter") for name in (
        "downstream_rq_1xx", "downstream_rq_2xx", "downstream_rq_3xx", "downstream_rq_4xx",
        "downstream_rq_5xx", "downstream_rq_completed"))

_SERVER_HEADER = {"OVERWRITE": SERVER_HEADER_OVERWRITE, "APPEND_IF_ABSENT": SERVER_HEADER_APPEND_IF_ABSENT,
                  "PASS_THROUGH": SERVER_HEADER_PASS_THROUGH}
_UNDERSCORES = {"ALLOW": UNDERSCORES_ALLOW, "REJECT_REQUEST": UNDERSCORES_REJECT_REQUEST,
                "DROP_HEADER": UNDERSCORES_DROP_HEADER}


def _internal_cidrs(config) -> List[str]:
    iac = config.internal_address_config
    if iac is None:
        return []
    out = []
    for c in iac.cidr_ranges:
        ip = ipaddress.ip_address(c.address_prefix)
        # Envoy clamps a prefix past the address's length (CidrRange::create).
        out.append(str(ipaddress.ip_network(f"{ip}/{min(c.prefix_len, ip.max_prefixlen)}", strict=False)))
    return out


def _worker_table(name: str, fallback: Tuple[Tuple[str, str], ...]) -> Tuple[Tuple[str, str], ...]:
    from envoy_fast import _worker    # in main, once the stats layout is built
    return tuple(getattr(_worker, name, fallback))


def stat_prefix(config: HttpConnectionManager) -> str:
    return "http." + config.stat_prefix


def _stat_blocks(config: HttpConnectionManager) -> List[StatBlock]:
    return [StatBlock(stat_prefix(config),
                      _worker_table("HTTP_CONN_MANAGER_STATS", ENVOY_HTTP_CONN_MANAGER_STATS),
                      histograms=HTTP_CONN_MANAGER_HISTOGRAMS)]


def listener_stat_block(listener_prefix: str, config: HttpConnectionManager) -> StatBlock:
    """The ``listener.<address>.http.<stat_prefix>.`` block of this HCM on
    one listener (``listener_prefix``: ``listener.<address>``)."""
    return StatBlock("%s.http.%s" % (listener_prefix, config.stat_prefix),
                     _worker_table("HTTP_LISTENER_STATS", ENVOY_HTTP_LISTENER_STATS))


def _listener_stat_blocks(config: HttpConnectionManager, listener_prefix: str) -> List[StatBlock]:
    return [listener_stat_block(listener_prefix, config)]


def _build_plan(config: HttpConnectionManager, ctx: PlanContext) -> HttpConnectionManagerPlan:
    base, histograms = ctx.block(stat_prefix(config))
    listener_base = -1
    if ctx.listener_stat_prefix:
        listener_base, _ = ctx.block(listener_stat_block(ctx.listener_stat_prefix, config).prefix)
    options = config.protocol_options
    http1 = config.http1_options
    http_filters = [registry.for_http_config(f.typed_config).build_plan(f.typed_config, ctx)
                    for f in config.http_filters]
    return HttpConnectionManagerPlan(
        stat_prefix=config.stat_prefix,
        stats_base=base,
        listener_stats_base=listener_base,
        downstream_rq_time_slot=histograms.get("downstream_rq_time", -1),
        downstream_cx_length_ms_slot=histograms.get("downstream_cx_length_ms", -1),
        route_table=build_route_table_plan(config.route_config, ctx),
        http_filters=http_filters,
        server_name=config.server_name,
        server_header_transformation=_SERVER_HEADER[config.server_header_transformation],
        use_remote_address=config.use_remote_address,
        internal_cidrs=_internal_cidrs(config),
        strip_port=(STRIP_PORT_ANY if config.strip_any_host_port else
                    STRIP_PORT_MATCHING if config.strip_matching_host_port else STRIP_PORT_NONE),
        strip_trailing_host_dot=config.strip_trailing_host_dot,
        append_x_forwarded_port=config.append_x_forwarded_port,
        skip_xff_append=config.skip_xff_append,
        xff_num_trusted_hops=config.xff_num_trusted_hops,
        generate_request_id=config.generate_request_id,
        preserve_external_request_id=config.preserve_external_request_id,
        always_set_request_id_in_response=config.always_set_request_id_in_response,
        max_request_headers_kb=config.max_request_headers_kb or 60,
        max_headers_count=options.max_headers_count,
        headers_with_underscores_action=_UNDERSCORES[options.headers_with_underscores_action],
        idle_timeout=options.idle_timeout,
        max_connection_duration=options.max_connection_duration or 0.0,
        max_requests_per_connection=options.max_requests_per_connection or 0,
        stream_idle_timeout=config.stream_idle_timeout,
        request_timeout=config.request_timeout,
        max_stream_duration=options.max_stream_duration or 0.0,
        request_headers_timeout=config.request_headers_timeout,
        delayed_close_timeout=config.delayed_close_timeout,
        drain_timeout=config.drain_timeout,
        accept_http_10=http1.accept_http_10,
        default_host_for_http_10=http1.default_host_for_http_10,
        allow_absolute_url=http1.allow_absolute_url,
        allow_chunked_length=http1.allow_chunked_length,
        enable_trailers=http1.enable_trailers,
        proper_case_headers=http1.header_key_format is not None,
        upgrade_types=[u.upgrade_type.lower() for u in config.upgrade_configs if u.enabled],
        proxy_100_continue=config.proxy_100_continue,
        via=config.via,
        access_log=(build_access_log_plan(config, ctx.cluster_alt_names)
                    if config.access_log else []),
    )


RECORD = register_network_filter(NetworkFilterRecord(
    name=NAME,
    config_type=HttpConnectionManager,
    plan_type=HttpConnectionManagerPlan,
    build_plan=_build_plan,
    factory="envoy_fast._worker:HttpConnectionManagerConfig.from_plan",
    stat_blocks=_stat_blocks,
    listener_stat_blocks=_listener_stat_blocks,
    check=config_module.check,
    terminal=True,
    proto_fields=config_module.FIELD_NUMBERS,
))
